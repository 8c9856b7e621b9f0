"""Parity: run the source and the output, signature by signature, output by output, and compare.
The output runs in the real target runtime (its C API); the source runs in the installed
TensorFlow's Python API or in a release's real runtime (its C API): see
runtimes/source_runtime.py for which (--source-runtime auto|installed|VERSION).

Inputs, when the user gives none (`--inputs file.npz`, keys `<signature>/<input>` or `<input>`),
are generated from each signature's TensorInfo with a seeded generator:
  - unknown dimensions take UNKNOWN_DIM (2), an unknown rank is a vector of UNKNOWN_DIM;
  - floats are standard normal; ints (signed and unsigned) are in [0, INT_HIGH) so they are
    valid indices for small tables; bools are fair coins; strings are words from WORDS.
Tolerances are per dtype (DEFAULT_TOLERANCES) unless --rtol/--atol override them; integers,
bools and strings must be equal exactly; NaN matches NaN only at the same positions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from rewriter.protos import meta_graph_pb2, saved_model_pb2

from rewriter.attr_values import type_name
from rewriter.errors import BadInput, RuntimeUnavailable
from rewriter.runtimes.source_runtime import KIND_CAPI, KIND_INSTALLED, TARGET_DESCRIBE

UNKNOWN_DIM = 2
INTERNAL_SIGNATURE_PREFIX = "__saved_model_"
INT_HIGH = 5
WORDS = [b"the", b"quick", b"brown", b"fox", b"jumps", b"over", b"lazy", b"dog", b"hello", b"world"]
# (rtol, atol). float32 kernels agree to ~1e-7 across releases on CPU; 1e-5 leaves room for
# summation-order differences without hiding real mistakes.
DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    "float16": (1e-3, 1e-3),
    "bfloat16": (1e-2, 1e-2),
    "float32": (1e-5, 1e-6),
    "float64": (1e-10, 1e-12),
    "complex64": (1e-5, 1e-6),
    "complex128": (1e-10, 1e-12),
}
Progress = Callable[[str], None]

_NUMPY_OF = {
    "DT_FLOAT": np.float32, "DT_DOUBLE": np.float64, "DT_HALF": np.float16,
    "DT_INT8": np.int8, "DT_INT16": np.int16, "DT_INT32": np.int32, "DT_INT64": np.int64,
    "DT_UINT8": np.uint8, "DT_UINT16": np.uint16, "DT_UINT32": np.uint32, "DT_UINT64": np.uint64,
    "DT_BOOL": np.bool_, "DT_STRING": np.object_, "DT_COMPLEX64": np.complex64, "DT_COMPLEX128": np.complex128,
}


@dataclass
class OutputResult:
    signature: str
    output: str
    status: str  # "match", "mismatch", "error"
    dtype: str = ""
    shape: list[int] = field(default_factory=list)
    rtol: float | None = None
    atol: float | None = None
    max_abs_error: float | None = None
    max_rel_error: float | None = None
    worst_index: list[int] | None = None
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, "")}


@dataclass
class PythonLoaderResult:
    version: str
    load_error: str | None
    outputs: list[OutputResult]

    @property
    def ok(self) -> bool:
        return self.load_error is None and all(o.status == "match" for o in self.outputs)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "version": self.version, "load_error": self.load_error,
                "outputs": [o.to_json() for o in self.outputs]}


@dataclass
class ParityReport:
    target_version: str
    runtime_sha256: str
    seed: int
    inputs: dict[str, dict[str, dict[str, Any]]]  # signature -> input -> {dtype, shape}
    outputs: list[OutputResult]
    load_error: str | None = None
    function_errors: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    # signature -> why the SOURCE fails in the installed TF's C++-style loader too (looked at only
    # when the output fails in the target): then the conversion is not what broke it.
    source_session_errors: dict[str, str] = field(default_factory=dict)
    # With --python-loader: TF 2.3's tf.saved_model.load on the output, every signature called.
    python_loader: PythonLoaderResult | None = None
    # Which runtime ran the source (a runtimes.source_runtime.SourceRuntime); None: not recorded.
    source_runtime: Any = None

    @property
    def ok(self) -> bool:
        # A signature the source could not run was not compared: that proves nothing, so it fails.
        return (self.load_error is None and not self.function_errors and not self.skipped
                and all(o.status == "match" for o in self.outputs)
                and (self.python_loader is None or self.python_loader.ok))

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "runtime": {"version": self.target_version, "wheel_sha256": self.runtime_sha256, "api": "c",
                        "describe": TARGET_DESCRIBE.format(version=self.target_version)},
            "source_runtime": self.source_runtime.to_json() if self.source_runtime else None,
            "seed": self.seed,
            "inputs": self.inputs,
            "load_error": self.load_error,
            "python_loader_function_errors": self.function_errors,
            "outputs": [o.to_json() for o in self.outputs],
            "skipped": self.skipped,
            "source_session_errors": self.source_session_errors,
            "python_loader": self.python_loader.to_json() if self.python_loader else {"skipped": "not requested (--python-loader)"},
            "tolerances": {k: {"rtol": v[0], "atol": v[1]} for k, v in DEFAULT_TOLERANCES.items()},
        }


# --- signatures and inputs ------------------------------------------------------------
def select_meta_graph(proto: saved_model_pb2.SavedModel, tags: list[str]) -> meta_graph_pb2.MetaGraphDef:
    wanted = set(tags)
    for meta_graph in proto.meta_graphs:
        if set(meta_graph.meta_info_def.tags) == wanted:
            return meta_graph
    available = ["/".join(sorted(m.meta_info_def.tags)) for m in proto.meta_graphs]
    raise BadInput(f"no MetaGraphDef has tags {','.join(tags)} (available: {', '.join(available)})")


def _shape(info: meta_graph_pb2.TensorInfo) -> list[int]:
    if info.tensor_shape.unknown_rank:
        return [UNKNOWN_DIM]
    return [d.size if d.size >= 0 else UNKNOWN_DIM for d in info.tensor_shape.dim]


def generate_input(info: meta_graph_pb2.TensorInfo, rng: np.random.Generator) -> np.ndarray:
    dtype = type_name(info.dtype)
    shape = _shape(info)
    if dtype in ("DT_FLOAT", "DT_DOUBLE", "DT_HALF"):
        return rng.standard_normal(shape).astype(_NUMPY_OF[dtype])
    if dtype == "DT_BFLOAT16":
        raise BadInput("bfloat16 signature inputs need --inputs (numpy has no bfloat16 to generate)")
    if dtype == "DT_BOOL":
        return rng.integers(0, 2, shape).astype(np.bool_)
    if dtype == "DT_STRING":
        words = rng.integers(0, len(WORDS), shape)
        return np.vectorize(lambda i: WORDS[i], otypes=[object])(words) if words.size else np.empty(shape, object)
    if dtype in _NUMPY_OF:
        return rng.integers(0, INT_HIGH, shape).astype(_NUMPY_OF[dtype])
    raise BadInput(f"cannot generate a {dtype} input; pass --inputs")


def signature_inputs(
    meta_graph: meta_graph_pb2.MetaGraphDef, seed: int, given: dict[str, np.ndarray] | None
) -> dict[str, dict[str, np.ndarray]]:
    """signature key -> input key -> array, in sorted order so the seed gives the same arrays."""
    rng = np.random.default_rng(seed)
    result: dict[str, dict[str, np.ndarray]] = {}
    for key in sorted(meta_graph.signature_def):
        signature = meta_graph.signature_def[key]
        # __saved_model_init_op & co. are run by the loader itself, not callable signatures.
        if not signature.outputs or key.startswith(INTERNAL_SIGNATURE_PREFIX):
            continue
        arrays = {}
        for name in sorted(signature.inputs):
            supplied = None
            if given is not None:
                supplied = given.get(f"{key}/{name}", given.get(name))
            arrays[name] = np.asarray(supplied) if supplied is not None else generate_input(signature.inputs[name], rng)
        result[key] = arrays
    return result


def load_inputs_file(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError) as error:
        raise BadInput(f"--inputs {path}: not a readable .npz file ({error})") from None


def load_expected_file(path: Path, inputs: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, Any]]:
    """--expected: outputs keyed <signature>/<output>, grouped by the signatures parity runs. A
    signature the file says nothing about is skipped with a reason, like a source that fails."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as error:
        raise BadInput(f"--expected {path}: not a readable .npz file ({error})") from None
    results: dict[str, dict[str, Any]] = {}
    for key in inputs:
        outputs = {name.split("/", 1)[1]: value for name, value in arrays.items() if name.split("/", 1)[0] == key}
        results[key] = outputs or {"__error__": f"--expected {path} has no outputs for signature {key}"}
    return results


