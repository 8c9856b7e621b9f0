"""Reading object-graph and Keras-config rules (rules/object-graph/*.yaml) into checked rules.

Object-graph rules bring the protobuf *messages* of a SavedModel to the target's schema.

The op rules (rules/*.yaml, rewriter/rules/engine.py) rewrite nodes of graphs. What TF's Python
loader also reads is a tree of messages: the SavedObjectGraph in saved_model.pb, the checkpoint's
TrackableObjectGraph (variables/), Keras' keras_metadata.pb. Newer TF writes fields and oneof cases
there that older releases lack (rewriter/verify/schema_check.py finds them; `schema_check.diff` lists
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

Rewrites run first, in rule order (file, then position in the file, as for graph rules), over every file; refusals (`refuse:`) run after, so they
see only what no rewrite handled. A rule whose `match:` has `keras_class:` instead of `message:`
is a Keras-config rule: it rewrites the Keras JSON configs inside the metadata (see
rewriter/rules/keras_config.py). Keras metadata: a target whose Keras has no SavedMetadata
message (TF 2.3, whose Keras reads `SavedObject.user_object.metadata`) gets the metadata of
keras_metadata.pb copied into the object graph (harmless to newer Keras, which reads the file
first), and the file is left out (a note says so).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rewriter.errors import BadInput, RuleFileError
from rewriter.rules import keras_config
from rewriter.rules.expand import expand_documents
from rewriter.rules.loader import ID_RE, FilesStamp, _LineLoader, yaml_files_stamp
from rewriter.rules.message_conditions import MessageCondition, parse_message_condition
from rewriter.savedmodel.files import KERAS_METADATA_PB, SAVED_MODEL_PB
from rewriter.targets.releases import Release, parse_release

FILES = (SAVED_MODEL_PB, "checkpoint", KERAS_METADATA_PB)


# Actions on a whole MetaGraphDef, each proven in its own module (rewriter/rules/restored_captures.py,
# rewriter/rules/combined_saveables.py).
META_GRAPH_ACTIONS = ("wire_captures_to_restored", "combine_saveables")


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
    where: tuple[MessageCondition, ...]
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
    # rewrite: {wire_captures_to_restored: true} (tensorflow.MetaGraphDef; rewriter/rules/restored_captures.py)
    wire_captures: bool = False
    # rewrite: {combine_saveables: true} (tensorflow.MetaGraphDef; rewriter/rules/combined_saveables.py)
    combine_saveables: bool = False
    targets_from: Release | None = None  # as for graph rules: the oldest target the proof holds for

    def applies_to(self, target: Release) -> bool:
        return target < self.since and (self.targets_from is None or target >= self.targets_from)


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


class _Checker:
    """The loader's file:line errors, in the form the condition classes ask for (conditions.Fail)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, where: Any, message: str) -> Exception:
        return _fail(self.path, where, message)

    def keys(self, mapping: Any, allowed: set[str], required: set[str], what: str) -> None:
        _keys(self.path, mapping, allowed, required, what)


