"""TensorProto <-> numpy without TensorFlow, for the dtypes numpy has natively.

These follow TensorFlow's own tensor_util.MakeNdarray and make_tensor_proto(values, dtype, shape)
(tensorflow/python/framework/tensor_util.py, 2.21) line by line for those dtypes, so a rule's
constant is the same TensorProto, byte for byte, whether or not TensorFlow is imported
(tests/test_tensors.py compares the two). dtypes numpy lacks (bfloat16, float8, int4, the quantized
ones) go to TensorFlow's functions, imported only then: they are rare in rules and constants.
bfloat16 is numpy's through ml_dtypes (what TensorFlow itself uses for it).
"""
from __future__ import annotations

import numbers
from typing import Any, Iterator

import numpy as np

from rewriter.protos import tensor_pb2, types_pb2

# DataType -> numpy dtype, and the TensorProto field that holds its values when not tensor_content.
_NUMPY: dict[int, tuple[Any, str]] = {
    types_pb2.DT_HALF: (np.float16, "half_val"),
    types_pb2.DT_BFLOAT16: ("bfloat16", "half_val"),  # ml_dtypes.bfloat16: imported when needed (0.1 s)
    types_pb2.DT_FLOAT: (np.float32, "float_val"),
    types_pb2.DT_DOUBLE: (np.float64, "double_val"),
    types_pb2.DT_INT8: (np.int8, "int_val"),
    types_pb2.DT_INT16: (np.int16, "int_val"),
    types_pb2.DT_INT32: (np.int32, "int_val"),
    types_pb2.DT_INT64: (np.int64, "int64_val"),
    types_pb2.DT_UINT8: (np.uint8, "int_val"),
    types_pb2.DT_UINT16: (np.uint16, "int_val"),
    types_pb2.DT_UINT32: (np.uint32, "uint32_val"),
    types_pb2.DT_UINT64: (np.uint64, "uint64_val"),
    types_pb2.DT_BOOL: (np.bool_, "bool_val"),
    types_pb2.DT_COMPLEX64: (np.complex64, "scomplex_val"),
    types_pb2.DT_COMPLEX128: (np.complex128, "dcomplex_val"),
    types_pb2.DT_STRING: (np.object_, "string_val"),
}
# tensor_util._TENSOR_CONTENT_TYPES, restricted to _NUMPY's dtypes.
_CONTENT = {
    types_pb2.DT_HALF, types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE, types_pb2.DT_INT32, types_pb2.DT_UINT8,
    types_pb2.DT_INT16, types_pb2.DT_INT8, types_pb2.DT_INT64, types_pb2.DT_UINT32, types_pb2.DT_UINT64,
    types_pb2.DT_BFLOAT16,
}
_INTEGER = {types_pb2.DT_INT8, types_pb2.DT_INT16, types_pb2.DT_INT32, types_pb2.DT_INT64,
            types_pb2.DT_UINT8, types_pb2.DT_UINT16, types_pb2.DT_UINT32, types_pb2.DT_UINT64}
_FLOAT = {types_pb2.DT_HALF, types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE, types_pb2.DT_BFLOAT16}
_HALF_BITS = {types_pb2.DT_HALF, types_pb2.DT_BFLOAT16}  # held as uint16 bit patterns in half_val


def _entry(dtype: int) -> tuple[Any, str] | None:
    entry = _NUMPY.get(dtype)
    if entry is not None and isinstance(entry[0], str):
        import ml_dtypes

        return getattr(ml_dtypes, entry[0]), entry[1]
    return entry


def numpy_dtype(dtype: int) -> Any | None:
    """The numpy dtype of a DataType, if numpy has it natively (else None)."""
    entry = _entry(dtype)
    return entry[0] if entry is not None else None


def limits(dtype: int) -> tuple[Any, Any] | None:
    """(lowest, highest) of an integer or floating DataType, as TF's DType.min/max; None otherwise."""
    if dtype in _INTEGER:
        info: Any = np.iinfo(numpy_dtype(dtype))
    elif dtype in _FLOAT:
        import ml_dtypes

        info = ml_dtypes.finfo(numpy_dtype(dtype))
    else:
        from tensorflow.python.framework import dtypes  # float8 & co.: TensorFlow's own table

        tf_dtype = dtypes.as_dtype(dtype)
        if not (tf_dtype.is_floating or tf_dtype.is_integer):
            return None
        return tf_dtype.min, tf_dtype.max
    return info.min, info.max