# --- running ----------------------------------------------------------------------------
# TF's Python loader (tf.saved_model.load) needs memory and time quadratic in the depth of a chain
# of function calls (TF 2.21, measured: 500 deep 1.4 GB / 20 s, 1000 deep 3.9 GB / 70 s, 2000
# deep over 14 GB); a session (as a C++ loader runs it) needs 0.9 GB at 1000. Deeper sources run so.
PYTHON_LOADER_MAX_CALL_DEPTH = 256


def run_source(model_dir: Path, tags: list[str], inputs: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, Any]]:
    """Run each signature in the installed TensorFlow with tf.saved_model.load (or, for a call
    chain deeper than PYTHON_LOADER_MAX_CALL_DEPTH, in a session: run_source_as_session)."""
    import tensorflow as tf

    from rewriter.runtimes.function_import import deepest_call_chain
    from rewriter.savedmodel_io import read_saved_model

    proto = read_saved_model(model_dir).proto
    meta_graph = select_meta_graph(proto, tags)
    if deepest_call_chain(meta_graph.graph_def.library) > PYTHON_LOADER_MAX_CALL_DEPTH:
        return run_source_as_session(model_dir, tags, meta_graph, inputs)
    loaded = tf.saved_model.load(str(model_dir), tags=tags)
    results: dict[str, dict[str, Any]] = {}
    for key, arrays in inputs.items():
        function = loaded.signatures[key]
        feeds = {name: tf.constant(value) for name, value in arrays.items()}
        try:
            outputs = function(**feeds)
            results[key] = {name: np.asarray(tensor.numpy()) for name, tensor in outputs.items()}
        except Exception as error:  # the source itself fails on these inputs: say so, do not crash
            results[key] = {"__error__": f"the source model fails on the parity inputs ({str(error).splitlines()[0]}); "
                                         "pass valid inputs with --inputs"}
    return results