def parse_object_graph_rule(data: Any, path: str) -> ObjectGraphRule:
    """One checked rule; RuleFileError naming the file and line if it is malformed."""
    _keys(path, data, {"id", "description", "since", "targets_from", "exact", "handles", "file", "match", "rewrite",
                       "refuse", "fixture", "notes"}, {"id", "description", "since", "exact", "handles", "match"}, "rule")
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
    drop_object, wire_captures, combine_saveables, warn, refuse = False, False, False, None, None
    if "rewrite" in data:
        rewrite = data["rewrite"]
        _keys(path, rewrite, {"drop_fields", "drop_object", "warn", *META_GRAPH_ACTIONS}, set(), "rewrite")
        listed = rewrite.get("drop_fields", [])
        if not isinstance(listed, list) or not all(isinstance(name, str) for name in listed):
            raise _fail(path, rewrite, "drop_fields is a list of field names")
        drop_fields = tuple(listed)
        drop_object = bool(rewrite.get("drop_object", False))
        wire_captures = rewrite.get("wire_captures_to_restored", False) is True
        combine_saveables = rewrite.get("combine_saveables", False) is True
        warn = rewrite.get("warn")
        if not drop_fields and not drop_object and not wire_captures and not combine_saveables:
            raise _fail(path, rewrite, f"a rewrite drops fields or the object, or takes one of {list(META_GRAPH_ACTIONS)}")
        for action in META_GRAPH_ACTIONS:
            if rewrite.get(action) and (match["message"] != "tensorflow.MetaGraphDef" or file != SAVED_MODEL_PB):
                raise _fail(path, rewrite, f"{action} applies to tensorflow.MetaGraphDef in saved_model.pb only")
        if drop_object and match["message"] != "tensorflow.SavedObject":
            raise _fail(path, rewrite, "drop_object applies to tensorflow.SavedObject only")
    else:
        refuse = data["refuse"]
        if not isinstance(refuse, str) or not refuse.strip():
            raise _fail(path, data, "refuse: takes the message for the user")
    since = _since(path, data)
    targets_from = _targets_from(path, data, since)
    return ObjectGraphRule(
        id=rule_id, description=str(data["description"]).strip(), since=since, targets_from=targets_from, exact=bool(data["exact"]),
        handles_fields=tuple(handles["fields"]), file=file, message=match["message"],
        where=tuple(parse_message_condition(_Checker(path), c) for c in where), drop_fields=drop_fields, drop_object=drop_object,
        warn=warn, refuse=refuse, source=f"{path}:{getattr(data, 'line', 0)}", fixture=data.get("fixture"),
        wire_captures=wire_captures, combine_saveables=combine_saveables,
    )


def _check_id(path: str, data: Any, rule_id: Any) -> None:
    if not isinstance(rule_id, str) or not ID_RE.match(rule_id):
        raise _fail(path, data, f"id {rule_id!r} must be kebab-case")


def _since(path: str, data: Any) -> Release:
    try:
        return parse_release(str(data["since"]))
    except BadInput as error:
        raise _fail(path, data, str(error)) from None


def _targets_from(path: str, data: Any, since: Release) -> Release | None:
    if "targets_from" not in data:
        return None
    try:
        oldest = parse_release(str(data["targets_from"]))
    except BadInput as error:
        raise _fail(path, data, str(error)) from None
    if oldest >= since:
        raise _fail(path, data, f"targets_from {oldest} must be older than since {since}")
    return oldest


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
    targets_from = _targets_from(path, data, since)
    return ObjectGraphRule(
        id=rule_id, description=str(data["description"]).strip(), since=since, targets_from=targets_from, exact=bool(data["exact"]),
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
    rules: list[ObjectGraphRule] = []
    # Families and fragments (rewriter/rules/expand.py), as in graph rule files.
    expand_documents(documents, path, lambda document, row: rules.append(parse_object_graph_rule(document, path)))
    return rules


def builtin_object_graph_rules_dir() -> Path:
    from rewriter.rules.loader import builtin_rules_dir

    return builtin_rules_dir() / "object-graph"


def load_object_graph_rules(directory: Path | None = None) -> list[ObjectGraphRule]:
    """Every rule of rules/object-graph/*.yaml (or `directory`), by file then position in the file,
    as graph rules are (one ordering rule for every kind); ids are unique.

    Parsed once per process for a given set of files, as load_rules does (10 ms a conversion);
    a file that changes (size or mtime) is read again."""
    directory = directory or builtin_object_graph_rules_dir()
    return list(_load_object_graph_rules_cached(directory, directory.resolve(), yaml_files_stamp(directory)))


@functools.lru_cache(maxsize=8)
def _load_object_graph_rules_cached(directory: Path, resolved: Path, stamp: FilesStamp) -> tuple[ObjectGraphRule, ...]:
    """(`directory` as given names the files in rule sources; `resolved` keeps a relative one apart
    after a change of folder.)"""
    rules: dict[str, ObjectGraphRule] = {}
    for name, _, _ in stamp:
        path = directory / name
        for rule in parse_object_graph_rules_text(path.read_text("utf-8"), str(path)):
            if rule.id in rules:
                raise RuleFileError(f"{rule.source}: duplicate rule id {rule.id!r} (also {rules[rule.id].source})")
            rules[rule.id] = rule
    return tuple(rules.values())
