"""Walking protobuf messages by type and by dotted field path, as object-graph rules address them.

Generic over any message (SavedModel, TrackableObjectGraph, SavedMetadata): nothing here knows
a particular TensorFlow message.
"""
from __future__ import annotations

import functools
from itertools import compress, count, repeat
from operator import attrgetter, methodcaller, ne
from typing import Any, Callable, Collection, Iterable, Iterator

from google.protobuf import descriptor, descriptor_pb2, message, message_factory


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


@functools.cache
def _reachable_names(desc: Any) -> frozenset[str]:
    return frozenset(t.full_name for t in reachable_types(desc))


# One message a walk found: (the message, the path of the field holding it, its index or map key
# in that field, or None for a singular field). Its path is built only when asked for (path_of):
# a rule on NodeDef finds every node of the model, and the report names only those it changes.
Found = tuple[message.Message, str, Any]


def path_of(found: Found) -> str:
    """'meta_graphs[0].graph_def.node[3]', "...function_aliases['f']" (map keys as repr)."""
    _, field_path, key = found
    return field_path if key is None else f"{field_path}[{key!r}]"


_EVERY_ELEMENT = object()  # the key of a place that is a repeated field: each element is found


class FoundMessages:
    """The messages of one type a walk found, in walk order, kept as the places holding them: a
    message, or a repeated field whose every element is one (a function's node_def). A Found per
    message is made only for those a test lets through: a rule on NodeDef screens every node of
    the model, and a tuple held per node (with its message object) on a 300k-node model is 600k
    objects more for the garbage collector to walk, again and again."""

    def __init__(self) -> None:
        self._places: list[tuple[Any, str, Any]] = []

    def where(self, holds: Callable[[message.Message], bool]) -> Iterator[Found]:
        """The messages on which `holds` is true, in walk order (the elements of one repeated
        field tried together)."""
        # A presence test runs over a whole repeated field in C (_TESTS_IN_C), and the elements it
        # lets through are read again: cheaper while few pass (gen-30k's NodeDefs screened for
        # experimental_type: 73M -> 55M instructions), dearer where most do (its ArgDefs with
        # handle_data: 67M -> 76M). So the elements that passed so far choose for the next field.
        in_c = _TESTS_IN_C.get(holds)
        tried = passed = 0
        for holder, field_path, key in self._places:
            if key is _EVERY_ELEMENT:
                if in_c is None or 2 * passed > tried:
                    found = [(item, field_path, index) for index, item in enumerate(holder) if holds(item)]
                else:
                    found = [(holder[index], field_path, index) for index in compress(count(), in_c(holder))]
                tried += len(holder)
                passed += len(found)
                yield from found
            elif holds(holder):
                yield holder, field_path, key

    @property
    def descriptor(self) -> Any:
        """The type of the messages found (None if there are none)."""
        first = next(iter(self), None)
        return None if first is None else first[0].DESCRIPTOR

    def __iter__(self) -> Iterator[Found]:
        for holder, field_path, key in self._places:
            if key is _EVERY_ELEMENT:
                yield from zip(holder, repeat(field_path), count())
            else:
                yield holder, field_path, key


def find_messages(root: message.Message, names: Collection[str]) -> dict[str, FoundMessages]:
    """Every message of each type in `names` below `root` (root included), in depth-first order
    (fields by number, map entries by key). The walk for a type stops at each message of that
    type: one nested in another of its own type is not found (StructuredValue holds itself)."""
    found = {name: FoundMessages() for name in names}
    _collect(root, "", None, frozenset(names), found)
    return found


def _collect(msg: message.Message, field_path: str, key: Any, wanted: frozenset[str],
             found: dict[str, FoundMessages]) -> None:
    desc = msg.DESCRIPTOR
    name = desc.full_name
    if name in wanted:
        found[name]._places.append((msg, field_path, key))
        wanted = wanted - {name}
        if not wanted:
            return
    path = field_path if key is None else f"{field_path}[{key!r}]"
    for field_name, many, sub, shape in _fields_to_enter(desc, wanted):
        # Only the fields that can hold a wanted type are read (ListFields made a value of every
        # set field: a FunctionDef's attr, ret and arg_attr maps too).
        if many:
            value = getattr(msg, field_name)
            if not value:
                continue
        elif msg.HasField(field_name):
            value = getattr(msg, field_name)
        else:
            continue
        here = f"{path}.{field_name}" if path else field_name
        if shape == "map":
            for item_key in sorted(value):
                item = value[item_key]
                if isinstance(item, message.Message):
                    _collect(item, here, item_key, sub, found)
        elif shape == "found":
            # Each element is itself of the one type wanted here: found, and the walk stops there.
            found[next(iter(sub))]._places.append((value, here, _EVERY_ELEMENT))
        elif shape == "repeated":
            for index, item in enumerate(value):
                _collect(item, here, index, sub, found)
        else:
            _collect(value, here, None, sub, found)


@functools.cache
def _fields_to_enter(desc: Any, wanted: frozenset[str]) -> tuple[tuple[str, bool, frozenset[str], str], ...]:
    """The message fields of a `desc` message that can hold a wanted type, by number (as
    ListFields orders them): (name, repeated or map, the wanted types it can hold, shape; see
    _entering)."""
    entering = []
    for fd in sorted(desc.fields, key=lambda fd: fd.number):
        if fd.message_type is None:
            continue
        sub, shape = _entering(fd, wanted)
        if sub:
            entering.append((fd.name, shape != "singular", sub, shape))
    return tuple(entering)


