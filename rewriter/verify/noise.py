"""The numerical noise of a model: how far its float outputs may move when only rounding changes.

Two TensorFlow releases run the same graph with different kernels (Eigen vs oneDNN convolutions,
another summation order, another FFT library). Each op then rounds differently, by about one
unit in the last place (ulp) of the precision it computes in, and the network carries these
differences to its outputs, amplified or damped as it carries a change of its inputs. So parity
judges each float output against a bound made of what the model itself says:

- the compute precision: the lowest float precision computed on the path to the output (a
  float16 or bfloat16 Cast or op on it, followed into called functions through the return value
  the output is; `lowest_precision`). Its machine epsilon is the size of one
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

An integer output that rounding reaches (a Round or Cast of float values, an ArgMax) is judged the
same way: when the one-ulp move changes the source's own output, the target may differ in SAFETY
times as many elements, each SAFETY times as far (`integer_bound`); an integer output the move
leaves alone is compared exactly.

Another intra-op thread count is not used: TensorFlow fixes it when its runtime starts, so it
would need a second process and a second load (doubling parity's time), and on most networks it
changes nothing (NOTES §9: MobileNetV2, EfficientNetB0, NASNet, mixed precision moved by 0).

An output whose values sit at magnitudes more than one rounding step of the compute precision
apart (a -1e9 attention mask beside scores of 1, the lowest float an empty segment_max writes,
FLT_MAX as "no value") is judged per magnitude class (`magnitude_classes`): each class by its own
range and its own measured movement. One such value set the range of the whole output, and an
error of 0.5 on every real score passed as noise (a bound of 4 ulps of 1e9). A value that large
cannot hold what the smaller ones hold (1 + -1e9 is -1e9 in float32), so neither needs the
other's scale.

A model whose output moves a lot under one-ulp input changes (a chaotic one) gets a wide bound,
and the report says so in words, with the figures: such a comparison cannot see errors smaller
than the model's own noise, and the user should know that.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from rewriter.savedmodel.model import functions_called_by, functions_reached

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
# A bound of at least this part of the output's range cannot see real errors: a 10% kernel change in
# a mixed-precision MobileNetV3 (bound 0.37 of the range on standard-normal inputs) passed as noise,
# and an output of zeros passes a bound of the whole range. Such an output is unprovable, not a match
# (parity._grade). Measured bounds of right models: 1e-6..2e-4 of the range for float32 networks,
# 2e-2 for a float16 CNN (a helper's sweep of keras.applications), 0.1 for one bfloat16 matmul of 64
# terms (8 significant bits: tests/test_parity_noise.py), which must stay provable.
UNPROVABLE_OF_RANGE = 0.25
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
    # An integer output computed from floats (a rounding, an argmax): how many of its elements may
    # differ (None: a float output, any number may, each within `bound`).
    elements: int | None = None
    # An output of several magnitude classes (magnitude_classes): each class's own bound, and per
    # element the index of its class; scale, bound and movement above are the lowest class's.
    classes: tuple["NoiseBound", ...] = ()
    labels: np.ndarray | None = None

    def element_bound(self) -> np.ndarray | float:
        """The absolute bound of each element (one for all, unless judged per magnitude class)."""
        if self.labels is None:
            return self.bound
        return np.take(np.array([c.bound for c in self.classes]), self.labels)

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


# Ops that hold or move values without rounding them: their float type attrs say what the data
# is, not what precision anything was computed in (a float32 input cast to float64 is exact).
_HOLDS_VALUES = {"Placeholder", "PlaceholderWithDefault", "Const", "VarHandleOp", "ReadVariableOp",
                 "VariableV2", "Identity", "IdentityN", "Snapshot", "StopGradient"}
_CALL_OPS = {"PartitionedCall", "StatefulPartitionedCall"}
# Visits before the walk gives up on precision and counts every node of every function reached.
_MAX_VISITS = 200_000


def _rounding_precisions(node: Any) -> set[str]:
    """The float precisions a node computes in: its float type attrs, a Cast's destination only,
    none for an op that only holds or moves values."""
    if node.op in _HOLDS_VALUES:
        return set()
    if node.op == "Cast":
        precision = _dt_precision(node.attr["DstT"].type) if "DstT" in node.attr else None
        return {precision} if precision else set()
    return _float_precisions_of(node)


class _Functions:
    def __init__(self, graph: Any) -> None:
        self.by_name = {f.signature.name: f for f in graph.library.function}
        self._nodes: dict[str, dict[str, Any]] = {}
        self._args: dict[str, list[str]] = {}

    def nodes(self, name: str) -> dict[str, Any]:
        if name not in self._nodes:
            self._nodes[name] = {node.name: node for node in self.by_name[name].node_def}
        return self._nodes[name]

    def args(self, name: str) -> list[str]:
        if name not in self._args:
            self._args[name] = [arg.name for arg in self.by_name[name].signature.input_arg]
        return self._args[name]

    def callee(self, node: Any) -> str | None:
        """The function a call node runs (a PartitionedCall's f, or an op named after a function)."""
        if node.op in self.by_name:
            return str(node.op)
        if node.op in _CALL_OPS and "f" in node.attr and node.attr["f"].func.name in self.by_name:
            return str(node.attr["f"].func.name)
        return None


def _output_position(functions: _Functions, node: Any, callee: str, port: str, in_function: bool) -> int | None:
    """Which output of the callee a port text of the call node names (None: cannot tell)."""
    if not in_function:
        return int(port[1:]) if port else 0
    parts = port.split(":")
    if len(parts) != 3:
        return 0 if port == "" else None
    if node.op in _CALL_OPS:  # one list output, "output"
        return int(parts[2])
    names = [arg.name for arg in functions.by_name[callee].signature.output_arg]
    return names.index(parts[1]) if parts[1] in names and parts[2] == "0" else None


def path_precisions(meta_graph: Any, tensor_name: str) -> set[str]:
    """Float precisions computed on the way to one tensor of the main graph: backwards along data
    inputs, into a called function through the return value the tensor is (and out of it through
    the call's inputs its args take), so a sibling output's float16 branch does not count. A
    function reached any other way (a loop or branch body, a call whose output cannot be told)
    counts whole, as does everything once the walk grows past _MAX_VISITS."""
    graph = meta_graph.graph_def
    main = {node.name: node for node in graph.node}
    functions = _Functions(graph)
    library = set(functions.by_name)
    found: set[str] = set()
    whole: list[str] = []  # functions counted whole
    # (calls: the chain of (function or None for the graph, call node name) that led here,
    #  where: the function walked, None for the graph, input text)
    pending: list[tuple[tuple[tuple[str | None, str], ...], str | None, str]] = [((), None, tensor_name)]
    seen: set[tuple[tuple[tuple[str | None, str], ...], str | None, str]] = set()
    while pending:
        item = pending.pop()
        if item in seen:
            continue
        seen.add(item)
        if len(seen) > _MAX_VISITS:
            return found | path_precisions_whole(meta_graph, tensor_name)
        calls, where, text = item
        if text.startswith("^"):
            continue  # a control input carries no value
        name, sep, port = text.partition(":")
        port = sep + port
        nodes = main if where is None else functions.nodes(where)
        if where is not None and port == "" and name in functions.args(where):
            if not calls:
                continue
            caller, call_node = calls[-1]
            caller_nodes = main if caller is None else functions.nodes(caller)
            data = [i for i in caller_nodes[call_node].input if not i.startswith("^")]
            arg_position = functions.args(where).index(name)
            if arg_position < len(data):
                pending.append((calls[:-1], caller, data[arg_position]))
            continue
        node = nodes.get(name)
        if node is None:
            continue
        callee = functions.callee(node)
        if callee is not None:
            position = _output_position(functions, node, callee, port, where is not None)
            outputs = functions.by_name[callee].signature.output_arg
            if position is not None and position < len(outputs):
                ret = functions.by_name[callee].ret[outputs[position].name]
                pending.append((calls + ((where, name),), callee, ret))
                continue
            whole.append(callee)
        found |= _rounding_precisions(node)
        whole.extend(_called_functions(node, library) - {callee})
        pending.extend((calls, where, source) for source in node.input)
    return found | _whole_functions(functions, whole)


def _whole_functions(functions: _Functions, reached: list[str]) -> set[str]:
    """Float precisions of every node of these functions and of every function they reach."""
    found: set[str] = set()
    for fname in functions_reached(functions.by_name, reached):
        for node in functions.by_name[fname].node_def:
            found |= _rounding_precisions(node)
    return found


def path_precisions_whole(meta_graph: Any, tensor_name: str) -> set[str]:
    """The coarse walk: every node the tensor depends on in the main graph, and every node of every
    function reached."""
    graph = meta_graph.graph_def
    nodes = {node.name: node for node in graph.node}
    functions = _Functions(graph)
    library = set(functions.by_name)
    found: set[str] = set()
    pending, seen = [tensor_name.split(":")[0]], set()
    reached: list[str] = []
    while pending:
        name = pending.pop()
        if name in seen or name not in nodes:
            continue
        seen.add(name)
        node = nodes[name]
        found |= _rounding_precisions(node)
        reached += _called_functions(node, library)
        pending += list(_node_input_names(node))
    return found | _whole_functions(functions, reached)


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
    if array.dtype.kind == "c":  # each part by one ulp of its own float type (nextafter takes no complex)
        real, imag = perturb(array.real.copy(), precision, rng), perturb(array.imag.copy(), precision, rng)
        moved_complex = np.empty_like(array)
        moved_complex.real, moved_complex.imag = real, imag
        return moved_complex
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


def move_ratio(values: dict[str, np.ndarray], precision: str) -> float:
    """One `precision` ulp over the smallest relative move perturb() makes of these inputs: below 1
    when every float input is coarser than `precision` (a float32 input cannot move by one float64
    ulp; it moves by its own), so an output's measured movement times this is what a move of one
    `precision` ulp gives (linearly). A float64 output computed from float32 inputs was judged by
    the movement of a float32 ulp, 2**29 times too wide (a helper's mutants: 1e-6 errors passed)."""
    moves = [max(EPSILON[precision], EPSILON[_NUMPY_PRECISION.get(str(value.dtype), "float32")])
             for value in values.values() if is_float(value.dtype) and value.size]
    return EPSILON[precision] / min(moves) if moves else 1.0


def movement(reference: np.ndarray, moved: Iterable[np.ndarray]) -> np.ndarray | None:
    """Per element, the largest finite |moved - reference| over the perturbed runs (0 where the
    output is not finite); None when a run changed the output's shape or its non-finite positions
    (then the perturbation says nothing usable)."""
    ref = np.asarray(reference)
    if ref.dtype.kind not in "biu" and not is_float(ref.dtype):
        return None  # strings: no numeric distance (they are compared exactly)
    worst = np.zeros(ref.shape, np.float64)
    for other in moved:
        other = np.asarray(other)
        if other.shape != ref.shape or other.dtype != ref.dtype:
            return None
        a, b = ref.astype(np.complex128), other.astype(np.complex128)
        finite_a, finite_b = np.isfinite(a), np.isfinite(b)
        if not np.array_equal(finite_a, finite_b):
            return None
        with np.errstate(invalid="ignore"):
            worst = np.maximum(worst, np.where(finite_a, np.abs(a - b), 0.0))
    return worst


def largest(measured: np.ndarray | float | None) -> float | None:
    """The largest of a per-element movement (0 for an output of no elements)."""
    if measured is None or isinstance(measured, float):
        return measured
    return float(measured.max()) if measured.size else 0.0


def changed(reference: np.ndarray, moved: Iterable[np.ndarray]) -> int | None:
    """Most elements a perturbed run changed (None: a run changed the shape or dtype)."""
    ref = np.asarray(reference)
    most = 0
    for other in moved:
        other = np.asarray(other)
        if other.shape != ref.shape or other.dtype != ref.dtype:
            return None
        most = max(most, int(np.count_nonzero(ref != other)))
    return most


def integer_bound(expected: np.ndarray, precision: str, measured: float, changed_elements: int,
                  moved: str = "inputs") -> NoiseBound:
    """The bound of an integer output that rounding reaches (the source's own output changed when
    its float inputs or weights moved by one ulp: a Round, Cast or ArgMax of float values). Its
    elements may differ as the source's did under that move, by SAFETY times as many and as far."""
    scale = output_scale(expected)
    allowed = max(1, int(SAFETY * changed_elements))
    bound = SAFETY * measured
    origin = (f"this integer output is computed from floats: when the model's float {moved} move by one "
              f"{precision} ulp, {changed_elements} of its {np.asarray(expected).size} elements change, by up to "
              f"{measured:.3g}; bound = {SAFETY:g} x each (at most {allowed} elements differ, each by at most {bound:.3g})")
    return NoiseBound(precision, scale, bound, measured, origin, elements=allowed)


def output_scale(expected: np.ndarray) -> float:
    values = np.abs(np.asarray(expected).astype(np.complex128))
    finite = values[np.isfinite(values)]
    return float(finite.max()) if finite.size else 0.0


def magnitude_classes(expected: np.ndarray, precision: str) -> np.ndarray | None:
    """Per element, the index of its magnitude class (0 the lowest; zeros join it, non-finite
    elements too), where the output's distinct finite magnitudes are cut at every gap wider than
    one rounding step of `precision` (the next larger magnitude over 1 / eps times the one below:
    the larger value cannot carry the smaller one's digits). None when the output is one class."""
    magnitudes = np.abs(np.asarray(expected).astype(np.complex128))
    finite = np.isfinite(magnitudes)
    distinct = np.unique(magnitudes[finite & (magnitudes > 0)])
    if distinct.size < 2:
        return None
    gaps = np.flatnonzero(distinct[1:] > distinct[:-1] / EPSILON[precision])
    if not gaps.size:
        return None
    lower_edges = distinct[gaps + 1]  # the smallest magnitude of each class above the first
    return np.where(finite, np.searchsorted(lower_edges, np.where(finite, magnitudes, 0.0), side="right"), 0)


def noise_bound(expected: np.ndarray, precision: str, measured: np.ndarray | float | None, note: str = "",
                moved: str = "inputs") -> NoiseBound:
    """The bound for one output, and its origin in words. `measured`: the movement, per element
    or the largest; `moved`: what it moved by one ulp, the signature's float "inputs" or, for one
    without float inputs, the model's "weights". An output of several magnitude classes
    (magnitude_classes) gets one bound per class, each from the class's elements alone."""
    labels = magnitude_classes(expected, precision)
    if labels is None:
        return _one_bound(expected, precision, largest(measured), note, moved)
    values = np.asarray(expected)
    classes = []
    for label in range(int(labels.max()) + 1):
        members = labels == label
        own = None if measured is None else (
            float(np.max(measured[members])) if isinstance(measured, np.ndarray) else measured)
        classes.append(_one_bound(values[members], precision, own, note, moved))
    described = "; ".join(f"{int(np.count_nonzero(labels == i))} element(s) up to {c.scale:.4g}: bound {c.bound:.3g}"
                          for i, c in enumerate(classes))
    first = classes[0]  # holds the smallest nonzero magnitudes, so its scale is not 0
    origin = (f"its values lie at {len(classes)} magnitudes more than one {precision} rounding step apart, each "
              f"judged by its own range and movement ({described}). The lowest: {first.origin}")
    return NoiseBound(precision, first.scale, first.bound, first.movement, origin, classes=tuple(classes),
                      labels=labels)


def _one_bound(expected: np.ndarray, precision: str, measured: float | None, note: str, moved: str) -> NoiseBound:
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
