"""Is every field, enum value and oneof case of our output known to the target's protobuf schema?

TensorFlow's parsers skip what they do not know (proto3 keeps unknown fields and open enums),
so an output that uses a newer field loads "fine" and then misbehaves: TF 2.3's Python loader,
for one, reads an unknown `SavedObject.kind` case as kind None and fails with
`Unknown SavedObject type: None`. The rules bring the output to the target's schema; this module
proves they did, as a post-condition of the conversion (rewriter/pipeline.py), and every problem
it finds is a refusal: such an output is never written.

The schemas are the target release's own .proto files, taken from its wheel by
tools/gen_schemas.py and shipped in rewriter/schemas/:

schemas.json, format 1:
    {"format": 1, "releases": {"2.3": {
        "version": "2.3.4", "wheel_sha256": "...",   # the wheel of releases.json they come from
        "file": "schema-2.3.pb.gz",                  # gzip (mtime 0) of a FileDescriptorSet
        "sha256": "...",                             # of the uncompressed FileDescriptorSet
        "protos": ["tensorflow/core/framework/attr_value.proto", ...]}}}

A FileDescriptorSet holds saved_model.proto, saved_object_graph.proto, trackable_object_graph.proto,
fingerprint.proto (2.12+), tensor_bundle.proto, Keras' saved_metadata.proto where the TF wheel
has it, and their imports. google/protobuf/* files are protobuf's own and taken from the
installed protobuf.

What is checked, per message: every set field must exist in the target's message with the same
number, name and type; a field in a oneof must be in the same oneof there; every enum value must
be a value of the target's enum; a message type must exist at all. Fields the installed TF does
not know either (unknown fields) are findings too. Messages of google.protobuf (Any, wrappers)
are the same in every release and not walked.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterator

from google.protobuf import any_pb2, descriptor, descriptor_pb2, descriptor_pool, message, wrappers_pb2

from rewriter.findings import Finding
from rewriter.runtimes.protowire import read_varint, write_varint
from rewriter.savedmodel.messages import is_packed, is_repeated
from rewriter.targets.releases import Release, parse_release

FORMAT = 1
FieldDescriptor = descriptor.FieldDescriptor
# protobuf's own files a TF schema imports; identical in every release.
_WELL_KNOWN = {f.name: f for f in (any_pb2.DESCRIPTOR, wrappers_pb2.DESCRIPTOR)}


class SchemaUnavailable(RuntimeError):
    """No shipped schema for the release (a packaging error: every known release has one)."""


@functools.cache
def _table() -> dict[str, Any]:
    data = resources.files("rewriter.schemas").joinpath("schemas.json").read_text("utf-8")
    table: dict[str, Any] = json.loads(data)
    if table.get("format") != FORMAT:
        raise SchemaUnavailable("rewriter/schemas/schemas.json has an unknown format")
    return table


def schema_releases() -> list[Release]:
    """Every release with a shipped schema, oldest first."""
    return sorted(parse_release(k) for k in _table()["releases"])


@dataclass(frozen=True)
class Schema:
    """The protobuf schema of one TensorFlow release."""

    release: Release
    pool: descriptor_pool.DescriptorPool
    files: tuple[str, ...]

    def message(self, full_name: str) -> descriptor.Descriptor | None:
        try:
            return self.pool.FindMessageTypeByName(full_name)
        except KeyError:
            return None

    def message_named(self, short_name: str) -> descriptor.Descriptor | None:
        """The message called `short_name` in any package (Keras moved SavedMetadata between packages)."""
        for name in self.files:
            file = self.pool.FindFileByName(name)
            for message_type in file.message_types_by_name.values():
                if message_type.name == short_name:
                    return message_type
        return None


def _file_set(release: Release) -> descriptor_pb2.FileDescriptorSet:
    entry = _table()["releases"].get(release.key)
    if entry is None:
        raise SchemaUnavailable(f"no protobuf schema shipped for TensorFlow {release}")
    data = gzip.decompress(resources.files("rewriter.schemas").joinpath(entry["file"]).read_bytes())
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise SchemaUnavailable(f"rewriter/schemas/{entry['file']} does not match its sha256 in schemas.json")
    return descriptor_pb2.FileDescriptorSet.FromString(data)


def _pool_of(files: dict[str, descriptor_pb2.FileDescriptorProto],
             edit: Callable[[descriptor_pb2.FileDescriptorProto], None] | None = None) -> descriptor_pool.DescriptorPool:
    """A private DescriptorPool of `files`, each added after its dependencies; protobuf's own
    well-known types come from the installed protobuf. `edit`, if given, changes a copy of each
    other file before it is added."""
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(name: str) -> None:
        if name in added:
            return
        added.add(name)
        if name in _WELL_KNOWN:
            proto = descriptor_pb2.FileDescriptorProto()
            _WELL_KNOWN[name].CopyToProto(proto)
            pool.Add(proto)
            return
        for dependency in files[name].dependency:
            add(dependency)
        if edit is None:
            pool.Add(files[name])
            return
        proto = descriptor_pb2.FileDescriptorProto()
        proto.CopyFrom(files[name])
        edit(proto)
        pool.Add(proto)

    for name in sorted(files):
        add(name)
    return pool


@functools.cache
def load_schema(release: Release) -> Schema:
    """The target's schema, in a private DescriptorPool (never the installed TF's default pool)."""
    files = {f.name: f for f in _file_set(release).file}
    pool = _pool_of(files)
    return Schema(release, pool, tuple(sorted(files)))


# --- checking one message ------------------------------------------------------------------
@dataclass
class _Problem:
    kind: str
    what: str  # "tensorflow.SavedObject.captured_tensor"
    message: str
    first_path: str
    count: int = 1


@dataclass
class _Walk:
    schema: Schema
    file: str
    problems: dict[tuple[str, str], _Problem] = field(default_factory=dict)
    # (source message full name) -> target descriptor or None, and per-field verdicts, memoized:
    # a GraphDef has thousands of NodeDefs of the same few types.
    targets: dict[str, Any] = field(default_factory=dict)
    verdicts: dict[tuple[str, int], tuple[str, str] | None] = field(default_factory=dict)

    def report(self, kind: str, what: str, text: str, path: str) -> None:
        key = (kind, what)
        problem = self.problems.get(key)
        if problem is None:
            self.problems[key] = _Problem(kind, what, text, path)
        else:
            problem.count += 1

    def target(self, source: Any) -> Any:
        if source.full_name not in self.targets:
            self.targets[source.full_name] = self.schema.message(source.full_name)
        return self.targets[source.full_name]

    def verdict(self, source_field: Any, target: Any) -> tuple[str, str] | None:
        """(kind, message) if the target lacks or changed this field, else None."""
        key = (source_field.containing_type.full_name, source_field.number)
        if key in self.verdicts:
            return self.verdicts[key]
        result: tuple[str, str] | None = None
        other = target.fields_by_number.get(source_field.number)
        where = f"{source_field.containing_type.full_name}.{source_field.name} (field {source_field.number})"
        if other is None:
            result = ("schema-field", f"{where} is unknown to TensorFlow {self.schema.release}")
        elif other.name != source_field.name or other.type != source_field.type:
            result = ("schema-field", f"{where} is {other.name} of another type in TensorFlow {self.schema.release}")
        elif source_field.containing_oneof is not None and (
            other.containing_oneof is None or other.containing_oneof.name != source_field.containing_oneof.name
        ):
            oneof = source_field.containing_oneof.name
            result = ("schema-oneof", f"{where} is a case of oneof {oneof!r} that TensorFlow {self.schema.release} lacks")
        self.verdicts[key] = result
        return result

    def walk(self, msg: message.Message, path: str) -> None:
        source = msg.DESCRIPTOR
        if source.full_name.startswith("google.protobuf."):
            return
        target = self.target(source)
        if target is None:
            self.report("schema-message", source.full_name,
                        f"message {source.full_name} is unknown to TensorFlow {self.schema.release}", path)
            return
        for unknown in _unknown_field_numbers(msg):
            self.report("schema-field", f"{source.full_name}#{unknown}",
                        f"{source.full_name} field {unknown} is unknown even to the installed TensorFlow "
                        f"(a newer writer?), so it cannot be checked or converted", path)
        for source_field, value in msg.ListFields():
            here = f"{path}.{source_field.name}" if path else source_field.name
            problem = self.verdict(source_field, target)
            if problem is not None:
                self.report(problem[0], f"{source.full_name}.{source_field.name}", problem[1], here)
                continue
            target_field = target.fields_by_number[source_field.number]
            for item_path, item in _items(source_field, value, here):
                if source_field.type == FieldDescriptor.TYPE_MESSAGE:
                    if _is_map(source_field):
                        self.walk_map_value(source_field, target_field, item, item_path)
                    else:
                        self.walk(item, item_path)
                elif source_field.type == FieldDescriptor.TYPE_ENUM:
                    self.check_enum(source_field, target_field, item, item_path)

    def walk_map_value(self, source_field: Any, target_field: Any, value: Any, path: str) -> None:
        value_field = source_field.message_type.fields_by_name["value"]
        target_value = target_field.message_type.fields_by_name["value"]
        if value_field.type == FieldDescriptor.TYPE_MESSAGE:
            self.walk(value, path)
        elif value_field.type == FieldDescriptor.TYPE_ENUM:
            self.check_enum(value_field, target_value, value, path)

    def check_enum(self, source_field: Any, target_field: Any, value: int, path: str) -> None:
        enum = target_field.enum_type
        if value in enum.values_by_number:
            return
        source_value = source_field.enum_type.values_by_number.get(value)
        name = source_value.name if source_value is not None else str(value)
        self.report("schema-enum", f"{enum.full_name}.{name}",
                    f"enum value {enum.full_name}.{name} ({value}) is unknown to TensorFlow {self.schema.release}", path)


def _is_map(source_field: Any) -> bool:
    return bool(source_field.message_type is not None and source_field.message_type.GetOptions().map_entry)


def _items(source_field: Any, value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if _is_map(source_field):
        for key in sorted(value):
            yield f"{path}[{key!r}]", value[key]
    elif is_repeated(source_field):
        for index, item in enumerate(value):
            yield f"{path}[{index}]", item
    else:
        yield path, value


def _unknown_field_numbers(msg: message.Message) -> list[int]:
    from google.protobuf import unknown_fields

    try:
        fields: Any = unknown_fields.UnknownFieldSet(msg)
    except (TypeError, AttributeError):  # an implementation without the API: nothing to report
        return []
    return sorted({f.field_number for f in fields})


# --- the public API ------------------------------------------------------------------------
def check_message(msg: message.Message, target: Release, file: str, path: str = "") -> list[Finding]:
    """Findings (kind schema-field / schema-oneof / schema-enum / schema-message) for one file's message.

    Each distinct problem is reported once, at the first place it occurs, with how often it occurs.
    The Python walk that names them runs only if the C-speed screen (`may_have_problems`) says
    there is something to find.
    """
    if not may_have_problems(msg, target):
        return []
    walk = _Walk(load_schema(target), file)
    walk.walk(msg, path)
    findings = []
    for problem in walk.problems.values():
        times = f" ({problem.count} places)" if problem.count > 1 else ""
        since = first_release_with(problem.kind, problem.what, target)
        findings.append(Finding(problem.kind, file, problem.first_path, problem.what,
                                f"{problem.message}{times}", since=since))
    return findings


# --- the screen: the same verdict at C speed --------------------------------------------------
# The walk above visits every message in Python (233k of them in a NASNet). The screen asks
# protobuf's parser instead: the output bytes are parsed with a "strict" copy of the target's
# schema that holds only what the walk accepts, so whatever the walk would report lands in the
# parsed message's unknown fields:
#   - a field is kept only where the walk's verdict is None (same number, name and type, the same
#     oneof) and it names the same message or enum type; a field the source's own schema lacks
#     (the walk's "unknown even to the installed TensorFlow") is not in it either;
#   - every file becomes proto2, whose enums are closed: a value the target's enum lacks goes to
#     the unknown fields instead of staying in the field (proto3 enums are open);
#   - a message type the target lacks can only be reached through a field it lacks.
# Unknown fields anywhere in the tree show as a difference of ByteSize() before and after
# DiscardUnknownFields(), both done in C. No difference: the walk would find nothing.
# A difference: the walk runs and names the problems (so the findings are the walk's own).
@dataclass(frozen=True)
class _Strict:
    pool: descriptor_pool.DescriptorPool


def _same_type(source_field: Any, target_field: Any) -> bool:
    source_type = source_field.message_type or source_field.enum_type
    target_type = target_field.message_type or target_field.enum_type
    if source_type is None or target_type is None:
        return source_type is None and target_type is None
    if source_type.full_name != target_type.full_name:
        return False
    if _is_map(source_field):  # the walk reads a map's values with the source's entry type
        return _same_map_value(source_field, target_field)
    return True


def _same_map_value(source_field: Any, target_field: Any) -> bool:
    source_value = source_field.message_type.fields_by_name["value"]
    target_value = target_field.message_type.fields_by_name["value"]
    if source_value.type != target_value.type:
        return False
    source_type = source_value.message_type or source_value.enum_type
    target_type = target_value.message_type or target_value.enum_type
    return (source_type.full_name if source_type else None) == (target_type.full_name if target_type else None)


def _accepted(source: Any, target_field: Any) -> bool:
    """Would the walk accept this target field for a set source field of the same number?"""
    if source is None:
        return False
    source_field = source.fields_by_number.get(target_field.number)
    if source_field is None or source_field.name != target_field.name or source_field.type != target_field.type:
        return False
    if source_field.containing_oneof is not None and (
        target_field.containing_oneof is None or target_field.containing_oneof.name != source_field.containing_oneof.name
    ):
        return False
    return _same_type(source_field, target_field)


def _strict_message(proto: descriptor_pb2.DescriptorProto, prefix: str, schema: Schema,
                    source_pool: descriptor_pool.DescriptorPool) -> None:
    full_name = f"{prefix}.{proto.name}" if prefix else proto.name
    target = schema.message(full_name)
    try:
        source: Any = source_pool.FindMessageTypeByName(full_name)
    except KeyError:
        source = None
    map_entry = proto.options.map_entry
    kept = []
    for field_proto in proto.field:
        target_field = target.fields_by_number[field_proto.number] if target is not None else None
        # A map entry's key and value are the entry's own (the map field itself was judged).
        if map_entry or (target_field is not None and _accepted(source, target_field)):
            kept.append(field_proto)
    used_oneofs = sorted({f.oneof_index for f in kept if f.HasField("oneof_index") and not f.proto3_optional})
    renumber = {old: new for new, old in enumerate(used_oneofs)}
    oneofs = [proto.oneof_decl[i] for i in used_oneofs]
    del proto.field[:]
    proto.field.extend(kept)
    for field_proto in proto.field:
        # Packed as the source encodes it (proto3 packs repeated numbers by default, proto2 does not),
        # so known fields re-encode to the very bytes they were parsed from (may_have_problems).
        if field_proto.label == field_proto.LABEL_REPEATED and field_proto.type in _PACKABLE:
            source_field = source.fields_by_number.get(field_proto.number) if source is not None else None
            field_proto.options.packed = is_packed(source_field) if source_field is not None else True
        if field_proto.proto3_optional:  # proto2 has explicit presence: no synthetic oneof
            field_proto.ClearField("proto3_optional")
            field_proto.ClearField("oneof_index")
        elif field_proto.HasField("oneof_index"):
            field_proto.oneof_index = renumber[field_proto.oneof_index]
    del proto.oneof_decl[:]
    proto.oneof_decl.extend(oneofs)
    for nested in proto.nested_type:
        _strict_message(nested, full_name, schema, source_pool)


_PACKABLE = frozenset(t for t in range(1, 19) if t not in (
    FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_GROUP, FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_BYTES))


@functools.cache
def _strict_schema(target: Release, source_pool: descriptor_pool.DescriptorPool) -> _Strict:
    schema = load_schema(target)
    files = {f.name: f for f in _file_set(target).file}

    def strict(proto: descriptor_pb2.FileDescriptorProto) -> None:
        proto.syntax = "proto2"
        for message_proto in proto.message_type:
            _strict_message(message_proto, proto.package, schema, source_pool)

    pool = _pool_of(files, strict)
    return _Strict(pool)


# Nodes or functions screened at once: the screen holds one piece's bytes and strict parse at a
# time, not a second parsed copy of the whole SavedModel (measured: +400 MB on a 300k-node model).
# A piece is the serialized nodes (or functions) themselves, joined as the repeated field of a
# GraphDef (FunctionDefLibrary) would hold them; one larger than _PIECE_BYTES (a big constant) is
# screened alone as a NodeDef (FunctionDef), so it is never copied once more into a piece.
# A piece is cut after _BATCH_BYTES: the bytes, the strict parse and ByteSize's buffer of a larger
# one were fresh memory from the system each time (malloc maps big blocks), and its page faults
# were a third of the screen's CPU (gen-30k in plan(): 14.6k faults, 0.10 s; 256 KB: 0.06 s).
_PIECE = 5000
_PIECE_BYTES = 8 << 20
_BATCH_BYTES = 256 << 10


def _field_header(length: int) -> bytes:
    """Tag of field 1, length-delimited, and the length as a varint."""
    return b"\x0a" + write_varint(length)


def _lean(data: memoryview, desc: Any) -> bytes:
    """The wire bytes of a message of type `desc` with every field's tag kept, and what the screen
    cannot be concerned with emptied: the payload of bytes and string fields (a map entry's key and
    value stay) and of packed numbers other than enums, each kept once, with no content. Nested
    messages are made lean in turn. A field the target lacks, an enum value or a oneof case is thus
    exactly where it was, and a 100 MB tensor_content costs the screen nothing more to parse."""
    out = bytearray()
    kept_once: set[int] = set()
    keep_all = desc.GetOptions().map_entry
    pos, end_of_data = 0, len(data)
    while pos < end_of_data:
        tag, after_tag = read_varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            _, end = read_varint(data, after_tag)
        elif wire == 1:
            end = after_tag + 8
        elif wire == 5:
            end = after_tag + 4
        elif wire == 2:
            length, start = read_varint(data, after_tag)
            end = start + length
            found = desc.fields_by_number.get(number)
            if found is not None and found.type == FieldDescriptor.TYPE_MESSAGE:
                inner = _lean(data[start:end], found.message_type)
                out += data[pos:after_tag]
                out += write_varint(len(inner))
                out += inner
                pos = end
                continue
            if found is not None and not keep_all and found.type != FieldDescriptor.TYPE_ENUM:
                if number not in kept_once:  # bytes, a string, or packed numbers: the tag, empty
                    kept_once.add(number)
                    out += data[pos:after_tag]
                    out += b"\x00"
                pos = end
                continue
        else:
            raise ValueError(f"wire type {wire} (a group) in {desc.full_name}")
        out += data[pos:end]
        pos = end
    return bytes(out)


def _repeated_pieces(items: Any, container: str, item: str) -> Iterator[tuple[str, bytes, bool]]:
    batch: list[bytes] = []
    size = 0
    for element in items:
        data = element.SerializeToString()  # (upb's ByteSize serializes too: once is enough)
        if len(data) > _PIECE_BYTES:
            # A big constant: screened alone, lean (its content is no concern of the screen), so the
            # strict parse never holds another copy of it.
            lean = _lean(memoryview(data), element.DESCRIPTOR)
            del data
            yield item, lean, True
            continue
        batch += [_field_header(len(data)), data]
        size += len(data)
        if size > _BATCH_BYTES or len(batch) >= 2 * _PIECE:
            yield container, b"".join(batch), False
            batch, size = [], 0
    if batch:
        yield container, b"".join(batch), False


def _pieces(msg: message.Message) -> Iterator[tuple[str, bytes, bool]]:
    """(message type, bytes, whether made lean) of `msg`, or for a SavedModel the same messages cut
    into pieces: the SavedModel without its graphs' nodes and functions, then the nodes and the
    functions. A field, enum value or oneof case the target lacks is in exactly one piece, so the
    pieces hold unknown fields (or fail to parse) if and only if the whole does. (Cutting costs one
    Python call per node and function; serializing a whole model to learn its size, or asking
    ByteSize, which serializes, cost more.)"""
    from rewriter.savedmodel.model import skeleton_of

    saved_model: Any = msg
    skeleton = skeleton_of(saved_model) if saved_model.DESCRIPTOR.full_name == "tensorflow.SavedModel" else None
    if skeleton is None:
        yield msg.DESCRIPTOR.full_name, msg.SerializeToString(), False
        return
    yield skeleton.DESCRIPTOR.full_name, skeleton.SerializeToString(), False
    del skeleton
    for meta_graph in msg.meta_graphs:  # type: ignore[attr-defined]
        graph_def = meta_graph.graph_def
        yield from _repeated_pieces(graph_def.node, "tensorflow.GraphDef", "tensorflow.NodeDef")
        yield from _repeated_pieces(graph_def.library.function, "tensorflow.FunctionDefLibrary", "tensorflow.FunctionDef")


def may_have_problems(msg: message.Message, target: Release) -> bool:
    """False only if check_message's walk would find nothing in `msg` (see the comment above)."""
    from google.protobuf import message_factory

    strict = _strict_schema(target, msg.DESCRIPTOR.file.pool)
    for type_name, data, lean in _pieces(msg):
        try:
            wanted = strict.pool.FindMessageTypeByName(type_name)
        except KeyError:
            return True
        parsed = message_factory.GetMessageClass(wanted)()
        try:
            parsed.ParseFromString(data)
        except message.DecodeError:
            return True
        # The strict schema encodes what it knows as the bytes were encoded (canonical varints, the
        # source's packing: tests/test_schema_check.py), so without unknown fields the parsed
        # message is exactly as long as its bytes. A lean piece's emptied packed fields re-encode
        # to nothing, so it is measured before and after instead.
        before = parsed.ByteSize() if lean else len(data)
        del data
        parsed.DiscardUnknownFields()
        if parsed.ByteSize() != before:
            return True
    return False


