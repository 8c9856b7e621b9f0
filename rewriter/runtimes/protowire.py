"""Protobuf wire format without protobuf (the worker may not import it): varints, and sorting a
serialized OpList by op name. Stdlib only, so any module may use the varint codec.

OpList is `repeated OpDef op = 1`, and OpDef's `name` is field 1; that is all we need to read.
From TF 2.12 on, TF_GetAllOpList's order changes from run to run, hence the sort.
"""
from __future__ import annotations


def read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """(value, next position) of the varint at pos; ValueError if truncated or over 64 bits."""
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated or overlong varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def write_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if not value:
            out.append(bits)
            return bytes(out)
        out.append(bits | 0x80)


def _skip(buf: bytes, pos: int, wire_type: int) -> int:
    if wire_type == 0:
        return read_varint(buf, pos)[1]
    if wire_type == 1:
        return pos + 8
    if wire_type == 2:
        length, pos = read_varint(buf, pos)
        return pos + length
    if wire_type == 5:
        return pos + 4
    raise ValueError(f"unsupported protobuf wire type {wire_type}")


def _fields(buf: bytes) -> list[tuple[int, int, int, int]]:
    """(field number, wire type, start of the whole field, end) of each top-level field."""
    out = []
    pos = 0
    while pos < len(buf):
        start = pos
        key, pos = read_varint(buf, pos)
        pos = _skip(buf, pos, key & 7)
        out.append((key >> 3, key & 7, start, pos))
    return out


def _op_name(op_def: bytes) -> bytes:
    for number, wire_type, start, _end in _fields(op_def):
        if number == 1 and wire_type == 2:
            _key, pos = read_varint(op_def, start)
            length, pos = read_varint(op_def, pos)
            return op_def[pos : pos + length]
    return b""


def sort_op_list(op_list: bytes) -> bytes:
    """The same OpList with its ops sorted by name (ties keep their order)."""
    entries = []
    for number, wire_type, start, end in _fields(op_list):
        if number != 1 or wire_type != 2:
            raise ValueError("not an OpList: unexpected top-level field")
        _key, pos = read_varint(op_list, start)
        _length, pos = read_varint(op_list, pos)
        entries.append((_op_name(op_list[pos:end]), op_list[start:end]))
    entries.sort(key=lambda e: e[0])
    return b"".join(raw for _name, raw in entries)
