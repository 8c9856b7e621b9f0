"""Inputs the source accepts: read what the graph does with each signature input, and make values
that are valid for it.

Random values do not fit every input: an index beyond its table, unsorted segment ids, row splits
that do not end at the number of values, words where a serialized tf.Example or a PNG is read.
So each signature input is followed into the graph (through Identity, Cast, Reshape and the like,
the value branches of Select, into the functions the graph calls) to the ops that read it, and each such use says what the
input must hold (`Constraint`):

  - indices: Gather/GatherV2/ResourceGather (embedding lookups), GatherNd/ResourceGatherNd,
    ScatterNd/TensorScatter*/ResourceScatter*, SparseSegment* indices: within the dimension they
    index, read from the recorded shape of the indexed tensor (a Const, a variable's VarHandleOp,
    `_output_shapes`); OneHot indices within depth;
  - segment ids: Segment* (sorted), SparseSegment* (sorted), UnsortedSegment* (within
    num_segments when it is a Const);
  - row splits: RaggedTensorToTensor/RaggedTensorToVariant/RaggedTensorToSparse/RaggedGather
    (non-decreasing, from 0 to the number of values);
  - the other row partitions of tf.RaggedTensor.from_row_lengths/from_value_rowids/from_row_starts/
    from_row_limits (and from_row_splits with no reader above): the op reading the input says
    which (a Cumsum: row lengths, >= 0; a DenseBincount/Bincount or a VALUE_ROWIDS partition of
    RaggedTensorToTensor: value row ids, sorted, one per value; a ConcatV2 putting the number of
    values after it: row starts; a ConcatV2 putting a Const 0 before it: row limits; a
    StridedSlice compared with the number of values: row splits), confirmed by following its
    output to the assert that compares it with the first dimension (Shape) of the values input,
    or to a RaggedTensorToTensor/RaggedTensorToVariant/RaggedTensorToSparse whose values that
    input is; the partition then covers exactly those values;
  - sparse indices: the indices of SparseToDense, SparseTensorDenseMatMul, SparseTensorDenseAdd,
    SparseReorder, SparseReduce*, SparseTensorToCSRSparseMatrix, SparseFillEmptyRows,
    SparseSlice, SparseSoftmax, SparseDenseCwise*, SparseAdd, SparseSparseMaximum/Minimum,
    SparseReshape, SparseSplit, Serialize(Many)Sparse, SparseToSparseSetOperation: rows within the
    dense shape (a Const, or a signature input then given a shape that holds them), unique and in
    row-major order, as many as the values input holds;
  - serialized tf.Example: ParseExample/ParseExampleV2/ParseSingleExample, built from the dense,
    sparse and ragged keys (Consts), dtypes and dense shapes of the op;
  - encoded images: DecodePng/DecodeJpeg/DecodeImage/DecodeBmp/DecodeGif/DecodeAndCropJpeg;
  - numbers as text: StringToNumber (tf.strings.to_number), which fails on any other string;
  - CSV records: DecodeCSV (tf.io.decode_csv), which fails on a record whose number of fields is
    not its number of columns: records of that many small numbers (which string columns take
    too), joined by its field_delim;
  - raw bytes: DecodeRaw (tf.io.decode_raw), which needs every string of one length, a multiple
    of its out_type's size: the bytes of a few small numbers of that type;
  - serialized tensors: ParseTensor (tf.io.parse_tensor): a TensorProto of its out_type;
  - base64: DecodeBase64 (tf.io.decode_base64), web-safe base64 of a word;
  - compressed text: DecodeCompressed (tf.io.decode_compressed): zlib or gzip data of a phrase;
  - audio: DecodeWav (tf.audio.decode_wav): a 16-bit PCM WAV file of its desired channels and
    samples;
  - shapes: the contracted dimension of a matmul, the channels of a convolution, bias add or
    batch norm, the spatial dimensions of a convolution or pooling window (SPATIAL_DIM), the
    element count of a Reshape, the dimensions an EnsureShape (tf.ensure_shape) requires;
  - symmetric positive definite matrices: the input of Cholesky;
  - sizes and counts: the limit of Range, k of TopKV2, the multiples of Tile, the dims of Fill and
    of the random ops, the depth of OneHot, the size of an image resize, the size of Slice (with its
    begin 0): at least 1, since 0 (which random integers in [0, 5) hold one time in five) makes an
    output with no elements, whose comparison proves nothing.

`candidates` then gives, per signature, a short list of strategies that parity tries in order
until the source runs on them: `random` (the seeded generator of parity.py, the former default),
`graph` (random values bent to the constraints above), `long` (the first strategy's values with
every unknown dimension but the batch made long, LONG_DIM or up to LONG_ELEMENTS: tried when the
first fails or leaves an output without values, as a 400-sample STFT window does on 2 samples),
`positive` (the first strategy's
values with every float in (0.1, 0.9) and every unconstrained integer 1: what an assert on
positive inputs or probabilities, a log or square root under CheckNumerics, or a reshape or frame by
an integer input accepts), `zeros` (every number 0, every string empty: valid for most index
inputs that nothing above recognised), and, when a signature takes
strings, `numbers` (every string a small decimal number, "7": what a string that reaches
StringToNumber through other string ops, a split or a regex, must hold).
"""
from __future__ import annotations

import base64
import gzip
import io
import wave
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from rewriter.protos import struct_pb2, types_pb2
from rewriter.savedmodel import tensors
from rewriter.savedmodel.attr_values import type_name
from rewriter.savedmodel.graph_model import node_of

# Ops whose output 0 is the input (or a reshaped/retyped copy of it): follow them.
PASS_THROUGH = {"Identity", "Cast", "Reshape", "ExpandDims", "Squeeze", "StopGradient", "Snapshot", "EnsureShape",
                "CheckNumerics", "PreventGradient", "Bitcast"}
CALL_OPS = {"PartitionedCall", "StatefulPartitionedCall"}
IMAGE_DECODERS = {"DecodePng", "DecodeJpeg", "DecodeImage", "DecodeBmp", "DecodeGif", "DecodeAndCropJpeg"}
EXAMPLE_PARSERS = {"ParseExample", "ParseExampleV2", "ParseSingleExample"}
RAGGED_SPLIT_READERS = {"RaggedTensorToTensor", "RaggedTensorToVariant", "RaggedTensorToSparse", "RaggedGather"}
# How a 1-D integer input can partition the values of a ragged tensor (Constraint.row_partition).
ROW_PARTITIONS = ("row_splits", "row_lengths", "value_rowids", "row_starts", "row_limits")
RAGGED_ROWS = 2  # rows of a synthesised ragged tensor whose partition input has no static length
PARTITION_REACH = 6  # ops followed from the op reading a partition input to the assert or reader that confirms it
# op -> (indices, values or None, dense shape) input indices of each SparseTensor it reads
SPARSE_COMPONENTS: dict[str, list[tuple[int, int | None, int]]] = {
    **{op: [(0, 1, 2)] for op in (
        "SparseTensorDenseMatMul", "SparseTensorDenseAdd", "SparseReorder", "SparseReduceSum", "SparseReduceSumSparse",
        "SparseReduceMax", "SparseReduceMaxSparse", "SparseTensorToCSRSparseMatrix", "SparseFillEmptyRows",
        "SparseSlice", "SparseSoftmax", "SparseDenseCwiseMul", "SparseDenseCwiseAdd", "SparseDenseCwiseDiv",
        "SerializeSparse", "SerializeManySparse")},
    **{op: [(0, 1, 2), (3, 4, 5)] for op in (
        "SparseAdd", "SparseSparseMaximum", "SparseSparseMinimum", "SparseToSparseSetOperation")},
    "SparseToDense": [(0, 2, 1)], "SparseReshape": [(0, None, 1)], "SparseSplit": [(1, 2, 3)],
}
SPARSE_DIM = 3  # each dimension of a dense shape synthesised for a dense shape input, when nothing says more
# Sparse ops that also read a dense operand whose static shape fixes dimensions of the SparseTensor's
# dense shape: op -> (dense operand's input index, how). "matmul": A's contracted dimension is b's
# (adjoint_a / adjoint_b say which); "same": the dense shape is b's; "broadcast": b broadcasts to
# the dense shape (aligned at the last dimension), so each of b's dimensions above 1 is the shape's.
DENSE_PARTNERS: dict[str, tuple[int, str]] = {
    "SparseTensorDenseMatMul": (3, "matmul"), "SparseTensorDenseAdd": (3, "same"),
    "SparseDenseCwiseMul": (3, "broadcast"), "SparseDenseCwiseAdd": (3, "broadcast"),
    "SparseDenseCwiseDiv": (3, "broadcast"),
}
UNKNOWN_DIM = 2
# Ops that fill a table from keys (input KEYS_INPUT) and values, or from a text file.
TABLE_IMPORTS = {"LookupTableImportV2", "InitializeTableV2", "LookupTableImport", "InitializeTable"}
TABLE_FILE_INITS = {"InitializeTableFromTextFileV2", "InitializeTableFromTextFile"}
TABLE_FINDS = {"LookupTableFindV2", "LookupTableFind"}
VOCABULARY_SIZE = 256  # keys kept per vocabulary (the first ones of each table)
VOCABULARY_FILE_BYTES = 1 << 20  # a vocabulary file read for its keys is at most this large
# The words of random string inputs (parity.generate_input) and of generated text. Some are not
# ASCII (2-, 3- and 4-byte UTF-8, letters with and without case), and the first element of every
# generated string input holds one that has case (CASED_UTF8): with ASCII alone, a model that
# upper-cases bytes where the source upper-cased UTF-8, or counts bytes where it counted
# characters, gave the same outputs and was proven (sweep-I F2). Each has been in Unicode since
# long before ICU's oldest release in a target, so case mappings agree across releases.
CASED_UTF8 = ["café".encode(), "straße".encode()]
WORDS = [b"the", b"quick", b"brown", b"fox", b"jumps", b"over", b"lazy", b"dog", b"hello", b"world",
         *CASED_UTF8, "日本".encode(), "🙂".encode()]


