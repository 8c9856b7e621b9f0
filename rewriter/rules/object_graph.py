"""Applying object-graph and Keras-config rules: the step the pipeline runs on the model's messages.

The rules and their format are read by rewriter/rules/object_graph_loader.py. This module
evaluates their conditions on saved_model.pb, the checkpoint's TrackableObjectGraph and
keras_metadata.pb (walked with rewriter/savedmodel/messages.py), applies rewrites in rule
order and refusals after them, and plans what write() changes on disk (the checkpoint through
rewriter/savedmodel/checkpoint.py, the Keras metadata through rewriter/savedmodel/keras_metadata.py).
"""
from __future__ import annotations

import collections
import functools
import re
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from google.protobuf import message

from rewriter.findings import Finding
from rewriter.protos import meta_graph_pb2, saved_model_pb2, saved_object_graph_pb2, trackable_object_graph_pb2
from rewriter.rules import combined_saveables, keras_config, restored_captures
from rewriter.rules.message_conditions import MessageCondition, all_predicates, all_tests
from rewriter.rules.object_graph_loader import KERAS_CONFIG, ObjectGraphRule
from rewriter.savedmodel import checkpoint as checkpoint_io
from rewriter.savedmodel import keras_metadata
from rewriter.savedmodel.files import KERAS_METADATA_PB, SAVED_MODEL_PB, SavedModelFiles
from rewriter.savedmodel.messages import (Found, FoundMessages, drop_field, find_messages, path_of, presence_test,
                                          reachable_types)
from rewriter.savedmodel.object_graph import drop_objects, needed_objects, used_concrete_functions
from rewriter.targets.releases import Release


@dataclass(slots=True)  # one object per change, not two: a 300k-node model has 100k of them
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
    # Keras-config rule id -> the class names of the objects it applied to, for its warning's {classes}
    keras_classes: dict[str, list[str]] = field(default_factory=dict)


def _apply_to(rules: list[ObjectGraphRule], file: str, root: message.Message, outcome: Outcome,
              contexts: dict[int, _GraphContext], refusing: bool) -> list[tuple[ObjectGraphRule, int, str]]:
    """Apply the rules of one file; return the (rule, meta graph index, node id) drops asked for."""
    drops: list[tuple[ObjectGraphRule, int, str]] = []
    mine = [r for r in rules if r.file == file and (r.refuse is not None) == refusing and r.keras_match is None]
    # The messages of each type the rules ask for, found by one walk for all of them (four rules
    # on NodeDef walked the whole model four times). A drop never changes which messages of its
    # own rule's type there are (the walk stops at the outermost one), but it may take away
    # messages of other types: the types its field can hold are walked again (and every type but
    # the rule's own after an action that edits a MetaGraphDef's contents: wire_captures,
    # combine_saveables).
    found: dict[str, FoundMessages] = {}
    screened: _Screened = {}
    for position, rule in enumerate(mine):
        if rule.message not in found:
            # Up to the next rule that may edit a MetaGraphDef's contents: what follows it is walked after it.
            last = next((i for i in range(position, len(mine)) if mine[i].wire_captures or mine[i].combine_saveables),
                        len(mine) - 1)
            found.update(find_messages(root, {r.message for r in mine[position:last + 1] if r.message not in found}))
        later = [r for r in mine[position + 1:] if r.message == rule.message]
        if _plain_drop(rule):
            for name in _drop_fields(rule, file, _screen(rule, found[rule.message], screened, later)[0],
                                     outcome.applications):
                found = _without_stale(found, rule.message, found[rule.message].descriptor, name)
            continue
        for entry, meta_index, node_id in _matching(rule, found[rule.message], contexts, screened, later):
            msg = entry[0]
            path = path_of(entry)
            if rule.refuse is not None:
                outcome.refusals.append(Finding("refused", file, path, rule.message, rule.refuse.strip(),
                                                rule=rule.id, since=rule.since.key))
                continue
            for name in rule.drop_fields:
                if drop_field(msg, name):
                    outcome.applications.append(ObjectGraphApplication(rule.id, file, path, f"dropped {name}"))
                    found = _without_stale(found, rule.message, msg.DESCRIPTOR, name)
            if rule.drop_object and meta_index is not None and node_id is not None:
                drops.append((rule, meta_index, path))
            if (rule.wire_captures or rule.combine_saveables) and isinstance(msg, meta_graph_pb2.MetaGraphDef):
                found = {rule.message: found[rule.message]}  # these edit what the MetaGraphDef holds
                screened.clear()
                meta = contexts.get(int(path[len("meta_graphs["):].split("]")[0]))
                checkpoint = meta.checkpoint if meta else None
                if rule.wire_captures:
                    for wired in restored_captures.WIRE_CAPTURES_TO_RESTORED.apply(msg, checkpoint):
                        outcome.applications.append(ObjectGraphApplication(rule.id, file, f"{path}.graph_def",
                                                                           f"wired {wired.line()}"))
                combined = combined_saveables.combine(msg, checkpoint) if rule.combine_saveables else None
                if combined is not None:
                    outcome.applications.append(ObjectGraphApplication(rule.id, file, f"{path}.object_graph_def",
                                                                       f"combined {combined.line()}"))
                    # The folded objects' attributes left the checkpoint's object graph: it is rewritten.
                    outcome.applications.append(ObjectGraphApplication(
                        rule.id, "checkpoint", "nodes", f"attributes of {len(combined.folded) - 1} object(s) "
                        f"restored through object {combined.carrier}"))
    return drops


