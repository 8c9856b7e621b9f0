"""Walking protobuf messages by type and by dotted field path, as object-graph rules address them.

Generic over any message (SavedModel, TrackableObjectGraph, SavedMetadata): nothing here knows
a particular TensorFlow message.
"""
from __future__ import annotations

import functools
from typing import Any, Iterator

from google.protobuf import descriptor, message


def reachable_types(desc: Any) -> list[Any]:
    """Every message type a message of type `desc` can hold at any depth, itself first (message
    types are recursive: StructuredValue holds itself, so this is a traversal, not a recursion)."""
    seen: set[str] = set()
    found = []
    todo = [desc]
    while todo:
        current = todo.pop()
        if current.full_name in seen:
            continue
        seen.add(current.full_name)
        found.append(current)
        todo.extend(f.message_type for f in current.fields if f.message_type is not None)
    return found


def can_hold(desc: Any, name: str, memo: dict[str, bool], stack: set[str]) -> bool:
    """Can a message of type `desc` hold (at any depth) a message called `name`? Memoized."""
    key = f"{desc.full_name}>{name}"
    if key not in memo:
        memo[key] = any(t.full_name == name for t in reachable_types(desc))
    return memo[key]


def messages_of_type(msg: message.Message, name: str, path: str, memo: dict[str, bool]) -> Iterator[tuple[str, message.Message]]:
    if msg.DESCRIPTOR.full_name == name:
        yield path, msg
        return
    for fd, value in msg.ListFields():
        if fd.message_type is None or not can_hold(fd.message_type, name, memo, set()):
            continue
        here = f"{path}.{fd.name}" if path else fd.name
        if fd.message_type.GetOptions().map_entry:
            for key in sorted(value):
                item = value[key]
                if isinstance(item, message.Message):
                    yield from messages_of_type(item, name, f"{here}[{key!r}]", memo)
        elif is_repeated(fd):
            for index, item in enumerate(value):
                yield from messages_of_type(item, name, f"{here}[{index}]", memo)
        else:
            yield from messages_of_type(value, name, here, memo)


def is_repeated(fd: Any) -> bool:
    flag = getattr(fd, "is_repeated", None)
    if flag is not None:
        return bool(flag)
    return bool(fd.label == descriptor.FieldDescriptor.LABEL_REPEATED)


MISSING = object()


def resolve(msg: message.Message, dotted: str) -> tuple[message.Message, str] | None:
    """The message holding the last part of `dotted`, and that part; None if a step is unset."""
    parts = dotted.split(".")
    for part in parts[:-1]:
        if part not in msg.DESCRIPTOR.fields_by_name or not msg.HasField(part):
            return None
        msg = getattr(msg, part)
    return msg, parts[-1]


def value_at(msg: message.Message, dotted: str) -> Any:
    found = resolve(msg, dotted)
    if found is None:
        return MISSING
    holder, name = found
    desc = holder.DESCRIPTOR
    if name in desc.oneofs_by_name:
        return holder.WhichOneof(name)
    if name not in desc.fields_by_name:
        raise KeyError(f"{desc.full_name} has no field or oneof {name!r}")
    fd = desc.fields_by_name[name]
    value = getattr(holder, name)
    if fd.enum_type is not None and not is_repeated(fd):
        enum_value = fd.enum_type.values_by_number.get(value)
        return enum_value.name if enum_value is not None else value
    return value


@functools.cache
def _presence(desc: Any, name: str) -> tuple[str, Any]:
    """How to tell whether field or oneof `name` of a `desc` message is set (looked up once per
    type: a rule on NodeDef asks it of every node)."""
    if name in desc.oneofs_by_name:
        return "oneof", None
    fd = desc.fields_by_name[name]
    if is_repeated(fd):
        return "repeated", None
    if fd.message_type is not None:
        return "message", None
    return "scalar", fd.default_value


def is_present(msg: message.Message, dotted: str) -> bool:
    if "." in dotted:
        found = resolve(msg, dotted)
        if found is None:
            return False
        holder, name = found
    else:
        holder, name = msg, dotted
    kind, default = _presence(holder.DESCRIPTOR, name)
    if kind == "oneof":
        return holder.WhichOneof(name) is not None
    if kind == "repeated":
        return len(getattr(holder, name)) > 0
    if kind == "message":
        return holder.HasField(name)
    return bool(getattr(holder, name) != default)


def mentions(msg: message.Message, dotted: str, names: frozenset[str]) -> bool:
    """Does an enum field with a value named in `names` occur at `dotted` or anywhere below it?"""
    found = resolve(msg, dotted)
    if found is None or not is_present(*found):
        return False
    holder, name = found
    fd = holder.DESCRIPTOR.fields_by_name[name]
    values = list(getattr(holder, name)) if is_repeated(fd) else [getattr(holder, name)]
    return any(mentions_within(fd, v, names) for v in values)


def mentions_within(fd: Any, value: Any, names: frozenset[str]) -> bool:
    if fd.enum_type is not None:
        known = fd.enum_type.values_by_number.get(value)
        return known is not None and known.name in names
    if fd.message_type is None or fd.message_type.GetOptions().map_entry:
        return False
    for sub_fd, sub_value in value.ListFields():
        if sub_fd.message_type is not None and sub_fd.message_type.GetOptions().map_entry:
            items = list(sub_value.values())
            sub_fd = sub_fd.message_type.fields_by_name["value"]
        else:
            items = list(sub_value) if is_repeated(sub_fd) else [sub_value]
        if any(mentions_within(sub_fd, item, names) for item in items):
            return True
    return False


def comparable(item: Any) -> Any:
    return item.SerializeToString(deterministic=True) if isinstance(item, message.Message) else item


def drop_field(msg: message.Message, dotted: str) -> bool:
    found = resolve(msg, dotted)
    if found is None:
        return False
    holder, name = found
    if not is_present(holder, name):
        return False
    holder.ClearField(name)
    return True