def cased_utf8_word(rng: np.random.Generator) -> bytes:
    """The non-ASCII word with case that the first element of a generated string input holds."""
    return CASED_UTF8[int(rng.integers(0, len(CASED_UTF8)))]

LONG_DIM = 16000  # an unknown dimension of the `long` strategy: a second of 16 kHz audio
LONG_ELEMENTS = 1 << 16  # at most this many elements in an input the `long` strategy lengthens
INT_HIGH = 5  # random integer inputs are in [0, INT_HIGH): small enough to index most things
BASE64_WORDS = [b"the", b"quick", b"brown", b"fox"]  # what a DecodeBase64 input is made to hold


# Ops whose output has their first input's shape: a shape a later op needs of the output is the
# input's. Binary ones only where the other operand is a scalar (no broadcasting to follow).
SHAPE_KEEPING = {"Identity", "Cast", "StopGradient", "Snapshot", "EnsureShape", "CheckNumerics", "PreventGradient",
                 "Relu", "Relu6", "Elu", "Selu", "LeakyRelu", "Sigmoid", "Tanh", "Softplus", "Softsign", "Neg", "Abs",
                 "Exp", "Log", "Log1p", "Sqrt", "Rsqrt", "Square", "Erf", "Floor", "Ceil", "Round", "Sign",
                 "Reciprocal", "Sin", "Cos", "ClipByValue"}
SCALAR_BINARY = {"Mul", "AddV2", "Add", "Sub", "RealDiv", "Div", "Maximum", "Minimum", "Pow", "SquaredDifference"}
# Ops whose window must fit the spatial dimensions of their input 0 (an unknown one gets SPATIAL_DIM).
WINDOWED = {"MaxPool", "MaxPoolV2", "AvgPool", "MaxPool3D", "AvgPool3D", "MaxPoolWithArgmax", "FractionalMaxPool",
            "FractionalAvgPool", "ExtractImagePatches", "Dilation2D"}
CHANNEL_READERS = {  # op -> (input index of the operand whose size fixes the channel axis, which of its dims)
    "Conv2D": (1, -2), "Conv3D": (1, -2), "DepthwiseConv2dNative": (1, -2), "BiasAdd": (1, 0),
    "FusedBatchNorm": (1, 0), "FusedBatchNormV2": (1, 0), "FusedBatchNormV3": (1, 0),
}
SPATIAL_DIM = 16  # an unknown spatial dimension of an input a convolution reads (2 shrinks to nothing)


@dataclass
class Constraint:
    """What one signature input must hold, from every op that reads it."""

    limit: int | None = None  # integers in [0, limit)
    minimum: int = 0  # integers at least this (a size or a count: 1)
    sorted: bool = False  # non-decreasing (segment ids)
    nd_limits: list[int] | None = None  # last dimension indexes these dims (GatherNd/ScatterNd)
    row_partition: str | None = None  # one of ROW_PARTITIONS: how this input partitions ragged values
    ragged_values_input: str | None = None  # the signature input holding the values it partitions
    sparse_indices: bool = False  # a SparseTensor's indices: in bounds, unique, in row-major order
    sparse_dense_shape: list[int] | None = None  # the Const dense shape those indices index
    sparse_dims: dict[int, int] = field(default_factory=dict)  # dense shape axis -> size a dense operand fixes
    sparse_shape_input: str | None = None  # the signature input holding that dense shape
    sparse_values_input: str | None = None  # the signature input holding one value per index row
    dense_shape_of: str | None = None  # the dense shape of the SparseTensor whose indices are this input
    values_of: str | None = None  # the values partitioned (ragged) or indexed (sparse) by this input
    example: dict[str, Any] | None = None  # {"dense": [(key, dtype, shape)], "sparse": [...], "ragged": [...]}
    image: str | None = None  # "png", "jpeg", "bmp", "gif"
    channels: int = 3
    numeric: bool = False  # strings holding decimal numbers (StringToNumber)
    csv: tuple[str, int] | None = None  # DecodeCSV records: (field delimiter, number of fields)
    raw: int | None = None  # DecodeRaw: the bytes of small numbers of this DataType
    tensor: int | None = None  # ParseTensor: a serialized TensorProto of this DataType
    base64: bool = False  # DecodeBase64: web-safe base64
    compressed: str | None = None  # DecodeCompressed: "ZLIB" or "GZIP" data ("" : as it is)
    wav: tuple[int, int] | None = None  # DecodeWav: (channels, samples) of a 16-bit PCM WAV file
    # Shape: axis (negative: from the last) -> size an op reading the input fixes, and a number the
    # element count must be a multiple of (a Reshape with -1) or equal (one without).
    dims: dict[int, int] = field(default_factory=dict)
    elements_multiple: int | None = None
    elements: int | None = None
    reshape_to: bool = False  # the shape operand of a Reshape: one -1 (the rest of the elements), then 1s
    lookups: list[str] = field(default_factory=list)  # the table lookups (LookupTableFindV2) it is the keys of
    positive_definite: bool = False  # matrices (the last two axes) a Cholesky factorizes
    text: bool = False  # strings nothing else constrains: words and phrases, from the model's vocabulary too
    # Floats the model first scales by about 1 / pixels (a Rescaling: x / 255, x / 127.5 - 1): an
    # image's whole numbers 0..pixels. Standard-normal values there are nearly one grey image, which
    # pushed a MobileNetV3's logits to 1650 (7 on images) and hid weight changes (a helper's sweep).
    pixels: int | None = None
    reasons: list[str] = field(default_factory=list)

    def fix(self, axis: int, size: int, reason: str) -> None:
        if size > 0 and axis not in self.dims:
            self.dims[axis] = size
            self.reasons.append(reason)

    def at_least(self, minimum: int, reason: str) -> None:
        self.minimum = max(self.minimum, minimum)
        self.reasons.append(reason)

    def bound(self, limit: int, reason: str) -> None:
        if limit > 0:
            self.limit = limit if self.limit is None else min(self.limit, limit)
            self.reasons.append(reason)


@dataclass
class _Scope:
    """A graph or a function body, with where its arguments come from in the caller."""

    name: str
    nodes: dict[str, Any]
    function: Any | None  # FunctionDef or None for the main graph
    caller: "_Scope | None" = None
    bindings: dict[str, str] = field(default_factory=dict)  # arg name -> caller's tensor reference


class _Graph:
    def __init__(self, meta_graph: Any) -> None:
        self.main = _Scope("", {n.name: n for n in meta_graph.graph_def.node}, None)
        self.functions = {f.signature.name: f for f in meta_graph.graph_def.library.function}
        self._consumers: dict[str, dict[str, list[tuple[Any, int]]]] = {}

    def consumers(self, scope: _Scope, name: str) -> list[tuple[Any, int]]:
        """(node, input index) of every op in `scope` reading any output of node `name`."""
        if scope.name not in self._consumers:
            index: dict[str, list[tuple[Any, int]]] = {}
            for node in scope.nodes.values():
                for position, ref in enumerate(node.input):
                    if not ref.startswith("^"):
                        index.setdefault(node_of(ref), []).append((node, position))
            self._consumers[scope.name] = index
        return self._consumers[scope.name].get(name, [])

    def enter(self, caller: _Scope, node: Any) -> _Scope | None:
        name = node.attr["f"].func.name if node.op in CALL_OPS else node.op
        function = self.functions.get(name)
        if function is None:
            return None
        args = [a.name for a in function.signature.input_arg]
        data_inputs = [i for i in node.input if not i.startswith("^")]
        return _Scope(name, {n.name: n for n in function.node_def}, function, caller, dict(zip(args, data_inputs)))

    def arg_of(self, caller: _Scope, node: Any, index: int) -> list[tuple[_Scope, str]]:
        """The called function's scope and the arg that input `index` of call `node` feeds (none if
        the function is unknown or has no such arg)."""
        inner = self.enter(caller, node)
        if inner is None or inner.function is None:
            return []
        args = inner.function.signature.input_arg
        data_index = sum(1 for i in node.input[:index] if not i.startswith("^"))
        return [(inner, args[data_index].name)] if data_index < len(args) else []


def _refers(ref: str, node_name: str, scope: _Scope) -> bool:
    """Does input `ref` read output 0 of `node_name` (or the argument of that name)?"""
    if ref.startswith("^"):
        return False
    parts = ref.split(":")
    if parts[0] != node_name:
        return False
    if scope.function is None:
        return len(parts) == 1 or parts[1] == "0"
    return len(parts) == 1 or parts[-1] == "0"


def _readers(scope: _Scope, tensor: str) -> Iterator[tuple[Any, int]]:
    """(node, input index) of every op of `scope` reading output 0 of `tensor` (or that arg)."""
    for node in scope.nodes.values():
        for index, ref in enumerate(node.input):
            if _refers(ref, tensor, scope):
                yield node, index


def _uses(graph: _Graph, scope: _Scope, tensor: str, depth: int = 0) -> Iterator[tuple[_Scope, Any, int]]:
    """(scope, node, input index) of every op reading `tensor`, through pass-through ops and calls."""
    if depth > 40:
        return
    for node, index in _readers(scope, tensor):
        if node.op in PASS_THROUGH and index == 0:
            yield scope, node, index  # the reshape/cast itself may matter (Cast to int)
            yield from _uses(graph, scope, node.name, depth + 1)
        elif node.op in ("Select", "SelectV2") and index in (1, 2):
            # Keras 3's take: where(ids < 0, ids + dim, ids) before the gather.
            yield from _uses(graph, scope, node.name, depth + 1)
        elif node.op in CALL_OPS or node.op in graph.functions:
            for inner, arg in graph.arg_of(scope, node, index):
                yield from _uses(graph, inner, arg, depth + 1)
        else:
            yield scope, node, index