# The messages of a walk (kept to tell it from a newer one) where a field is set, by (message type,
# field), while a later rule still asks for them. That rule needs only those still set:
# drop_fields only clears fields, and the actions that may add some (wire_captures,
# combine_saveables) start afresh.
_Screened = dict[tuple[str, str], tuple[FoundMessages, list[Found]]]


def _plain_drop(rule: ObjectGraphRule) -> bool:
    """Does the rule only clear fields of the message itself, whatever its object position?
    (Such a rule, arg-def-handle-data, clears 10k fields of gen-30k: it takes _drop_fields.)"""
    return (rule.refuse is None and bool(rule.drop_fields) and not rule.drop_object and not rule.wire_captures
            and not rule.combine_saveables and not any(c.reads_object() for c in rule.where)
            and not any("." in name for name in rule.drop_fields))


def _drop_fields(rule: ObjectGraphRule, file: str, entries: Iterable[Found],
                 applications: list[ObjectGraphApplication]) -> list[str]:
    """Clear the fields of a _plain_drop rule in each of `entries` (as drop_field does: only
    where set), one application each; return the names cleared at least once.

    The presence test of each name is looked up once, and skipped for the first name when a
    condition requires that field set (all held a moment ago, on this message, and nothing the
    rule cleared since)."""
    clears: list[tuple[str, Callable[[message.Message], bool] | None, str]] | None = None
    clear: Callable[[message.Message, str], None] = message.Message.ClearField
    cleared: set[str] = set()
    rule_id, add = rule.id, applications.append
    for msg, field_path, key in entries:
        if clears is None:  # on the first message: its type's presence tests (a bad name raises here, as before)
            desc = msg.DESCRIPTOR
            required = {c.required_field(desc) for c in rule.where}
            clears = [(name, None if i == 0 and name in required else presence_test(desc, name), f"dropped {name}")
                      for i, name in enumerate(rule.drop_fields)]
            # (from the class: looked up on a message, a method's name is tried as a field first)
            clear = type(msg).ClearField
        path = field_path if key is None else f"{field_path}[{key!r}]"  # path_of, inline
        for name, present, action in clears:
            if present is None or present(msg):
                clear(msg, name)
                add(ObjectGraphApplication(rule_id, file, path, action))
                cleared.add(name)
    return [name for name in rule.drop_fields if name in cleared]


def _without_stale(found: dict[str, FoundMessages], type_name: str, desc: Any, name: str) -> dict[str, FoundMessages]:
    """`found` without the types that clearing field `name` of its `type_name` messages (of
    descriptor `desc`) may have taken away: they are walked again if a later rule asks for them."""
    gone = _types_a_field_holds(desc, name)
    stale = (found.keys() if gone is None else found.keys() & gone) - {type_name}
    if not stale:
        return found
    return {t: entries for t, entries in found.items() if t not in stale}


