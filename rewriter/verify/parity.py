"""Parity: run the source and the output, signature by signature, output by output, and compare.
The output runs in the real target runtime (its C API); the source runs in the installed
TensorFlow's Python API or in a release's real runtime (its C API): see
runtimes/source_runtime.py for which (--source-runtime auto|installed|VERSION).

Inputs, when the user gives none (`--inputs file.npz`, keys `<signature>/<input>` or `<input>`),
are generated from each signature's TensorInfo with a seeded generator:
  - unknown dimensions take UNKNOWN_DIM (2), an unknown rank is a vector of UNKNOWN_DIM;
  - floats are standard normal; ints (signed and unsigned) are in [0, INT_HIGH) so they are
    valid indices for small tables; bools are fair coins; strings are words from WORDS.
Float outputs are graded against the model's own numerical noise (rewriter/verify/noise.py):
`bit-identical`, `within-noise` (the error is within a bound measured on the source: one-ulp
input changes, the compute precision on the path to the output, the output's range) or
`mismatch`. --rtol/--atol, when given, replace that bound for every float output (grade
`within-tolerance`). Integers, bools and strings must be equal exactly (strings by value, whatever
numpy dtype each side gives); NaN matches NaN only at the same positions.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
from rewriter.protos import meta_graph_pb2, saved_model_pb2

from rewriter.savedmodel.attr_values import type_name
from rewriter.report.error_distribution import error_histogram
from rewriter.errors import BadInput, RuntimeUnavailable
from rewriter.verify import noise
from rewriter.verify.input_synthesis import INT_HIGH, WORDS, Candidate, candidates, cased_utf8_word, vocabulary
from rewriter.verify.noise import NoiseBound
from rewriter.runtimes.source_runtime import KIND_CAPI, KIND_INSTALLED, TARGET_DESCRIBE

UNKNOWN_DIM = 2
INTERNAL_SIGNATURE_PREFIX = "__saved_model_"
# (rtol, atol) for the dtype whose tolerance the user did not give when giving the other one
# (--rtol alone, --atol alone). Without either, floats are judged by their noise bound.
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


GRADES = ("bit-identical", "within-noise", "within-tolerance", "mismatch", "unprovable")
# An output whose measured noise bound reaches noise.UNPROVABLE_OF_RANGE of its range: a wrong output
# that close would pass (an ill-conditioned eigenproblem, float16 logits on inputs the model never
# sees, randomness the same-input runs did not show). Not a match: OUT is written only when proven.
UNPROVABLE = ("the model's own noise on these inputs is {of_range:.2g} of this output's range (noise bound {bound:.3g}, "
              "range {scale:.3g}), at or over the {limit:g} a comparison needs to see real errors: a wrong output that "
              "close would pass, so a match here proves nothing. Pass --inputs like the model's real inputs (images in "
              "0-255 rather than generated standard-normal values), where it is better conditioned, or accept a "
              "tolerance you choose with --rtol/--atol")
# The message of an output with no elements: its dtype and shape matched, and no value was compared.
EMPTY_OUTPUT = "no elements: only its dtype and shape were compared"
NAN_OUTPUT = "every value is NaN: only its dtype, shape and NaN positions were compared"
VACUOUS = (EMPTY_OUTPUT, NAN_OUTPUT)  # outputs whose comparison proves nothing about values
CONSTANT_OUTPUT = ("every element is {value} and did not move when the model's float values moved by one ulp: "
                   "this match shows little of what the model computes (untrained, or a saturated layer?); "
                   "--inputs that give it varied values prove more")


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
    # The verdict's grade (GRADES; "" for an error): bit-identical, within-noise (the measured
    # bound below), within-tolerance (--rtol/--atol given), mismatch.
    grade: str = ""
    precision: str | None = None  # compute precision on the path to the output
    scale: float | None = None  # the output's range: max |expected|
    error_of_range: float | None = None  # max_abs_error / scale
    bound: float | None = None  # absolute bound on max_abs_error
    bound_of_range: float | None = None
    movement: float | None = None  # how far the source moved under one-ulp input changes
    bound_origin: str = ""
    error_histogram: dict[str, Any] | None = None  # rewriter/report/error_distribution.py (HTML report)

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
    # Where the output does not load: whether the SOURCE loads in a C++ loader (its release's C API):
    # "TensorFlow X's C++ loader: <its error>" if it does not either (then the export is the cause,
    # not the conversion); None if it loads there or this was not checked (source_runtime's notes say).
    source_load_error: str | None = None
    # With --python-loader: TF 2.3's tf.saved_model.load on the output, every signature called.
    python_loader: PythonLoaderResult | None = None
    # signature -> which input strategy fed it (rewriter/verify/input_synthesis.py), see SourceRun.
    input_strategies: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Which runtime ran the source (a runtimes.source_runtime.SourceRuntime); None: not recorded.
    source_runtime: Any = None
    # Unseeded random ops given the same seeds in both models for this check (rewriter/verify/seeds.py).
    pinned_seeds: list[str] = field(default_factory=list)

    def source_load_note(self) -> str | None:
        """What source_load_error means, in one sentence for the reports and the error line."""
        if not self.source_load_error:
            return None
        where, _, error = self.source_load_error.partition(": ")
        return (f"the source does not load in {where} either ({error.strip().rstrip('.')}): the export itself is the "
                "cause, not the conversion (TensorFlow's Python loader may still load it)")

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
            "input_strategies": self.input_strategies,
            "load_error": self.load_error,
            "python_loader_function_errors": self.function_errors,
            "outputs": [o.to_json() for o in self.outputs],
            "skipped": self.skipped,
            "pinned_seeds": self.pinned_seeds,
            "source_session_errors": self.source_session_errors,
            "source_load_error": self.source_load_error,
            "python_loader": self.python_loader.to_json() if self.python_loader else {"skipped": "not requested (--python-loader)"},
            "verdict": {
                "grades": list(GRADES),
                "noise_bound": (f"max(|actual - expected|) <= max({noise.FLOOR_ULPS:g} * eps(compute precision) * range, "
                                f"{noise.SAFETY:g} * movement), range = max |expected|, movement = how far the source's "
                                "output moves when its float inputs move by one ulp of the compute precision; an output "
                                "whose values lie at magnitudes more than one rounding step apart (a -1e9 mask beside "
                                "scores) is judged per magnitude class, each by its own range and movement"),
                "overrides": "--rtol/--atol replace the noise bound for every float output (grade within-tolerance)",
            },
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
    if dtype == "DT_BFLOAT16":  # ml_dtypes' bfloat16, TensorFlow's own numpy type for it
        import ml_dtypes

        return rng.standard_normal(shape).astype(np.float32).astype(ml_dtypes.bfloat16)
    if dtype == "DT_BOOL":
        return rng.integers(0, 2, shape).astype(np.bool_)
    if dtype == "DT_STRING":
        words = rng.integers(0, len(WORDS), shape)
        if words.size:  # the first holds a non-ASCII word with case (input_synthesis.CASED_UTF8)
            words.flat[0] = WORDS.index(cased_utf8_word(rng))
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


def _npz_problem(error: Exception) -> str:
    """Why np.load failed, with what to do where the fix is known: strings saved as object arrays
    need pickle, which is never loaded (a .npz could run code); bytes arrays need none."""
    if "allow_pickle" in str(error):
        return (f"{error}; save strings as a bytes array instead, np.array([b'a', b'bc']) (dtype S), "
                "which loads without pickle")
    return str(error)


def _load_npz(path: Path, option: str) -> dict[str, np.ndarray]:
    """The arrays of a .npz file given to `option`; BadInput (one line, what to do) for anything else."""
    try:
        with open(path, "rb") as file:
            head = file.read(6)
    except OSError as error:
        raise BadInput(f"{option} {path}: cannot be read ({error.strerror or error})") from None
    if head.startswith(b"\x93NUMPY"):
        raise BadInput(f"{option} {path}: one .npy array, not a .npz of named arrays: save them with "
                       "np.savez(path, <name>=array, ...)")
    if not head.startswith(b"PK"):
        raise BadInput(f"{option} {path}: not a .npz file (a zip of named .npy arrays, as "
                       "np.savez(path, <name>=array, ...) writes)")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError) as error:  # (a zip whose members are not .npy arrays, or pickled)
        raise BadInput(f"{option} {path}: not a readable .npz file ({_npz_problem(error)})") from None


def load_inputs_file(path: Path) -> dict[str, np.ndarray]:
    return _load_npz(path, "--inputs")


def load_expected_file(path: Path, inputs: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, Any]]:
    """--expected: outputs keyed <signature>/<output>, grouped by the signatures parity runs. A
    signature the file says nothing about is skipped with a reason, like a source that fails."""
    arrays = _load_npz(path, "--expected")
    results: dict[str, dict[str, Any]] = {}
    for key in inputs:
        outputs: dict[str, Any] = {name.split("/", 1)[1]: value for name, value in arrays.items()
                                   if name.split("/", 1)[0] == key}
        results[key] = outputs or {"__error__": f"--expected {path} has no outputs for signature {key}"}
    return results


def _output_precisions(meta_graphs: list[meta_graph_pb2.MetaGraphDef], meta_graph: meta_graph_pb2.MetaGraphDef,
                       key: str) -> dict[str, str]:
    """The precision computed on the path to each float output of signature `key` (one walk each)."""
    found: dict[str, str] = {}
    for name in sorted(meta_graph.signature_def[key].outputs):
        dtype = _NUMPY_OF.get(type_name(meta_graph.signature_def[key].outputs[name].dtype))
        if dtype is not None and noise.output_precision(np.dtype(dtype)):
            found[name] = signature_precision(meta_graphs, key, np.dtype(dtype), [name])
    return found


def _perturb_precision(meta_graph: meta_graph_pb2.MetaGraphDef, key: str, by_output: dict[str, str]) -> str:
    """The precision whose ulp the signature's inputs are moved by: the lowest on the path to any
    of its float outputs (float32 when it has none)."""
    precision = "float64"
    for output_precision in by_output.values():
        precision = noise.lower(precision, output_precision)
    return precision if precision != "float64" or _has_float64_output(meta_graph, key) else "float32"


def _finer_outputs(by_output: dict[str, str], coarse: str) -> dict[str, str]:
    """The float outputs computed in a finer precision than `coarse` (the signature's), and theirs."""
    return {name: precision for name, precision in by_output.items() if noise.EPSILON[precision] < noise.EPSILON[coarse]}


def _has_float64_output(meta_graph: meta_graph_pb2.MetaGraphDef, key: str) -> bool:
    return any(type_name(info.dtype) in ("DT_DOUBLE", "DT_COMPLEX128") for info in meta_graph.signature_def[key].outputs.values())


# --- running ----------------------------------------------------------------------------
# TF's Python loader (tf.saved_model.load) needs memory and time quadratic in the depth of a chain
# of function calls (TF 2.21, measured: 500 deep 1.4 GB / 20 s, 1000 deep 3.9 GB / 70 s, 2000
# deep over 14 GB); a session (as a C++ loader runs it) needs 0.9 GB at 1000. Deeper sources run so.
PYTHON_LOADER_MAX_CALL_DEPTH = 256


@dataclass
class SourceRun:
    """What the source computed: outputs[signature][output] (or {"__error__": why}), and per
    output how far it moved under one-ulp input changes (None: not measured, see notes)."""

    outputs: dict[str, dict[str, Any]]
    movements: dict[str, dict[str, np.ndarray | None]] = field(default_factory=dict)  # per element
    # per integer output: most elements one perturbed run changed (noise.changed)
    changes: dict[str, dict[str, int | None]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # signature -> why no movement was measured
    # signature -> what was moved by one ulp to measure it: "inputs", or "weights" for a signature
    # with no float input (token ids, strings), whose first float values are the model's own
    moved: dict[str, str] = field(default_factory=dict)
    # signature -> output -> what was moved, where it is not `moved` (see _measure_weights_too)
    moved_outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    # signature -> {"strategy": what fed it (None: nothing did), "why": input -> graph reasons,
    # "failed": ["<strategy>: <the source's error>", ...]}
    strategies: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The signatures in the order their reference calls succeeded: the order the target runs them
    # in, so a signature reading state another one changes sees what it saw in the source.
    order: list[str] = field(default_factory=list)


def _first_line(error: Exception | str) -> str:
    """The line of a TF error that says what went wrong (not its headers or stack markers)."""
    noise_prefixes = ("Detected at node", "<stack traces", "Graph execution error", "[[", "File ")
    lines = [line.strip() for line in str(error).splitlines()
             if line.strip() and not line.rstrip().endswith(":") and not line.strip().startswith(noise_prefixes)]
    return lines[0] if lines else (type(error).__name__ if isinstance(error, Exception) else "failed")


# One call: (signature key, inputs by input name) -> outputs by output name, or why it failed.
Batch = list[tuple[str, dict[str, np.ndarray]]]
BatchRunner = Callable[[Batch, Batch], list["dict[str, np.ndarray] | str"]]
# (signature key, inputs, precision, rng) -> PERTURBED_RUNS results of the signature run with every
# float variable it reads moved by one ulp of `precision` (restored after), or why that failed.
WeightRunner = Callable[[str, dict[str, np.ndarray], str, np.random.Generator], "list[dict[str, np.ndarray] | str] | str"]


def run_rounds(run_batch: BatchRunner, inputs: dict[str, dict[str, np.ndarray]],
               alternatives: dict[str, list[Candidate]] | None, precisions: dict[str, str] | None,
               seed: int = 0, where: str = "", run_moved_weights: WeightRunner | None = None,
               finer: dict[str, dict[str, str]] | None = None) -> SourceRun:
    """Run every signature on the first of its `alternatives` (rewriter/verify/input_synthesis.py) the
    source accepts, and measure its noise, in as few batches as can be: `run_batch(replay, batch)`
    runs `batch` after `replay` (the successful calls so far, which a runtime that cannot keep a
    session between batches runs again first, and one that can ignores) and returns the batch's
    results. Each round calls every signature still unfed with its next strategy, all reference
    calls first (a stateful model's first outputs are what the target's first runs see), then,
    with `precisions` (signature -> compute precision), once more on the same inputs (is it
    deterministic?), PERTURBED_RUNS times with every float input moved by one ulp of that
    precision, and once more on the same inputs after them (randomness whose state only moves
    from the second call on: a Keras SeedGenerator's dropout); a signature with no float input is
    measured by `run_moved_weights` instead, where the runtime can move the model's float
    variables. `finer` (signature -> output -> precision) names the outputs computed in a finer
    precision than their signature's (a float64 output beside float32 ones): PERTURBED_RUNS more
    runs per such precision measure them, since a move of the coarser size would measure the
    coarser noise. `inputs` is updated to the values that ran.

    A reference call that fails may have changed the model's state before failing (a variable
    assigned before an assertion), which the target, running only the successful calls, never
    sees: the calls after it in its batch are run again in the next round (on a fresh load with the
    successful calls replayed), with the same strategy."""
    run = SourceRun({})
    rng = np.random.default_rng(seed + 1)
    options = {key: (alternatives or {}).get(key) or [Candidate("random", arrays)] for key, arrays in inputs.items()}
    attempt = {key: 0 for key in inputs}
    tried: dict[str, list[str]] = {key: [] for key in inputs}
    # key -> the first strategy that ran but left an output without values (_vacuous): taken if no
    # later strategy does better; -1 once it is being run again to be taken.
    fallback: dict[str, int] = {}
    replay: Batch = []
    pending = list(inputs)
    while pending:
        chosen = {key: options[key][attempt[key]] for key in pending}
        batch: Batch = [(key, chosen[key].values) for key in pending]
        # key -> (first index in batch, count) of its noise calls, and the finer precisions measured
        # after them; the same-input call after all of them is the last of the key's calls
        extra: dict[str, tuple[int, int, list[str]]] = {}
        for key in pending:
            if precisions is None or key not in precisions:
                continue
            values = chosen[key].values
            moved = [] if run_moved_weights is not None and not _has_float(values) else [
                {name: noise.perturb(value, precisions[key], rng) for name, value in values.items()}
                for _ in range(noise.PERTURBED_RUNS)]
            levels = sorted(set((finer or {}).get(key, {}).values())) if moved else []
            moved_finer = [{name: noise.perturb(value, level, rng) for name, value in values.items()}
                           for level in levels for _ in range(noise.PERTURBED_RUNS)]
            extra[key] = (len(batch), 1 + len(moved), levels)
            batch += [(key, values)] + [(key, m) for m in moved + moved_finer] + [(key, values)]
        results = run_batch(replay, batch)
        still = []
        failed_before = False  # a reference call of this batch before this one failed
        for index, key in enumerate(pending):
            result = results[index]
            if failed_before:
                still.append(key)  # ran on whatever the failed call left (passed or not): again, same strategy
                continue
            if isinstance(result, str):
                failed_before = True
                tried[key].append(f"{chosen[key].strategy}: {_first_line(result)}")
                attempt[key] += 1
                if attempt[key] < len(options[key]):
                    still.append(key)
                else:
                    if key in fallback and fallback[key] != -1:  # one ran, without values: take it
                        attempt[key], fallback[key] = fallback[key], -1
                        still.append(key)
                        continue
                    run.strategies[key] = {"strategy": None, "failed": tried[key]}
                    run.outputs[key] = {"__error__": f"the source fails{' in ' + where if where else ''} on every input "
                                                     f"strategy tried ({'; '.join(tried[key])}); {_advice(tried[key])}"}
                continue
            empty = _vacuous(result)
            if empty and fallback.get(key) != -1:
                first_empty = fallback.setdefault(key, attempt[key])
                if attempt[key] + 1 < len(options[key]):  # a later strategy may give values
                    tried[key].append(f"{chosen[key].strategy}: {empty}")
                    attempt[key] += 1
                    still.append(key)
                    continue
                if first_empty != attempt[key]:  # none did: run the first such one again, to take it
                    tried[key].append(f"{chosen[key].strategy}: {empty}")
                    attempt[key], fallback[key] = first_empty, -1
                    still.append(key)
                    continue
                # the first without values is the last strategy: taken as it ran
            inputs[key] = chosen[key].values
            replay.append((key, chosen[key].values))
            run.order.append(key)
            run.outputs[key] = result
            run.strategies[key] = {"strategy": chosen[key].strategy, "why": chosen[key].reasons, "failed": tried[key]}
            if key in extra:
                first, count, levels = extra[key]
                values = chosen[key].values
                noise_runs = results[first:first + count]
                finer_runs = results[first + count:first + count + len(levels) * noise.PERTURBED_RUNS]
                last_again = results[first + count + len(levels) * noise.PERTURBED_RUNS]
                if run_moved_weights is not None and precisions is not None and not _has_float(values):
                    by_weights = run_moved_weights(key, values, precisions[key], rng)
                    noise_runs = noise_runs[:1] + ([by_weights] if isinstance(by_weights, str) else by_weights)
                    run.moved[key] = "weights"
                _measure(run, key, values, result, noise_runs, precisions[key] if precisions else None, last_again)
                if levels and key in run.movements:
                    _measure_finer(run, key, values, result, levels, finer_runs, (finer or {})[key])
                if run_moved_weights is not None and precisions is not None and _absorbed(run, key, result):
                    _measure_weights_too(run, key, values, result, run_moved_weights(key, values, precisions[key], rng))
        pending = still
    return run


# The errors of a source that no input changes: a variable its restore does not fill (a Keras 3
# model held by a tf.Module, saved by tf.saved_model.save: only TF's Python loader serves it).
_UNRESTORED = ("Could not find variable", "uninitialized value")


def _advice(failures: list[str]) -> str:
    """What the user can do when every input strategy failed in the source."""
    if failures and all(any(mark in failure for mark in _UNRESTORED) for failure in failures):
        return ("every call read a variable the source's restore does not fill, which no input changes: run the "
                "source where it is served (--source-runtime installed, TF's Python loader) or give its outputs "
                "with --expected")
    return "pass valid inputs with --inputs"


def _vacuous(outputs: dict[str, np.ndarray]) -> str | None:
    """Why these outputs prove little, if one has no value to compare: no elements, or only NaN
    (a window longer than the input: an STFT of no frames, the mean of nothing)."""
    for name, value in sorted(outputs.items()):
        array = np.asarray(value)
        if array.size == 0:
            return f"output {name} has no elements"
        if noise.is_float(array.dtype) and array.dtype.kind != "c" and np.isnan(array.astype(np.float64)).all():
            return f"output {name} is all NaN"
    return None


def _measure(run: SourceRun, key: str, values: dict[str, np.ndarray], reference: dict[str, np.ndarray],
             extra: list["dict[str, np.ndarray] | str"], precision: str | None = None,
             last_again: "dict[str, np.ndarray] | str | None" = None) -> None:
    """The movements of one signature's outputs from its noise runs: `extra` is the same-input
    run, then the moved runs; `last_again` the same-input run after all of them. If either
    same-input run differs from the reference, the moved runs measured state or randomness, not
    rounding, and nothing is measured."""
    again, moved = extra[0], extra[1:]
    for repeat in (again, last_again):
        if repeat is None:
            continue
        if isinstance(repeat, str) or any(not _same(reference[name], repeat.get(name)) for name in reference):
            run.notes[key] = "the source gives other outputs when run again on the same inputs (state or randomness)"
            return
    by_weights = run.moved.get(key) == "weights"
    if not by_weights and not _has_float(values):
        run.notes[key] = "the signature has no float input to move by one ulp"
        return
    failed = [m for m in moved if isinstance(m, str)]
    if failed:  # a perturbed input the source rejects: no measurement
        what = "with its weights" if by_weights else "on inputs"
        run.notes[key] = f"the source fails {what} moved by one ulp ({_first_line(str(failed[0]))})"
        run.moved.pop(key, None)
        return
    runs = [m for m in moved if not isinstance(m, str)]
    ratio = noise.move_ratio(values, precision) if precision and not by_weights else 1.0
    run.movements[key] = {name: _scaled(noise.movement(value, [m.get(name, np.empty(0)) for m in runs]), ratio)
                          for name, value in reference.items()}
    run.changes[key] = _changes(reference, runs)


def _changes(reference: dict[str, np.ndarray], runs: list[dict[str, np.ndarray]]) -> dict[str, int | None]:
    return {name: noise.changed(value, [m.get(name, np.empty(0)) for m in runs])
            for name, value in reference.items() if _is_integer(np.asarray(value).dtype)}


def _is_integer(dtype: np.dtype) -> bool:
    return dtype.kind in "iu"


def _scaled(measured: np.ndarray | None, ratio: float) -> np.ndarray | None:
    return measured * ratio if measured is not None else None


def _measure_finer(run: SourceRun, key: str, values: dict[str, np.ndarray], reference: dict[str, np.ndarray],
                   levels: list[str], results: list["dict[str, np.ndarray] | str"], finer: dict[str, str]) -> None:
    """The outputs of a finer precision, measured on the runs whose inputs moved by its ulp. A
    level whose runs failed keeps the coarser measurement (a wider bound)."""
    for position, level in enumerate(levels):
        runs = results[position * noise.PERTURBED_RUNS:(position + 1) * noise.PERTURBED_RUNS]
        if any(isinstance(r, str) for r in runs):
            continue
        moved = [r for r in runs if not isinstance(r, str)]
        for name, precision in finer.items():
            if precision == level and name in reference:
                run.movements[key][name] = _scaled(noise.movement(reference[name], [m.get(name, np.empty(0)) for m in moved]),
                                                   noise.move_ratio(values, level))


WEIGHTS_PAST_ABSORBED_INPUTS = "weights (a one-ulp move of its inputs moved it by 0, absorbed on the way)"


def _absorbed(run: SourceRun, key: str, reference: dict[str, np.ndarray]) -> bool:
    """Whether moving the float inputs by one ulp moved some float output by exactly 0: the move was
    absorbed on the way (an input scaled down and offset, x / 255 - 0.5, rounds back to the same
    value), so it says nothing about the rounding of the layers after."""
    found = run.movements.get(key, {})
    return run.moved.get(key) != "weights" and any(
        noise.largest(found.get(name)) == 0 and noise.is_float(np.asarray(value).dtype) and np.any(value)
        for name, value in reference.items())


def _measure_weights_too(run: SourceRun, key: str, values: dict[str, np.ndarray], reference: dict[str, np.ndarray],
                         by_weights: "list[dict[str, np.ndarray] | str] | str") -> None:
    """Where an input move was absorbed, the model's float variables moved by one ulp instead
    (its first float values past the absorption), for the outputs the input move left at 0."""
    if isinstance(by_weights, str) or any(isinstance(m, str) for m in by_weights):
        return  # no variable to move, or the source fails so: the input measurement stands
    moved = [m for m in by_weights if not isinstance(m, str)]
    changes = _changes(reference, moved)
    for name, value in reference.items():
        weights = noise.movement(value, [m.get(name, np.empty(0)) for m in moved])
        if noise.largest(run.movements[key].get(name)) == 0 and weights is not None:
            run.movements[key][name] = weights
            run.moved_outputs.setdefault(key, {})[name] = WEIGHTS_PAST_ABSORBED_INPUTS
            if name in changes:
                run.changes.setdefault(key, {})[name] = changes[name]


def _has_float(values: dict[str, np.ndarray]) -> bool:
    return any(noise.is_float(value.dtype) and value.size for value in values.values())


def run_source(model_dir: Path, tags: list[str], inputs: dict[str, dict[str, np.ndarray]],
               precisions: dict[str, str] | None = None, seed: int = 0,
               alternatives: dict[str, list[Candidate]] | None = None,
               finer: dict[str, dict[str, str]] | None = None) -> SourceRun:
    """Run each signature in the installed TensorFlow with tf.saved_model.load (or, for a call
    chain deeper than PYTHON_LOADER_MAX_CALL_DEPTH, in a session), through run_rounds: one loaded
    model for every strategy and noise run."""
    import tensorflow as tf

    from rewriter.runtimes.function_import import deepest_call_chain
    from rewriter.savedmodel.files import read_saved_model

    proto = read_saved_model(model_dir).proto
    meta_graph = select_meta_graph(proto, tags)
    if deepest_call_chain(meta_graph.graph_def.library) > PYTHON_LOADER_MAX_CALL_DEPTH:
        return run_source_as_session(model_dir, tags, meta_graph, inputs, precisions, seed, alternatives, finer)
    loaded = tf.saved_model.load(str(model_dir), tags=tags)
    first_round = True

    def call(key: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray] | str:
        try:
            outputs = loaded.signatures[key](**{name: tf.constant(value) for name, value in arrays.items()})
            return {name: np.asarray(tensor.numpy()) for name, tensor in outputs.items()}
        except Exception as error:  # the source itself fails on these inputs: say so, do not crash
            return _first_line(error)

    def run_batch(replay: Batch, batch: Batch) -> list[dict[str, np.ndarray] | str]:
        # A later round (a strategy retried) starts from a fresh load with the successful calls
        # replayed, as the target and a C-API source see them: the earlier round's noise runs and
        # failed calls changed the state of a model that assigns variables (a counter read by
        # another signature differed by 4; a helper's sweep).
        nonlocal loaded, first_round
        if not first_round:
            loaded = tf.saved_model.load(str(model_dir), tags=tags)
            for key, arrays in replay:
                call(key, arrays)
        first_round = False
        return [call(key, arrays) for key, arrays in batch]

    def run_moved_weights(key: str, arrays: dict[str, np.ndarray], precision: str,
                          rng: np.random.Generator) -> list[dict[str, np.ndarray] | str] | str:
        """The signature with every float variable it reads moved by one ulp (the rounding of its
        first float values, for a signature whose inputs are token ids or strings), then restored."""
        try:
            variables = [v for v in loaded.signatures[key].variables if v.dtype.is_floating]
            originals = [v.numpy() for v in variables]
        except Exception as error:  # a function whose variables cannot be read: no measurement
            return _first_line(error)
        if not variables:
            return "it reads no float variable"
        results: list[dict[str, np.ndarray] | str] = []
        try:
            for _ in range(noise.PERTURBED_RUNS):
                for variable, value in zip(variables, originals):
                    variable.assign(noise.perturb(value, precision, rng))
                results.append(call(key, arrays))
        finally:
            for variable, value in zip(variables, originals):
                variable.assign(value)
        return results

    return run_rounds(run_batch, inputs, alternatives, precisions, seed, run_moved_weights=run_moved_weights,
                      finer=finer)


def _same(a: np.ndarray, b: np.ndarray | None) -> bool:
    if b is None or a.shape != b.shape or a.dtype != b.dtype:
        return False
    if noise.is_float(a.dtype):
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


def output_bounds(meta_graphs: list[meta_graph_pb2.MetaGraphDef], key: str, expected: dict[str, Any],
                  run: SourceRun | None, why_unmeasured: str = "") -> dict[str, NoiseBound]:
    """The noise bound of each float output of signature `key` (rewriter/verify/noise.py)."""
    bounds: dict[str, NoiseBound] = {}
    for name, value in expected.items():
        value = np.asarray(value)
        if name != "__error__" and run and _is_integer(value.dtype):
            measured, count = noise.largest(run.movements.get(key, {}).get(name)), run.changes.get(key, {}).get(name)
            if measured and count:  # the source's own output changed under one-ulp moves
                moved = run.moved_outputs.get(key, {}).get(name) or run.moved.get(key) or "inputs"
                bounds[name] = noise.integer_bound(value, signature_precision(meta_graphs, key, np.dtype(np.float32), [name]),
                                                   measured, count, moved)
            continue
        if name == "__error__" or noise.output_precision(value.dtype) is None:
            continue
        precision = signature_precision(meta_graphs, key, value.dtype, [name])
        per_element = run.movements.get(key, {}).get(name) if run else None
        moved = ((run.moved_outputs.get(key, {}).get(name) or run.moved.get(key)) if run else None) or "inputs"
        note = why_unmeasured or (run.notes.get(key, "") if run else "")
        if run and per_element is None and not note:
            note = f"moving the {moved} by one ulp changed this output's shape or its NaN/infinity positions"
        bounds[name] = noise.noise_bound(value, precision, per_element, note, moved)
    return bounds


def signature_precision(meta_graphs: list[meta_graph_pb2.MetaGraphDef], key: str, dtype: np.dtype,
                        outputs: list[str] | None = None) -> str:
    """The lowest float precision on the path to the signature's outputs (all, or `outputs`), in
    every given MetaGraphDef (verify gives the source's only)."""
    precision = noise.output_precision(dtype) or "float32"
    for meta_graph in meta_graphs:
        signature = meta_graph.signature_def.get(key) if key in meta_graph.signature_def else None
        if signature is None:
            continue
        for name in outputs or sorted(signature.outputs):
            if name in signature.outputs:
                precision = noise.lower(precision, noise.lowest_precision(meta_graph, signature.outputs[name].name, dtype))
    return precision


_DOES_NOT_LOAD = "the source does not load in "


def _source_load_error(source_side: Any, source_run: SourceRun | None, source_dir: Path,
                       source_proto: saved_model_pb2.SavedModel, tags: list[str], options: ParityOptions,
                       say: Progress) -> str | None:
    """Where the output does not load in the target: does the source load in a C++ loader? An export
    that no C++ loader takes (TF Serving, the C API; TensorFlow's Python loader may be more lenient)
    is the cause then, not the conversion. A source that ran in its release's C API answered already;
    otherwise the source is loaded once in the C API of the release that wrote it (fetched like the
    target's; with --offline only if it is cached)."""
    from rewriter.errors import RuntimeUnavailable
    from rewriter.pipeline import source_release_of
    from rewriter.runtimes import TargetRuntime, obtain_runtime
    from rewriter.runtimes.source_runtime import KIND_CAPI

    if source_side.kind == KIND_CAPI:
        for outputs in (source_run.outputs.values() if source_run else []):
            error = str(outputs.get("__error__", ""))
            if error.startswith(_DOES_NOT_LOAD):
                return error[len(_DOES_NOT_LOAD):]
        return None
    release, _ = source_release_of(source_proto)
    say(f"loading the source in TensorFlow {release}'s C++ loader, to see whether it loads where the output does not")
    try:
        handle = obtain_runtime(release, cache_dir=options.runtime_dir, offline=options.offline, progress=say)
        loaded = TargetRuntime(handle, timeout=options.timeout).run_savedmodel(source_dir, tags, [])
    except RuntimeUnavailable as error:
        source_side.notes.append(f"not checked whether the source loads in a C++ loader, where the output does not: "
                                 f"TensorFlow {release}'s runtime is not available ({error})")
        return None
    if loaded.load_error is None:
        source_side.notes.append(f"the source loads in TensorFlow {handle.version}'s C++ loader, where the output does "
                                 "not: the conversion is the cause")
        return None
    first = (loaded.load_error.strip().splitlines() or [""])[0]
    return f"TensorFlow {handle.version}'s C++ loader: {first}"


def _run_source_in_capi(source_side: Any, source_dir: Path, tags: list[str], source_meta: meta_graph_pb2.MetaGraphDef,
                        inputs: dict[str, dict[str, np.ndarray]], timeout: float, precisions: dict[str, str] | None,
                        seed: int, alternatives: dict[str, list[Candidate]],
                        finer: dict[str, dict[str, str]] | None = None) -> SourceRun:
    """run_rounds in a release's C API (runtimes/source_runtime.py): one worker per round, which
    replays the successful calls of the rounds before (one session's state)."""
    from rewriter.runtimes.source_runtime import CapiSource

    source = CapiSource(source_side, source_dir, tags, source_meta, timeout)

    def run_batch(replay: Batch, batch: Batch) -> list[dict[str, np.ndarray] | str]:
        if source.load_error:  # no strategy makes a source load: do not start another worker
            return [f"does not load: {source.load_error}"] * len(batch)
        return source.run_batch(replay + batch)[len(replay):]

    run = run_rounds(run_batch, inputs, alternatives, precisions, seed, where=source.where, finer=finer)
    if source.load_error:
        first = (source.load_error.strip().splitlines() or [""])[0]
        run.outputs = {key: {"__error__": f"{_DOES_NOT_LOAD}{source.where}: {first}"} for key in inputs}
    return run


def run_source_as_session(model_dir: Path, tags: list[str], meta_graph: meta_graph_pb2.MetaGraphDef,
                          inputs: dict[str, dict[str, np.ndarray]], precisions: dict[str, str] | None = None,
                          seed: int = 0, alternatives: dict[str, list[Candidate]] | None = None,
                          finer: dict[str, dict[str, str]] | None = None) -> SourceRun:
    """run_source through the installed TF's TF1 loader and a session, signature by signature: a
    fresh session for each round after the first, with the successful calls replayed (as run_source
    does: the earlier rounds' noise runs and failed calls changed the state of a stateful model)."""
    import tensorflow as tf
    from tensorflow.python.util import deprecation

    def run_batch(replay: Batch, batch: Batch) -> list[dict[str, np.ndarray] | str]:
        with tf.Graph().as_default(), tf.compat.v1.Session() as session:
            with deprecation.silence():  # TF's notice that the TF1 loader is deprecated is not ours to print
                tf.compat.v1.saved_model.loader.load(session, tags, str(model_dir))
            results: list[dict[str, np.ndarray] | str] = []
            for key, arrays in replay + batch:
                signature = meta_graph.signature_def[key]
                feeds = {signature.inputs[name].name: value for name, value in arrays.items()}
                fetches = {name: signature.outputs[name].name for name in signature.outputs}
                try:
                    values = session.run(fetches, feed_dict=feeds)
                    results.append({name: np.asarray(value) for name, value in values.items()})
                except Exception as error:  # as in run_source: the source fails on these inputs
                    results.append(_first_line(error))
            return results[len(replay):]

    return run_rounds(run_batch, inputs, alternatives, precisions, seed, finer=finer)


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
                      timeout: float, bounds: dict[str, dict[str, NoiseBound]] | None = None,
                      order: list[str] | None = None) -> PythonLoaderResult:
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
        loaded = env.load_and_call(output_dir, inputs_npz, outputs_npz, timeout=timeout,
                                   tags=list(meta_graph.meta_info_def.tags), order=order)
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
                result.outputs.append(_compare(key, name, np.asarray(source[name]), got[f"{key}/{name}"], tolerance,
                                               (bounds or {}).get(key, {}).get(name)))
    return result


def run_source_in_session(model_dir: Path, tags: list[str], calls: list[Any]) -> dict[str, str]:
    """Load the source as a C++ loader does (restore op, then a session: what TF Serving runs, here
    through the installed TF's TF1 loader) and run each call; signature -> its error, if any."""
    import tensorflow as tf
    from tensorflow.python.util import deprecation

    errors: dict[str, str] = {}
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        try:
            with deprecation.silence():  # TF's notice that the TF1 loader is deprecated is not ours to print
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


def _string_values(array: np.ndarray) -> np.ndarray | None:
    """A string tensor as an object array of bytes, whatever numpy dtype holds it (bytes_, str_,
    object of bytes or str, a 0-d scalar); None when it holds something else."""
    if array.dtype.kind not in "SUO":
        return None
    values = np.empty(array.shape, dtype=object)
    for index, value in np.ndenumerate(array):
        if isinstance(value, (bytes, np.bytes_)):
            values[index] = bytes(value)
        elif isinstance(value, str):
            values[index] = value.encode("utf-8")
        else:
            return None
    return values


def _compare(signature: str, output: str, expected: np.ndarray, actual: np.ndarray,
             tolerance: dict[str, tuple[float, float]] | None = None, bound: NoiseBound | None = None) -> OutputResult:
    """Grade one output (_grade), and say so when a match shows little: a float output whose
    elements are all one value, which one-ulp moves of the model's inputs (or weights) left where it
    was (an untrained classifier's uniform softmax, a saturated or dead layer)."""
    result = _grade(signature, output, expected, actual, tolerance, bound)
    expected = np.asarray(expected)
    if result.status == "match" and not result.message and bound is not None and bound.movement == 0 \
            and bound.elements is None and expected.size > 1 and np.all(expected == expected.flat[0]):
        result.message = CONSTANT_OUTPUT.format(value=f"{expected.flat[0]:.6g}")
    return result


def _grade(signature: str, output: str, expected: np.ndarray, actual: np.ndarray,
           tolerance: dict[str, tuple[float, float]] | None = None, bound: NoiseBound | None = None) -> OutputResult:
    """Grade one output. Float outputs: within `tolerance` for their dtype when the user gave
    --rtol/--atol, else within `bound` (the model's measured noise); without either, exactly."""
    expected, actual = np.asarray(expected), np.asarray(actual)
    result = OutputResult(signature, output, "match", dtype=str(expected.dtype), shape=list(expected.shape))
    if expected.size == 0 and actual.size == 0 and list(actual.shape) == list(expected.shape) \
            and (actual.dtype == expected.dtype or (expected.dtype.kind in "OSU" and actual.dtype.kind in "OSU")):
        # equal, and proving nothing about the values (verify() says so)
        result.grade, result.message = "bit-identical", EMPTY_OUTPUT
        return result
    want_strings, got_strings = _string_values(expected), _string_values(actual)
    if want_strings is not None and got_strings is not None:
        return _compare_exact(result, want_strings, got_strings)
    if actual.dtype != expected.dtype:
        result.status, result.grade, result.message = "mismatch", "mismatch", f"dtype {actual.dtype}, expected {expected.dtype}"
        return result
    if actual.shape != expected.shape:
        result.status, result.grade = "mismatch", "mismatch"
        result.message = f"shape {list(actual.shape)}, expected {list(expected.shape)}"
        return result
    if noise.is_float(expected.dtype) and expected.dtype.kind != "c" and np.isnan(expected.astype(np.float64)).all() \
            and np.isnan(actual.astype(np.float64)).all():
        result.grade, result.message = "bit-identical", NAN_OUTPUT
        return result
    kind = str(expected.dtype)
    user = (tolerance or {}).get(kind)
    if _is_integer(expected.dtype) and bound is not None and bound.elements is not None:
        return _compare_integer(result, expected, actual, bound)
    if not noise.is_float(expected.dtype) or (user is None and bound is None):
        return _compare_exact(result, expected, actual)
    wide = np.complex128 if expected.dtype.kind == "c" else np.float64
    exp, act = expected.astype(wide), actual.astype(wide)
    nan_exp, nan_act = np.isnan(exp), np.isnan(act)
    if not np.array_equal(nan_exp, nan_act):
        result.status, result.grade, result.message = "mismatch", "mismatch", "NaN at different positions"
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
    # For the HTML report: each element's error in units of what it was allowed.
    allowed_rtol, allowed_atol = user if user is not None else (0.0, np.maximum(bound.element_bound() if bound else 0.0,
                                                                                np.finfo(np.float64).tiny))
    with np.errstate(divide="ignore"):
        result.error_histogram = error_histogram(exp[finite], act[finite], allowed_rtol,
                                                 allowed_atol[finite] if isinstance(allowed_atol, np.ndarray) else allowed_atol)
    if bound is not None:
        result.precision, result.scale = bound.precision, bound.scale
        result.movement = bound.movement
        if result.max_abs_error is not None and bound.scale:
            result.error_of_range = result.max_abs_error / bound.scale
    if not inf_same:
        result.status, result.grade, result.message = "mismatch", "mismatch", "infinity at different positions"
        return result
    flipped = np.isinf(exp) & np.isinf(act) & (exp != act)
    if flipped.any():  # a zero of the other sign on the way (1 / -0.0): no distance says that
        where = tuple(int(i) for i in np.argwhere(flipped)[0])
        result.status, result.grade = "mismatch", "mismatch"
        result.message = (f"{int(flipped.sum())} infinity(ies) of the other sign, first at {list(where)}: expected "
                          f"{exp[where].real:g}, got {act[where].real:g}")
        return result
    if not differing.any():
        result.grade = "bit-identical"
        if bound is not None and user is None:
            _state_bound(result, bound)
        return result
    if user is not None:
        rtol, atol = user
        result.rtol, result.atol = rtol, atol
        result.bound_origin = f"--rtol {rtol:g} / --atol {atol:g} given by the user (the measured noise bound is not used)"
        if np.allclose(act[finite], exp[finite], rtol=rtol, atol=atol):
            result.grade = "within-tolerance"
        else:
            result.status, result.grade = "mismatch", "mismatch"
            result.message = f"max abs error {result.max_abs_error:.3g} > atol {atol:g} + rtol {rtol:g} * |expected|"
        return result
    assert bound is not None
    if bound.labels is not None:
        return _compare_by_class(result, diff, bound)
    _state_bound(result, bound)
    if bound.scale and bound.bound >= noise.UNPROVABLE_OF_RANGE * bound.scale:
        result.status, result.grade = "mismatch", "unprovable"
        result.message = UNPROVABLE.format(bound=bound.bound, of_range=bound.bound / bound.scale, scale=bound.scale,
                                           limit=noise.UNPROVABLE_OF_RANGE)
        return result
    if result.max_abs_error is not None and result.max_abs_error <= bound.bound:
        result.grade = "within-noise"
    else:
        result.status, result.grade = "mismatch", "mismatch"
        result.message = (f"max abs error {result.max_abs_error:.3g} ({_ratio_words(result.max_abs_error, bound.scale)}) "
                          f"> noise bound {bound.bound:.3g} ({_ratio_words(bound.bound, bound.scale)})")
        if _same_values_reordered(exp, act, bound.bound):
            result.message += f"; {REORDERED}"
    return result


# A mismatch whose values are the expected ones in another order (eigenvalues, which no kernel
# promises an order for; ties broken otherwise): still a mismatch, but the user learns why.
REORDERED = ("the output holds the expected values in another order, within the noise bound (the target's kernel "
             "orders them otherwise: eigenvalues, ties)")


def _same_values_reordered(expected: np.ndarray, actual: np.ndarray, bound: float) -> bool:
    """Whether `actual` is `expected` reordered along its last axis, each value within `bound`."""
    if expected.ndim == 0 or expected.size < 2 or np.isnan(expected).any() or np.isnan(actual).any():
        return False
    want, got = np.sort(expected, axis=-1), np.sort(actual, axis=-1)
    return bool(np.all(np.abs(want - got) <= bound))


def _compare_by_class(result: OutputResult, diff: np.ndarray, bound: NoiseBound) -> OutputResult:
    """An output of several magnitude classes: every element within its class's bound. The report
    states the class whose element came nearest its bound (or went furthest past it)."""
    assert bound.labels is not None
    allowed = np.asarray(bound.element_bound())
    with np.errstate(divide="ignore", invalid="ignore"):
        used = np.where(diff > 0, diff / np.maximum(allowed, np.finfo(np.float64).tiny), 0.0)
    at = np.unravel_index(int(np.argmax(used)), used.shape)
    judged = bound.classes[int(bound.labels[at])]
    result.scale, result.movement = judged.scale, judged.movement
    result.error_of_range = _ratio(float(diff[at]), judged.scale)
    result.bound, result.bound_of_range = judged.bound, _ratio(judged.bound, judged.scale)
    result.bound_origin = bound.origin
    differing = set(np.unique(bound.labels[diff > 0]).tolist())
    spanning = [label for label, judged_class in enumerate(bound.classes)
                if label in differing and judged_class.scale
                and judged_class.bound >= noise.UNPROVABLE_OF_RANGE * judged_class.scale]
    if used[at] <= 1.0 and spanning:  # a class whose differing elements no bound can judge
        wide = bound.classes[spanning[0]]
        result.status, result.grade = "mismatch", "unprovable"
        result.message = UNPROVABLE.format(bound=wide.bound, of_range=wide.bound / wide.scale, scale=wide.scale,
                                           limit=noise.UNPROVABLE_OF_RANGE)
    elif used[at] <= 1.0:
        result.grade = "within-noise"
    else:
        result.status, result.grade = "mismatch", "mismatch"
        result.worst_index = [int(i) for i in at]
        result.message = (f"error {float(diff[at]):.3g} at {result.worst_index} > the noise bound {judged.bound:.3g} of its "
                          f"magnitude class (values up to {judged.scale:.3g}); {int(np.count_nonzero(used > 1.0))} "
                          f"element(s) past their class's bound")
    return result


def _state_bound(result: OutputResult, bound: NoiseBound) -> None:
    """The report's record of the bound an output was judged by, and where it came from."""
    result.bound, result.bound_of_range, result.bound_origin = bound.bound, _ratio(bound.bound, bound.scale), bound.origin


def _ratio(value: float, scale: float) -> float | None:
    return value / scale if scale else None


def _ratio_words(value: float | None, scale: float) -> str:
    return f"{value / scale:.2g} of the range {scale:.3g}" if scale and value is not None else "the expected output is all zeros"


def _compare_integer(result: OutputResult, expected: np.ndarray, actual: np.ndarray, bound: NoiseBound) -> OutputResult:
    """An integer output that rounding reaches: as many differing elements, as far, as its bound
    allows (the source's own change under one-ulp moves, SAFETY times)."""
    assert bound.elements is not None
    differ = np.asarray(expected != actual)
    result.precision, result.scale, result.movement = bound.precision, bound.scale, bound.movement
    _state_bound(result, bound)
    if not differ.any():
        result.grade = "bit-identical"
        return result
    distance = np.abs(expected.astype(np.float64) - actual.astype(np.float64))
    result.max_abs_error = float(distance.max())
    result.error_of_range = _ratio(result.max_abs_error, bound.scale)
    result.worst_index = [int(i) for i in np.unravel_index(int(np.argmax(distance)), distance.shape)]
    count = int(np.count_nonzero(differ))
    if count <= bound.elements and result.max_abs_error <= bound.bound:
        result.grade = "within-noise"
    else:
        result.status, result.grade = "mismatch", "mismatch"
        result.message = (f"{count} of {differ.size} elements differ, by up to {result.max_abs_error:.3g}; its noise "
                          f"allows {bound.elements}, by up to {bound.bound:.3g}")
    return result


def _compare_exact(result: OutputResult, expected: np.ndarray, actual: np.ndarray) -> OutputResult:
    if expected.shape != actual.shape:
        result.status, result.grade = "mismatch", "mismatch"
        result.message = f"shape {list(actual.shape)}, expected {list(expected.shape)}"
        return result
    if expected.dtype == object:
        differ = np.array([a != b for a, b in zip(expected.ravel(), actual.ravel())], dtype=bool).reshape(expected.shape)
    else:
        differ = np.asarray(expected != actual)
        if noise.is_float(expected.dtype):  # exact floats (no tolerance): NaN equals NaN at the same place
            differ &= ~(np.isnan(expected) & np.isnan(actual))
    if differ.any():
        result.status, result.grade = "mismatch", "mismatch"
        first = tuple(int(i) for i in np.argwhere(differ)[0])
        count = int(np.count_nonzero(differ))
        # (the first differing element, shown: a string output's bytes tell what the kernel did)
        result.message = (f"values differ (exact comparison): {count} of {differ.size} element(s), the first at "
                          f"{list(first)}: expected {_shown(expected[first])}, got {_shown(actual[first])}")
        result.worst_index = list(first)
        if expected.dtype.kind in "iu" or (noise.is_float(expected.dtype) and expected.dtype.kind != "c"):
            result.max_abs_error = float(np.max(np.abs(expected.astype(np.float64) - actual.astype(np.float64))[differ]))
    else:
        result.grade = "bit-identical"
    return result


def _shown(value: Any, limit: int = 60) -> str:
    """One element of an output for a message: its repr (a numpy scalar as its Python value), cut to `limit`."""
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


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


def unfeedable_signatures(meta_graph: meta_graph_pb2.MetaGraphDef) -> dict[str, str]:
    """Signature key -> why parity cannot run it: an input or output that is a SparseTensor
    (TensorInfo coo_sparse: a TF1 sparse_placeholder) or another composite tensor, which is three
    tensors (or more) where parity feeds and fetches one by its name."""
    found = {}
    for key in callable_signatures(meta_graph):
        signature = meta_graph.signature_def[key]
        for side, infos in (("input", signature.inputs), ("output", signature.outputs)):
            for name, info in sorted(infos.items()):
                encoding = info.WhichOneof("encoding")
                if encoding in ("coo_sparse", "composite_tensor") and key not in found:
                    found[key] = (f"its {side} '{name}' is a {'SparseTensor' if encoding == 'coo_sparse' else 'composite tensor'}, "
                                  "which parity cannot feed or fetch yet (one tensor per name): pass --no-verify to write "
                                  "the output unproven, or serve the signature with dense tensors")
    return found


def callable_signatures(meta_graph: meta_graph_pb2.MetaGraphDef) -> list[str]:
    """The signatures a loader can call (with outputs; not the loader's own __saved_model_* ones)."""
    return sorted(key for key, signature in meta_graph.signature_def.items()
                  if signature.outputs and not key.startswith(INTERNAL_SIGNATURE_PREFIX))


def check_input_keys(given: dict[str, np.ndarray], meta_graphs: Any) -> None:
    """Every key of an --inputs file names a signature input ('<signature>/<input>' or '<input>'):
    a key that names none (a tensor name such as 'serving_default_x:0', a typo) would leave that
    input generated while the user believes their data was run."""
    known: set[str] = set()
    for meta_graph in meta_graphs:
        for key in callable_signatures(meta_graph):
            for name in meta_graph.signature_def[key].inputs:
                known |= {f"{key}/{name}", name}
    unknown = sorted(set(given) - known)
    if unknown:
        valid = ", ".join(sorted(k for k in known if "/" in k)[:12])
        raise BadInput(f"--inputs: {', '.join(repr(k) for k in unknown[:5])} name(s) no signature input; the keys are "
                       f"<signature>/<input> or <input>: {valid or 'this model has no signature inputs'}")


def verify(
    output_dir: Path,
    source_dir: Path,
    target: Any,
    options: ParityOptions = ParityOptions(),
    progress: Progress | None = None,
) -> ParityReport:
    """Run OUT in the real target runtime and IN in the source runtime (--source-runtime); compare.

    The MetaGraphDef of options.tags first, then every other one with a callable signature (the
    rules rewrite them all, and a consumer may load any): their results join the report, each
    signature named "<tags>:<signature>", so an output is proven only when every one matches.
    Unseeded random ops (rewriter/verify/seeds.py) are given the same seeds in copies of both."""
    from rewriter.verify.seeds import pinned_copy

    try:
        with tempfile.TemporaryDirectory(prefix="tfdowngrade-seeds-") as scratch:
            # Unseeded random ops draw other numbers on every run: both models are run with them pinned.
            pinned = pinned_copy(source_dir, Path(scratch) / "source")
            if pinned:
                pinned_copy(output_dir, Path(scratch) / "output")
                source_dir, output_dir = Path(scratch) / "source", Path(scratch) / "output"
            report = _verify_all(output_dir, source_dir, target, options, progress)
    except OSError as error:
        # Parity only writes to its scratch folders (the inputs, the runs' results, pinned
        # copies): a full or read-only TMPDIR is the machine's, never a verdict on the model.
        where = error.filename or tempfile.gettempdir()
        raise RuntimeUnavailable(f"parity cannot write its scratch files in {where} ({error.strerror or error}): "
                                 "free space there, or point TMPDIR at a folder with room") from None
    report.pinned_seeds = [op.describe() for op in pinned]
    return report


def _verify_all(output_dir: Path, source_dir: Path, target: Any, options: ParityOptions,
                progress: Progress | None) -> ParityReport:
    from rewriter.savedmodel.files import read_saved_model

    meta_graphs = read_saved_model(output_dir).proto.meta_graphs
    if options.inputs_file:
        check_input_keys(load_inputs_file(options.inputs_file), meta_graphs)
    report = _verify_meta_graph(output_dir, source_dir, target, options, progress)
    chosen = set(options.tags)
    for meta_graph in meta_graphs:
        tags = list(meta_graph.meta_info_def.tags)
        if set(tags) == chosen or not callable_signatures(meta_graph):
            continue
        label = ",".join(sorted(tags))
        if progress:
            progress(f"checking the MetaGraphDef tagged {label} too")
        other = _verify_meta_graph(output_dir, source_dir, target, replace(options, tags=tuple(tags)), progress)
        _join(report, other, label)
    if report.outputs and all(o.message in VACUOUS for o in report.outputs):
        # Equal shapes of nothing (or of NaN): no value was computed by either runtime, so nothing is proven.
        report.skipped.append(
            "every output has no elements or only NaN on the inputs parity ran (see `inputs` in the JSON report), "
            "so no value was compared: pass --inputs that give the outputs values")
    return report


def _join(report: ParityReport, other: ParityReport, label: str) -> None:
    """Add another MetaGraphDef's results to `report`, its signatures named "<label>:<signature>"."""
    for output in other.outputs:
        output.signature = f"{label}:{output.signature}"
        report.outputs.append(output)
    report.inputs.update({f"{label}:{key}": value for key, value in other.inputs.items()})
    report.input_strategies.update({f"{label}:{key}": value for key, value in other.input_strategies.items()})
    report.skipped.extend(f"{label}:{skipped}" for skipped in other.skipped)
    report.function_errors.update(other.function_errors)
    report.source_session_errors.update({f"{label}:{key}": value for key, value in other.source_session_errors.items()})
    if report.load_error is None and other.load_error is not None:
        report.load_error = f"(MetaGraphDef {label}) {other.load_error}"
        report.source_load_error = other.source_load_error


def _verify_meta_graph(
    output_dir: Path,
    source_dir: Path,
    target: Any,
    options: ParityOptions,
    progress: Progress | None,
) -> ParityReport:
    """verify() on the MetaGraphDef of options.tags."""
    from rewriter.runtimes import TargetRuntime, obtain_runtime, source_runtime
    from rewriter.savedmodel.files import read_saved_model

    say = progress or (lambda _: None)
    tags = list(options.tags)
    seed, rtol, atol = options.seed, options.rtol, options.atol
    out_files = read_saved_model(output_dir)
    source_proto = read_saved_model(source_dir).proto
    meta_graph = select_meta_graph(out_files.proto, tags)
    given = load_inputs_file(options.inputs_file) if options.inputs_file else None
    inputs = signature_inputs(meta_graph, seed, given)
    unfed = unfeedable_signatures(meta_graph)
    for key in unfed:
        inputs.pop(key, None)
    # No tolerance unless the user gives one: float outputs are judged by their noise bound.
    tolerance: dict[str, tuple[float, float]] = {}
    if rtol is not None or atol is not None:
        tolerance = {k: (rtol if rtol is not None else v[0], atol if atol is not None else v[1])
                     for k, v in DEFAULT_TOLERANCES.items()}
    source_meta = select_meta_graph(source_proto, tags)
    # The precisions on the SOURCE's paths only: every rule is exact (or an opt-in lossy one that
    # widens, as approx-top-k's float32 casts); a low-precision op in OUT is what parity judges, and
    # letting it widen the bound hid a 1% error behind a bfloat16 round trip (a helper's mutants).
    meta_graphs = [source_meta]

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
        source_run = None
        unmeasured = f"the source was not run here (--expected {options.expected_file.name})"
    else:
        say(f"running the source in {source_side.describe()}, then again with inputs moved by one ulp (its noise)")
        by_output = {key: _output_precisions(meta_graphs, meta_graph, key) for key in inputs}
        precisions = {key: _perturb_precision(meta_graph, key, by_output[key]) for key in inputs}
        vocab = vocabulary(source_meta, source_dir)
        alternatives = {key: candidates(source_meta, key, arrays, seed, {
            name for name in arrays if given is not None and (f"{key}/{name}" in given or name in given)}, vocab)
            for key, arrays in inputs.items()}
        noise_precisions = None if tolerance else precisions
        finer = {key: _finer_outputs(by_output[key], precisions[key]) for key in inputs}
        if source_side.kind == KIND_CAPI:
            source_run = _run_source_in_capi(source_side, source_dir, tags, source_meta, inputs, options.timeout,
                                             noise_precisions, seed, alternatives, finer)
        else:
            source_run = run_source(source_dir, tags, inputs, noise_precisions, seed, alternatives, finer)
        expected, unmeasured = source_run.outputs, ""
    first = source_run.order if source_run else []
    order = first + [key for key in inputs if key not in first]
    calls = signature_calls(meta_graph, inputs, order)
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
        input_strategies=source_run.strategies if source_run else {
            key: {"strategy": "--inputs" if given else "random", "failed": []} for key in inputs},
        source_runtime=source_side,
    )
    report.skipped += [f"{key}: {reason}" for key, reason in sorted(unfed.items())]
    if not inputs and not unfed:  # nothing a loader can call: parity compares nothing, which proves nothing
        report.skipped.append(
            f"the MetaGraphDef tagged {','.join(tags)} has no signature with outputs, so nothing was run; the "
            "C++ loaders (TF Serving, the C API, tfjs-node, TF Java) call only signatures: save the model with "
            "signatures=..., or pass --no-verify to write it unproven")
    if run.load_error:
        report.source_load_error = _source_load_error(source_side, source_run, source_dir, source_proto, tags,
                                                      options, say)
        return report
    bounds: dict[str, dict[str, NoiseBound]] = {}
    for key in inputs:
        signature = meta_graph.signature_def[key]
        source = expected.get(key, {})
        bounds[key] = {} if tolerance else output_bounds(meta_graphs, key, source, source_run, unmeasured)
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
            report.outputs.append(_compare(key, name, np.asarray(source[name]), np.asarray(actual), tolerance,
                                           bounds[key].get(name)))
    if options.python_loader:
        say("loading the output with TensorFlow 2.3.4's Python API (tf.saved_model.load), every signature called")
        report.python_loader = run_python_loader(output_dir, inputs, expected, meta_graph, tolerance, options.timeout,
                                                 bounds, order)
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
        report.source_session_errors = run_source_in_session(
            source_dir, tags, signature_calls(source_meta, inputs, sorted(failed)))
    return report