def _shape_of(graph: _Graph, scope: _Scope, ref: str, depth: int = 0) -> list[int] | None:
    """The recorded static shape of a tensor reference (of the variable, for a resource)."""
    if depth > 40 or ref.startswith("^"):
        return None
    name = node_of(ref)
    if scope.function is not None and name in scope.bindings and name not in scope.nodes:
        if scope.caller is None:
            return None
        return _shape_of(graph, scope.caller, scope.bindings[name], depth + 1)
    node = scope.nodes.get(name)
    if node is None:
        return None
    if node.op == "Const":
        return [d.size for d in node.attr["value"].tensor.tensor_shape.dim]
    if node.op == "VarHandleOp":
        return [d.size for d in node.attr["shape"].shape.dim]
    if node.op in ("ReadVariableOp", "Identity") and node.input:
        return _shape_of(graph, scope, node.input[0], depth + 1)
    recorded = node.attr.get("_output_shapes")
    if recorded is not None and recorded.list.shape:
        shape = recorded.list.shape[0]
        return None if shape.unknown_rank else [d.size for d in shape.dim]
    return None


def _const_value(graph: _Graph, scope: _Scope, ref: str) -> np.ndarray | None:
    name = node_of(ref)
    if scope.function is not None and name in scope.bindings and name not in scope.nodes:
        return _const_value(graph, scope.caller, scope.bindings[name]) if scope.caller else None
    node = scope.nodes.get(name)
    if node is not None and node.op == "Identity" and node.input:
        return _const_value(graph, scope, node.input[0])
    if node is not None and node.op == "Cast" and node.input:  # a constant cast (mixed precision's scales)
        value = _const_value(graph, scope, node.input[0])
        dtype = tensors.numpy_dtype(node.attr["DstT"].type)
        return value.astype(dtype) if value is not None and dtype is not None else None
    return _const_array(node)


def _const_array(node: Any) -> np.ndarray | None:
    """The value of a Const node (None: not a Const, or a dtype rewriter.savedmodel.tensors does not read)."""
    from rewriter.savedmodel.tensors import make_ndarray

    if node is None or node.op != "Const":
        return None
    try:
        return np.asarray(make_ndarray(node.attr["value"].tensor))
    except Exception:  # a dtype tensors.py does not read: no value known
        return None


def _signature_input_of(graph: _Graph, scope: _Scope, ref: str, names: dict[str, str], depth: int = 0) -> str | None:
    """The signature input (by its SignatureDef key) a reference reads, if any."""
    if depth > 40:
        return None
    name = node_of(ref)
    if scope.function is not None:
        if name in scope.bindings and name not in scope.nodes and scope.caller is not None:
            return _signature_input_of(graph, scope.caller, scope.bindings[name], names, depth + 1)
        node = scope.nodes.get(name)
        if node is not None and node.op in PASS_THROUGH and node.input:
            return _signature_input_of(graph, scope, node.input[0], names, depth + 1)
        return None
    if name in names:
        return names[name]
    node = scope.nodes.get(name)
    if node is not None and node.op in PASS_THROUGH and node.input:
        return _signature_input_of(graph, scope, node.input[0], names, depth + 1)
    return None


_INDEX_OF = {  # op -> (index input, indexed input, axis input or None)
    "Gather": (1, 0, None), "GatherV2": (1, 0, 2), "ResourceGather": (1, 0, None),
}
_ND_INDEX_OF = {  # op -> (indices input, indexed tensor input or shape input, is the second a shape?)
    "GatherNd": (1, 0, False), "ResourceGatherNd": (1, 0, False), "ScatterNd": (0, 2, True),
    "TensorScatterUpdate": (1, 0, False), "TensorScatterAdd": (1, 0, False), "TensorScatterSub": (1, 0, False),
    "TensorScatterMax": (1, 0, False), "TensorScatterMin": (1, 0, False),
    "ResourceScatterNdUpdate": (1, 0, False), "ResourceScatterNdAdd": (1, 0, False), "ResourceScatterNdSub": (1, 0, False),
}
# op -> input indices that hold a size or a count (Constraint.minimum 1); op -> index input
# whose values then must be 0 (Slice: begin, beside a size of 1).
SIZE_OPERANDS: dict[str, tuple[int, ...]] = {
    "Range": (1,), "TopKV2": (1,), "Tile": (1,), "Fill": (0,), "OneHot": (1,), "Empty": (0,),
    "ResizeBilinear": (1,), "ResizeNearestNeighbor": (1,), "ResizeBicubic": (1,), "ResizeArea": (1,),
    "ScaleAndTranslate": (1,), "Slice": (2,), "RandomUniform": (0,), "RandomStandardNormal": (0,),
    "TruncatedNormal": (0,), "RandomUniformInt": (0,), "StatelessRandomUniformV2": (0,),
    "StatelessRandomNormalV2": (0,), "StatelessTruncatedNormalV2": (0,), "StatelessRandomUniform": (0,),
    "StatelessRandomNormal": (0,), "StatelessTruncatedNormal": (0,),
}
SLICE_SIZE = 1  # a Slice size input: one element from 0 along each axis, whatever the axis' size
_RESOURCE_SCATTER = {"ResourceScatterUpdate", "ResourceScatterAdd", "ResourceScatterSub", "ResourceScatterMul",
                     "ResourceScatterDiv", "ResourceScatterMin", "ResourceScatterMax"}


# Ops that scale a float input by a constant, and the largest scale read as a Rescaling of pixels
# (1/16: Keras' x / 255 and x / 127.5 - 1, not a model's ordinary constant factors).
_SCALES = ("Mul", "RealDiv", "Div")
_PIXEL_SCALE = 1.0 / 16