def first_release_with(kind: str, what: str, target: Release) -> str | None:
    """The oldest shipped schema after `target` that knows `what` (a field, enum value or message)."""
    for release in schema_releases():
        if release <= target:
            continue
        schema = load_schema(release)
        if _known(schema, kind, what):
            return release.key
    return None


def _known(schema: Schema, kind: str, what: str) -> bool:
    if "#" in what:
        return False
    if kind == "schema-message":
        return schema.message(what) is not None
    if kind == "schema-enum":
        enum_name, _, value = what.rpartition(".")
        try:
            return value in schema.pool.FindEnumTypeByName(enum_name).values_by_name
        except KeyError:
            return False
    message_name, _, field_name = what.rpartition(".")
    found = schema.message(message_name)
    return found is not None and field_name in found.fields_by_name


def drop_unknown_fields(msg: message.Message, target: Release) -> list[str]:
    """Clear the top-level fields of `msg` the target's schema lacks; return their names.

    Only for messages this tool generates itself (fingerprint.pb): what the target's own TF would
    write has exactly its schema's fields. User data is never trimmed this way.
    """
    schema = load_schema(target)
    dropped = []
    for field, _ in msg.ListFields():
        if not _known(schema, "schema-field", f"{msg.DESCRIPTOR.full_name}.{field.name}"):
            msg.ClearField(field.name)
            dropped.append(field.name)
    return dropped