def run_source_as_session(model_dir: Path, tags: list[str], meta_graph: meta_graph_pb2.MetaGraphDef,
                          inputs: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, Any]]:
    """run_source through the installed TF's TF1 loader and a session, signature by signature."""
    import tensorflow as tf
    from tensorflow.python.util import deprecation

    results: dict[str, dict[str, Any]] = {}
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        with deprecation.silence():  # TF's notice that the TF1 loader is deprecated is not ours to print
            tf.compat.v1.saved_model.loader.load(session, tags, str(model_dir))
        for key, arrays in inputs.items():
            signature = meta_graph.signature_def[key]
            feeds = {signature.inputs[name].name: value for name, value in arrays.items()}
            fetches = {name: signature.outputs[name].name for name in signature.outputs}
            try:
                values = session.run(fetches, feed_dict=feeds)
                results[key] = {name: np.asarray(value) for name, value in values.items()}
            except Exception as error:  # as in run_source: the source fails on these inputs
                results[key] = {"__error__": f"the source model fails on the parity inputs ({str(error).splitlines()[0]}); "
                                             "pass valid inputs with --inputs"}
    return results


def signature_calls(meta_graph: meta_graph_pb2.MetaGraphDef, inputs: dict[str, dict[str, np.ndarray]],
                    keys: list[str]) -> list[Any]:
    """One SignatureCall per signature key: feeds and fetches by the SignatureDef's tensor names."""
    from rewriter.runtimes import SignatureCall

    calls = []
    for key in keys:
        signature = meta_graph.signature_def[key]
        feeds = {signature.inputs[name].name: value for name, value in inputs[key].items()}
        fetches = [signature.outputs[name].name for name in sorted(signature.outputs)]
        calls.append(SignatureCall(key, feeds, fetches))
    return calls