def _constrain(graph: _Graph, scope: _Scope, node: Any, index: int, constraint: Constraint,
               names: dict[str, str]) -> None:
    op = node.op
    where = f"{op} '{node.name}'"
    if op in _INDEX_OF and index == _INDEX_OF[op][0]:
        _, indexed, axis_input = _INDEX_OF[op]
        shape = _shape_of(graph, scope, node.input[indexed])
        axis = 0
        if axis_input is not None and len(node.input) > axis_input:
            value = _const_value(graph, scope, node.input[axis_input])
            axis = int(value) if value is not None and value.size == 1 else 0
        if shape and -len(shape) <= axis < len(shape) and shape[axis] > 0:
            constraint.bound(shape[axis], f"indexes dimension {axis} (size {shape[axis]}) in {where}")
        else:
            constraint.bound(1, f"indexes a tensor of unrecorded shape in {where}")
    elif op in _RESOURCE_SCATTER and index == 1:
        shape = _shape_of(graph, scope, node.input[0])
        constraint.bound(shape[0] if shape and shape[0] > 0 else 1, f"indexes dimension 0 in {where}")
    elif op in _ND_INDEX_OF and index == _ND_INDEX_OF[op][0]:
        _, other, is_shape = _ND_INDEX_OF[op]
        dims = None
        if is_shape:
            value = _const_value(graph, scope, node.input[other])
            dims = [int(v) for v in value.ravel()] if value is not None else None
        else:
            dims = _shape_of(graph, scope, node.input[other])
        if dims and all(d > 0 for d in dims):
            known = constraint.nd_limits or dims
            constraint.nd_limits = [min(a, b) for a, b in zip(known, dims)] + known[len(dims):] + dims[len(known):]
            constraint.reasons.append(f"indexes a tensor of shape {dims} in {where}")
        else:
            constraint.bound(1, f"indexes a tensor of unrecorded shape in {where}")
    elif op in _SCALES and (op == "Mul" or index == 0) and index in (0, 1) and len(node.input) == 2:
        factor = _const_value(graph, scope, node.input[1 - index])
        if factor is not None and factor.size == 1 and factor.dtype.kind == "f" and float(factor.ravel()[0]):
            scale = abs(float(factor.ravel()[0]))
            scale = scale if op == "Mul" else 1.0 / scale
            if scale <= _PIXEL_SCALE:
                # 8-bit pixels for the usual scales (1 / 255, and 1 / 127.5 with an offset of -1),
                # else as many levels as the scale says (1 / 65535: 16-bit images)
                top = 255 if 1.0 / scale <= 256 else int(round(1.0 / scale))
                constraint.pixels = top if constraint.pixels is None else min(constraint.pixels, top)
                constraint.reasons.append(f"scaled by {scale:.4g} in {where}: pixel values 0..{top}, as a Rescaling reads")
    elif op == "Cholesky" and index == 0:
        constraint.positive_definite = True
        constraint.reasons.append(f"symmetric positive definite matrices for {where}")
    elif op in TABLE_FINDS and index == 1:
        constraint.lookups.append(where)  # its reason says whether the keys are known (constraints())
    elif op in SIZE_OPERANDS and index in SIZE_OPERANDS[op]:
        constraint.at_least(1, f"a size or count of {where} (0 leaves its output without elements)")
        if op == "Slice":
            constraint.bound(SLICE_SIZE + 1, f"the size of {where}, from begin 0")
    elif op == "Slice" and index == 1:
        constraint.bound(1, f"the begin of {where} (0, with a size of {SLICE_SIZE})")
    elif op == "OneHot" and index == 0:
        depth = _const_value(graph, scope, node.input[1])
        if depth is not None and depth.size == 1 and int(depth) > 0:
            constraint.bound(int(depth), f"one-hot of depth {int(depth)} in {where}")
    elif op.startswith("SparseSegment") and index in (1, 2):
        if index == 2:
            constraint.sorted = True
            constraint.reasons.append(f"sorted segment ids of {where}")
        else:
            shape = _shape_of(graph, scope, node.input[0])
            constraint.bound(shape[0] if shape and shape[0] > 0 else 1, f"indexes the data of {where}")
    elif op.startswith("UnsortedSegment") and index == 1:
        count = _const_value(graph, scope, node.input[2])
        if count is not None and count.size == 1 and int(count) > 0:
            constraint.bound(int(count), f"segment ids of {where} ({int(count)} segments)")
    elif op.startswith("Segment") and index == 1:
        constraint.sorted = True
        constraint.reasons.append(f"sorted segment ids of {where}")
    elif op in RAGGED_SPLIT_READERS and (kind := _partition_read(node, index)) is not None:
        values_index = _ragged_values_index(node)
        values = _signature_input_of(graph, scope, node.input[values_index], names) if values_index is not None else None
        _partition(constraint, kind, values, f"{kind} of {where}")
    elif op in _PARTITION_OPS and (kind := _partition_kind(graph, scope, node, index)) is not None:
        values = _partition_values(graph, scope, node, names)
        if values is not None:
            _partition(constraint, kind, values, f"{kind} ({op} '{node.name}') of the ragged values '{values}'")
    elif op in SPARSE_COMPONENTS and any(index == parts[0] for parts in SPARSE_COMPONENTS[op]):
        _, values_index, shape_index = next(parts for parts in SPARSE_COMPONENTS[op] if parts[0] == index)
        constraint.sparse_indices = True
        dense = _const_value(graph, scope, node.input[shape_index])
        if dense is not None and dense.ndim == 1 and np.all(dense >= 0):
            constraint.sparse_dense_shape = [int(d) for d in dense]
        else:
            constraint.sparse_shape_input = constraint.sparse_shape_input or _signature_input_of(
                graph, scope, node.input[shape_index], names)
        if values_index is not None:
            constraint.sparse_values_input = constraint.sparse_values_input or _signature_input_of(
                graph, scope, node.input[values_index], names)
        fixed = _dims_from_dense_partner(graph, scope, node) if constraint.sparse_dense_shape is None else {}
        for axis, size in fixed.items():
            constraint.sparse_dims.setdefault(axis, size)
        constraint.reasons.append(f"sparse indices of {where} (dense shape "
                                  f"{constraint.sparse_dense_shape or constraint.sparse_shape_input or 'unknown'}"
                                  + (f"; sizes {fixed} set by its dense operand" if fixed else "") + ")")
    elif op in EXAMPLE_PARSERS and index == 0:
        constraint.example = _example_spec(graph, scope, node)
        constraint.reasons.append(f"serialized tf.Example read by {where}")
    elif op == "Reshape" and index == 1:
        constraint.reshape_to = True
        constraint.reasons.append(f"shape of {where} (-1, then 1s: it holds any number of elements)")
    elif op == "DecodeCSV" and index == 0:
        constraint.csv = constraint.csv or _csv_fields(node)
        constraint.reasons.append(f"CSV records of {_csv_fields(node)[1]} fields parsed by {where}")
    elif op == "DecodeRaw" and index == 0 and "out_type" in node.attr:
        constraint.raw = node.attr["out_type"].type
        constraint.reasons.append(f"raw {type_name(constraint.raw)} bytes decoded by {where}")
    elif op == "ParseTensor" and index == 0 and "out_type" in node.attr:
        constraint.tensor = node.attr["out_type"].type
        constraint.reasons.append(f"a serialized {type_name(constraint.tensor)} tensor parsed by {where}")
    elif op == "DecodeCompressed" and index == 0:
        kind = node.attr["compression_type"].s.decode() if "compression_type" in node.attr else ""
        constraint.compressed = kind
        constraint.reasons.append(f"{kind + ' compressed' if kind else 'uncompressed'} text decoded by {where}")
    elif op == "DecodeBase64" and index == 0:
        constraint.base64 = True
        constraint.reasons.append(f"web-safe base64 decoded by {where}")
    elif op == "DecodeWav" and index == 0:
        channels = node.attr["desired_channels"].i if "desired_channels" in node.attr else -1
        samples = node.attr["desired_samples"].i if "desired_samples" in node.attr else -1
        constraint.wav = (channels if channels > 0 else 1, samples if samples > 0 else 160)
        constraint.reasons.append(f"a WAV file decoded by {where}")
    elif op == "StringToNumber" and index == 0:
        constraint.numeric = True
        constraint.reasons.append(f"parsed as a number by {where}")
    elif op in IMAGE_DECODERS and index == 0:
        constraint.image = {"DecodeJpeg": "jpeg", "DecodeAndCropJpeg": "jpeg", "DecodeBmp": "bmp",
                            "DecodeGif": "gif"}.get(op, "png")
        channels = node.attr["channels"].i if "channels" in node.attr else 0
        constraint.channels = channels if channels in (1, 3, 4) else 3
        if constraint.image in ("jpeg", "bmp", "gif") and constraint.channels == 4:
            constraint.channels = 3
        constraint.reasons.append(f"encoded {constraint.image} image read by {where}")


def _dims_from_dense_partner(graph: _Graph, scope: _Scope, node: Any) -> dict[int, int]:
    """Axis -> size of the SparseTensor's dense shape that the op's dense operand fixes
    (DENSE_PARTNERS), as far as that operand's static shape is recorded."""
    if node.op not in DENSE_PARTNERS or len(node.input) <= DENSE_PARTNERS[node.op][0]:
        return {}
    dense_index, how = DENSE_PARTNERS[node.op]
    shape = _shape_of(graph, scope, node.input[dense_index])
    if not shape:
        return {}
    if how == "matmul":  # A [m, k] (adjoint_a: [k, m]) times b [k, n] (adjoint_b: [n, k])
        adjoint_a = "adjoint_a" in node.attr and node.attr["adjoint_a"].b
        adjoint_b = "adjoint_b" in node.attr and node.attr["adjoint_b"].b
        size = shape[1 if adjoint_b else 0] if len(shape) == 2 else -1
        return {0 if adjoint_a else 1: size} if size > 0 else {}
    if how == "same":
        return {axis: size for axis, size in enumerate(shape) if size > 0}
    # broadcast: b's last dimension is the dense shape's last; a dimension of 1 (or unknown) fits any
    return {axis - len(shape): size for axis, size in enumerate(shape) if size > 1}


def _csv_fields(node: Any) -> tuple[str, int]:
    """DecodeCSV's field delimiter and the number of fields of a record: one per OUT_TYPE, or with
    select_cols, up to the last column selected."""
    delimiter = node.attr["field_delim"].s.decode() if "field_delim" in node.attr and node.attr["field_delim"].s else ","
    selected = list(node.attr["select_cols"].list.i) if "select_cols" in node.attr else []
    if selected:
        return delimiter, max(selected) + 1
    return delimiter, len(node.attr["OUT_TYPE"].list.type) if "OUT_TYPE" in node.attr else 1


def _partition_read(node: Any, index: int) -> str | None:
    """The row partition (ROW_PARTITIONS) a ragged reader takes at input `index`, if any."""
    inputs = [i for i in node.input if not i.startswith("^")]
    if node.op == "RaggedTensorToTensor":
        if index < 3:  # shape, values, default_value, row_partition_tensors...
            return None
        types = [bytes(t).decode() for t in node.attr["row_partition_types"].list.s] \
            if "row_partition_types" in node.attr else []
        kind = types[index - 3] if index - 3 < len(types) else "ROW_SPLITS"
        return {"ROW_SPLITS": "row_splits", "VALUE_ROWIDS": "value_rowids"}.get(kind)
    if node.op in ("RaggedTensorToVariant", "RaggedTensorToSparse"):
        return "row_splits" if index < len(inputs) - 1 else None
    if node.op == "RaggedGather":
        return "row_splits" if index < node.attr["PARAMS_RAGGED_RANK"].i else None
    return None


def _ragged_values_index(node: Any) -> int | None:
    """The input of a ragged reader holding the values its partitions split."""
    inputs = [i for i in node.input if not i.startswith("^")]
    return {"RaggedTensorToTensor": 1, "RaggedTensorToVariant": len(inputs) - 1,
            "RaggedTensorToSparse": len(inputs) - 1}.get(node.op)


def _partition(constraint: Constraint, kind: str, values: str | None, reason: str) -> None:
    if constraint.row_partition is None or constraint.row_partition == kind:
        constraint.row_partition = kind
        constraint.ragged_values_input = constraint.ragged_values_input or values
        constraint.reasons.append(reason)


_PARTITION_OPS = {"Cumsum", "DenseBincount", "Bincount", "ConcatV2", "StridedSlice"}


def _partition_kind(graph: _Graph, scope: _Scope, node: Any, index: int) -> str | None:
    """What reading a 1-D integer input this way makes of it, if a ragged tensor is built from it:
    the row partition its RowPartition.from_* makes into row splits."""
    op = node.op
    if op == "Cumsum" and index == 0:
        exclusive = "exclusive" in node.attr and node.attr["exclusive"].b
        reverse = "reverse" in node.attr and node.attr["reverse"].b
        return None if exclusive or reverse else "row_lengths"
    if op in ("DenseBincount", "Bincount") and index == 0:
        return "value_rowids"
    if op == "ConcatV2" and len([i for i in node.input if not i.startswith("^")]) == 3:  # two pieces and the axis
        if index == 0:
            return "row_starts"  # concat([starts, [nvals]])
        if index == 1:
            zero = _const_value(graph, scope, node.input[0])
            return "row_limits" if zero is not None and zero.size == 1 and int(zero.ravel()[0]) == 0 else None
    if op == "StridedSlice" and index == 0:  # splits[-1] == nvals, as from_row_splits asserts
        return "row_splits"
    return None


def _values_count_of(graph: _Graph, scope: _Scope, ref: str, names: dict[str, str]) -> str | None:
    """The signature input whose first dimension `ref` is: Shape(x)[0] (through Cast/Identity)."""
    for _ in range(4):
        node = scope.nodes.get(node_of(ref))
        if node is None or not node.input:
            return None
        if node.op in ("Shape", "Size"):
            return _signature_input_of(graph, scope, node.input[0], names)
        if node.op not in ("StridedSlice", "Cast", "Identity", "Reshape", "Squeeze"):
            return None
        ref = node.input[0]
    return None


