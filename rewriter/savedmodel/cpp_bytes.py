"""C++ protobuf's deterministic serialization, from Python's.

TensorFlow hashes messages serialized by C++ protobuf with SetSerializationDeterministic(true),
which writes map entries sorted by key (strings bytewise, integers by value). Python's protobuf
(upb) also sorts them, but in another order where one key is a prefix of another: it writes
"ids64" before "ids" (measured with protobuf 5/6; NodeDef attrs "T" and "Tidx" are such a pair).
Everything else is written alike (fields by number, packed repeated scalars, both key and value of
every map entry), so the C++ bytes are Python's with the entries of every map put in C++'s order:
a permutation of byte ranges of the same lengths, done on the wire. Only message types that can
hold a map somewhere below are read; every other submessage is copied as bytes.
"""
from __future__ import annotations

import functools
import struct
from typing import Any

from google.protobuf import descriptor, message

from rewriter.savedmodel.messages import reachable_types

_LENGTH_DELIMITED = 2
_SIGNED = {descriptor.FieldDescriptor.TYPE_INT32, descriptor.FieldDescriptor.TYPE_INT64}
_ZIGZAG = {descriptor.FieldDescriptor.TYPE_SINT32, descriptor.FieldDescriptor.TYPE_SINT64}
_FIXED = {
    descriptor.FieldDescriptor.TYPE_FIXED32: "<I", descriptor.FieldDescriptor.TYPE_FIXED64: "<Q",
    descriptor.FieldDescriptor.TYPE_SFIXED32: "<i", descriptor.FieldDescriptor.TYPE_SFIXED64: "<q",
}


def serialize(msg: message.Message) -> bytes:
    """What C++ protobuf's deterministic SerializeToString gives for `msg`."""
    data = msg.SerializeToString(deterministic=True)
    plan = _plan(msg.DESCRIPTOR)
    return data if plan is None else _canonical(plan, memoryview(data))


def _varint(data: memoryview, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def _is_map(fd: Any) -> bool:
    return fd.message_type is not None and fd.message_type.GetOptions().map_entry


def _holds_map(desc: Any) -> bool:
    """Can a message of this type hold a map at any depth?"""
    return any(_is_map(fd) for t in reachable_types(desc) for fd in t.fields)


@functools.cache
def _plan(desc: Any) -> dict[int, tuple[bool, Any]] | None:
    """For a message type that can hold a map below it: field number -> (is a map, the plan of the
    field's message type, for a map its entry's); None for a type that cannot (copied as bytes)."""
    if not _holds_map(desc):
        return None
    plan: dict[int, tuple[bool, Any]] = {}
    for fd in desc.fields:
        if fd.message_type is None:
            continue
        if _is_map(fd):
            plan[fd.number] = (True, fd.message_type)
        elif _holds_map(fd.message_type):
            plan[fd.number] = (False, fd.message_type)
    return plan


def _key(entry_desc: Any, body: memoryview) -> Any:
    """The sort key of a map entry's key as C++ orders it (field 1 of the entry; absent: default)."""
    key_field = entry_desc.fields_by_number[1]
    at, end = 0, len(body)
    while at < end:
        tag, at = _varint(body, at)
        number, wire = tag >> 3, tag & 7
        if wire == _LENGTH_DELIMITED:
            length, at = _varint(body, at)
            if number == 1:
                return bytes(body[at:at + length])
            at += length
        elif wire == 0:
            value, at = _varint(body, at)
            if number == 1:
                if key_field.type in _SIGNED and value >= 1 << 63:
                    value -= 1 << 64
                elif key_field.type in _ZIGZAG:
                    value = (value >> 1) ^ -(value & 1)
                return value
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if number == 1:
                return struct.unpack(_FIXED[key_field.type], body[at:at + size])[0]
            at += size
        else:
            raise ValueError(f"unsupported wire type {wire} in a map entry")
    return b"" if key_field.type in (key_field.TYPE_STRING, key_field.TYPE_BYTES) else 0


def _canonical(plan: dict[int, tuple[bool, Any]], data: memoryview) -> bytes:
    pieces: list[Any] = []
    maps: dict[int, tuple[int, list[tuple[Any, bytes]]]] = {}  # field -> (its place in pieces, entries)
    at, end = 0, len(data)
    while at < end:
        start = at
        tag, at = _varint(data, at)
        number, wire = tag >> 3, tag & 7
        if wire == _LENGTH_DELIMITED:
            length, body_start = _varint(data, at)
            at = body_start + length
            how = plan.get(number)
            if how is None:
                pieces.append(data[start:at])
                continue
            is_map, sub_desc = how
            sub_plan = _plan(sub_desc)
            body = data[body_start:at]
            fixed = bytes(body) if sub_plan is None else _canonical(sub_plan, body)
            if is_map:
                if number not in maps:
                    maps[number] = (len(pieces), [])
                    pieces.append(None)
                maps[number][1].append((_key(sub_desc, body), bytes(data[start:body_start]) + fixed))
            else:
                pieces.append(bytes(data[start:body_start]) + fixed)
        elif wire == 0:
            _, at = _varint(data, at)
            pieces.append(data[start:at])
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
            pieces.append(data[start:at])
        else:
            raise ValueError(f"unsupported wire type {wire}")
    for place, entries in maps.values():
        entries.sort(key=lambda entry: entry[0])
        pieces[place] = b"".join(entry[1] for entry in entries)
    return b"".join(bytes(piece) for piece in pieces)