def run_python_loader(output_dir: Path, inputs: dict[str, dict[str, np.ndarray]], expected: dict[str, dict[str, Any]],
                      meta_graph: meta_graph_pb2.MetaGraphDef, tolerance: dict[str, tuple[float, float]],
                      timeout: float) -> PythonLoaderResult:
    """TF 2.3's tf.saved_model.load on OUT, each signature called with the parity inputs and
    compared with the source's outputs as the C++ run is."""
    import tempfile

    from rewriter.runtimes.python23 import Py23EnvError, ensure_py23_env, save_feeds

    try:
        env = ensure_py23_env()
    except Py23EnvError as error:
        raise RuntimeUnavailable(f"--python-loader: {error}") from None
    with tempfile.TemporaryDirectory(prefix="tfdowngrade-py23-") as tmp:
        inputs_npz, outputs_npz = Path(tmp) / "inputs.npz", Path(tmp) / "outputs.npz"
        save_feeds(inputs_npz, {f"{key}/{name}": value for key, arrays in inputs.items() for name, value in arrays.items()})
        loaded = env.load_and_call(output_dir, inputs_npz, outputs_npz, timeout=timeout)
        result = PythonLoaderResult(env.tf_version, None if loaded.loaded else loaded.load_error, [])
        if not loaded.loaded:
            return result
        with np.load(outputs_npz, allow_pickle=True) as npz:  # our own subprocess wrote it
            got = {name: npz[name] for name in npz.files}
    for key in inputs:
        source, called = expected.get(key, {}), loaded.signatures.get(key)
        if "__error__" in source:
            continue  # not compared in the C++ run either: listed as skipped there
        for name in sorted(meta_graph.signature_def[key].outputs):
            if called is None or called.error:
                message = called.error if called else "TF 2.3's loader has no such signature"
                result.outputs.append(OutputResult(key, name, "error", message=message or ""))
            elif f"{key}/{name}" not in got:
                result.outputs.append(OutputResult(key, name, "error", message="the signature returned no such output"))
            elif name in source:
                actual = got[f"{key}/{name}"]
                want = np.asarray(source[name])
                if want.dtype == object:  # strings come back as an object array of bytes
                    actual = np.asarray(actual, dtype=object)
                result.outputs.append(_compare(key, name, want, actual, tolerance))
    return result


def run_source_in_session(model_dir: Path, tags: list[str], calls: list[Any]) -> dict[str, str]:
    """Load the source as a C++ loader does (restore op, then a session: what TF Serving runs, here
    through the installed TF's TF1 loader) and run each call; signature -> its error, if any."""
    import tensorflow as tf

    errors: dict[str, str] = {}
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        try:
            tf.compat.v1.saved_model.loader.load(session, tags, str(model_dir))
        except Exception as error:  # the source does not load this way at all
            return {call.key: f"does not load: {str(error).splitlines()[0]}" for call in calls}
        for call in calls:
            try:
                session.run(call.fetches, feed_dict=call.feeds)
            except Exception as error:
                # Skip headers such as "Graph execution error:" to reach the cause.
                lines = [line.strip() for line in str(error).splitlines() if line.strip() and not line.rstrip().endswith(":")]
                errors[call.key] = lines[0] if lines else repr(error)
    return errors