def _screen(rule: ObjectGraphRule, found: FoundMessages, screened: _Screened | None = None,
            later: list[ObjectGraphRule] | None = None) -> tuple[Iterable[Found], list[MessageCondition]]:
    """The messages of `found` that the rule's conditions before the first that reads the
    object context let through (lazily, in walk order), and the conditions left to try."""
    desc = found.descriptor
    if desc is None:
        return (), []
    conditions = list(rule.where)
    first_reading = next((i for i, c in enumerate(conditions) if c.reads_object()), len(conditions))
    entries: Iterable[Found] = found
    if first_reading:
        holds = all_tests([c.holds_on(desc) for c in conditions[:first_reading]])
        entries = found.where(holds)
        required = conditions[0].required_field(desc)
        if required is not None and screened is not None:
            # Rules on the same type that read the same field first (the four on NodeDef's
            # experimental_type) screen the messages that have it once. Kept only while a later
            # rule asks: a list of 100k ArgDefs with handle_data is work for the garbage collector.
            asked_again = any(r.where and r.where[0].required_field(desc) == required for r in later or [])
            key = (rule.message, required)
            kept = screened.pop(key, None)
            if kept is not None and kept[0] is not found:
                kept = None  # a list of an earlier walk
            if kept is None and asked_again:
                kept = (found, list(found.where(presence_test(desc, required))))
            if kept is not None:
                if asked_again:
                    screened[key] = kept
                entries = (entry for entry in kept[1] if holds(entry[0]))
    return entries, conditions[first_reading:]


def _matching(rule: ObjectGraphRule, found: FoundMessages, contexts: dict[int, _GraphContext],
              screened: _Screened | None = None, later: list[ObjectGraphRule] | None = None
              ) -> Iterator[tuple[Found, int | None, int | None]]:
    """The messages `found` (all of the rule's type) where the rule's conditions hold, with
    their object position (meta graph index and node id; known only where the rule reads it).

    The conditions are compiled for the type (MessageCondition.holds_on / predicate: the
    verdicts of failure(), without its reasons). Those before the first that reads the object
    context screen every message first (_screen); the object position is worked out only for
    the messages they let through. Each message's conditions are still tried in order. Screening
    ahead of the rule's changes to earlier messages is safe: a condition reads only its own
    message, and no message of the list holds another (the walk stops at the outermost)."""
    entries, rest = _screen(rule, found, screened, later)
    if not rest and not rule.drop_object:
        for entry in entries:
            yield entry, None, None
        return
    desc = found.descriptor
    then = all_predicates([c.predicate(desc) for c in rest]) if rest else None
    for entry in entries:
        meta_index, node_id = _object_position(path_of(entry))
        if then is not None:
            ctx = contexts.get(meta_index) if meta_index is not None else None
            if not then(entry[0], ctx, node_id):
                continue
        yield entry, meta_index, node_id


@functools.cache
def _types_a_field_holds(desc: Any, dotted: str) -> frozenset[str] | None:
    """The message types that clearing field `dotted` of a `desc` message can take away (None:
    the field cannot be looked up, so any type may be)."""
    parts = dotted.split(".")
    for part in parts[:-1]:
        fd = desc.fields_by_name.get(part)
        if fd is None or fd.message_type is None:
            return None
        desc = fd.message_type
    if parts[-1] in desc.oneofs_by_name:
        fields = list(desc.oneofs_by_name[parts[-1]].fields)
    elif parts[-1] in desc.fields_by_name:
        fields = [desc.fields_by_name[parts[-1]]]
    else:
        return None
    return frozenset(t.full_name for f in fields if f.message_type is not None for t in reachable_types(f.message_type))


_OBJECT_PATH = re.compile(r"^meta_graphs\[(\d+)\]\.object_graph_def\.nodes\[(\d+)\]")


def _object_position(path: str) -> tuple[int | None, int | None]:
    """(meta graph index, node id) of a path 'meta_graphs[0].object_graph_def.nodes[12]...'."""
    match = _OBJECT_PATH.match(path)
    if not match:
        return None, None
    return int(match.group(1)), int(match.group(2))


def _read_messages(proto: saved_model_pb2.SavedModel, files: SavedModelFiles) -> tuple[
        checkpoint_io.CheckpointGraph | None, dict[int, _GraphContext], message.Message | None,
        dict[str, message.Message | None]]:
    """The checkpoint's object graph, each meta graph's context, the Keras metadata, and the root
    message of each file object-graph rules address (None: the model has no such file)."""
    ckpt = checkpoint_io.read_checkpoint_graph(files)
    checkpoint_nodes = len(ckpt.graph.nodes) if ckpt is not None else 0
    contexts = {
        i: _GraphContext(mg.object_graph_def, needed_objects(mg.object_graph_def), checkpoint_nodes,
                         ckpt.graph if ckpt is not None else None)
        for i, mg in enumerate(proto.meta_graphs)
    }
    keras = keras_metadata.read_keras_metadata(files)
    roots: dict[str, message.Message | None] = {
        SAVED_MODEL_PB: proto, "checkpoint": ckpt.graph if ckpt else None, KERAS_METADATA_PB: keras,
    }
    return ckpt, contexts, keras, roots