def make_ndarray(tensor: Any) -> np.ndarray:
    """tensor_util.MakeNdarray."""
    entry = _entry(tensor.dtype)
    if entry is None:
        from tensorflow.core.framework import tensor_pb2 as tf_tensor_pb2
        from tensorflow.python.framework import tensor_util

        # TensorFlow's own message class (ours is another class: see rewriter/protos).
        return np.asarray(tensor_util.MakeNdarray(tf_tensor_pb2.TensorProto.FromString(tensor.SerializeToString())))
    dtype, field = entry
    shape = [d.size for d in tensor.tensor_shape.dim]
    num_elements = int(np.prod(shape, dtype=np.int64))
    if tensor.tensor_content:
        return np.frombuffer(tensor.tensor_content, dtype=dtype).copy().reshape(shape)
    if tensor.dtype == types_pb2.DT_STRING:
        strings = list(tensor.string_val)
        padding = num_elements - len(strings)
        if padding > 0:
            last = strings[-1] if strings else ""
            strings.extend([last] * padding)
        return np.array(strings, dtype=dtype).reshape(shape)
    if tensor.dtype in _HALF_BITS:
        values = np.fromiter(tensor.half_val, dtype=np.uint16).view(dtype)
    elif field in ("scomplex_val", "dcomplex_val"):
        parts = iter(getattr(tensor, field))
        values = np.array([complex(re, im) for re, im in zip(parts, parts)], dtype=dtype)
    else:
        values = np.fromiter(getattr(tensor, field), dtype=dtype)
    if values.size == 0:
        return np.zeros(shape, dtype)
    if values.size != num_elements:
        values = np.pad(values, (0, num_elements - values.size), "edge")
    return values.reshape(shape)


def _flatten(values: Any) -> Iterator[Any]:
    if isinstance(values, (list, tuple)):
        for inner in values:
            yield from _flatten(inner)
    elif isinstance(values, np.ndarray):
        yield from values.ravel()
    else:
        yield values


def _dense_dimensions(values: Any) -> list[int]:
    if not isinstance(values, (list, tuple)):
        return []
    if not values:
        return [0]
    return [len(values)] + _dense_dimensions(values[0])


def _assert_compatible(values: Any, dtype: int) -> None:
    """tensor_util._AssertCompatible: the Python type of every value fits the dtype."""
    if dtype in _INTEGER:
        allowed: tuple[type, ...] = (numbers.Integral, np.integer)
    elif dtype in _FLOAT:
        allowed = (numbers.Real, np.integer, np.floating)
    elif dtype in (types_pb2.DT_COMPLEX64, types_pb2.DT_COMPLEX128):
        allowed = (numbers.Complex, np.number)
    elif dtype == types_pb2.DT_STRING:
        allowed = (bytes, str)
    else:
        allowed = (bool, np.bool_)
    for value in _flatten(values):
        if not isinstance(value, allowed):
            name = types_pb2.DataType.Name(dtype)[3:].lower()
            raise TypeError(f"Expected {name}, but got {value} of type '{type(value).__name__}'.")


def _is_array_like(value: Any) -> bool:
    """tensor_util._is_array_like: numpy values and buffers (but not bytes)."""
    if callable(getattr(value, "__array__", None)) or isinstance(getattr(value, "__array_interface__", None), dict):
        return True
    try:
        memoryview(value)
    except TypeError:
        return False
    return not isinstance(value, bytes)


def make_tensor_proto(values: Any, dtype: int, shape: list[int] | None = None) -> Any:
    """tensor_util.make_tensor_proto(values, dtype=dtype, shape=shape)."""
    entry = _entry(dtype)
    if entry is None:
        from tensorflow.python.framework import dtypes, tensor_util

        made = tensor_util.make_tensor_proto(values, dtype=dtypes.as_dtype(dtype), shape=shape)
        return tensor_pb2.TensorProto.FromString(made.SerializeToString())
    np_dtype, field = entry
    if _is_array_like(values):
        values = np.asarray(values)
    if isinstance(values, (np.ndarray, np.generic)):  # numpy values are cast, not type-checked
        array = values.astype(np_dtype)
    elif shape is not None and np.prod(shape, dtype=np.int64) == 0:
        array = np.empty(shape, dtype=np_dtype)
    else:
        _assert_compatible(values, dtype)
        if np.issubdtype(np_dtype, np.number):  # numpy_compat.np_array: wraps like numpy 1 did
            array = np.array(values).astype(np_dtype)
        else:
            array = np.array(values, dtype=np_dtype)
        if list(array.shape) != _dense_dimensions(values):
            raise ValueError(f"Expected values {values} to be a dense tensor with shape "
                             f"{_dense_dimensions(values)}, but got shape {list(array.shape)}.")
    if shape is None:
        dims = list(array.shape)
        same_size, size = True, int(array.size)
    else:
        dims = [int(dim) for dim in shape]
        size = int(np.prod(dims, dtype=np.int64))
        same_size = size == array.size
        if array.size > size:
            raise ValueError(f"Too many elements provided. Takes at most {size:d}, but got {array.size:d}.")
    proto = tensor_pb2.TensorProto(dtype=dtype)
    proto.tensor_shape.SetInParent()
    for dim in dims:
        proto.tensor_shape.dim.add(size=dim)
    if same_size and dtype in _CONTENT and size > 1:
        proto.tensor_content = array.tobytes()
        return proto
    if dtype == types_pb2.DT_STRING:
        flat = values.ravel() if isinstance(values, np.ndarray) else list(_flatten(values))
        proto.string_val.extend(x.encode("utf-8") if isinstance(x, str) else bytes(x) for x in flat)
        return proto
    flat_array = array.ravel()
    if dtype in _HALF_BITS:
        proto.half_val.extend(flat_array.view(np.uint16).tolist())
    elif field in ("scomplex_val", "dcomplex_val"):
        getattr(proto, field).extend(v.item() for x in flat_array for v in (x.real, x.imag))
    else:
        getattr(proto, field).extend(x.item() for x in flat_array)
    return proto