def _compare(signature: str, output: str, expected: np.ndarray, actual: np.ndarray,
             tolerance: dict[str, tuple[float, float]]) -> OutputResult:
    result = OutputResult(signature, output, "match", dtype=str(expected.dtype), shape=list(expected.shape))
    if actual.dtype != expected.dtype and not (expected.dtype == object and actual.dtype == object):
        result.status, result.message = "mismatch", f"dtype {actual.dtype}, expected {expected.dtype}"
        return result
    if actual.shape != expected.shape:
        result.status, result.message = "mismatch", f"shape {list(actual.shape)}, expected {list(expected.shape)}"
        return result
    kind = str(expected.dtype)
    if kind in tolerance:
        rtol, atol = tolerance[kind]
        result.rtol, result.atol = rtol, atol
        exp, act = expected.astype(np.float64 if "float" in kind else np.complex128), actual.astype(
            np.float64 if "float" in kind else np.complex128)
        nan_exp, nan_act = np.isnan(exp), np.isnan(act)
        if not np.array_equal(nan_exp, nan_act):
            result.status, result.message = "mismatch", "NaN at different positions"
            return result
        finite = ~nan_exp
        # Equal values differ by 0, equal infinities included (inf - inf would be NaN).
        differing = finite & (exp != act)
        with np.errstate(invalid="ignore"):
            diff = np.where(differing, np.abs(exp - act), 0.0)
            rel = np.where(differing, diff / np.maximum(np.abs(exp), np.finfo(np.float64).tiny), 0.0)
        if diff.size:
            worst = np.unravel_index(int(np.argmax(diff)), diff.shape)
            result.max_abs_error, result.max_rel_error = float(diff.max()), float(rel.max())
            result.worst_index = [int(i) for i in worst]
        inf_same = np.array_equal(np.isinf(exp) & finite, np.isinf(act) & finite)
        if not inf_same or not np.allclose(act[finite], exp[finite], rtol=rtol, atol=atol):
            result.status = "mismatch"
            result.message = f"max abs error {result.max_abs_error:.3g} > atol {atol:g} + rtol {rtol:g} * |expected|"
        return result
    if expected.dtype == object:
        equal = expected.shape == actual.shape and all(
            bytes(a) == bytes(b) for a, b in zip(expected.ravel(), actual.ravel()))
    else:
        equal = bool(np.array_equal(expected, actual))
    if not equal:
        mismatches: Any = np.argwhere(expected != actual) if expected.dtype != object else []
        result.status = "mismatch"
        result.message = "values differ (exact comparison)"
        if len(mismatches):
            result.worst_index = [int(i) for i in mismatches[0]]
    return result


@dataclass(frozen=True)
class ParityOptions:
    """How parity runs: which MetaGraphDef, which inputs, which tolerances, which runtime cache."""

    tags: tuple[str, ...] = ("serve",)
    seed: int = 0
    inputs_file: Path | None = None
    # Outputs to compare with instead of running the source here (keys <signature>/<output>):
    # for a source whose kernels the installed TensorFlow lacks on this machine (GPU-only ops).
    expected_file: Path | None = None
    rtol: float | None = None
    atol: float | None = None
    runtime_dir: Path | None = None
    offline: bool = False
    timeout: float = 600.0
    # Also judge with TF 2.3's own Python API (tf.saved_model.load): opt-in, because building
    # that environment needs apt-get, gcc and network (rewriter/runtimes/py23env/).
    python_loader: bool = False
    # Where the source runs: "auto", "installed" or a release such as "2.21" (source_runtime.py).
    source_runtime: str = "auto"


