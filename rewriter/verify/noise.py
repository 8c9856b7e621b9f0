"""The numerical noise of a model: how far its float outputs may move when only rounding changes.

Two TensorFlow releases run the same graph with different kernels (Eigen vs oneDNN convolutions,
another summation order, another FFT library). Each op then rounds differently, by about one
unit in the last place (ulp) of the precision it computes in, and the network carries these
differences to its outputs, amplified or damped as it carries a change of its inputs. So parity
judges each float output against a bound made of what the model itself says:

- the compute precision: the lowest float precision on the path to the output (a float16 or
  bfloat16 Cast or op anywhere on it; `lowest_precision`). Its machine epsilon is the size of one
  rounding step.
- a measured amplification: the SOURCE is run again (same process, same loaded model, after the
  reference run) with every float input moved by one ulp of the compute precision, twice with
  independent random signs, and once more unperturbed to see whether it is deterministic at all.
  How far its outputs move is the model's own answer to "what does one rounding step do here".
  A signature with no float input (token ids into an embedding, strings into a lookup) has
  nothing to move there: its first float values are the model's own, so the source's float
  variables are moved by one ulp instead (parity.run_source; restored after). So is an output
  that the input move left at exactly 0: the move was absorbed on the way (Keras' Rescaling
  x / 255 - 0.5 rounds it away), and the floor alone called a tf_keras preprocessing model's
  cross-release rounding (4.6 ulps, Resizing + Normalization + Conv2D) a mismatch. The 4-ulp floor
  alone called a text model's cross-release rounding a mismatch (an embedding + GRU + LSTM saved
  by tf_keras 2.18: 4.5 ulps of its small output's range against TF 2.3.4, from LSTM states
  far larger than that output).
- the bound, in units of the output's range (max |expected|, the scale the error is judged at):
      bound = max(FLOOR_ULPS * eps * range, SAFETY * movement)
  FLOOR_ULPS covers the few roundings of a shallow graph whose measured movement is below one
  ulp; SAFETY covers rounding injected at every layer instead of only at the inputs (a release's
  error is many such steps). Both were calibrated on measured cross-release errors (NOTES §9 and
  tools/bench_parity.py): deep float32 CNNs differ by 2e-6..2e-5 of their range between TF 2.21
  and TF 2.3.4, while a weight shifted by 0.5 or scaled by 1.01 moves a small CNN's output by
  more than 1e-3 of its range, far above the bound (tests/test_parity_noise.py).

Another intra-op thread count is not used: TensorFlow fixes it when its runtime starts, so it
would need a second process and a second load (doubling parity's time), and on most networks it
changes nothing (NOTES §9: MobileNetV2, EfficientNetB0, NASNet, mixed precision moved by 0).

A model whose output moves a lot under one-ulp input changes (a chaotic one) gets a wide bound,
and the report says so in words, with the figures: such a comparison cannot see errors smaller
than the model's own noise, and the user should know that.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from rewriter.savedmodel.model import functions_called_by

# One rounding step of each float precision (numpy has no bfloat16: 2**-7 is its epsilon).
EPSILON = {
    "float16": float(np.finfo(np.float16).eps),
    "bfloat16": 2.0 ** -7,
    "float32": float(np.finfo(np.float32).eps),
    "float64": float(np.finfo(np.float64).eps),
}
_DT_PRECISION = {"DT_HALF": "float16", "DT_BFLOAT16": "bfloat16", "DT_FLOAT": "float32", "DT_DOUBLE": "float64",
                 "DT_COMPLEX64": "float32", "DT_COMPLEX128": "float64"}
_NUMPY_PRECISION = {"float16": "float16", "bfloat16": "bfloat16", "float32": "float32", "float64": "float64",
                    "complex64": "float32", "complex128": "float64"}
FLOOR_ULPS = 4.0
SAFETY = 16.0
# A model whose output moves by more than this many rounding steps (of its range) under one-ulp
# input changes is called out as amplifying rounding (chaotic) in the report.
AMPLIFYING = 1000.0
# Perturbed runs of the source, each with its own random signs.
PERTURBED_RUNS = 2


@dataclass
class NoiseBound:
    """The bound one float output is judged by, and where it came from."""

    precision: str  # the compute precision: the lowest float precision on the path to the output
    scale: float  # max |expected| over finite elements: the output's range
    bound: float  # absolute: max |actual - expected| allowed
    movement: float | None  # measured: how far the source's output moved under one-ulp input changes
    origin: str  # in words, where the bound came from

    @property
    def relative_bound(self) -> float:
        return self.bound / self.scale if self.scale else float("inf")


def is_float(dtype: np.dtype) -> bool:
    """A float or complex dtype, bfloat16 included (ml_dtypes' type, whose numpy kind is "V")."""
    return dtype.kind in "fc" or str(dtype) == "bfloat16"


def output_precision(dtype: np.dtype) -> str | None:
    return _NUMPY_PRECISION.get(str(dtype))


def lower(a: str, b: str) -> str:
    return a if EPSILON[a] >= EPSILON[b] else b


# --- the compute precision on the path to an output -------------------------------------
def _node_input_names(node: Any) -> Iterable[str]:
    for name in node.input:
        if name.startswith("^"):
            name = name[1:]
        yield name.split(":")[0]


def _float_precisions_of(node: Any) -> set[str]:
    found: set[str] = set()
    for value in node.attr.values():
        kind = value.WhichOneof("value")
        types: list[int] = []
        if kind == "type":
            types = [value.type]
        elif kind == "list":
            types = list(value.list.type)
        for t in types:
            precision = _dt_precision(t)
            if precision:
                found.add(precision)
    return found


def _dt_precision(dtype: int) -> str | None:
    from rewriter.savedmodel.attr_values import type_name

    return _DT_PRECISION.get(type_name(dtype).replace("_REF", ""))


def _called_functions(node: Any, library: set[str]) -> set[str]:
    return functions_called_by([node], library) & library


def path_precisions(meta_graph: Any, tensor_name: str) -> set[str]:
    """Float precisions of every node the tensor depends on: in the main graph, backwards from
    the tensor; in functions, every node of every function reached (a Keras model is one function,
    so a float16 layer anywhere in it counts; finer would need a walk through function outputs)."""
    graph = meta_graph.graph_def
    nodes = {node.name: node for node in graph.node}
    functions = {f.signature.name: f for f in graph.library.function}
    library = set(functions)
    found: set[str] = set()
    pending, seen = [tensor_name.split(":")[0]], set()
    reached: list[str] = []
    while pending:
        name = pending.pop()
        if name in seen or name not in nodes:
            continue
        seen.add(name)
        node = nodes[name]
        found |= _float_precisions_of(node)
        reached += _called_functions(node, library)
        pending += list(_node_input_names(node))
    done: set[str] = set()
    while reached:
        fname = reached.pop()
        if fname in done:
            continue
        done.add(fname)
        function = functions[fname]
        for arg in list(function.signature.input_arg) + list(function.signature.output_arg):
            precision = _dt_precision(arg.type)
            if precision:
                found.add(precision)
        for node in function.node_def:
            found |= _float_precisions_of(node)
            reached += _called_functions(node, library)
    return found


def lowest_precision(meta_graph: Any, tensor_name: str, output_dtype: np.dtype) -> str:
    """The compute precision of an output: the lowest float precision on its path, never above
    the output's own precision."""
    own = output_precision(output_dtype) or "float32"
    result = own
    for precision in path_precisions(meta_graph, tensor_name):
        result = lower(result, precision)
    return result


# --- perturbed inputs -------------------------------------------------------------------
def perturb(array: np.ndarray, precision: str, rng: np.random.Generator) -> np.ndarray:
    """Move every element of a float array by one ulp of `precision` (relative), sign at random;
    other dtypes are returned as they are."""
    if not is_float(array.dtype) or array.size == 0:
        return array
    signs = rng.choice(np.array([-1.0, 1.0]), size=array.shape)
    moved = _moved(array, signs, precision)
    # An element at the top of its dtype's range moves the other way instead of overflowing to
    # infinity (which would change the output's non-finite positions and measure nothing).
    overflowed = ~np.isfinite(moved) & np.isfinite(array)
    if overflowed.any():
        moved = np.where(overflowed, _moved(array, -signs, precision), moved)
    return moved


def _moved(array: np.ndarray, signs: np.ndarray, precision: str) -> np.ndarray:
    own = _NUMPY_PRECISION.get(str(array.dtype), "float32")
    with np.errstate(over="ignore"):
        if EPSILON[precision] <= EPSILON[own]:
            # One ulp of the array's own dtype: the next representable number, up or down.
            towards = np.where(signs > 0, np.inf, -np.inf).astype(array.dtype)
            return np.nextafter(array, towards).astype(array.dtype)
        return (array * (1.0 + signs * EPSILON[precision])).astype(array.dtype)


def movement(reference: np.ndarray, moved: Iterable[np.ndarray]) -> float | None:
    """Largest finite |moved - reference| over the perturbed runs; None when a run changed the
    output's shape or its non-finite positions (then the perturbation says nothing usable)."""
    ref = np.asarray(reference)
    if ref.dtype.kind not in "biu" and not is_float(ref.dtype):
        return None  # strings: no numeric distance (they are compared exactly)
    worst = 0.0
    for other in moved:
        other = np.asarray(other)
        if other.shape != ref.shape or other.dtype != ref.dtype:
            return None
        a, b = ref.astype(np.complex128), other.astype(np.complex128)
        finite_a, finite_b = np.isfinite(a), np.isfinite(b)
        if not np.array_equal(finite_a, finite_b):
            return None
        if finite_a.any():
            worst = max(worst, float(np.max(np.abs(a[finite_a] - b[finite_a]))))
    return worst


def output_scale(expected: np.ndarray) -> float:
    values = np.abs(np.asarray(expected).astype(np.complex128))
    finite = values[np.isfinite(values)]
    return float(finite.max()) if finite.size else 0.0


def noise_bound(expected: np.ndarray, precision: str, measured: float | None, note: str = "",
                moved: str = "inputs") -> NoiseBound:
    """The bound for one output, and its origin in words. `moved`: what `measured` moved by one
    ulp, the signature's float "inputs" or, for one without float inputs, the model's "weights"."""
    scale = output_scale(expected)
    eps = EPSILON[precision]
    floor = FLOOR_ULPS * eps * scale
    if measured is None:
        origin = (f"{FLOOR_ULPS:g} rounding steps of {precision} (eps {eps:.3g}) times the output's range {scale:.4g}"
                  f"{'; ' + note if note else ''}")
        return NoiseBound(precision, scale, floor, None, origin)
    amplified = SAFETY * measured
    words = (f"this model moves this output by {measured:.3g} ({_of_range(measured, scale)}) when its float {moved} "
             f"move by one {precision} ulp")
    amplification = measured / (eps * scale) if scale else 0.0
    if scale:
        words += f", {amplification:.3g} times one {precision} rounding step of the range"
    if amplified > floor:
        origin = f"{words}; bound = {SAFETY:g} x that"
    else:
        origin = f"{words}; bound = {FLOOR_ULPS:g} {precision} rounding steps of the output's range {scale:.4g} (larger)"
    bound = max(floor, amplified)
    if amplification > AMPLIFYING:
        origin += f". This model amplifies rounding strongly ({amplification:.3g} x) on these inputs"
    if scale and bound / scale > 1e-3:
        origin += f". Errors smaller than {_of_range(bound, scale)} cannot be told from its own noise"
    return NoiseBound(precision, scale, bound, measured, origin)


def _of_range(value: float, scale: float) -> str:
    return f"{value / scale:.2g} of the output's range" if scale else "the output is all zeros"
