"""Worker process: loads ONE old TF library and does one job for the parent (client.py).

Run as `python -m rewriter.runtimes.worker JOB_DIR` or `python path/to/worker.py JOB_DIR`.
It imports only the stdlib, numpy and this package's ctypes modules: never tensorflow, since
a second TF library in the process is asking for trouble (NOTES §2).

Protocol (all files in JOB_DIR):
  request.json   written by the parent: {"lib", "string_layout", "task", ...task fields}
  progress.log   one line per step, "stage <what>" when it starts and "done <what>" when it
                 ends, each written with os.write so it survives a crash; the parent reads it to
                 say what the runtime was doing when it died and which items are finished.
  load.json      run_savedmodel: {"error": null | TF's message}
  call-<i>.json  + call-<i>.npz: {"error", "outputs": [wire descriptions]} per signature call
  imports.jsonl  import_graphs: one line {"index", "error"} per imported GraphDef, appended with
                 os.write as each finishes (the GraphDefs come in one file, "blob", at offsets)
  result.json    version/op_list: {"version"}; op_list also writes op_list.pb (sorted OpList)
Exit code 0 means the job ran to its end (TF errors are results, not failures); 74
(SCRATCH_FAILED) that it could not read or write JOB_DIR (a full or read-only TMPDIR).

Test-only hooks (documented so tests can prove a crash or hang is contained):
  TFDOWNGRADE_WORKER_TEST_CRASH=<stage>  os.abort() when that stage starts
  TFDOWNGRADE_WORKER_TEST_HANG=<stage>   sleep forever when that stage starts
  TFDOWNGRADE_WORKER_TEST_NO_SPACE=<stage>  fail as a full disk would (ENOSPC) when it starts
  where <stage> is e.g. "load library", "load savedmodel", "call serving_default".
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

if __package__ in (None, ""):  # run by path: make `rewriter` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
import numpy.random  # noqa: E402,F401  # before libtensorflow, see capi.py

from rewriter.runtimes import capi, protowire, wire  # noqa: E402

CRASH_ENV = "TFDOWNGRADE_WORKER_TEST_CRASH"
HANG_ENV = "TFDOWNGRADE_WORKER_TEST_HANG"
NO_SPACE_ENV = "TFDOWNGRADE_WORKER_TEST_NO_SPACE"
# (the machine's fault, never the model's: the client turns it into RuntimeUnavailable)
SCRATCH_FAILED = wire.SCRATCH_FAILED


class Job:
    def __init__(self, job_dir: Path) -> None:
        self.dir = job_dir
        self.request: dict[str, Any] = json.loads((job_dir / "request.json").read_text())
        self._log = os.open(job_dir / "progress.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)

    def stage(self, what: str) -> None:
        os.write(self._log, f"stage {what}\n".encode())
        if os.environ.get(CRASH_ENV) == what:
            os.abort()
        if os.environ.get(HANG_ENV) == what:
            while True:
                time.sleep(3600)
        if os.environ.get(NO_SPACE_ENV) == what:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.dir))

    def done(self, what: str) -> None:
        os.write(self._log, f"done {what}\n".encode())

    def write_json(self, name: str, data: Any) -> None:
        tmp = self.dir / (name + ".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.dir / name)


def _run_savedmodel(job: Job, tf: capi.TFLibrary) -> None:
    req = job.request
    job.stage("load savedmodel")
    try:
        session = tf.load_savedmodel(req["export_dir"], req["tags"])
    except capi.TFError as err:
        job.write_json("load.json", {"error": str(err)})
        job.done("load savedmodel")
        return
    job.write_json("load.json", {"error": None})
    job.done("load savedmodel")
    feeds_npz = wire.load(Path(req["feeds_npz"]))
    for call in req["calls"]:
        index = call["index"]
        job.stage(f"call {call['key']}")
        result: dict[str, Any] = {"error": None, "outputs": []}
        store: dict[str, np.ndarray] = {}
        try:
            feeds = {f["name"]: (wire.get(feeds_npz, f), f["dtype"]) for f in call["feeds"]}
            values = session.run(feeds, call["fetches"])
            for j, name in enumerate(call["fetches"]):
                if name not in values:  # a target op (no outputs): run, nothing to return
                    result["outputs"].append(None)
                    continue
                array, dtype = values[name]
                desc = wire.put(store, f"o{j}", array)
                desc["dtype"] = dtype  # bfloat16 arrives as uint16 bits; keep its real name
                result["outputs"].append(desc)
        except capi.TFError as err:
            result = {"error": str(err), "outputs": []}
        if store:
            wire.save(job.dir / f"call-{index}.npz", store)
        job.write_json(f"call-{index}.json", result)
        job.done(f"call {call['key']}")


def _import_graphs(job: Job, tf: capi.TFLibrary) -> None:
    blob = Path(job.request["blob"]).read_bytes()
    results = os.open(job.dir / "imports.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    for item in job.request["graphs"]:
        job.stage(f"import {item['name']}")
        error = None
        try:
            tf.import_graph_def(blob[item["offset"]:item["offset"] + item["size"]])
        except capi.TFError as err:
            error = str(err)
        os.write(results, (json.dumps({"index": item["index"], "error": error}) + "\n").encode())
        job.done(f"import {item['name']}")


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL us when the parent dies: a parent killed by SIGKILL cannot kill us,
    and we run in our own session, so nothing else would stop an orphaned worker."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent's own cleanup is all there is
        return
    if os.getppid() == 1:  # the parent died before the request took effect
        os._exit(1)


def main(argv: list[str]) -> int:
    _die_with_parent()
    if len(argv) != 2:
        print("usage: worker.py JOB_DIR", file=sys.stderr)
        return 2
    try:
        job = Job(Path(argv[1]))
        job.stage("load library")
    except OSError as error:
        _scratch_failed(error)
    req = job.request
    tf = capi.TFLibrary(Path(req["lib"]), req.get("string_layout"))  # (its OSError: a library that does not load)
    version = tf.version()
    try:
        return _run_task(job, tf, version)
    except OSError as error:  # every model error is a TFError; this is the job folder's
        _scratch_failed(error)


def _scratch_failed(error: OSError) -> NoReturn:
    with contextlib.suppress(OSError):  # (stderr.log is in the same folder)
        print(f"cannot use the job folder: {error.strerror or error}", file=sys.stderr, flush=True)
    os._exit(SCRATCH_FAILED)


def _run_task(job: Job, tf: capi.TFLibrary, version: str) -> int:
    req = job.request
    job.done("load library")
    task = req["task"]
    if task == "version":
        job.write_json("result.json", {"version": version})
    elif task == "op_list":
        job.stage("op_list")
        (job.dir / "op_list.pb").write_bytes(protowire.sort_op_list(tf.op_list()))
        job.write_json("result.json", {"version": version})
        job.done("op_list")
    elif task == "run_savedmodel":
        _run_savedmodel(job, tf)
    elif task == "import_graphs":
        _import_graphs(job, tf)
    else:
        print(f"unknown task {task!r}", file=sys.stderr)
        return 2
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip TF's static destructors: some old releases crash in them at exit, after the job is done.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