def _partition_values(graph: _Graph, scope: _Scope, node: Any, names: dict[str, str]) -> str | None:
    """Follow the output of `node` (the op reading a partition input) to what confirms that a
    ragged tensor is built from it: the assert comparing the splits' last element with the number
    of values (an Equal with Shape(values)[0] on its other side), or a ragged reader taking it as
    a partition. The signature input holding those values, or None."""
    seen = {node.name}
    frontier = [node.name]
    for _ in range(PARTITION_REACH):
        following = []
        for name in frontier:
            for consumer, index in graph.consumers(scope, name):
                if consumer.name in seen:
                    continue
                seen.add(consumer.name)
                if consumer.op == "Equal" and len(consumer.input) >= 2:
                    other = consumer.input[1 - index] if index in (0, 1) else None
                    values = _values_count_of(graph, scope, other, names) if other else None
                    if values is not None:
                        return values
                    continue
                if consumer.op in RAGGED_SPLIT_READERS and _partition_read(consumer, index):
                    values_index = _ragged_values_index(consumer)
                    if values_index is not None:
                        return _signature_input_of(graph, scope, consumer.input[values_index], names)
                    continue
                if node.op == "StridedSlice":
                    continue  # splits[-1] is compared at once, or this is no partition
                following.append(consumer.name)
        frontier = following
    return None


def _example_spec(graph: _Graph, scope: _Scope, node: Any) -> dict[str, Any]:
    def keys(ref: str) -> list[str]:
        value = _const_value(graph, scope, ref)
        return [v.decode() if isinstance(v, bytes) else str(v) for v in value.ravel()] if value is not None else []

    def types(attr: str) -> list[str]:
        return [type_name(t) for t in node.attr[attr].list.type] if attr in node.attr else []

    shapes = [[d.size for d in s.dim] for s in node.attr["dense_shapes"].list.shape] if "dense_shapes" in node.attr else []
    if node.op == "ParseExampleV2":
        sparse, dense, ragged = keys(node.input[2]), keys(node.input[3]), keys(node.input[4])
        ragged_types = types("ragged_value_types")
    elif node.op == "ParseExample":
        n_sparse, n_dense = node.attr["Nsparse"].i, node.attr["Ndense"].i
        sparse = [k for ref in node.input[2:2 + n_sparse] for k in keys(ref)]
        dense = [k for ref in node.input[2 + n_sparse:2 + n_sparse + n_dense] for k in keys(ref)]
        ragged, ragged_types = [], []
    else:  # ParseSingleExample: keys are attrs
        sparse = [bytes(k).decode() for k in node.attr["sparse_keys"].list.s]
        dense = [bytes(k).decode() for k in node.attr["dense_keys"].list.s]
        ragged, ragged_types = [], []
    return {"dense": list(zip(dense, types("Tdense"), shapes)), "sparse": list(zip(sparse, types("sparse_types"))),
            "ragged": list(zip(ragged, ragged_types)), "single": node.op == "ParseSingleExample"}


def _shape_uses(graph: _Graph, scope: _Scope, tensor: str, depth: int = 0) -> Iterator[tuple[_Scope, Any, int]]:
    """(scope, node, input index) of every op reading `tensor` as it is or through ops that keep its
    shape (SHAPE_KEEPING, SCALAR_BINARY with a scalar other operand) and calls."""
    if depth > 40:
        return
    for node, index in _readers(scope, tensor):
        if node.op in SHAPE_KEEPING and index == 0:
            if node.op == "EnsureShape":  # it keeps the shape, and fails unless the shape is its own
                yield scope, node, index
            yield from _shape_uses(graph, scope, node.name, depth + 1)
        elif node.op in SCALAR_BINARY and index in (0, 1) and len(node.input) > 1 and \
                _shape_of(graph, scope, node.input[1 - index]) in ([], [1]):
            yield from _shape_uses(graph, scope, node.name, depth + 1)
        elif node.op in CALL_OPS or node.op in graph.functions:
            for inner, arg in graph.arg_of(scope, node, index):
                yield from _shape_uses(graph, inner, arg, depth + 1)
        else:
            yield scope, node, index


def _constrain_shape(graph: _Graph, scope: _Scope, node: Any, index: int, constraint: Constraint) -> None:
    """What `node` needs of the shape of its input `index` (a signature input, as it is), from the
    static shape of its other operand: a matmul's contracted axis, a convolution's, bias add's or
    batch norm's channel axis, a Reshape's element count."""
    op, where = node.op, f"{node.op} '{node.name}'"

    def flag(name: str) -> bool:
        return name in node.attr and bool(node.attr[name].b)

    def other(position: int) -> list[int] | None:
        return _shape_of(graph, scope, node.input[position]) if len(node.input) > position else None

    if op == "MatMul" and index in (0, 1):
        shape = other(1 - index)
        if shape and len(shape) == 2:
            if index == 0:  # a [m, k] (transpose_a: [k, m]); b [k, n] (transpose_b: [n, k])
                constraint.fix(0 if flag("transpose_a") else 1, shape[1 if flag("transpose_b") else 0],
                               f"contracted dimension of {where}")
            else:
                constraint.fix(1 if flag("transpose_b") else 0, shape[0 if flag("transpose_a") else 1],
                               f"contracted dimension of {where}")
    elif op in ("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3") and index in (0, 1):
        shape = other(1 - index)
        if shape and len(shape) >= 2:
            if index == 0:
                constraint.fix(-2 if flag("adj_x") else -1, shape[-1 if flag("adj_y") else -2],
                               f"contracted dimension of {where}")
            else:
                constraint.fix(-1 if flag("adj_y") else -2, shape[-2 if flag("adj_x") else -1],
                               f"contracted dimension of {where}")
    elif op in CHANNEL_READERS and index == 0:
        position, dim = CHANNEL_READERS[op]
        shape = other(position)
        if shape and len(shape) > abs(dim) - (1 if dim < 0 else 0):
            channels_first = "data_format" in node.attr and node.attr["data_format"].s.startswith(b"NC")
            constraint.fix(1 if channels_first else -1, shape[dim], f"channels of {where}")
            if op.startswith(("Conv", "Depthwise")):
                constraint.reasons.append(f"spatial dimensions of {where}")
    elif op in WINDOWED and index == 0:
        constraint.reasons.append(f"spatial dimensions of {where}")
    elif op == "EnsureShape" and index == 0 and "shape" in node.attr and not node.attr["shape"].shape.unknown_rank:
        for axis, dim in enumerate(node.attr["shape"].shape.dim):
            constraint.fix(axis, dim.size, f"dimension {axis} of {where}")
    elif op == "Reshape" and index == 0 and len(node.input) > 1:
        target = _const_value(graph, scope, node.input[1])
        if target is not None and target.ndim == 1 and target.size:
            known = int(np.prod([d for d in target if d > 0], dtype=np.int64))
            if -1 in target.tolist():
                if known > 1 and constraint.elements_multiple is None:
                    constraint.elements_multiple = known
                    constraint.reasons.append(f"element count a multiple of {known} for {where}")
            elif constraint.elements is None:
                constraint.elements = known
                constraint.reasons.append(f"{known} elements for {where}")


def shape_for(info: Any, base_shape: list[int], c: Constraint) -> list[int]:
    """The shape a constrained input is given: the dimensions the signature leaves unknown take
    what the ops reading it fix (Constraint.dims, a convolution's spatial size), then the element
    count a Reshape needs, on the last unknown dimension."""
    if info.tensor_shape.unknown_rank:
        return base_shape
    unknown = [axis for axis, d in enumerate(info.tensor_shape.dim) if d.size < 0]
    shape = list(base_shape)
    rank = len(shape)
    convolved = any(reason.startswith("spatial dimensions of") for reason in c.reasons)
    for axis in unknown:
        if convolved and 0 < axis and axis != rank - 1 and not (1 in c.dims and axis == 1):
            shape[axis] = max(shape[axis], SPATIAL_DIM)
    for axis, size in c.dims.items():
        if -rank <= axis < rank and axis % rank in unknown:
            shape[axis % rank] = size
    free = [axis for axis in unknown if all(axis != a % rank for a in c.dims if -rank <= a < rank)]
    total = int(np.prod(shape, dtype=np.int64))
    if c.elements is not None and free:
        rest = total // max(shape[free[-1]], 1)
        if rest and c.elements % rest == 0:
            shape[free[-1]] = c.elements // rest
    elif c.elements_multiple is not None and free and total % c.elements_multiple:
        shape[free[-1]] = shape[free[-1]] * c.elements_multiple // np.gcd(total, c.elements_multiple)
    return shape


@dataclass
class Vocabulary:
    """The keys of the model's lookup tables: what a string or integer input must hold for a lookup
    to find something (random words never hit a StringLookup's vocabulary, so a table emptied or
    altered by a conversion gave the default on both sides, and parity called it bit-identical)."""

    words: list[bytes] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)

    def add(self, keys: np.ndarray) -> None:
        flat = keys.ravel()[:VOCABULARY_SIZE]
        if flat.dtype == object or flat.dtype.kind == "S":
            self.words += [bytes(k) for k in flat if isinstance(k, bytes) and k and len(k) <= 64]
        elif flat.dtype.kind in "iu":
            self.numbers += [int(k) for k in flat]


