"""Parent side of the worker protocol (see worker.py): TargetRuntime and its results.

Every call starts a fresh worker process, so one TF library per process and a crash, a
non-zero exit or a hang in the old runtime becomes an error string here, never an exception
that takes the caller down. If the runtime crashes on one signature (or one function), the
items after it are retried in a new worker, so one bad item does not hide the others.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

import rewriter
from rewriter.errors import RuntimeUnavailable
from rewriter.runtimes import wire
from rewriter.runtimes.fetch import RuntimeHandle

try:  # numpy has no bfloat16; without ml_dtypes we hand back its uint16 bit pattern
    import ml_dtypes

    BFLOAT16: Any = ml_dtypes.bfloat16
except ImportError:  # pragma: no cover - ml_dtypes comes with TF
    BFLOAT16 = None


@dataclass
class SignatureCall:
    """One signature run: feeds and fetches by SignatureDef tensor names ('serving_default_x:0').

    A fetch that is a bare name of an op without outputs (like '__saved_model_init_op's
    'NoOp') is run as a target and left out of the outputs."""

    key: str
    feeds: dict[str, np.ndarray]
    fetches: list[str]


@dataclass
class RunResult:
    """load_error: why the SavedModel did not load (then nothing ran).
    outputs[key][fetch name] = array; errors[key] = why that call failed."""

    load_error: str | None
    outputs: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


@dataclass
class _Outcome:
    returncode: int | None  # None: timed out
    stages: list[str]  # stages started, in order
    done: list[str]  # stages finished
    stderr_tail: str

    @property
    def current(self) -> str | None:
        """The stage the worker was in when it stopped (None if it finished them all)."""
        finished = set(self.done)
        unfinished = [s for s in self.stages if s not in finished]
        return unfinished[-1] if unfinished else None


_STAGE_TEXT = {
    "load library": "loading its library",
    "load savedmodel": "loading the SavedModel",
    "op_list": "listing its ops",
}


def _describe(stage: str | None) -> str:
    if stage is None:
        return "finishing its job"
    if stage in _STAGE_TEXT:
        return _STAGE_TEXT[stage]
    kind, _, rest = stage.partition(" ")
    if kind == "call":
        return f"running signature {rest!r}"
    if kind == "import":
        return f"importing function {rest!r}"
    return stage


POLL_SECONDS = 0.5
PROGRESS_EVERY = 1000  # one progress line per this many imported functions
LIBRARY_STAGE = "load library"


class _ResultLines:
    """Reads the JSON lines a worker appends (one per finished item), as they come."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.items: list[dict[str, Any]] = []
        self._offset = 0

    def poll(self) -> int:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except FileNotFoundError:
            return len(self.items)
        end = data.rfind(b"\n") + 1  # a line cut by a crash is not a result
        for line in data[:end].splitlines():
            self.items.append(json.loads(line))
        self._offset += end
        return len(self.items)