def keras_metadata_known(target: Release) -> bool:
    """Does the target's TensorFlow (its bundled Keras) know keras_metadata.pb's SavedMetadata?"""
    return load_schema(target).message_named("SavedMetadata") is not None


def check_keras_metadata(data: bytes, target: Release, file: str) -> list[Finding]:
    """keras_metadata.pb against the target Keras' SavedMetadata (which must exist if the file is kept)."""
    schema = load_schema(target)
    wanted = schema.message_named("SavedMetadata")
    if wanted is None:
        return [Finding("schema-message", file, "", "SavedMetadata",
                        f"TensorFlow {target}'s Keras has no SavedMetadata message: it does not read {file}")]
    # Parse with the installed Keras' own class when there is one; otherwise with the target's.
    from google.protobuf import message_factory

    msg = message_factory.GetMessageClass(wanted)()
    msg.ParseFromString(data)
    return check_message(msg, target, file)


def diff(older: Release, newer: Release) -> list[str]:
    """What `newer`'s schema has that `older`'s lacks: messages, fields, oneof cases, enum values."""
    old, new = load_schema(older), load_schema(newer)
    lines: list[str] = []
    for name in new.files:
        for message_type in _all_messages(new.pool.FindFileByName(name)):
            other = old.message(message_type.full_name)
            if other is None:
                lines.append(f"message {message_type.full_name}")
                continue
            for f in message_type.fields:
                o = other.fields_by_number.get(f.number)
                oneof = f" (oneof {f.containing_oneof.name})" if f.containing_oneof is not None else ""
                if o is None:
                    lines.append(f"field {message_type.full_name}.{f.name} = {f.number}{oneof}")
                elif o.name != f.name or o.type != f.type:
                    lines.append(f"field {message_type.full_name}.{f.name} = {f.number} (was {o.name})")
            for e in message_type.enum_types:
                lines.extend(_enum_diff(e, old))
        for e in new.pool.FindFileByName(name).enum_types_by_name.values():
            lines.extend(_enum_diff(e, old))
    return lines