def _verdicts(rule: ObjectGraphRule, root: message.Message,
              contexts: dict[int, _GraphContext]) -> Iterator[tuple[str, str | None]]:
    """(path, None if the rule's conditions hold there, else the first that does not) for every
    message of the rule's type below `root`."""
    for entry in find_messages(root, [rule.message])[rule.message]:
        path = path_of(entry)
        meta_index, node_id = _object_position(path)
        ctx = contexts.get(meta_index) if meta_index is not None else None
        yield path, next((r for r in (c.failure(entry[0], ctx, node_id) for c in rule.where) if r is not None), None)


def downgrade(proto: saved_model_pb2.SavedModel, files: SavedModelFiles, target: Release,
              rules: list[ObjectGraphRule], allow_lossy: frozenset[str] = frozenset(), strict: bool = False) -> Outcome:
    """Apply the object-graph rules for `target` to saved_model.pb (in place), the checkpoint's
    object graph and keras_metadata.pb; plan what write() must change on disk.

    Keras metadata that no Keras-config rule can make readable to the target's Keras is left
    out, with a warning (unless `strict`, which refuses instead): the graphs need none of it, and
    the target's load_model then returns the generic restored object, as for Keras 3 exports."""
    from rewriter.verify import schema_check

    outcome = Outcome()
    active = [r for r in rules if r.applies_to(target)]
    lossy = [r for r in active if not r.exact and r.refuse is None and r.id not in allow_lossy]
    active = [r for r in active if r not in lossy]
    ckpt, contexts, keras, roots = _read_messages(proto, files)
    for refusing in (False, True):
        for file, root in roots.items():
            if root is None:
                continue
            drops = _apply_to(active, file, root, outcome, contexts, refusing)
            if drops:
                _drop(proto, drops, contexts, outcome, keras)
    refused_before = len(outcome.refusals)
    _apply_keras_rules([r for r in active if r.keras_match is not None],
                       [r for r in lossy if r.keras_match is not None], proto, keras, outcome, target)
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
            for entry, _, _ in _matching(rule, find_messages(root, [rule.message])[rule.message], contexts):
                outcome.refusals.append(Finding(
                    "lossy", file, path_of(entry), rule.message,
                    f"rule {rule.id} is not exact; pass --allow-lossy {rule.id} to apply it", rule=rule.id))
    # (rule, file) of every application, counted in C: gen-30k has 10k of them
    apps = outcome.applications
    counts = collections.Counter(zip(map(attrgetter("rule"), apps), map(attrgetter("file"), apps)))
    warned = {rule_id for rule_id, _ in counts}
    changed_files = {file for _, file in counts}
    for rule in active:
        if rule.warn and rule.id in warned:
            outcome.notes.append(f"warning [{rule.id}]: {warning_text(rule.warn, target, outcome.keras_classes.get(rule.id, []))}")
    for (rule_id, file), count in sorted(counts.items()):
        outcome.notes.append(f"object-graph rule {rule_id}: {count} change(s) in {file}")
    # Keras metadata: TF 2.3's Keras reads it from the object graph only.
    # (TF 2.4's Keras too: the message exists there, the file is read from 2.5 on). Newer Keras
    # reads the file first, so the object-graph copy is harmless to it.
    if keras is not None:
        folded, refusals = keras_metadata.fold_into_object_graph(proto, keras)
        outcome.refusals.extend(refusals)
        outcome.notes.append(
            f"{KERAS_METADATA_PB}: the metadata of {folded} Keras object(s) copied into the object graph "
            "(SavedObject.user_object.metadata), where TF 2.3's and 2.4's Keras read it")
        if not schema_check.keras_metadata_known(target):
            outcome.replaced[KERAS_METADATA_PB] = None
            outcome.notes.append(f"{KERAS_METADATA_PB} left out: TensorFlow {target}'s Keras does not read it")
        elif KERAS_METADATA_PB in changed_files:
            outcome.replaced[KERAS_METADATA_PB] = keras.SerializeToString(deterministic=True)
    # What the schema check must see: the metadata file as it will be written, if it is.
    kept = KERAS_METADATA_PB not in outcome.replaced or outcome.replaced[KERAS_METADATA_PB] is not None
    outcome.keras_metadata = keras if kept else None
    if ckpt is not None:
        outcome.checkpoint_graph = ckpt.graph
        if "checkpoint" in changed_files:
            rewrite = checkpoint_io.plan_rewrite(files, ckpt)
            outcome.replaced[checkpoint_io.INDEX] = rewrite.index
            outcome.replaced[rewrite.shard] = None  # written by finalize: a copy with the new graph appended
            outcome.rewritten.append(rewrite.shard)
            outcome.finalize = rewrite.finalize
    return outcome