def vocabulary(meta_graph: Any, model_dir: Path | None = None) -> Vocabulary:
    """The keys every table of the MetaGraphDef is filled with: Consts (in the initializer, or
    captured from the main graph through the object graph's bound inputs, as tf.saved_model.save
    keeps an eager constant) and, for a table filled from a text file, the first field of the
    lines of the model's small asset files, and the '-keys' tensors of tables a checkpoint restores
    (MutableHashTable)."""
    found = Vocabulary()
    graph_def = meta_graph.graph_def
    main = {node.name: node for node in graph_def.node}
    concrete = meta_graph.object_graph_def.concrete_functions
    objects = meta_graph.object_graph_def.nodes

    from_files = False
    scopes = [("", graph_def.node, None)] + [(f.signature.name, f.node_def, f) for f in graph_def.library.function]
    for name, nodes, function in scopes:
        by_name = {node.name: node for node in nodes}
        for node in nodes:
            from_files |= node.op in TABLE_FILE_INITS
            if node.op not in TABLE_IMPORTS or len(node.input) < 2:
                continue
            source = node_of(node.input[1])
            while source in by_name and by_name[source].op == "Identity" and by_name[source].input:
                source = node_of(by_name[source].input[0])
            keys = _const_array(by_name.get(source))
            if keys is None and function is not None and name in concrete:
                args = [arg.name for arg in function.signature.input_arg]
                bound = list(concrete[name].bound_inputs)
                if source in args and args.index(source) >= len(args) - len(bound):
                    captured = objects[bound[args.index(source) - (len(args) - len(bound))]]
                    if captured.WhichOneof("kind") == "constant":
                        keys = _const_array(main.get(captured.constant.operation))
            if keys is not None:
                found.add(keys)
    if model_dir is not None:
        _checkpoint_keys(model_dir, found)
    if from_files and model_dir is not None and (model_dir / "assets").is_dir():
        for path in sorted((model_dir / "assets").iterdir()):
            if path.is_file() and path.stat().st_size <= VOCABULARY_FILE_BYTES:
                lines = path.read_bytes().splitlines()[:VOCABULARY_SIZE]
                found.words += [line.split(b"\t")[0] for line in lines if line.split(b"\t")[0]]
    found.words = list(dict.fromkeys(found.words))
    found.numbers = list(dict.fromkeys(found.numbers))
    return found


def _ragged_signature_inputs(meta_graph: Any, signature: Any) -> dict[str, str]:
    """Row splits input -> flat values input, of the signature's tf.RaggedTensorSpec arguments.

    A ragged argument reaches the SignatureDef as its components, the flat values under its name
    and the row splits under '<name>_1', with nothing in the graph that checks them (the
    function rebuilds the tensor without from_row_splits' asserts), so the random values of the
    two did not fit ('data.shape = [2] does not start with segment_ids.shape = [0]'). Read from
    the names, when a concrete function of the object graph takes a RaggedTensorSpec; a ragged
    rank above 1 ('<name>_2') is left to the other strategies."""
    if not any(_has_ragged_spec(function.canonicalized_input_signature)
               for function in meta_graph.object_graph_def.concrete_functions.values()):
        return {}
    inputs = signature.inputs
    found = {}
    for name, info in inputs.items():
        splits = inputs.get(f"{name}_1")
        if splits is None or f"{name}_2" in inputs or splits.dtype not in (types_pb2.DT_INT64, types_pb2.DT_INT32):
            continue
        if len(splits.tensor_shape.dim) == 1 and info.tensor_shape.dim and info.tensor_shape.dim[0].size < 0:
            found[f"{name}_1"] = name
    return found


def _has_ragged_spec(value: Any) -> bool:
    """Whether a StructuredValue holds a RaggedTensorSpec (TypeSpecProto.RAGGED_TENSOR_SPEC)."""
    kind = value.WhichOneof("kind")
    if kind == "type_spec_value":
        return value.type_spec_value.type_spec_class == struct_pb2.TypeSpecProto.RAGGED_TENSOR_SPEC
    if kind in ("list_value", "tuple_value"):
        return any(_has_ragged_spec(v) for v in getattr(value, kind).values)
    if kind == "dict_value":
        return any(_has_ragged_spec(v) for v in value.dict_value.fields.values())
    if kind == "named_tuple_value":
        return any(_has_ragged_spec(pair.value) for pair in value.named_tuple_value.values)
    return False


def _checkpoint_keys(model_dir: Path, found: Vocabulary) -> None:
    """The keys of the tables a checkpoint restores (MutableHashTable and DenseHashTable save
    theirs as '<table>-keys' tensors), when small: read from the variables' shards, never loaded
    as variables."""
    from rewriter.protos import tensor_bundle_pb2
    from rewriter.savedmodel import bundle_index

    index = model_dir / "variables" / "variables.index"
    if not index.is_file():
        return
    try:
        entries = bundle_index.read_index(index.read_bytes())
        shards = bundle_index.num_shards(entries)
    except Exception:  # an index this reader cannot read: no keys known (parity's loaders will say more)
        return
    for key, value in entries:
        if not key.endswith(b"-keys"):
            continue
        entry = tensor_bundle_pb2.BundleEntryProto.FromString(value)
        count = int(np.prod([d.size for d in entry.shape.dim], dtype=np.int64)) if entry.shape.dim else 1
        if entry.size > VOCABULARY_FILE_BYTES or count <= 0:
            continue
        shard = model_dir / "variables" / bundle_index.shard_name("variables", entry.shard_id, shards)
        try:
            with open(shard, "rb") as stream:
                stream.seek(entry.offset)
                data = stream.read(entry.size)
        except OSError:
            continue
        if entry.dtype == types_pb2.DT_STRING:
            words = bundle_index.decode_strings(data, count)
            if words is not None:
                found.add(np.array(words, dtype=object))
        elif entry.dtype in (types_pb2.DT_INT64, types_pb2.DT_INT32) and len(data) == count * (8 if entry.dtype == types_pb2.DT_INT64 else 4):
            found.add(np.frombuffer(data, "<i8" if entry.dtype == types_pb2.DT_INT64 else "<i4"))


# The constraints on a string that say what it must hold (a decoder, a parser): `text` is for the rest.
_STRING_KINDS = ("example", "image", "csv", "raw", "tensor", "base64", "wav", "numeric", "compressed")


def constraints(meta_graph: Any, signature_key: str, vocab: Vocabulary | None = None) -> dict[str, Constraint]:
    """Signature input key -> what the graph requires of it (empty constraint: nothing known)."""
    graph = _Graph(meta_graph)
    signature = meta_graph.signature_def[signature_key]
    names = {info.name.split(":")[0]: key for key, info in signature.inputs.items()}
    result: dict[str, Constraint] = {}
    for key, info in signature.inputs.items():
        constraint = Constraint()
        for scope, node, index in _uses(graph, graph.main, info.name.split(":")[0]):
            _constrain(graph, scope, node, index, constraint, names)
        if not info.tensor_shape.unknown_rank and any(d.size < 0 for d in info.tensor_shape.dim):
            for scope, node, index in _shape_uses(graph, graph.main, info.name.split(":")[0]):
                _constrain_shape(graph, scope, node, index, constraint)
        if constraint.lookups:
            known = vocab is not None and (vocab.words if info.dtype == types_pb2.DT_STRING else vocab.numbers)
            constraint.reasons.append(f"keys of the table looked up by {', '.join(constraint.lookups)}"
                                      + ("" if known else " (its keys are not known here)"))
        if info.dtype == types_pb2.DT_STRING and not any(getattr(constraint, kind) not in (None, False)
                                                                for kind in _STRING_KINDS):
            constraint.text = True
            constraint.reasons.append(
                "text: single words and phrases" + (f", from the keys of the model's tables ({len(vocab.words)})"
                                                    if vocab is not None and vocab.words else ""))
        result[key] = constraint
    for splits, values in _ragged_signature_inputs(meta_graph, signature).items():
        if result[splits].row_partition is None:
            _partition(result[splits], "row_splits", values,
                       f"row splits of the ragged signature input '{values}' (a tf.RaggedTensorSpec argument)")
    # The partners of a partition or of sparse indices follow them: their number, the dense shape.
    for key, constraint in result.items():
        if constraint.ragged_values_input == key:  # the partition compared with itself: nothing known
            constraint.ragged_values_input = None
        partners = [(constraint.ragged_values_input if constraint.row_partition else None, "values_of",
                     f"values partitioned by the {constraint.row_partition} '{key}'"),
                    (constraint.sparse_values_input, "values_of", f"values of the sparse indices '{key}'"),
                    (constraint.sparse_shape_input, "dense_shape_of", f"dense shape of the sparse indices '{key}'")]
        for partner, attribute, reason in partners:
            if partner is not None and partner != key and partner in result and getattr(result[partner], attribute) is None:
                setattr(result[partner], attribute, key)
                result[partner].reasons.append(reason)
    return result


# --- values -----------------------------------------------------------------------------
def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # int64 as protobuf writes it: two's complement
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _example_bytes(spec: dict[str, Any], rng: np.random.Generator, vocab: Vocabulary | None = None) -> bytes:
    """A serialized tf.Example (tensorflow/core/example/example.proto, written by hand so that a
    source run in a C-API runtime needs no TensorFlow here): Example.features(1) ->
    Features.feature(1, map) -> Feature: bytes_list(1) | float_list(2) | int64_list(3), each a
    repeated `value`(1), packed for numbers. Strings and integers are keys of the model's tables
    three times in four when it has any (a feature column's vocabulary), else w0..w9 and 0..4."""
    entries = []
    words = vocab.words if vocab is not None else []
    numbers = vocab.numbers if vocab is not None else []

    def pick(keys: list[Any], other: Any) -> Any:
        return keys[int(rng.integers(0, len(keys)))] if keys and rng.random() < 0.75 else other

    def feature(key: str, dtype: str, count: int) -> None:
        if dtype == "DT_STRING":
            values = b"".join(_field(1, pick(words, f"w{int(v)}".encode())) for v in rng.integers(0, 10, count))
            body = _field(1, values)
        elif dtype == "DT_INT64":
            body = _field(3, _field(1, b"".join(_varint(int(pick(numbers, v))) for v in rng.integers(0, 5, count))))
        else:
            body = _field(2, _field(1, rng.standard_normal(count).astype("<f4").tobytes()))
        entries.append(_field(1, _field(1, key.encode()) + _field(2, body)))

    for key, dtype, shape in spec["dense"]:
        feature(key, dtype, int(np.prod([d if d > 0 else 1 for d in shape])) if shape else 1)
    for key, dtype in spec["sparse"] + spec["ragged"]:
        feature(key, dtype, int(rng.integers(1, 4)))
    return _field(1, b"".join(entries))