def _enum_diff(enum: descriptor.EnumDescriptor, old: Schema) -> list[str]:
    try:
        other = old.pool.FindEnumTypeByName(enum.full_name)
    except KeyError:
        return [f"enum {enum.full_name}"]
    return [f"enum value {enum.full_name}.{v.name} = {v.number}" for v in enum.values if v.number not in other.values_by_number]


def _all_messages(container: Any) -> Iterator[descriptor.Descriptor]:
    for message_type in container.message_types_by_name.values():
        yield message_type
        yield from _nested(message_type)


def _nested(message_type: descriptor.Descriptor) -> Iterator[descriptor.Descriptor]:
    for nested in message_type.nested_types:
        if not nested.GetOptions().map_entry:
            yield nested
            yield from _nested(nested)


def check_output(proto: message.Message, outcome: Any, target: Release) -> list[Finding]:
    """Every message the output would hold, against the target's schema.

    `outcome` is the object-graph step's (rewriter.rules.object_graph.Outcome): the checkpoint's object
    graph and keras_metadata.pb as they will be written. fingerprint.pb is not checked here: it is
    made anew at write time and checked then (rewriter.pipeline._write_fingerprint).
    """
    from rewriter.savedmodel.files import KERAS_METADATA_PB, SAVED_MODEL_PB

    findings = check_message(proto, target, SAVED_MODEL_PB)
    if outcome is not None and outcome.checkpoint_graph is not None:
        findings += check_message(outcome.checkpoint_graph, target, "variables/ (checkpoint object graph)")
    if outcome is not None and outcome.keras_metadata is not None:
        if not keras_metadata_known(target):
            findings.append(Finding("schema-message", KERAS_METADATA_PB, "", "SavedMetadata",
                                    f"TensorFlow {target}'s Keras has no SavedMetadata message: it does not read it"))
        else:
            findings += check_message(outcome.keras_metadata, target, KERAS_METADATA_PB)
    return findings