def verify(
    output_dir: Path,
    source_dir: Path,
    target: Any,
    options: ParityOptions = ParityOptions(),
    progress: Progress | None = None,
) -> ParityReport:
    """Run OUT in the real target runtime and IN in the source runtime (--source-runtime); compare."""
    from rewriter.runtimes import TargetRuntime, obtain_runtime, source_runtime
    from rewriter.savedmodel_io import read_saved_model

    say = progress or (lambda _: None)
    tags = list(options.tags)
    seed, rtol, atol = options.seed, options.rtol, options.atol
    out_files = read_saved_model(output_dir)
    source_proto = read_saved_model(source_dir).proto
    meta_graph = select_meta_graph(out_files.proto, tags)
    given = load_inputs_file(options.inputs_file) if options.inputs_file else None
    inputs = signature_inputs(meta_graph, seed, given)
    tolerance = dict(DEFAULT_TOLERANCES)
    if rtol is not None or atol is not None:
        tolerance = {k: (rtol if rtol is not None else v[0], atol if atol is not None else v[1]) for k, v in tolerance.items()}

    if options.expected_file:
        source_side = source_runtime.expected_file(options.expected_file)
    else:
        source_side = source_runtime.resolve(options.source_runtime, source_proto, cache_dir=options.runtime_dir,
                                             offline=options.offline, progress=say)
    handle = obtain_runtime(target, cache_dir=options.runtime_dir, offline=options.offline, progress=say)
    runtime = TargetRuntime(handle, timeout=options.timeout)
    if options.expected_file:
        say(f"comparing with the expected outputs of {options.expected_file}")
        expected = load_expected_file(options.expected_file, inputs)
    elif source_side.kind == KIND_CAPI:
        say(f"running the source in {source_side.describe()}")
        expected = source_runtime.run_in_capi(source_side, source_dir, tags, select_meta_graph(source_proto, tags),
                                              inputs, options.timeout)
    else:
        say(f"running the source in {source_side.describe()}")
        expected = run_source(source_dir, tags, inputs)
    calls = signature_calls(meta_graph, inputs, list(inputs))
    say(f"running the output in TensorFlow {handle.version} (C++ loader)")
    run = runtime.run_savedmodel(output_dir, tags, calls)
    say(f"importing every function in TensorFlow {handle.version} (as its Python loader does)")
    function_errors = {name: error for name, error in runtime.import_functions(output_dir / "saved_model.pb", say).items() if error}

    report = ParityReport(
        target_version=handle.version,
        runtime_sha256=handle.wheel_sha256,
        seed=seed,
        inputs={key: {name: {"dtype": str(a.dtype), "shape": list(a.shape)} for name, a in arrays.items()}
                for key, arrays in inputs.items()},
        outputs=[],
        load_error=run.load_error,
        function_errors=function_errors,
        source_runtime=source_side,
    )
    if run.load_error:
        return report
    for key in inputs:
        signature = meta_graph.signature_def[key]
        source = expected.get(key, {})
        for name in sorted(signature.outputs):
            if "__error__" in source:
                report.skipped.append(f"{key}: {source['__error__']}")
                break
            tensor_name = signature.outputs[name].name
            if key in run.errors:
                report.outputs.append(OutputResult(key, name, "error", message=run.errors[key]))
                continue
            actual = run.outputs.get(key, {}).get(tensor_name)
            if actual is None:
                report.outputs.append(OutputResult(key, name, "error", message="the target returned no value"))
                continue
            if name not in source:  # only an --expected file can lack an output
                report.outputs.append(OutputResult(key, name, "error", message="no expected value for this output"))
                continue
            report.outputs.append(_compare(key, name, np.asarray(source[name]), np.asarray(actual), tolerance))
    if options.python_loader:
        say("loading the output with TensorFlow 2.3.4's Python API (tf.saved_model.load), every signature called")
        report.python_loader = run_python_loader(output_dir, inputs, expected, meta_graph, tolerance, options.timeout)
    failed = {o.signature for o in report.outputs if o.status == "error"}
    if failed and source_side.kind == KIND_CAPI:
        # The source already ran in a C++ loader (its C API) on these signatures, and ran: so the
        # TF1-session diagnosis below has its answer, and needs no installed TensorFlow.
        source_side.notes.append(f"the source runs in TensorFlow {source_side.version}'s C++ loader on "
                                 f"{', '.join(sorted(failed))}, where the output fails: the source export is not "
                                 "the cause")
    elif failed and source_side.kind != KIND_INSTALLED and source_runtime.installed_tensorflow() is None:
        source_side.notes.append("not checked whether the source fails in a C++ loader too, where the output "
                                 "fails: that runs it in the installed TensorFlow, and none is installed")
    elif failed:
        # Does the source run where the output fails? A source that fails in the installed TF's
        # own C++-style loader (e.g. Keras 3 variables a tf.Module saves as restore-only copies)
        # points the user at the source, not at the conversion.
        say("running the source as a C++ loader does (a TF1 session), to see whether it fails there too")
        source_meta = select_meta_graph(source_proto, tags)
        report.source_session_errors = run_source_in_session(
            source_dir, tags, signature_calls(source_meta, inputs, sorted(failed)))
    return report