# What TF's Keras loaders revive as Keras objects (tf_keras/saving/saved_model/constants.py
# KERAS_OBJECT_IDENTIFIERS, the same list in TF 2.3); anything else is revived as a generic object.

def _leave_out_keras_metadata(proto: saved_model_pb2.SavedModel, outcome: Outcome, unreadable: list[Finding],
                              target: Release) -> None:
    """Write the model without Keras metadata: no keras_metadata.pb, and every Keras object of the
    object graph a generic user object, so load_model returns the generic restored object, as it
    does for a Keras 3 export."""
    outcome.replaced[KERAS_METADATA_PB] = None
    cleared = keras_metadata.make_objects_generic(proto)
    first = unreadable[0]
    more = f" (and {len(unreadable) - 1} more)" if len(unreadable) > 1 else ""
    outcome.notes.append(
        f"warning: the Keras metadata is left out: TensorFlow {target}'s Keras cannot rebuild what {first.where} describes"
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


def warning_text(warn: str, target: Release, classes: list[str]) -> str:
    """A rule's warning for this conversion: `{target}` is the target release, `{classes}` the
    Keras classes the rule applied to (a warning names what the model has, not what the rule knows)."""
    return " ".join(warn.split()).replace("{target}", str(target)).replace("{classes}", ", ".join(sorted(classes)))


def _apply_keras_rules(rules: list[ObjectGraphRule], lossy: list[ObjectGraphRule], proto: saved_model_pb2.SavedModel,
                       keras: message.Message | None, outcome: Outcome, target: Release) -> None:
    """Rewrites (in rule order: file, then position) on every Keras object of every metadata string, then refusals and
    not-allowed lossy rules on what the rewrites left."""
    rewrites = [r for r in rules if r.keras_rewrite is not None]
    refusals = [r for r in rules if r.refuse is not None]
    if not (rewrites or refusals or lossy):
        return
    for file, label, holder, field_name in keras_metadata.metadata_strings(proto, keras):
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
                classes = outcome.keras_classes.setdefault(rule.id, [])
                if str(what) not in classes:
                    classes.append(str(what))
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
                    what = str(obj.get("class_name"))
                    outcome.refusals.append(Finding("refused", file, f"{label}: {path}", what,
                                                    warning_text(rule.refuse, target, [what]), rule=rule.id,
                                                    since=rule.since.key))
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


def explain_messages(rule: ObjectGraphRule, files: SavedModelFiles) -> list[tuple[str, str, str | None]]:
    """`rules explain` for an object-graph rule: (file, path, reason or None) for every message
    of the rule's type in its file, as IN is (before any other rule). Keras-config rules match
    JSON configs, not messages: their candidates are every Keras object, with no reason given."""
    proto = files.proto
    if rule.keras_match is not None:
        keras = keras_metadata.read_keras_metadata(files)
        verdicts: list[tuple[str, str, str | None]] = []
        for file, label, holder, field_name in keras_metadata.metadata_strings(proto, keras):
            def visit(path: str, obj: dict[str, Any]) -> Any:
                assert rule.keras_match is not None
                applies = keras_config.matches(rule.keras_match, obj)
                verdicts.append((file, f"{label}: {path} ({obj.get('class_name')})",
                                 None if applies else "its class or a condition does not match"))
                return obj

            keras_config.transform(keras_config.decode(getattr(holder, field_name)), visit)
        return verdicts
    _, contexts, _, roots = _read_messages(files.proto, files)
    root = roots.get(rule.file)
    return [] if root is None else [(rule.file, path, reason) for path, reason in _verdicts(rule, root, contexts)]