class TargetRuntime:
    """Runs jobs in the real old TF runtime of `handle`, each in its own worker process."""

    def __init__(self, handle: RuntimeHandle, timeout: float = 600.0) -> None:
        self.handle = handle
        self.timeout = timeout
        marker = handle.marker()
        self._lib = str(handle.lib_dir / marker["capi_lib"])
        self._string_layout: str | None = marker.get("string_layout")
        self._name = f"TF {handle.version} runtime"

    # ---- running one worker ----

    def _spawn(self, job_dir: Path, request: dict[str, Any],
               watch: Callable[[], None] | None = None) -> _Outcome:
        request = {"lib": self._lib, "string_layout": self._string_layout, **request}
        (job_dir / "request.json").write_text(json.dumps(request))
        env = dict(os.environ)
        root = str(Path(rewriter.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        cmd = [sys.executable, "-m", "rewriter.runtimes.worker", str(job_dir)]
        returncode: int | None
        with open(job_dir / "stderr.log", "wb") as err:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                    env=env, start_new_session=True)
            try:
                returncode = self._wait(proc, job_dir / "progress.log", watch)
            except BaseException:
                # Ctrl-C, SIGTERM (raised by the CLI) or a bug here: the worker lives in its own
                # session, so it would not get the signal; never leave it running.
                _kill(proc)
                raise
        stages: list[str] = []
        done: list[str] = []
        log = job_dir / "progress.log"
        for line in (log.read_text(errors="replace").splitlines() if log.exists() else []):
            kind, _, what = line.partition(" ")
            (stages if kind == "stage" else done).append(what)
        lines = [ln for ln in (job_dir / "stderr.log").read_text(errors="replace").splitlines()
                 if ln.strip()]
        if returncode == wire.SCRATCH_FAILED:
            # It could not write its results (a full TMPDIR): no verdict on the model, and no
            # later call would fare better.
            said = lines[-1].strip() if lines else ""
            why = said.partition(": ")[2] if said.startswith("cannot use the job folder") else "is that disk full?"
            raise RuntimeUnavailable(
                f"{self._name} cannot write its results in {job_dir.parent} ({why}): free space there, "
                "or point TMPDIR at a folder with room")
        return _Outcome(returncode, stages, done, lines[-1].strip() if lines else "")

    def _wait(self, proc: "subprocess.Popen[bytes]", progress_log: Path,
              watch: Callable[[], None] | None) -> int | None:
        """The worker's exit code, or None if one step ran longer than self.timeout (then it is
        killed). The timeout is per step (the worker logs each step), so a job of 20,000 function
        imports is not cut off while every import is quick."""
        last_size, last_change = -1, time.monotonic()
        while True:
            try:
                return proc.wait(timeout=POLL_SECONDS)
            except subprocess.TimeoutExpired:
                pass
            if watch is not None:
                watch()
            try:
                size = progress_log.stat().st_size
            except OSError:
                size = -1
            now = time.monotonic()
            if size != last_size:
                last_size, last_change = size, now
            elif now - last_change > self.timeout:
                _kill(proc)
                return None

    def _check_started(self, outcome: _Outcome) -> None:
        """A worker that died before its library was loaded is a broken runtime (a damaged
        cache, a library this machine cannot load), never a verdict on the model: exit 4."""
        if LIBRARY_STAGE in outcome.done:
            return
        failure = self._failure(outcome, "") or f"{self._name} exited before loading its library"
        raise RuntimeUnavailable(
            f"{failure}; the runtime in {self.handle.lib_dir} is broken, not the model "
            "(delete that folder to fetch it again)")

    def _failure(self, outcome: _Outcome, subject: str) -> str:
        """One line saying how the worker died, or "" if it exited 0."""
        doing = _describe(outcome.current)
        if outcome.returncode is None:
            return f"{self._name} timed out after {self.timeout:g} s while {doing}{subject}"
        if outcome.returncode < 0:
            try:
                signame = signal.Signals(-outcome.returncode).name
            except ValueError:
                signame = "?"
            return (f"{self._name} crashed (signal {-outcome.returncode}, {signame}) "
                    f"while {doing}{subject}")
        if outcome.returncode > 0:
            tail = f": {outcome.stderr_tail}" if outcome.stderr_tail else ""
            return f"{self._name} failed (exit {outcome.returncode}) while {doing}{subject}{tail}"
        return ""

    def _simple(self, task: str) -> tuple[Path, dict[str, Any]]:
        job_dir = Path(tempfile.mkdtemp(prefix="tfdowngrade-job-"))
        outcome = self._spawn(job_dir, {"task": task})
        failure = self._failure(outcome, "")
        result = job_dir / "result.json"
        if failure or not result.exists():
            shutil.rmtree(job_dir, ignore_errors=True)
            raise RuntimeUnavailable(failure or f"{self._name} gave no result for {task}")
        return job_dir, json.loads(result.read_text())

    # ---- public API ----

    def version(self) -> str:
        """TF_Version() of the loaded library. RuntimeUnavailable if it cannot start."""
        job_dir, result = self._simple("version")
        shutil.rmtree(job_dir, ignore_errors=True)
        return str(result["version"])

    def op_list(self) -> bytes:
        """The serialized OpList of TF_GetAllOpList(), ops sorted by name."""
        job_dir, _ = self._simple("op_list")
        try:
            return (job_dir / "op_list.pb").read_bytes()
        finally:
            shutil.rmtree(job_dir, ignore_errors=True)

    def run_savedmodel(self, export_dir: Path, tags: list[str],
                       calls: list[SignatureCall]) -> RunResult:
        """Load the SavedModel as TF Serving does (TF_LoadSessionFromSavedModel), run each call."""
        result = RunResult(load_error=None)
        pending = list(enumerate(calls))
        subject = f" {export_dir}"
        with tempfile.TemporaryDirectory(prefix="tfdowngrade-run-") as tmp:
            store: dict[str, np.ndarray] = {}
            wire_calls: list[dict[str, Any]] = []
            for i, call in pending:
                feeds = []
                for j, (name, array) in enumerate(call.feeds.items()):
                    try:
                        desc = wire.put(store, f"c{i}_f{j}", np.asarray(array))
                    except ValueError as err:
                        result.errors[call.key] = f"feed {name!r}: {err}"
                        break
                    feeds.append({"name": name, **desc})
                wire_calls.append({"index": i, "key": call.key, "feeds": feeds,
                                   "fetches": list(call.fetches)})
            feeds_npz = Path(tmp) / "feeds.npz"
            wire.save(feeds_npz, store)
            todo = [c for c in wire_calls if c["key"] not in result.errors]
            attempt = 0
            while True:
                job_dir = Path(tmp) / f"job{attempt}"
                job_dir.mkdir()
                attempt += 1
                outcome = self._spawn(job_dir, {
                    "task": "run_savedmodel", "export_dir": str(Path(export_dir).resolve()),
                    "tags": list(tags), "feeds_npz": str(feeds_npz), "calls": todo})
                self._check_started(outcome)
                load = job_dir / "load.json"
                if load.exists():
                    result.load_error = json.loads(load.read_text())["error"]
                else:
                    where = subject if outcome.current == "load savedmodel" else ""
                    result.load_error = self._failure(outcome, where) or (
                        f"{self._name} exited without loading{subject}")
                if result.load_error is not None:
                    return result
                finished = self._collect_calls(job_dir, todo, result)
                failure = self._failure(outcome, "")
                todo = [c for c in todo if c["index"] not in finished]
                if not todo:
                    return result
                # the worker died on todo[0]: blame it, retry the rest (unless it hung)
                result.errors[todo[0]["key"]] = failure or f"{self._name} exited before this call"
                todo = todo[1:]
                if outcome.returncode is None:
                    for c in todo:
                        result.errors[c["key"]] = "not run: an earlier signature timed out"
                    return result
                if not todo:
                    return result

    def _collect_calls(self, job_dir: Path, todo: list[dict[str, Any]],
                       result: RunResult) -> set[int]:
        finished = set()
        for call in todo:
            path = job_dir / f"call-{call['index']}.json"
            if not path.exists():
                continue
            finished.add(call["index"])
            data = json.loads(path.read_text())
            if data["error"] is not None:
                result.errors[call["key"]] = data["error"]
                continue
            npz_path = job_dir / f"call-{call['index']}.npz"
            outputs: dict[str, np.ndarray] = {}
            if any(d is not None for d in data["outputs"]):
                with wire.load(npz_path) as npz:
                    for name, desc in zip(call["fetches"], data["outputs"]):
                        if desc is not None:  # None: a target op, run but not returned
                            outputs[name] = wire.get(npz, desc, BFLOAT16)
            result.outputs[call["key"]] = outputs
        return finished

    def import_graph_defs(self, graphs: dict[str, bytes],
                          progress: Callable[[str], None] | None = None) -> dict[str, str | None]:
        """TF_GraphImportGraphDef of each serialized GraphDef, each in a fresh graph.

        Returns name -> None if it imported, else the target's error message. One worker imports
        them all (the library loads once); they travel in one file, and results come back as one
        JSON line each, so 20,000 functions cost 20,000 imports and no more. `progress` gets one
        line per PROGRESS_EVERY imports."""
        out: dict[str, str | None] = {}
        total = len(graphs)
        with tempfile.TemporaryDirectory(prefix="tfdowngrade-import-") as tmp:
            blob = Path(tmp) / "graphs.bin"
            items: list[dict[str, Any]] = []
            with open(blob, "wb") as fh:
                offset = 0
                for i, (name, data) in enumerate(graphs.items()):
                    fh.write(data)
                    items.append({"index": i, "name": name, "offset": offset, "size": len(data)})
                    offset += len(data)
            attempt = 0
            reported = 0
            while items:
                job_dir = Path(tmp) / f"job{attempt}"
                job_dir.mkdir()
                attempt += 1
                results = _ResultLines(job_dir / "imports.jsonl")
                base = len(out)

                def watch() -> None:
                    nonlocal reported
                    done = base + results.poll()
                    for step in range(reported // PROGRESS_EVERY + 1, done // PROGRESS_EVERY + 1):
                        if progress is not None:  # one line per thousand, none skipped by a fast poll
                            progress(f"imported {step * PROGRESS_EVERY} of {total} functions")
                    reported = max(reported, done)

                outcome = self._spawn(job_dir, {"task": "import_graphs", "blob": str(blob), "graphs": items},
                                      watch)
                self._check_started(outcome)
                failure = self._failure(outcome, "")
                watch()
                finished = {item["index"]: item["error"] for item in results.items}
                remaining = []
                for item in items:
                    if item["index"] in finished:
                        out[item["name"]] = finished[item["index"]]
                    else:
                        remaining.append(item)
                if not remaining:
                    break
                out[remaining[0]["name"]] = failure or f"{self._name} exited before this import"
                items = remaining[1:]
                if outcome.returncode is None:
                    for item in items:
                        out[item["name"]] = "not imported: an earlier import timed out"
                    break
        return out

    def import_functions(self, saved_model_pb: Path,
                         progress: Callable[[str], None] | None = None) -> dict[str, str | None]:
        """Import every function of the SavedModel as TF's Python loader would (see
        function_import.py); returns function name -> None if OK, else the target's message."""
        from rewriter.runtimes import function_import

        graphs, errors = function_import.function_graph_defs(saved_model_pb, self.handle.release)
        imported = self.import_graph_defs(graphs, progress)
        order = function_import.function_names(saved_model_pb)  # library order, for readers
        return {name: errors[name] if name in errors else imported[name]
                for name in order if name in errors or name in imported}


def _kill(proc: "subprocess.Popen[bytes]") -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
