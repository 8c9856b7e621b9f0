"""Object-graph rules: bring the protobuf *messages* of a SavedModel to the target's schema.

The op rules (rules/*.yaml, rewriter/rule_engine.py) rewrite nodes of graphs. What TF's Python
loader also reads is a tree of messages: the SavedObjectGraph in saved_model.pb, the checkpoint's
TrackableObjectGraph (variables/), Keras' keras_metadata.pb. Newer TF writes fields and oneof cases
there that older releases lack (rewriter/schema_check.py finds them; `schema_check.diff` lists
them per release). Object-graph rules say, per field, what the target gets instead. They live in
rules/object-graph/*.yaml (one rule per YAML document; `---` separates several in one file) and
share the op rules' story: an id, a description of why the rewrite is exact, `since`, `exact`,
`handles` (for the catalog and coverage tests), a `fixture`, and refusals that name the problem.

    id: saved-object-captured-tensor      # unique, kebab-case
    description: why this is right
    since: "2.6"                          # first release with what it handles; applies when --to is older
    exact: true                           # false: lossy, applied only with --allow-lossy ID
    handles: {fields: [tensorflow.SavedObject.captured_tensor]}   # Message.field, as schema_check names them
    file: saved_model.pb                  # or checkpoint (variables/ TrackableObjectGraph), keras_metadata.pb
    match:
      message: tensorflow.SavedObject     # every message of this type in the file is a candidate
      where:                              # all must hold
        - {field: kind, equals: captured_tensor}     # a oneof's name: its set case (None if unset)
        - {field: registered_name, present: true}    # set / non-empty
        - {field: user_object.identifier, in: [...]} # dotted paths into sub-messages; enums by name
        - {field: dependencies, subset_of: children} # every element of a repeated field is in another
        - {field: experimental_type, mentions: [TFT_SHAPE_TENSOR]}  # an enum value of one of these
                                                     # names anywhere in the field's sub-message tree
        - {needed_by_signatures: false}              # SavedObject only, see below
        - {not: {...}} / {any: [...]} / {all: [...]}
    rewrite:                              # or `refuse: "message for the user"`
      drop_fields: [registered_name]      # clear fields of the matched message (dotted paths allowed)
      drop_object: true                   # SavedObject only: remove the object from the graph
      warn: "recorded in the report's notes whenever the rule applies"

`needed_by_signatures` is true for an object the signatures reach: the `signatures` child of the
root, everything below it, and every object bound into a concrete function that any function
object of the graph uses. `drop_object` removes an object that is not needed, every reference to
it (children, dependencies), and the concrete functions that bind it (no object uses them, or it
would be needed); the remaining objects are renumbered. An object the checkpoint also holds is
never dropped (the checkpoint's object graph would no longer line up): that is a refusal.

Rewrites run first, in rule-id order, over every file; refusals (`refuse:`) run after, so they
see only what no rewrite handled. A rule whose `match:` has `keras_class:` instead of `message:`
is a Keras-config rule: it rewrites the Keras JSON configs inside the metadata (see
rewriter/keras_config.py). Keras metadata: a target whose Keras has no SavedMetadata
message (TF 2.3, whose Keras reads `SavedObject.user_object.metadata`) gets the metadata of
keras_metadata.pb copied into the object graph (harmless to newer Keras, which reads the file
first), and the file is left out (a note says so).
"""
from __future__ import annotations

import copy
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml
from google.protobuf import descriptor, message
from rewriter.protos import meta_graph_pb2, saved_model_pb2, saved_object_graph_pb2, trackable_object_graph_pb2

from rewriter import bundle_index, keras_config, restored_captures
from rewriter.errors import BadInput, RuleFileError
from rewriter.findings import Finding
from rewriter.releases import Release, parse_release
from rewriter.rule_loader import ID_RE, _LineLoader
from rewriter.savedmodel_io import KERAS_METADATA_PB, SAVED_MODEL_PB, SavedModelFiles

FILES = (SAVED_MODEL_PB, "checkpoint", KERAS_METADATA_PB)
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
INDEX = "variables/variables.index"
VALUE_TESTS = ("equals", "in", "not_in", "present", "subset_of", "mentions")


# --- the rule model ------------------------------------------------------------------------
@dataclass(frozen=True)
class ObjectGraphRule:
    id: str
    description: str
    since: Release
    exact: bool
    handles_fields: tuple[str, ...]
    file: str
    message: str
    where: tuple[Any, ...]
    drop_fields: tuple[str, ...]
    drop_object: bool
    warn: str | None
    refuse: str | None
    source: str
    fixture: str | None = None
    # Keras-config rules (match: keras_class:) match JSON configs in the Keras metadata, not messages.
    keras_match: keras_config.KerasMatch | None = None
    keras_rewrite: keras_config.KerasRewrite | None = None
    handles_keras: tuple[str, ...] = ()
    # rewrite: {wire_captures_to_restored: true} (tensorflow.MetaGraphDef; rewriter/restored_captures.py)
    wire_captures: bool = False

    def applies_to(self, target: Release) -> bool:
        return target < self.since


def _fail(path: str, where: Any, text: str) -> RuleFileError:
    line = getattr(where, "line", 0)
    return RuleFileError(f"{path}:{line}: {text}" if line else f"{path}: {text}")


