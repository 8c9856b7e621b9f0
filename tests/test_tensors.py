"""rewriter.savedmodel.tensors against TensorFlow's own tensor_util, on the values rules and models hold."""
from __future__ import annotations

import numpy as np
import pytest

from rewriter.savedmodel import tensors
from rewriter.protos import tensor_pb2, types_pb2

CASES = [
    ("DT_FLOAT", 1.5, None), ("DT_FLOAT", [1.0, 2.0, 3.0], None), ("DT_FLOAT", 0.0, [2, 3]),
    ("DT_FLOAT", [[1, 2], [3, 4]], None), ("DT_FLOAT", float(np.finfo(np.float32).max), None),
    ("DT_DOUBLE", [0.1, 0.2], None), ("DT_HALF", [0.5, 1.0], None), ("DT_HALF", 0.5, None),
    ("DT_INT32", 7, None), ("DT_INT32", [1, 2, 3], [3]), ("DT_INT32", 2**40, None), ("DT_INT32", -1, [4]),
    ("DT_INT64", [2**40, -5], None), ("DT_INT64", 3, []), ("DT_UINT8", [1, 255], None), ("DT_INT8", -3, None),
    ("DT_INT16", [1, 2], None), ("DT_UINT16", [1, 2], None), ("DT_UINT32", [1, 2**32 - 1], None),
    ("DT_UINT64", 5, None), ("DT_BOOL", [True, False], None), ("DT_BOOL", True, [3]),
    ("DT_COMPLEX64", [1 + 2j], None), ("DT_COMPLEX128", 1j, [2]), ("DT_STRING", "abc", None),
    ("DT_STRING", [b"a", "b"], None), ("DT_FLOAT", [], [0, 3]), ("DT_INT32", [], None),
    ("DT_BFLOAT16", 1.5, None), ("DT_BFLOAT16", [1.0, -2.5, 3.0], None), ("DT_BFLOAT16", -3.3895313892515355e38, [2]),
    ("DT_FLOAT8_E4M3FN", [1.0, 2.0], None),
    ("DT_FLOAT", np.float32(2.5), None), ("DT_INT32", np.array([[1, 2], [3, 4]]), None), ("DT_HALF", np.float64(1.5), [3]),
    ("DT_STRING", np.array([b"x", b"yz"]), None),  # no numpy dtype: TensorFlow's functions, our class
]


@pytest.mark.parametrize("dtype,value,shape", CASES)
def test_same_tensor_proto_and_array_as_tensorflow(dtype: str, value: object, shape: list[int] | None) -> None:
    from tensorflow.python.framework import dtypes, tensor_util

    enum = types_pb2.DataType.Value(dtype)
    theirs = tensor_util.make_tensor_proto(value, dtype=dtypes.as_dtype(enum), shape=shape)
    ours = tensors.make_tensor_proto(value, enum, shape)
    assert isinstance(ours, tensor_pb2.TensorProto)
    assert ours.SerializeToString(deterministic=True) == theirs.SerializeToString(deterministic=True)
    expected = tensor_util.MakeNdarray(theirs)
    got = tensors.make_ndarray(ours)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert np.array_equal(got, expected)


@pytest.mark.parametrize("dtype,value", [("DT_INT32", 1.5), ("DT_BOOL", 1), ("DT_STRING", 3), ("DT_FLOAT", "x")])
def test_wrong_python_types_are_refused_like_tensorflow(dtype: str, value: object) -> None:
    from tensorflow.python.framework import dtypes, tensor_util

    enum = types_pb2.DataType.Value(dtype)
    with pytest.raises(TypeError):
        tensor_util.make_tensor_proto(value, dtype=dtypes.as_dtype(enum))
    with pytest.raises(TypeError):
        tensors.make_tensor_proto(value, enum)


def test_short_typed_fields_are_padded_with_their_last_value() -> None:
    from tensorflow.python.framework import tensor_util

    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0, 2.0])
    proto.tensor_shape.dim.add(size=4)
    assert tensors.make_ndarray(proto).tolist() == [1.0, 2.0, 2.0, 2.0]
    assert tensor_util.MakeNdarray(proto).tolist() == [1.0, 2.0, 2.0, 2.0]


def test_limits_are_tensorflows() -> None:
    from tensorflow.python.framework import dtypes

    from rewriter.savedmodel.attr_values import tensor_from_plain

    # A rule's {limit: lowest} of the matched dtype: TF's min is a numpy (or ml_dtypes) scalar.
    for name in ("DT_FLOAT", "DT_HALF", "DT_BFLOAT16", "DT_INT8"):
        lowest = tensors.limits(types_pb2.DataType.Value(name))
        assert lowest is not None
        tensor_from_plain({"dtype": name, "value": lowest[0]})
    for name in ("DT_FLOAT", "DT_HALF", "DT_BFLOAT16", "DT_DOUBLE", "DT_INT8", "DT_INT32", "DT_INT64", "DT_UINT8", "DT_UINT64"):
        enum = types_pb2.DataType.Value(name)
        assert tensors.limits(enum) == (dtypes.as_dtype(enum).min, dtypes.as_dtype(enum).max), name
    assert tensors.limits(types_pb2.DT_STRING) is None