def _entering(fd: Any, wanted: frozenset[str]) -> tuple[frozenset[str], str]:
    """Which of the wanted types a value of field `fd` can hold (the walk enters only those), and
    the field's shape: map, repeated, singular, or "found" (repeated, of the one type wanted)."""
    sub = wanted & _reachable_names(fd.message_type)
    if fd.message_type.GetOptions().map_entry:
        return sub, "map"
    if is_repeated(fd):
        return sub, "found" if sub == {fd.message_type.full_name} else "repeated"
    return sub, "singular"


def is_repeated(fd: Any) -> bool:
    """Whether a field is repeated, on every protobuf the package allows (>= 4.22): protobuf 6
    has `is_repeated` and no `label`; older releases only `label`."""
    flag = getattr(fd, "is_repeated", None)
    if flag is not None:
        return bool(flag)
    return bool(fd.label == descriptor.FieldDescriptor.LABEL_REPEATED)


def is_packed(fd: Any) -> bool:
    """Whether a repeated scalar field is written packed: `is_packed` from protobuf 5.28 on;
    before it (TF 2.12-2.17 pin protobuf 4.x), its `packed` option if set, else whether its file
    is proto3 (which packs repeated numbers by default; proto2 does not)."""
    flag = getattr(fd, "is_packed", None)
    if flag is not None:
        return bool(flag)
    options = fd.GetOptions()
    if options.HasField("packed"):
        return bool(options.packed)
    syntax = getattr(fd.file, "syntax", None)  # (protobuf 4.x has it; read from the file's bytes where not)
    if syntax is None:
        syntax = descriptor_pb2.FileDescriptorProto.FromString(fd.file.serialized_pb).syntax or "proto2"
    return bool(syntax == "proto3")


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
    return value_reader(holder.DESCRIPTOR, name)(holder)


@functools.cache
def value_reader(desc: Any, name: str) -> Callable[[message.Message], Any]:
    """What value_at reads from field or oneof `name` of a `desc` message: a oneof's set case
    (None if unset), a singular enum's value name, otherwise the field's value. Looked up once per
    type: a rule on NodeDef reads it from every node."""
    if name in desc.oneofs_by_name:
        return methodcaller("WhichOneof", name)
    if name not in desc.fields_by_name:
        raise KeyError(f"{desc.full_name} has no field or oneof {name!r}")
    fd = desc.fields_by_name[name]
    if fd.enum_type is not None and not is_repeated(fd):
        by_number = fd.enum_type.values_by_number

        def enum_name(holder: message.Message) -> Any:
            value = getattr(holder, name)
            enum_value = by_number.get(value)
            return enum_value.name if enum_value is not None else value
        return enum_name
    return lambda holder: getattr(holder, name)


# The presence tests of presence_test, each also as a function of many messages that runs the
# test on each in C (map, with no Python call per message): FoundMessages.where screens a repeated
# field with it. A verdict there is only true or false as a value (WhichOneof's case name, a length).
_TESTS_IN_C: dict[Callable[[message.Message], bool], Callable[[Iterable[message.Message]], Iterator[Any]]] = {}


@functools.cache
def presence_test(desc: Any, name: str) -> Callable[[message.Message], bool]:
    """is_present for field or oneof `name` of a `desc` message (looked up once per type).

    HasField and WhichOneof are taken from the class: looked up on a message (as methodcaller
    does), a name is tried as a field first (1 ms of the 12 ms screen of gen-30k's NodeDefs)."""
    test: Callable[[message.Message], bool]
    in_c: Callable[[Iterable[message.Message]], Iterator[Any]]
    if name in desc.oneofs_by_name:
        which_oneof = message_factory.GetMessageClass(desc).WhichOneof
        test = lambda holder: which_oneof(holder, name) is not None
        in_c = lambda items: map(which_oneof, items, repeat(name))
    elif is_repeated(desc.fields_by_name[name]):
        read = attrgetter(name)
        test = lambda holder: len(getattr(holder, name)) > 0
        in_c = lambda items: map(len, map(read, items))
    elif desc.fields_by_name[name].message_type is not None:
        has_field = message_factory.GetMessageClass(desc).HasField
        test = lambda holder: has_field(holder, name)
        in_c = lambda items: map(has_field, items, repeat(name))
    else:
        default = desc.fields_by_name[name].default_value
        read = attrgetter(name)
        test = lambda holder: bool(getattr(holder, name) != default)
        in_c = lambda items: map(ne, map(read, items), repeat(default))
    _TESTS_IN_C[test] = in_c
    return test


def is_present(msg: message.Message, dotted: str) -> bool:
    if "." in dotted:
        found = resolve(msg, dotted)
        if found is None:
            return False
        holder, name = found
    else:
        holder, name = msg, dotted
    return presence_test(holder.DESCRIPTOR, name)(holder)


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


def has_unknown_fields(msg: Any) -> bool:
    """Whether the message itself (not its submessages) holds fields its schema does not know."""
    from google.protobuf import unknown_fields

    return len(unknown_fields.UnknownFieldSet(msg)) > 0


def _copy_field(destination: Any, field: Any, value: Any) -> None:
    target = getattr(destination, field.name)
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value_field = field.message_type.fields_by_name["value"]
        for key, item in value.items():
            if value_field.message_type is not None:
                target[key].CopyFrom(item)
            else:
                target[key] = item
    elif field.message_type is not None:
        if isinstance(value, message.Message):
            target.CopyFrom(value)
        else:
            target.extend(value)
    elif not isinstance(value, (str, bytes, int, float, bool)):  # repeated scalar
        target.extend(value)
    else:
        setattr(destination, field.name, value)


def copy_except(source: Any, destination: Any, skipped: tuple[str, ...]) -> None:
    """Copy every set field of `source` into `destination` but the `skipped` ones (by name).
    Unknown fields of `source` itself are not copied: ask has_unknown_fields first."""
    for field, value in source.ListFields():
        if field.name not in skipped:
            _copy_field(destination, field, value)
