"""Run code in TensorFlow 2.3.4's *Python* API: the Python-loader judge of the tests and of
`--python-loader`.

    env = ensure_py23_env()                 # builds once (~30 s), then ~0.1 s
    p = env.run("import tensorflow as tf; print(tf.__version__)")
    r = env.load_and_call(saved_model_dir, inputs_npz, out_npz)
    assert r.loaded, r.load_error

The interpreter is Debian bullseye's CPython 3.9 with the cp38 TF 2.3.4 wheel,
built by rewriter/runtimes/py23env/build.py into $TFDOWNGRADE_PY23_DIR (default
~/.cache/tfdowngrade/py23env). See rewriter/runtimes/py23env/README.md.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

_RESULT_TAG = "@@PY23_RESULT@@"
_LENGTHS_SUFFIX = "@lengths"


def save_feeds(path: str | os.PathLike[str], feeds: dict[str, Any]) -> None:
    """An inputs .npz for load_and_call, without pickles (TF 2.3's numpy 1.x cannot read numpy
    2's): a string array goes as NUL-padded fixed-width bytes plus each element's length, so
    bytes that end in NUL survive."""
    import numpy as np

    arrays: dict[str, Any] = {}
    for key, value in feeds.items():
        array = np.asarray(value)
        if array.dtype == object or array.dtype.kind == "S":
            items = [bytes(v) if not isinstance(v, str) else v.encode() for v in array.ravel()]
            width = max((len(v) for v in items), default=0)
            arrays[key] = np.array(items, dtype=f"S{max(width, 1)}").reshape(array.shape)
            arrays[key + _LENGTHS_SUFFIX] = np.array([len(v) for v in items], np.int64).reshape(array.shape)
        else:
            arrays[key] = array
    np.savez(path, **arrays)


class Py23EnvError(RuntimeError):
    """The TF 2.3 Python environment could not be built or used."""


@dataclass(frozen=True)
class SignatureResult:
    """One signature as seen by TF 2.3: its input specs, output specs, or the error of calling it."""

    inputs: dict[str, dict[str, Any]]  # arg -> {"dtype": "float32", "shape": [None, 3] | None}
    outputs: dict[str, dict[str, Any]]  # output key -> {"dtype", "shape"} of the value returned
    called: bool
    error: str | None


@dataclass(frozen=True)
class LoadCallResult:
    """What `tf.saved_model.load` + calling every signature gave in TF 2.3."""

    loaded: bool
    load_error: str | None  # "ExceptionType: message" of the load, or why the process died
    load_traceback: str | None
    signatures: dict[str, SignatureResult] = field(default_factory=dict)
    out_npz: Path | None = None  # keys "<signature>/<output key>"
    returncode: int = 0
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        """Loaded, and every signature that was called ran without error."""
        return self.loaded and all(s.error is None for s in self.signatures.values())


@dataclass(frozen=True)
class Py23Env:
    root: Path
    python: Path
    env_vars: dict[str, str]  # LD_LIBRARY_PATH, LD_PRELOAD, PYTHONNOUSERSITE
    tf_version: str

    def environ(self, pythonpath: Sequence[str | os.PathLike[str]] = ()) -> dict[str, str]:
        """A full environment for the TF 2.3 interpreter.

        The caller's PYTHON*/LD_* variables are dropped (they would point at the
        3.11 world); the venv's site-packages needs no PYTHONPATH, so PYTHONPATH
        is set only to `pythonpath`.
        """
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("PYTHON") and k not in ("LD_LIBRARY_PATH", "LD_PRELOAD", "VIRTUAL_ENV")}
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep C++ info/warning noise out of captured output
        env.update(self.env_vars)
        if pythonpath:
            env["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
        return env

    def run(self, script: str, *args: str, timeout: float = 600,
            cwd: str | os.PathLike[str] | None = None,
            pythonpath: Sequence[str | os.PathLike[str]] = ()) -> subprocess.CompletedProcess[str]:
        """Run `script` (Python source) in TF 2.3's Python with `args` as sys.argv[1:].

        Never raises on a non-zero exit: check `.returncode` / `.stderr`.
        """
        # A real file rather than -c, so tracebacks show the failing source line.
        fd, path = tempfile.mkstemp(prefix="py23_", suffix=".py")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(script)
            return subprocess.run([str(self.python), path, *args], env=self.environ(pythonpath),
                                  cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, timeout=timeout)
        finally:
            os.unlink(path)

    def load_and_call(self, saved_model_dir: str | os.PathLike[str],
                      inputs_npz: str | os.PathLike[str] | None = None,
                      out_npz: str | os.PathLike[str] | None = None,
                      *, timeout: float = 600, tags: list[str] | None = None,
                      order: list[str] | None = None) -> LoadCallResult:
        """`tf.saved_model.load` in TF 2.3, then call every signature.

        Inputs come from `inputs_npz`: key "<signature>/<arg>" if present, else
        "<arg>" (shared by all signatures); each array is cast to the arg's
        dtype. Without `inputs_npz` only the load is done and signatures are
        listed. Outputs go to `out_npz` as "<signature>/<output key>".
        A failed load is a result (loaded=False, load_error=...), not an exception; outputs it
        could not write (a full TMPDIR) are an OSError. `tags`: the
        MetaGraphDef to load, which tf.saved_model.load needs when there are several. `order`: the
        signatures to call first, in this order (a stateful model's calls see the state the C++
        run's did); the others follow by name.
        """
        p = self.run(_LOAD_AND_CALL, str(saved_model_dir), str(inputs_npz or ""), str(out_npz or ""),
                     ",".join(tags or []), json.dumps(order or []), timeout=timeout)
        line = next((ln for ln in reversed(p.stdout.splitlines()) if ln.startswith(_RESULT_TAG)), None)
        if line is None:
            tail = "\n".join(p.stderr.strip().splitlines()[-15:])
            return LoadCallResult(loaded=False, load_error=f"TF 2.3 process exited {p.returncode} "
                                  f"without a result:\n{tail}", load_traceback=None,
                                  returncode=p.returncode, stdout=p.stdout, stderr=p.stderr)
        raw = json.loads(line[len(_RESULT_TAG):])
        if raw.get("scratch_error"):
            raise OSError(f"TF 2.3's Python could not write its outputs to {out_npz}: {raw['scratch_error']}")
        sigs = {name: SignatureResult(**s) for name, s in raw["signatures"].items()}
        return LoadCallResult(loaded=raw["loaded"], load_error=raw["load_error"],
                              load_traceback=raw["load_traceback"], signatures=sigs,
                              out_npz=Path(out_npz) if out_npz and raw["loaded"] else None,
                              returncode=p.returncode, stdout=p.stdout, stderr=p.stderr)


# Runs inside TF 2.3 / Python 3.9. Prints one tagged JSON line as its result.
_LOAD_AND_CALL = r'''
import json, sys, traceback
import numpy as np

model_dir, inputs_npz, out_npz, tags, order = sys.argv[1:6]
result = {"loaded": False, "load_error": None, "load_traceback": None, "signatures": {}}

def error_text(e):
    return "".join(traceback.format_exception_only(type(e), e)).strip()

def emit():
    print("TAG" + json.dumps(result), flush=True)

import tensorflow as tf
try:
    obj = tf.saved_model.load(model_dir, tags=tags.split(",") if tags else None)
except Exception as e:
    result["load_error"] = error_text(e)
    result["load_traceback"] = traceback.format_exc()
    emit()
    sys.exit(0)
result["loaded"] = True
LENGTHS = "LENGTHS_SUFFIX"


def exact_bytes(padded, lengths):
    # save_feeds' string arrays: fixed-width bytes (NUL-padded) plus each element's length.
    width = padded.dtype.itemsize
    rows = np.frombuffer(padded.tobytes(), np.uint8).reshape(-1, width) if width else np.zeros((padded.size, 0), np.uint8)
    values = [rows[i, :n].tobytes() for i, n in enumerate(lengths.ravel())]
    return np.array(values, dtype=object).reshape(padded.shape)


inputs = None
if inputs_npz:
    with np.load(inputs_npz) as npz:
        inputs = {k: npz[k] for k in npz.files if not k.endswith(LENGTHS)}
        for k in list(inputs):
            if k + LENGTHS in npz.files:
                inputs[k] = exact_bytes(inputs[k], npz[k + LENGTHS])
outputs = {}
first = [name for name in json.loads(order) if name in obj.signatures]
for name in first + sorted(name for name in obj.signatures.keys() if name not in first):
    fn = obj.signatures[name]
    sig = {"inputs": {}, "outputs": {}, "called": False, "error": None}
    result["signatures"][name] = sig
    if fn.structured_input_signature is not None:
        _, kw = fn.structured_input_signature
    else:
        # A TF1 graph's signature (load_v1_in_v2) is a pruned function that keeps its feed
        # names in _arg_keywords, in the order of its inputs.
        kw = {arg: tf.TensorSpec(t.shape, t.dtype) for arg, t in zip(fn._arg_keywords, fn.inputs)}
    for arg, spec in sorted(kw.items()):
        shape = spec.shape.as_list() if spec.shape.rank is not None else None
        sig["inputs"][arg] = {"dtype": spec.dtype.name, "shape": shape}
    if inputs is None:
        continue
    sig["called"] = True
    try:
        feed = {}
        for arg, spec in kw.items():
            key = name + "/" + arg if name + "/" + arg in inputs else arg
            if key not in inputs:
                raise KeyError("no input %r or %r in %s" % (name + "/" + arg, arg, inputs_npz))
            feed[arg] = tf.constant(inputs[key], dtype=spec.dtype)
        out = fn(**feed)
        for k, v in sorted(out.items()):
            arr = v.numpy()
            outputs[name + "/" + k] = arr
            sig["outputs"][k] = {"dtype": str(arr.dtype), "shape": list(arr.shape)}
    except Exception as e:
        sig["error"] = error_text(e)
if out_npz:
    try:
        np.savez(out_npz, **outputs)
    except OSError as e:  # a full TMPDIR: the machine's fault, not the model's
        result["scratch_error"] = error_text(e)
emit()
'''.replace("TAG", _RESULT_TAG).replace("LENGTHS_SUFFIX", _LENGTHS_SUFFIX)


def ensure_py23_env(cache_dir: str | os.PathLike[str] | None = None) -> Py23Env:
    """Build (first time, ~30 s) or reuse the TF 2.3.4 Python env; raise Py23EnvError on failure.

    `cache_dir` defaults to $TFDOWNGRADE_PY23_DIR or ~/.cache/tfdowngrade/py23env.
    """
    from rewriter.progress import activity
    from rewriter.runtimes.py23env import build

    try:
        with activity("TensorFlow 2.3.4's Python environment (built once, about 30 s)"):
            env_json = build.ensure(cache_dir)
    except build.BuildError as e:
        raise Py23EnvError(f"building the TF 2.3.4 Python env failed: {e}") from e
    except OSError as e:
        raise Py23EnvError(f"building the TF 2.3.4 Python env failed: {type(e).__name__}: {e}") from e
    info = json.loads(Path(env_json).read_text())
    return Py23Env(root=Path(info["root"]), python=Path(info["python"]),
                   env_vars=dict(info["env"]), tf_version=info["tf_version"])