def _compressed(data: bytes, kind: str) -> bytes:
    """DecodeCompressed's input: `data` as zlib (RFC 1950) or gzip (RFC 1952) data, or as it is."""
    if kind == "ZLIB":
        return zlib.compress(data)
    if kind == "GZIP":
        return gzip.compress(data, mtime=0)
    return data


def _png(pixels: np.ndarray) -> bytes:
    """An 8-bit PNG (grey, RGB or RGBA by the channel count), written with zlib."""
    import struct
    import zlib

    height, width, channels = pixels.shape
    color_type = {1: 0, 3: 2, 4: 6}[channels]
    raw = b"".join(b"\0" + pixels[y].tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def _image_bytes(kind: str, channels: int, rng: np.random.Generator) -> bytes:
    pixels = rng.integers(0, 256, (4, 5, channels)).astype(np.uint8)
    if kind == "jpeg":
        try:  # JPEG needs an encoder: TensorFlow's, when it is installed here
            import tensorflow as tf
        except ImportError:
            return _png(pixels)  # DecodeJpeg refuses it: the strategy fails and the report says so
        return bytes(tf.io.encode_jpeg(pixels).numpy())
    if kind == "bmp":
        return _bmp(pixels[..., :3])
    return _png(pixels)  # DecodePng, DecodeImage (any format); DecodeGif refuses it and says so


def _bmp(pixels: np.ndarray) -> bytes:
    height, width, _ = pixels.shape
    row = ((width * 3 + 3) // 4) * 4
    body = b"".join(pixels[y, :, ::-1].tobytes().ljust(row, b"\0") for y in range(height - 1, -1, -1))
    header = b"BM" + (54 + len(body)).to_bytes(4, "little") + b"\0\0\0\0" + (54).to_bytes(4, "little")
    info = (40).to_bytes(4, "little") + width.to_bytes(4, "little") + height.to_bytes(4, "little") + (1).to_bytes(2, "little") \
        + (24).to_bytes(2, "little") + b"\0" * 24
    return header + info + body


def _wav(frames: np.ndarray) -> bytes:
    """A 16 kHz 16-bit PCM WAV file of these (samples, channels) frames, by the standard library."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(frames.shape[1])
        writer.setsampwidth(2)
        writer.setframerate(16000)
        writer.writeframes(frames.tobytes())
    return buffer.getvalue()


def _strings(shape: list[int], make: Callable[[], bytes]) -> np.ndarray:
    values = np.empty(shape, dtype=object)
    for index in np.ndindex(*shape):
        values[index] = make()
    return values


def shaped(info: Any, dims: int = UNKNOWN_DIM) -> list[int]:
    if info.tensor_shape.unknown_rank:
        return [dims]
    return [d.size if d.size >= 0 else dims for d in info.tensor_shape.dim]


def _text(shape: list[int], vocab: list[bytes], rng: np.random.Generator) -> np.ndarray:
    """Strings of this shape: even elements phrases of three words, odd ones single words (a
    tokenizer needs several, a table lookup of the whole string one, and a phrase is a key no table
    has). A single word is a key of the model's tables when it has any; a phrase's words are three
    times in four, the others words of WORDS."""
    def word(from_vocab: float) -> bytes:
        if vocab and rng.random() < from_vocab:
            return vocab[int(rng.integers(0, len(vocab)))]
        return WORDS[int(rng.integers(0, len(WORDS)))]

    count = int(np.prod(shape, dtype=np.int64))
    items = [b" ".join(word(0.75) for _ in range(3)) if i % 2 == 0 else word(1.0) for i in range(count)]
    if items:  # the first phrase ends in a non-ASCII word with case (see CASED_UTF8)
        items[0] = b" ".join(items[0].split(b" ")[:2] + [cased_utf8_word(rng)])
    out = np.empty(count, dtype=object)
    out[:] = items
    return out.reshape(shape)


def graph_values(signature: Any, found: dict[str, Constraint], base: dict[str, np.ndarray],
                 rng: np.random.Generator, vocab: Vocabulary | None = None) -> dict[str, np.ndarray]:
    """`base` (the random inputs) with every constrained input replaced by values that fit."""
    values = dict(base)
    for key in sorted(found):
        c = found[key]
        info = signature.inputs[key]
        dtype = base[key].dtype
        shape = list(base[key].shape)
        if c.dims or c.elements is not None or c.elements_multiple is not None or \
                any(reason.startswith("spatial dimensions of") for reason in c.reasons):
            shape = shape_for(info, shape, c)
            if shape != list(base[key].shape):  # the random values, repeated to fill the shape ops need
                values[key] = _filled(base[key], shape)
        if c.example is not None and dtype == object:
            values[key] = _strings(shape, lambda: _example_bytes(c.example or {}, rng, vocab))
        elif c.image is not None and dtype == object:
            values[key] = _strings(shape, lambda: _image_bytes(c.image or "png", c.channels, rng))
        elif c.csv is not None and dtype == object:
            delimiter, fields = c.csv
            values[key] = _strings(shape, lambda: delimiter.join(
                str(int(number)) for number in rng.integers(0, 10, fields)).encode())
        elif c.raw is not None and tensors.numpy_dtype(c.raw) is not None and dtype == object:
            numbers = rng.integers(0, 10, (int(np.prod(shape, dtype=np.int64)), 4)).astype(tensors.numpy_dtype(c.raw))
            values[key] = np.array([row.tobytes() for row in numbers], dtype=object).reshape(shape)
        elif c.tensor is not None and tensors.numpy_dtype(c.tensor) is not None and dtype == object:
            kind, numpy_type = c.tensor, tensors.numpy_dtype(c.tensor)
            values[key] = _strings(shape, lambda: tensors.make_tensor_proto(
                rng.integers(0, 10, 3).astype(numpy_type), kind).SerializeToString())
        elif c.compressed is not None and dtype == object:
            compression = c.compressed
            values[key] = _strings(shape, lambda: _compressed(
                _text([], vocab.words if vocab else [], rng).item(), compression))
        elif c.base64 and dtype == object:
            values[key] = _strings(shape, lambda: base64.urlsafe_b64encode(
                BASE64_WORDS[int(rng.integers(0, len(BASE64_WORDS)))]))
        elif c.wav is not None and dtype == object:
            channels, samples = c.wav
            values[key] = _strings(shape, lambda: _wav(rng.integers(-3000, 3000, (samples, channels)).astype("<i2")))
        elif c.numeric and dtype == object:
            values[key] = _number_strings(shape, rng)
        elif c.pixels is not None and dtype.kind == "f":
            values[key] = rng.integers(0, c.pixels + 1, shape).astype(dtype)
        elif c.positive_definite and dtype.kind == "f" and len(shape) >= 2 and shape[-1] == shape[-2]:
            # a a^T / n + I: symmetric, its eigenvalues at least 1 (a random matrix is not positive
            # definite: TF 2.4 on fills a failed factorization with NaN where TF 2.3 raises).
            a = values[key].astype(np.float64)
            values[key] = (a @ np.swapaxes(a, -1, -2) / shape[-1] + np.eye(shape[-1])).astype(dtype)
        elif c.text and dtype == object:
            values[key] = _text(shape, vocab.words if vocab is not None else [], rng)
        elif c.lookups and dtype.kind in "iu" and vocab is not None and vocab.numbers:
            # Three keys in four from the tables, the rest one past the largest (not in any table).
            keys = np.array(vocab.numbers + [max(vocab.numbers) + 1] * max(1, len(vocab.numbers) // 3))
            values[key] = rng.choice(keys, size=shape).astype(dtype)
        elif dtype.kind == "i" and c.reshape_to and len(shape) == 1 and shape[0] > 0:
            values[key] = np.array([-1] + [1] * (shape[0] - 1), dtype)
        elif dtype.kind in "iu":
            if c.nd_limits is not None and shape and shape[-1] <= len(c.nd_limits):
                columns = [rng.integers(0, c.nd_limits[j], shape[:-1]) for j in range(shape[-1])]
                values[key] = np.stack(columns, axis=-1).astype(dtype) if columns else base[key]
            elif c.limit is not None or c.sorted or c.minimum:
                # A size or count is at most UNKNOWN_DIM, the size of an unknown dimension (top_k's
                # k, a frame length must fit it).
                high = c.limit if c.limit is not None else (3 if c.sorted else UNKNOWN_DIM + 1)
                low = min(c.minimum, high - 1)
                drawn = rng.integers(low, high, shape).astype(dtype)
                values[key] = np.sort(drawn, axis=-1) if c.sorted and drawn.ndim else drawn
    # Row partitions and sparse indices last: they depend on the number of values, drawn above.
    for key in sorted(found):
        c = found[key]
        if c.row_partition is not None and base[key].dtype.kind in "iu" and base[key].ndim == 1:
            _row_partition(signature, found, key, values, rng)
        elif c.sparse_indices and base[key].dtype.kind in "iu" and base[key].ndim == 2:
            _sparse_indices(signature, found, key, values, rng)
    return values


def _static_length(info: Any) -> int | None:
    """The recorded size of dimension 0 of a signature input (None: unknown)."""
    if info.tensor_shape.unknown_rank or not info.tensor_shape.dim or info.tensor_shape.dim[0].size < 0:
        return None
    return int(info.tensor_shape.dim[0].size)


def _resizable(signature: Any, found: dict[str, Constraint], key: str | None, values: dict[str, np.ndarray]) -> bool:
    """May the values input `key` take another length? Only when it is synthesised here (not given
    by the user) and its signature leaves dimension 0 unknown."""
    return key is not None and key in found and key in values and values[key].ndim >= 1 \
        and _static_length(signature.inputs[key]) is None


def _row_partition(signature: Any, found: dict[str, Constraint], key: str, values: dict[str, np.ndarray],
                   rng: np.random.Generator) -> None:
    """Input `key` as the row partition (found[key].row_partition) of its values input: drawn as row
    splits from 0 to the number of values, then written in that encoding."""
    c = found[key]
    source = c.ragged_values_input
    if not source or source not in values or values[source].ndim == 0:
        return
    dtype, length = values[key].dtype, _static_length(signature.inputs[key])
    if c.row_partition == "value_rowids":  # one sorted row id per value
        if length is not None and length != values[source].shape[0] and _resizable(signature, found, source, values):
            values[source] = np.resize(values[source], [length, *values[source].shape[1:]])
        total = values[source].shape[0]
        values[key] = np.sort(rng.integers(0, RAGGED_ROWS, total)).astype(dtype)
        return
    total = values[source].shape[0]
    rows = RAGGED_ROWS if length is None else length - 1 if c.row_partition == "row_splits" else length
    if rows < 0 or (rows == 0 and total):
        return  # no partition of this length covers the values
    splits = np.concatenate([[0], np.sort(rng.integers(0, total + 1, max(rows - 1, 0))), [total]])[:rows + 1] \
        if rows else np.zeros(1, np.int64)
    encoded = {"row_splits": splits, "row_lengths": np.diff(splits), "row_starts": splits[:-1],
               "row_limits": splits[1:]}[c.row_partition or "row_splits"]
    values[key] = encoded.astype(dtype)


def _sparse_indices(signature: Any, found: dict[str, Constraint], key: str, values: dict[str, np.ndarray],
                    rng: np.random.Generator) -> None:
    """Input `key` as the indices of a SparseTensor: as many distinct rows as its values input holds,
    within the dense shape, in row-major order; a dense shape input synthesised here is given a
    shape that holds them."""
    c = found[key]
    info = signature.inputs[key]
    rank_known = not info.tensor_shape.unknown_rank and len(info.tensor_shape.dim) == 2 and info.tensor_shape.dim[1].size >= 0
    rank = values[key].shape[1]
    shape_key = c.sparse_shape_input if c.sparse_shape_input in values else None
    free = False  # may the dense shape be chosen here?
    if c.sparse_dense_shape is not None:
        dims = list(c.sparse_dense_shape)
    elif shape_key is not None and shape_key not in found:  # given by the user: the indices fit it
        dims = [int(d) for d in values[shape_key].ravel()]
    else:
        recorded = _static_length(signature.inputs[shape_key]) if shape_key is not None else None
        dims, free = [SPARSE_DIM] * (recorded if recorded is not None and not rank_known else rank), True
        for axis, size in c.sparse_dims.items():  # (a negative axis counts from the last)
            if -len(dims) <= axis < len(dims):
                dims[axis] = size
    if not dims or (rank_known and len(dims) != rank):
        return  # the indices' recorded rank is not the dense shape's: nothing fits both
    count = values[key].shape[0]
    source = c.sparse_values_input if c.sparse_values_input in values else None
    if source is not None and values[source].ndim >= 1:
        count, length = values[source].shape[0], _static_length(info)
        if length is not None and length != count and _resizable(signature, found, source, values):
            values[source] = np.resize(values[source], [length, *values[source].shape[1:]])
            count = length
    cells = int(np.prod(dims, dtype=np.int64))
    if count > cells:
        fixed = {axis % len(dims) for axis in c.sparse_dims}
        grow = next((axis for axis in range(len(dims)) if axis not in fixed), None)
        if not free or grow is None:
            return  # more values than the dense shape has cells: no valid indices
        others = int(np.prod([d for axis, d in enumerate(dims) if axis != grow], dtype=np.int64))
        dims[grow] = -(-count // max(others, 1))
        cells = int(np.prod(dims, dtype=np.int64))
    flat = np.sort(rng.choice(cells, count, replace=False))
    rows = np.stack(np.unravel_index(flat, dims), axis=-1) if count else np.zeros((0, len(dims)), np.int64)
    values[key] = rows.astype(values[key].dtype).reshape(count, len(dims))
    if free and shape_key is not None and shape_key in found and found[shape_key].dense_shape_of == key:
        values[shape_key] = np.array(dims).astype(values[shape_key].dtype)


def _number_strings(shape: list[int], rng: np.random.Generator) -> np.ndarray:
    """Small decimal numbers as text ("7"): what StringToNumber parses to every int and float type."""
    return _strings(shape, lambda: str(int(rng.integers(0, 10))).encode())


def zero_values(base: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {key: (np.full(value.shape, b"", dtype=object) if value.dtype == object else np.zeros_like(value))
            for key, value in base.items()}


def _filled(value: np.ndarray, shape: list[int]) -> np.ndarray:
    """VALUE's elements repeated to fill SHAPE (zeros when it has none)."""
    return np.resize(value, shape) if value.size else np.zeros(shape, value.dtype)


def lengthened(signature: Any, values: dict[str, np.ndarray], given: set[str] | frozenset[str]) -> \
        dict[str, np.ndarray] | None:
    """`values` with every unknown dimension but the batch (axis 0 of an input of rank 2 or more)
    made long: LONG_DIM, or less so that an input holds at most LONG_ELEMENTS (its values repeated).
    A window longer than UNKNOWN_DIM (an STFT's 400-sample frames on a [None] waveform) leaves
    nothing to compute on short inputs: no frames, an output with no elements or all NaN. None when
    no input has such a dimension."""
    out, changed = dict(values), False
    # A rank-1 input's axis 0 is its batch too when another input has more axes (labels, lengths).
    batched = any(value.ndim >= 2 for value in values.values())
    for key, value in values.items():
        info = signature.inputs[key] if key in signature.inputs else None
        if key in given or info is None or info.tensor_shape.unknown_rank or value.ndim != len(info.tensor_shape.dim):
            continue
        axes = [axis for axis, dim in enumerate(info.tensor_shape.dim)
                if dim.size < 0 and (axis > 0 or (value.ndim == 1 and not batched))]
        if not axes:
            continue
        fixed = int(np.prod([value.shape[a] for a in range(value.ndim) if a not in axes], dtype=np.int64))
        size = min(LONG_DIM, int((LONG_ELEMENTS / max(fixed, 1)) ** (1.0 / len(axes))))
        shape = [max(size, value.shape[a]) if a in axes else value.shape[a] for a in range(value.ndim)]
        if shape != list(value.shape):
            out[key] = _filled(value, shape)
            changed = True
    return out if changed else None


def positive_values(values: dict[str, np.ndarray], given: set[str] | frozenset[str],
                    constrained: set[str] | frozenset[str]) -> dict[str, np.ndarray]:
    """`values` with every float moved into (0.1, 0.9) (0.1 + 0.8 * sigmoid(x), so they still
    differ) and every integer 1: what a model accepts that asserts its inputs are positive or
    probabilities, takes their log or square root under CheckNumerics, or reshapes, slices or frames
    by an integer input (1 divides and fits every size). Inputs the user gave stay as they are, and
    so do integers bent to what the graph needs (`constrained`: indices, segment ids, sizes); a
    float's constraint is its shape, which is kept."""
    out = dict(values)
    for key, value in values.items():
        if key in given:
            continue
        if value.dtype.kind == "f" or str(value.dtype) == "bfloat16":
            wide = value.astype(np.float64)
            out[key] = (0.1 + 0.8 / (1.0 + np.exp(-wide))).astype(value.dtype)
        elif value.dtype.kind in "iu" and key not in constrained:
            out[key] = np.ones_like(value)
    return out


@dataclass
class Candidate:
    strategy: str  # "random", "graph", "long", "zeros", "positive", "numbers", "--inputs", "none" (no inputs)
    values: dict[str, np.ndarray]
    reasons: dict[str, list[str]] = field(default_factory=dict)  # input -> what the graph requires of it


def candidates(meta_graph: Any, key: str, base: dict[str, np.ndarray], seed: int,
               given: set[str] | frozenset[str] = frozenset(), vocab: Vocabulary | None = None) -> list[Candidate]:
    """The strategies to try, in order, for one signature. When the user gave every input
    (--inputs), that is the only candidate; otherwise the graph's constraints first when it has
    any, the random inputs, zeros, and numbers as text last when it takes strings. Inputs the user
    gave (`given`) are never replaced. A signature without inputs has the one strategy "none"."""
    if not base:
        return [Candidate("none", base)]
    if given >= set(base):
        return [Candidate("--inputs", base)]
    found = {name: c for name, c in constraints(meta_graph, key, vocab).items() if c.reasons and name not in given}
    random = Candidate("random", base)
    result = [random]
    if found:
        rng = np.random.default_rng(seed + 7)
        bent = graph_values(meta_graph.signature_def[key], found, base, rng, vocab)
        result = [Candidate("graph", bent, {name: c.reasons for name, c in found.items()}), random]
    long = lengthened(meta_graph.signature_def[key], result[0].values, given)
    if long is not None:  # tried when the first fails, or gives an output with no values
        result.insert(1, Candidate("long", long, result[0].reasons))
    bent = result[0].values
    result.append(Candidate("positive", positive_values(bent, given, set(found)), result[0].reasons))
    zeros = zero_values(base)
    result.append(Candidate("zeros", {name: base[name] if name in given else zeros[name] for name in base}))
    texts = [name for name, value in base.items() if value.dtype == object and name not in given]
    if texts:
        rng = np.random.default_rng(seed + 11)
        result.append(Candidate("numbers", {name: _number_strings(list(value.shape), rng) if name in texts else value
                                            for name, value in base.items()}))
    return result
