"""AttrValue <-> plain values, so rules can speak YAML and compare with what a node holds.

Plain forms: type -> "DT_FLOAT"; string -> str (bytes that are not UTF-8 stay bytes);
int, float, bool as themselves; shape -> list of dims (-1 unknown) or None for unknown rank;
func -> the function name; list(...) -> a list of those; tensor -> a nested list of its values.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from rewriter.savedmodel import tensors
from rewriter.protos import attr_value_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from rewriter.protos.attr_value_pb2 import AttrValue



class AttrConversionError(ValueError):
    pass


def type_name(dtype: int) -> str:
    return str(types_pb2.DataType.Name(dtype))


def type_enum(name: str) -> int:
    try:
        return int(types_pb2.DataType.Value(name))
    except ValueError:
        raise AttrConversionError(f"{name!r} is not a TensorFlow dtype (write it like DT_FLOAT)") from None


def _text(data: bytes) -> str | bytes:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data


def shape_to_plain(shape: tensor_shape_pb2.TensorShapeProto) -> list[int] | None:
    return None if shape.unknown_rank else [int(d.size) for d in shape.dim]


def tensor_to_numpy(tensor: tensor_pb2.TensorProto) -> np.ndarray:
    return tensors.make_ndarray(tensor)


def to_plain(value: AttrValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "type":
        return type_name(value.type)
    if kind == "s":
        return _text(value.s)
    if kind in ("i", "f", "b"):
        return getattr(value, kind)
    if kind == "shape":
        return shape_to_plain(value.shape)
    if kind == "func":
        return value.func.name
    if kind == "tensor":
        return tensor_to_numpy(value.tensor).tolist()
    if kind == "placeholder":
        return {"placeholder": value.placeholder}
    if kind == "list":
        lst = value.list
        for field, convert in (
            ("type", type_name),
            ("s", _text),
            ("i", int),
            ("f", float),
            ("b", bool),
            ("shape", shape_to_plain),
            ("func", lambda f: f.name),
        ):
            items = getattr(lst, field)
            if len(items):
                return [convert(item) for item in items]
        if len(lst.tensor):
            return [tensor_to_numpy(t).tolist() for t in lst.tensor]
        return []
    return None


def from_plain(plain: Any, attr_type: str) -> AttrValue:
    """Build an AttrValue of an OpDef attr type ("type", "list(int)", ...) from a plain value."""
    value = AttrValue()
    if attr_type.startswith("list(") and attr_type.endswith(")"):
        inner = attr_type[5:-1]
        if not isinstance(plain, list):
            raise AttrConversionError(f"a {attr_type} attr needs a list, not {plain!r}")
        value.list.SetInParent()
        for item in plain:
            single = from_plain(item, inner)
            field = single.WhichOneof("value")
            target = getattr(value.list, field)
            if field in ("shape", "func", "tensor"):
                target.add().CopyFrom(getattr(single, field))
            else:
                target.append(getattr(single, field))
        return value
    try:
        if attr_type == "type":
            value.type = type_enum(str(plain))
        elif attr_type == "string":
            value.s = plain if isinstance(plain, bytes) else str(plain).encode("utf-8")
        elif attr_type == "int":
            if isinstance(plain, bool):
                raise TypeError
            value.i = int(plain)
        elif attr_type == "float":
            value.f = float(plain)
        elif attr_type == "bool":
            if not isinstance(plain, bool):
                raise TypeError
            value.b = plain
        elif attr_type == "shape":
            if plain is None:
                value.shape.unknown_rank = True
            else:
                value.shape.SetInParent()
                for dim in plain:
                    value.shape.dim.add(size=int(dim))
        elif attr_type == "func":
            value.func.name = str(plain)
        elif attr_type == "tensor":
            value.tensor.CopyFrom(tensor_from_plain(plain))
        else:
            raise AttrConversionError(f"attr type {attr_type!r} cannot be written in a rule")
    except (TypeError, ValueError) as error:
        if isinstance(error, AttrConversionError):
            raise
        raise AttrConversionError(f"{plain!r} is not a valid {attr_type} value") from None
    return value


def tensor_from_plain(plain: Any) -> tensor_pb2.TensorProto:
    """{dtype: DT_INT32, value: [..], shape: [..]} -> TensorProto."""
    if not isinstance(plain, dict) or "dtype" not in plain or "value" not in plain:
        raise AttrConversionError("a tensor value is written {dtype: DT_..., value: ..., shape: [...]}")
    dtype = type_enum(plain["dtype"])
    proto: tensor_pb2.TensorProto = tensors.make_tensor_proto(plain["value"], dtype, plain.get("shape"))
    return proto


def plain_equal(a: Any, b: Any) -> bool:
    """Equality of plain values, tolerant of int/float and of tensor nesting."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(plain_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (isinstance(a, bool) and isinstance(b, bool) and a == b)
    return bool(a == b)