def _keys(path: str, mapping: Any, allowed: set[str], required: set[str], what: str) -> None:
    if not isinstance(mapping, dict):
        raise _fail(path, mapping, f"{what} must be a mapping")
    unknown = set(mapping) - allowed
    if unknown:
        raise _fail(path, mapping, f"{what}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    missing = required - set(mapping)
    if missing:
        raise _fail(path, mapping, f"{what}: missing key(s) {sorted(missing)}")


def _condition(path: str, cond: Any) -> Any:
    if not isinstance(cond, dict) or len(cond) == 0:
        raise _fail(path, cond, "a condition must be a mapping")
    if "not" in cond:
        _keys(path, cond, {"not"}, {"not"}, "not")
        return {"not": _condition(path, cond["not"])}
    for combinator in ("any", "all"):
        if combinator in cond:
            _keys(path, cond, {combinator}, {combinator}, combinator)
            if not isinstance(cond[combinator], list) or not cond[combinator]:
                raise _fail(path, cond, f"{combinator} takes a non-empty list of conditions")
            return {combinator: [_condition(path, c) for c in cond[combinator]]}
    if "needed_by_signatures" in cond:
        _keys(path, cond, {"needed_by_signatures"}, {"needed_by_signatures"}, "needed_by_signatures")
        if not isinstance(cond["needed_by_signatures"], bool):
            raise _fail(path, cond, "needed_by_signatures takes true or false")
        return dict(cond)
    _keys(path, cond, {"field", *VALUE_TESTS}, {"field"}, "condition")
    tests = [t for t in VALUE_TESTS if t in cond]
    if len(tests) != 1:
        raise _fail(path, cond, f"a field condition takes exactly one of {list(VALUE_TESTS)}")
    if tests[0] in ("in", "not_in", "mentions") and not isinstance(cond[tests[0]], list):
        raise _fail(path, cond, f"{tests[0]} takes a list")
    return dict(cond)


def parse_object_graph_rule(data: Any, path: str) -> ObjectGraphRule:
    """One checked rule; RuleFileError naming the file and line if it is malformed."""
    _keys(path, data, {"id", "description", "since", "exact", "handles", "file", "match", "rewrite", "refuse",
                       "fixture", "notes"}, {"id", "description", "since", "exact", "handles", "match"}, "rule")
    rule_id = data["id"]
    _check_id(path, data, rule_id)
    if ("rewrite" in data) == ("refuse" in data):
        raise _fail(path, data, "a rule has exactly one of rewrite: and refuse:")
    match = data["match"]
    if isinstance(match, dict) and "keras_class" in match:
        return _parse_keras_rule(data, path)
    handles = data["handles"]
    _keys(path, handles, {"fields"}, {"fields"}, "handles")
    if not isinstance(handles["fields"], list) or not all(isinstance(f, str) for f in handles["fields"]):
        raise _fail(path, handles, "handles.fields is a list of Message.field names")
    file = data.get("file", SAVED_MODEL_PB)
    if file not in FILES:
        raise _fail(path, data, f"file must be one of {list(FILES)}")
    _keys(path, match, {"message", "where"}, {"message"}, "match")
    where = match.get("where", [])
    if not isinstance(where, list):
        raise _fail(path, match, "where is a list of conditions")
    drop_fields: tuple[str, ...] = ()
    drop_object, wire_captures, warn, refuse = False, False, None, None
    if "rewrite" in data:
        rewrite = data["rewrite"]
        _keys(path, rewrite, {"drop_fields", "drop_object", "warn", "wire_captures_to_restored"}, set(), "rewrite")
        drop_fields = tuple(rewrite.get("drop_fields", []))
        drop_object = bool(rewrite.get("drop_object", False))
        wire_captures = rewrite.get("wire_captures_to_restored", False) is True
        warn = rewrite.get("warn")
        if not drop_fields and not drop_object and not wire_captures:
            raise _fail(path, rewrite, "a rewrite drops fields or the object, or wires captures to restored variables")
        if wire_captures and (match["message"] != "tensorflow.MetaGraphDef" or file != SAVED_MODEL_PB):
            raise _fail(path, rewrite, "wire_captures_to_restored applies to tensorflow.MetaGraphDef in saved_model.pb only")
        if drop_object and match["message"] != "tensorflow.SavedObject":
            raise _fail(path, rewrite, "drop_object applies to tensorflow.SavedObject only")
    else:
        refuse = data["refuse"]
        if not isinstance(refuse, str) or not refuse.strip():
            raise _fail(path, data, "refuse: takes the message for the user")
    since = _since(path, data)
    return ObjectGraphRule(
        id=rule_id, description=str(data["description"]).strip(), since=since, exact=bool(data["exact"]),
        handles_fields=tuple(handles["fields"]), file=file, message=match["message"],
        where=tuple(_condition(path, c) for c in where), drop_fields=drop_fields, drop_object=drop_object,
        warn=warn, refuse=refuse, source=f"{path}:{getattr(data, 'line', 0)}", fixture=data.get("fixture"),
        wire_captures=wire_captures,
    )


def _check_id(path: str, data: Any, rule_id: Any) -> None:
    if not isinstance(rule_id, str) or not ID_RE.match(rule_id):
        raise _fail(path, data, f"id {rule_id!r} must be kebab-case")


def _since(path: str, data: Any) -> Release:
    try:
        return parse_release(str(data["since"]))
    except BadInput as error:
        raise _fail(path, data, str(error)) from None


KERAS_CONFIG = "keras-config"  # the pseudo message name of Keras-config rules


def _parse_keras_rule(data: Any, path: str) -> ObjectGraphRule:
    """A Keras-config rule: `match: {keras_class: ..., where: [...]}` on the Keras metadata's JSON."""
    if "file" in data:
        raise _fail(path, data, "a keras_class rule applies to the Keras metadata wherever it is; it takes no file:")
    handles = data["handles"]
    _keys(path, handles, {"keras"}, {"keras"}, "handles")
    if not isinstance(handles["keras"], list) or not all(isinstance(f, str) and "." in f for f in handles["keras"]):
        raise _fail(path, handles, "handles.keras is a list of Class.key names")
    try:
        match = keras_config.parse_match(data["match"])
        rewrite = None
        if "rewrite" in data:
            raw = data["rewrite"]
            _keys(path, raw, {*keras_config.ACTIONS, "warn"}, set(), "rewrite")
            rewrite = keras_config.parse_rewrite(raw)
            if rewrite.empty and not raw.get("warn"):
                raise keras_config.KerasRuleError(
                    f"a keras_class rewrite takes one of {list(keras_config.ACTIONS)}, or only warn:")
    except keras_config.KerasRuleError as error:
        raise _fail(path, data, str(error)) from None
    refuse = data.get("refuse")
    if "refuse" in data and (not isinstance(refuse, str) or not refuse.strip()):
        raise _fail(path, data, "refuse: takes the message for the user")
    rule_id = data["id"]
    _check_id(path, data, rule_id)
    since = _since(path, data)
    return ObjectGraphRule(
        id=rule_id, description=str(data["description"]).strip(), since=since, exact=bool(data["exact"]),
        handles_fields=(), file=KERAS_METADATA_PB, message=KERAS_CONFIG, where=(), drop_fields=(),
        drop_object=False, warn=(data.get("rewrite") or {}).get("warn"), refuse=refuse,
        source=f"{path}:{getattr(data, 'line', 0)}", fixture=data.get("fixture"),
        keras_match=match, keras_rewrite=rewrite, handles_keras=tuple(handles["keras"]),
    )


def parse_object_graph_rules_text(text: str, path: str) -> list[ObjectGraphRule]:
    try:
        documents = [d for d in yaml.load_all(text, Loader=_LineLoader) if d is not None]
    except yaml.YAMLError as error:
        raise RuleFileError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    return [parse_object_graph_rule(d, path) for d in documents]


def builtin_object_graph_rules_dir() -> Path:
    from rewriter.rule_loader import builtin_rules_dir

    return builtin_rules_dir() / "object-graph"


def load_object_graph_rules(directory: Path | None = None) -> list[ObjectGraphRule]:
    """Every rule of rules/object-graph/*.yaml (or `directory`), sorted by id; ids are unique."""
    directory = directory or builtin_object_graph_rules_dir()
    rules: dict[str, ObjectGraphRule] = {}
    for path in sorted(directory.glob("*.yaml")):
        for rule in parse_object_graph_rules_text(path.read_text("utf-8"), str(path)):
            if rule.id in rules:
                raise RuleFileError(f"{rule.source}: duplicate rule id {rule.id!r} (also {rules[rule.id].source})")
            rules[rule.id] = rule
    return [rules[k] for k in sorted(rules)]


# --- evaluating rules on messages ----------------------------------------------------------
@dataclass
class ObjectGraphApplication:
    rule: str
    file: str
    path: str
    action: str  # "dropped registered_name" / "dropped object 648"

    def line(self) -> str:
        return f"{self.file}: {self.path}: {self.action} [rule {self.rule}]"


@dataclass
class _GraphContext:
    """What `needed_by_signatures` needs to know about one SavedObjectGraph."""

    graph: saved_object_graph_pb2.SavedObjectGraph
    needed: set[int]
    checkpoint_nodes: int
    checkpoint: trackable_object_graph_pb2.TrackableObjectGraph | None = None


def _contains(desc: Any, name: str, memo: dict[str, bool], stack: set[str]) -> bool:
    """Can a message of type `desc` hold (at any depth) a message called `name`?

    A full traversal per type (message types are recursive: StructuredValue holds itself), memoized.
    """
    key = f"{desc.full_name}>{name}"
    if key not in memo:
        seen: set[str] = set()
        todo = [desc]
        while todo:
            current = todo.pop()
            if current.full_name in seen:
                continue
            seen.add(current.full_name)
            todo.extend(f.message_type for f in current.fields if f.message_type is not None)
        memo[key] = name in seen
    return memo[key]


def _messages(msg: message.Message, name: str, path: str, memo: dict[str, bool]) -> Iterator[tuple[str, message.Message]]:
    if msg.DESCRIPTOR.full_name == name:
        yield path, msg
        return
    for fd, value in msg.ListFields():
        if fd.message_type is None or not _contains(fd.message_type, name, memo, set()):
            continue
        here = f"{path}.{fd.name}" if path else fd.name
        if fd.message_type.GetOptions().map_entry:
            for key in sorted(value):
                item = value[key]
                if isinstance(item, message.Message):
                    yield from _messages(item, name, f"{here}[{key!r}]", memo)
        elif _repeated(fd):
            for index, item in enumerate(value):
                yield from _messages(item, name, f"{here}[{index}]", memo)
        else:
            yield from _messages(value, name, here, memo)


def _repeated(fd: Any) -> bool:
    flag = getattr(fd, "is_repeated", None)
    if flag is not None:
        return bool(flag)
    return bool(fd.label == descriptor.FieldDescriptor.LABEL_REPEATED)


_MISSING = object()


def _resolve(msg: message.Message, dotted: str) -> tuple[message.Message, str] | None:
    """The message holding the last part of `dotted`, and that part; None if a step is unset."""
    parts = dotted.split(".")
    for part in parts[:-1]:
        if part not in msg.DESCRIPTOR.fields_by_name or not msg.HasField(part):
            return None
        msg = getattr(msg, part)
    return msg, parts[-1]


def _value(msg: message.Message, dotted: str) -> Any:
    found = _resolve(msg, dotted)
    if found is None:
        return _MISSING
    holder, name = found
    desc = holder.DESCRIPTOR
    if name in desc.oneofs_by_name:
        return holder.WhichOneof(name)
    if name not in desc.fields_by_name:
        raise KeyError(f"{desc.full_name} has no field or oneof {name!r}")
    fd = desc.fields_by_name[name]
    value = getattr(holder, name)
    if fd.enum_type is not None and not _repeated(fd):
        enum_value = fd.enum_type.values_by_number.get(value)
        return enum_value.name if enum_value is not None else value
    return value


def _present(msg: message.Message, dotted: str) -> bool:
    found = _resolve(msg, dotted)
    if found is None:
        return False
    holder, name = found
    desc = holder.DESCRIPTOR
    if name in desc.oneofs_by_name:
        return holder.WhichOneof(name) is not None
    fd = desc.fields_by_name[name]
    if _repeated(fd):
        return len(getattr(holder, name)) > 0
    if fd.message_type is not None:
        return holder.HasField(name)
    return bool(getattr(holder, name) != fd.default_value)


def _holds(cond: Any, msg: message.Message, ctx: _GraphContext | None, node_id: int | None) -> bool:
    if "not" in cond:
        return not _holds(cond["not"], msg, ctx, node_id)
    if "any" in cond:
        return any(_holds(c, msg, ctx, node_id) for c in cond["any"])
    if "all" in cond:
        return all(_holds(c, msg, ctx, node_id) for c in cond["all"])
    if "needed_by_signatures" in cond:
        needed = ctx is not None and node_id is not None and node_id in ctx.needed
        return needed == cond["needed_by_signatures"]
    name = cond["field"]
    if "present" in cond:
        return _present(msg, name) == cond["present"]
    if "mentions" in cond:
        return _mentions(msg, name, frozenset(cond["mentions"]))
    value = _value(msg, name)
    if "equals" in cond:
        return value is not _MISSING and value == cond["equals"]
    if "in" in cond:
        return value is not _MISSING and value in cond["in"]
    if "not_in" in cond:
        return value is _MISSING or value not in cond["not_in"]
    other = _value(msg, cond["subset_of"])
    mine = [] if value is _MISSING else list(value)
    theirs = [] if other is _MISSING else list(other)
    keys = {_key(x) for x in theirs}
    return all(_key(x) in keys for x in mine)


def _mentions(msg: message.Message, dotted: str, names: frozenset[str]) -> bool:
    """Does an enum field with a value named in `names` occur at `dotted` or anywhere below it?"""
    found = _resolve(msg, dotted)
    if found is None or not _present(*found):
        return False
    holder, name = found
    fd = holder.DESCRIPTOR.fields_by_name[name]
    values = list(getattr(holder, name)) if _repeated(fd) else [getattr(holder, name)]
    return any(_mentions_in(fd, v, names) for v in values)


def _mentions_in(fd: Any, value: Any, names: frozenset[str]) -> bool:
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
            items = list(sub_value) if _repeated(sub_fd) else [sub_value]
        if any(_mentions_in(sub_fd, item, names) for item in items):
            return True
    return False


def _key(item: Any) -> Any:
    return item.SerializeToString(deterministic=True) if isinstance(item, message.Message) else item


def _drop_field(msg: message.Message, dotted: str) -> bool:
    found = _resolve(msg, dotted)
    if found is None:
        return False
    holder, name = found
    if not _present(holder, name):
        return False
    holder.ClearField(name)
    return True


# --- which objects the signatures need -----------------------------------------------------
def needed_objects(graph: saved_object_graph_pb2.SavedObjectGraph) -> set[int]:
    """Objects reached from the root's `signatures` child, and everything bound into the concrete
    functions that any function object uses (their captures must exist for them to load)."""
    nodes = graph.nodes
    needed: set[int] = set()
    if len(nodes):
        todo = [c.node_id for c in nodes[0].children if c.local_name == "signatures"]
        while todo:
            node_id = todo.pop()
            if node_id in needed:
                continue
            needed.add(node_id)
            todo.extend(c.node_id for c in nodes[node_id].children)
    for name in used_concrete_functions(graph):
        if name in graph.concrete_functions:
            needed.update(graph.concrete_functions[name].bound_inputs)
    return needed


def used_concrete_functions(graph: saved_object_graph_pb2.SavedObjectGraph) -> set[str]:
    used: set[str] = set()
    for node in graph.nodes:
        kind = node.WhichOneof("kind")
        if kind == "function":
            used.update(node.function.concrete_functions)
        elif kind == "bare_concrete_function":
            used.add(node.bare_concrete_function.concrete_function_name)
    return used


def drop_objects(graph: saved_object_graph_pb2.SavedObjectGraph, drop: set[int]) -> tuple[dict[int, int], list[str]]:
    """Remove objects, the references to them and the concrete functions binding them; renumber.

    Returns (old id -> new id of every kept object, notes). The caller has checked that nothing
    needed is dropped.
    """
    notes: list[str] = []
    used = used_concrete_functions(graph)
    for name in sorted(graph.concrete_functions):
        bound = set(graph.concrete_functions[name].bound_inputs)
        if bound & drop:
            if name in used:
                raise AssertionError(f"concrete function {name} is used by an object and binds a dropped one")
            del graph.concrete_functions[name]
            notes.append(f"concrete function {name} left out of the object graph (it binds a dropped object)")
    kept = [i for i in range(len(graph.nodes)) if i not in drop]
    new_id = {old: new for new, old in enumerate(kept)}
    old_nodes = [copy.deepcopy(graph.nodes[i]) for i in kept]
    del graph.nodes[:]
    for node in old_nodes:
        for field_name in ("children", "dependencies"):
            refs = getattr(node, field_name)
            keep = [r for r in refs if r.node_id not in drop]
            for ref in refs:
                if ref.node_id in drop and field_name == "children":
                    notes.append(f"reference {ref.local_name!r} to a dropped object removed")
            del refs[:]
            for ref in keep:
                ref.node_id = new_id[ref.node_id]
                refs.add().CopyFrom(ref)
        for slot in node.slot_variables:
            slot.original_variable_node_id = new_id[slot.original_variable_node_id]
            slot.slot_variable_node_id = new_id[slot.slot_variable_node_id]
        for saveable in node.saveable_objects.values():
            if saveable.save_function:
                saveable.save_function = new_id[saveable.save_function]
            if saveable.restore_function:
                saveable.restore_function = new_id[saveable.restore_function]
        graph.nodes.add().CopyFrom(node)
    for function in graph.concrete_functions.values():
        renumbered = [new_id[b] for b in function.bound_inputs]
        del function.bound_inputs[:]
        function.bound_inputs.extend(renumbered)
    return new_id, notes


# --- the step the pipeline runs ------------------------------------------------------------
@dataclass
class Outcome:
    applications: list[ObjectGraphApplication] = field(default_factory=list)
    refusals: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checkpoint_graph: trackable_object_graph_pb2.TrackableObjectGraph | None = None
    keras_metadata: message.Message | None = None
    # What write() must do: relative path -> new bytes or None (left out), and a function run on
    # the complete temporary output folder (appending the new object graph to its data shard).
    replaced: dict[str, bytes | None] = field(default_factory=dict)
    finalize: Callable[[Path], None] | None = None
    rewritten: list[str] = field(default_factory=list)  # files the finalize step writes


@dataclass
class CheckpointGraph:
    entries: list[tuple[bytes, bytes]]
    shard: str  # relative path of the shard holding the object graph
    graph: trackable_object_graph_pb2.TrackableObjectGraph


def read_checkpoint_graph(files: SavedModelFiles) -> CheckpointGraph | None:
    """The checkpoint's TrackableObjectGraph, read from its one index entry (no variable is read)."""
    if INDEX not in files.other_files:
        return None
    entries = bundle_index.read_index((files.root / INDEX).read_bytes())
    entry = bundle_index.find_entry(entries, OBJECT_GRAPH_KEY)
    if entry is None:
        return None
    shard = bundle_index.shard_name("variables/variables", entry.shard_id, bundle_index.num_shards(entries))
    with open(files.root / shard, "rb") as reader:
        reader.seek(entry.offset)
        data = reader.read(entry.size)
    value = bundle_index.decode_string_scalar(data, entry.crc32c)
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    try:
        graph.ParseFromString(value)
    except message.DecodeError as error:
        raise BadInput(f"variables/: the checkpoint's object graph does not parse ({error})") from None
    return CheckpointGraph(entries, shard, graph)


def _checkpoint_writer(files: SavedModelFiles, ckpt: CheckpointGraph, outcome: Outcome) -> None:
    """Plan the new index and the appended shard bytes for a changed checkpoint object graph."""
    value = ckpt.graph.SerializeToString(deterministic=True)
    shard_bytes, crc = bundle_index.encode_string_scalar(value)
    source_shard = files.root / ckpt.shard
    offset = source_shard.stat().st_size
    entries = []
    for key, raw in ckpt.entries:
        if key == OBJECT_GRAPH_KEY.encode():
            entry = bundle_index.find_entry([(key, raw)], OBJECT_GRAPH_KEY)
            assert entry is not None
            entry.offset, entry.size, entry.crc32c = offset, len(shard_bytes), crc
            raw = entry.SerializeToString(deterministic=True)
        entries.append((key, raw))
    outcome.replaced[INDEX] = bundle_index.write_index(entries)
    # The shard: copied (never linked: we append to it) with the new object graph at the end.
    outcome.replaced[ckpt.shard] = None
    outcome.rewritten.append(ckpt.shard)

    def finalize(directory: Path) -> None:
        target = directory / ckpt.shard
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(source_shard, "rb") as reader, open(target, "wb") as writer:
            shutil.copyfileobj(reader, writer, 1 << 20)
            if writer.tell() != offset:
                raise OSError(f"{source_shard} changed while it was copied")
            writer.write(shard_bytes)
        shutil.copymode(source_shard, target)
        os.utime(target)

    outcome.finalize = finalize


def _apply_to(rules: list[ObjectGraphRule], file: str, root: message.Message, outcome: Outcome,
              contexts: dict[int, _GraphContext], refusing: bool) -> list[tuple[ObjectGraphRule, int, str]]:
    """Apply the rules of one file; return the (rule, meta graph index, node id) drops asked for."""
    drops: list[tuple[ObjectGraphRule, int, str]] = []
    memo: dict[str, bool] = {}
    for rule in rules:
        if rule.file != file or (rule.refuse is not None) != refusing or rule.keras_match is not None:
            continue
        for path, msg in list(_messages(root, rule.message, "", memo)):
            meta_index, node_id = _object_position(path)
            ctx = contexts.get(meta_index) if meta_index is not None else None
            if not all(_holds(c, msg, ctx, node_id) for c in rule.where):
                continue
            if rule.refuse is not None:
                outcome.refusals.append(Finding("refused", file, path, rule.message, rule.refuse.strip(),
                                                rule=rule.id, since=rule.since.key))
                continue
            for name in rule.drop_fields:
                if _drop_field(msg, name):
                    outcome.applications.append(ObjectGraphApplication(rule.id, file, path, f"dropped {name}"))
            if rule.drop_object and meta_index is not None and node_id is not None:
                drops.append((rule, meta_index, path))
            if rule.wire_captures and isinstance(msg, meta_graph_pb2.MetaGraphDef):
                meta = contexts.get(int(path[len("meta_graphs["):].split("]")[0]))
                for wired in restored_captures.WIRE_CAPTURES_TO_RESTORED.apply(msg, meta.checkpoint if meta else None):
                    outcome.applications.append(ObjectGraphApplication(rule.id, file, f"{path}.graph_def",
                                                                       f"wired {wired.line()}"))
    return drops


def _object_position(path: str) -> tuple[int | None, int | None]:
    """(meta graph index, node id) of a path 'meta_graphs[0].object_graph_def.nodes[12]...'."""
    import re

    match = re.match(r"^meta_graphs\[(\d+)\]\.object_graph_def\.nodes\[(\d+)\]", path)
    if not match:
        return None, None
    return int(match.group(1)), int(match.group(2))


def downgrade(proto: saved_model_pb2.SavedModel, files: SavedModelFiles, target: Release,
              rules: list[ObjectGraphRule], allow_lossy: frozenset[str] = frozenset(), strict: bool = False) -> Outcome:
    """Apply the object-graph rules for `target` to saved_model.pb (in place), the checkpoint's
    object graph and keras_metadata.pb; plan what write() must change on disk.

    Keras metadata that no Keras-config rule can make readable to the target's Keras is left
    out, with a warning (unless `strict`, which refuses instead): the graphs need none of it, and
    the target's load_model then returns the generic restored object, as for Keras 3 exports."""
    from rewriter import schema_check

    outcome = Outcome()
    active = [r for r in rules if r.applies_to(target)]
    lossy = [r for r in active if not r.exact and r.refuse is None and r.id not in allow_lossy]
    active = [r for r in active if r not in lossy]
    ckpt = read_checkpoint_graph(files)
    checkpoint_nodes = len(ckpt.graph.nodes) if ckpt is not None else 0
    contexts = {
        i: _GraphContext(mg.object_graph_def, needed_objects(mg.object_graph_def), checkpoint_nodes,
                         ckpt.graph if ckpt is not None else None)
        for i, mg in enumerate(proto.meta_graphs)
    }
    keras = _read_keras_metadata(files)
    roots: dict[str, message.Message | None] = {
        SAVED_MODEL_PB: proto, "checkpoint": ckpt.graph if ckpt else None, KERAS_METADATA_PB: keras,
    }
    for refusing in (False, True):
        for file, root in roots.items():
            if root is None:
                continue
            drops = _apply_to(active, file, root, outcome, contexts, refusing)
            if drops:
                _drop(proto, drops, contexts, outcome, keras)
    refused_before = len(outcome.refusals)
    _apply_keras_rules([r for r in active if r.keras_match is not None],
                       [r for r in lossy if r.keras_match is not None], proto, keras, outcome)
    unreadable = [f for f in outcome.refusals[refused_before:] if f.kind == "refused"]
    if unreadable and not strict:
        # Only the Keras metadata is in question: leave it out instead of refusing the model.
        outcome.refusals = outcome.refusals[:refused_before] + [
            f for f in outcome.refusals[refused_before:] if f.kind != "refused"]
        _leave_out_keras_metadata(proto, outcome, unreadable, target)
        keras = None
    for rule in lossy:
        for file, root in roots.items():
            if root is None or rule.file != file or rule.keras_match is not None:
                continue
            memo: dict[str, bool] = {}
            for path, msg in _messages(root, rule.message, "", memo):
                meta_index, node_id = _object_position(path)
                ctx = contexts.get(meta_index) if meta_index is not None else None
                if all(_holds(c, msg, ctx, node_id) for c in rule.where):
                    outcome.refusals.append(Finding(
                        "lossy", file, path, rule.message,
                        f"rule {rule.id} is not exact; pass --allow-lossy {rule.id} to apply it", rule=rule.id))
    warned = {a.rule for a in outcome.applications}
    for rule in active:
        if rule.warn and rule.id in warned:
            outcome.notes.append(f"warning [{rule.id}]: {rule.warn.strip()}")
    counts: dict[tuple[str, str], int] = {}
    for app in outcome.applications:
        counts[(app.rule, app.file)] = counts.get((app.rule, app.file), 0) + 1
    for (rule_id, file), count in sorted(counts.items()):
        outcome.notes.append(f"object-graph rule {rule_id}: {count} change(s) in {file}")
    # Keras metadata: TF 2.3's Keras reads it from the object graph only.
    # (TF 2.4's Keras too: the message exists there, the file is read from 2.5 on). Newer Keras
    # reads the file first, so the object-graph copy is harmless to it.
    if keras is not None:
        _fold_keras_metadata(proto, keras, outcome)
        if not schema_check.keras_metadata_known(target):
            outcome.replaced[KERAS_METADATA_PB] = None
            outcome.notes.append(f"{KERAS_METADATA_PB} left out: TensorFlow {target}'s Keras does not read it")
        elif any(a.file == KERAS_METADATA_PB for a in outcome.applications):
            outcome.replaced[KERAS_METADATA_PB] = keras.SerializeToString(deterministic=True)
    # What the schema check must see: the metadata file as it will be written, if it is.
    kept = KERAS_METADATA_PB not in outcome.replaced or outcome.replaced[KERAS_METADATA_PB] is not None
    outcome.keras_metadata = keras if kept else None
    if ckpt is not None:
        outcome.checkpoint_graph = ckpt.graph
        if any(a.file == "checkpoint" for a in outcome.applications):
            _checkpoint_writer(files, ckpt, outcome)
    return outcome


# What TF's Keras loaders revive as Keras objects (tf_keras/saving/saved_model/constants.py
# KERAS_OBJECT_IDENTIFIERS, the same list in TF 2.3); anything else is revived as a generic object.
KERAS_OBJECT_IDENTIFIERS = frozenset({
    "_tf_keras_layer", "_tf_keras_input_layer", "_tf_keras_network", "_tf_keras_model",
    "_tf_keras_sequential", "_tf_keras_metric", "_tf_keras_rnn_layer"})
GENERIC_USER_OBJECT = "_generic_user_object"  # what Keras 3 exports write for their objects


def _leave_out_keras_metadata(proto: saved_model_pb2.SavedModel, outcome: Outcome, unreadable: list[Finding],
                              target: Release) -> None:
    """Write the model without Keras metadata: no keras_metadata.pb, and every Keras object of the
    object graph a generic user object without metadata. TF's loaders then revive those objects
    generically (their functions, variables and signatures are untouched), so load_model returns
    the generic restored object, as it does for a Keras 3 export."""
    outcome.replaced[KERAS_METADATA_PB] = None
    cleared = 0
    for meta_graph in proto.meta_graphs:
        for obj in meta_graph.object_graph_def.nodes:
            if obj.WhichOneof("kind") != "user_object":
                continue
            if obj.user_object.identifier in KERAS_OBJECT_IDENTIFIERS or obj.user_object.metadata:
                obj.user_object.identifier = GENERIC_USER_OBJECT
                obj.user_object.metadata = ""
                cleared += 1
    first = unreadable[0]
    more = f" (and {len(unreadable) - 1} more)" if len(unreadable) > 1 else ""
    outcome.notes.append(
        f"warning: the Keras metadata is left out: TensorFlow {target}'s Keras cannot read {first.where}"
        f"{more}: {first.message} [rule {first.rule}]. tf.keras.models.load_model(OUT) in {target} therefore "
        "returns the generic restored object (as for Keras 3 exports), not a tf.keras.Model; its signatures and "
        f"tf.saved_model.load(OUT) work and are checked. {cleared} Keras object(s) are written as generic "
        "objects. --strict refuses such a model instead")


def _drop(proto: saved_model_pb2.SavedModel, drops: list[tuple[ObjectGraphRule, int, str]],
          contexts: dict[int, _GraphContext], outcome: Outcome, keras: message.Message | None) -> None:
    by_graph: dict[int, dict[int, tuple[ObjectGraphRule, str]]] = {}
    for rule, meta_index, path in drops:
        _, node_id = _object_position(path)
        assert node_id is not None
        by_graph.setdefault(meta_index, {})[node_id] = (rule, path)
    for meta_index, wanted in by_graph.items():
        ctx = contexts[meta_index]
        graph = proto.meta_graphs[meta_index].object_graph_def
        used = used_concrete_functions(graph)
        refused = False
        for node_id, (rule, path) in sorted(wanted.items()):
            if node_id < ctx.checkpoint_nodes:
                outcome.refusals.append(Finding(
                    "refused", SAVED_MODEL_PB, path, "tensorflow.SavedObject",
                    f"object {node_id} has no form TensorFlow {rule.since} and older know, and the checkpoint "
                    "holds it, so it cannot be left out", rule=rule.id))
                refused = True
        for name, function in graph.concrete_functions.items():
            if name in used and set(function.bound_inputs) & set(wanted):
                outcome.refusals.append(Finding(
                    "refused", SAVED_MODEL_PB, f"meta_graphs[{meta_index}].object_graph_def.concrete_functions[{name!r}]",
                    "tensorflow.SavedConcreteFunction",
                    f"concrete function {name} is used by a function object and binds an object that must be "
                    "left out", rule=wanted[min(wanted)][0].id))
                refused = True
        if refused:
            continue
        new_id, notes = drop_objects(graph, set(wanted))
        for node_id, (rule, path) in sorted(wanted.items()):
            outcome.applications.append(ObjectGraphApplication(rule.id, SAVED_MODEL_PB, path, f"dropped object {node_id}"))
        outcome.notes.extend(f"meta graph {meta_index}: {n}" for n in sorted(set(notes)))
        if keras is not None and meta_index == 0:
            for node in keras.nodes:  # type: ignore[attr-defined]
                node.node_id = new_id.get(node.node_id, node.node_id)
        ctx.needed = needed_objects(graph)


def _read_keras_metadata(files: SavedModelFiles) -> message.Message | None:
    if KERAS_METADATA_PB not in files.other_files:
        return None
    from rewriter import schema_check

    newest = schema_check.schema_releases()[-1]
    desc = schema_check.load_schema(newest).message_named("SavedMetadata")
    if desc is None:
        raise BadInput(f"{KERAS_METADATA_PB}: no SavedMetadata schema shipped to read it")
    from google.protobuf import message_factory

    msg = message_factory.GetMessageClass(desc)()
    try:
        msg.ParseFromString((files.root / KERAS_METADATA_PB).read_bytes())
    except message.DecodeError as error:
        raise BadInput(f"{KERAS_METADATA_PB}: does not parse ({error})") from None
    return msg


def _fold_keras_metadata(proto: saved_model_pb2.SavedModel, keras: message.Message, outcome: Outcome) -> None:
    """Put each Keras object's metadata where TF 2.3's Keras reads it: SavedObject.user_object."""
    graph = proto.meta_graphs[0].object_graph_def
    folded = 0
    for node in keras.nodes:  # type: ignore[attr-defined]
        if node.node_id >= len(graph.nodes):
            outcome.refusals.append(Finding("refused", KERAS_METADATA_PB, f"nodes[node_id={node.node_id}]",
                                            "SavedMetadata", f"names object {node.node_id}, which the object graph lacks"))
            continue
        target = graph.nodes[node.node_id]
        if target.WhichOneof("kind") != "user_object":
            outcome.refusals.append(Finding(
                "refused", KERAS_METADATA_PB, f"nodes[node_id={node.node_id}]", "SavedMetadata",
                f"metadata for object {node.node_id} ({node.node_path}), which is a {target.WhichOneof('kind')}, "
                "not a user object"))
            continue
        target.user_object.identifier = node.identifier
        target.user_object.version.producer = node.version.producer
        target.user_object.version.min_consumer = node.version.min_consumer
        del target.user_object.version.bad_consumers[:]
        target.user_object.version.bad_consumers.extend(node.version.bad_consumers)
        target.user_object.metadata = node.metadata
        folded += 1
    outcome.notes.append(
        f"{KERAS_METADATA_PB}: the metadata of {folded} Keras object(s) copied into the object graph "
        "(SavedObject.user_object.metadata), where TF 2.3's and 2.4's Keras read it")


# --- Keras-config rules --------------------------------------------------------------------
def _keras_metadata_strings(proto: saved_model_pb2.SavedModel, keras: message.Message | None) -> Iterator[
        tuple[str, str, message.Message, str]]:
    """(file, label, holder, field) of every Keras metadata JSON string: keras_metadata.pb's nodes,
    and SavedObject.user_object.metadata where a writer put it in the object graph itself."""
    if keras is not None:
        for node in keras.nodes:  # type: ignore[attr-defined]
            if node.metadata:
                yield KERAS_METADATA_PB, f"nodes[node_id={node.node_id}] ({node.node_path})", node, "metadata"
    for m, meta_graph in enumerate(proto.meta_graphs):
        for i, obj in enumerate(meta_graph.object_graph_def.nodes):
            if obj.WhichOneof("kind") == "user_object" and obj.user_object.metadata:
                yield (SAVED_MODEL_PB, f"meta_graphs[{m}].object_graph_def.nodes[{i}].user_object.metadata",
                       obj.user_object, "metadata")


def _apply_keras_rules(rules: list[ObjectGraphRule], lossy: list[ObjectGraphRule], proto: saved_model_pb2.SavedModel,
                       keras: message.Message | None, outcome: Outcome) -> None:
    """Rewrites (in id order) on every Keras object of every metadata string, then refusals and
    not-allowed lossy rules on what the rewrites left."""
    rewrites = [r for r in rules if r.keras_rewrite is not None]
    refusals = [r for r in rules if r.refuse is not None]
    if not (rewrites or refusals or lossy):
        return
    for file, label, holder, field_name in _keras_metadata_strings(proto, keras):
        text = getattr(holder, field_name)
        try:
            value = keras_config.decode(text)
        except ValueError as error:
            outcome.refusals.append(Finding("refused", file, label, KERAS_CONFIG,
                                            f"the Keras metadata is not valid JSON ({error})"))
            continue
        changed = False

        def rewrite(path: str, obj: dict[str, Any]) -> Any:
            nonlocal changed
            for rule in rewrites:
                assert rule.keras_match is not None and rule.keras_rewrite is not None
                if not keras_config.matches(rule.keras_match, obj):
                    continue
                what = obj.get("class_name")
                if rule.keras_rewrite.empty:
                    # A warn-only rule: the config stays; the report carries the rule's warning.
                    outcome.applications.append(ObjectGraphApplication(rule.id, file, f"{label}: {path} ({what})",
                                                                       "kept (warning)"))
                    continue
                new, changes = keras_config.apply_rewrite(rule.keras_rewrite, obj)
                for change in changes:
                    outcome.applications.append(ObjectGraphApplication(rule.id, file, f"{label}: {path} ({what})", change))
                    changed = True
                if new is not obj:
                    return new  # replaced by a plain value: no other rule sees it as a Keras object
            return obj

        def refuse(path: str, obj: dict[str, Any]) -> Any:
            for rule in refusals:
                assert rule.keras_match is not None and rule.refuse is not None
                if keras_config.matches(rule.keras_match, obj):
                    outcome.refusals.append(Finding("refused", file, f"{label}: {path}", str(obj.get("class_name")),
                                                    rule.refuse.strip(), rule=rule.id, since=rule.since.key))
            for rule in lossy:
                assert rule.keras_match is not None
                if keras_config.matches(rule.keras_match, obj):
                    outcome.refusals.append(Finding(
                        "lossy", file, f"{label}: {path}", str(obj.get("class_name")),
                        f"rule {rule.id} is not exact; pass --allow-lossy {rule.id} to apply it", rule=rule.id))
            return obj

        value = keras_config.transform(value, rewrite)
        keras_config.transform(value, refuse)
        if changed:
            setattr(holder, field_name, keras_config.encode(value))
