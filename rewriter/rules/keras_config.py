"""Keras-config rules: bring the Keras 2 configs inside a SavedModel to what an older Keras accepts.

A model saved by Keras 2 (TF 2.12-2.15's built-in Keras, or `tf_keras` with TF_USE_LEGACY_KERAS=1)
carries, per layer, a JSON *metadata* string: in keras_metadata.pb (SavedMetadata.nodes[].metadata)
and, for older writers, in SavedObject.user_object.metadata. TF 2.3's `tf.keras.models.load_model`
rebuilds every layer with `cls.from_config(config)`, i.e. `cls(**config)`; a key its `__init__` does
not take fails the whole load (TypeError "Keyword argument not understood"), a class it does not
know is revived as a generic layer. These rules say how a config of the newer Keras becomes one
the target's Keras rebuilds into the same layer.

They are object-graph rules (rules/object-graph/*.yaml, same id/description/since/exact/handles
story, rewrites before refusals) whose `match:` names Keras classes instead of a protobuf message:

    id: keras-global-pooling-keepdims
    description: why it is exact
    since: "2.6"                     # first release whose Keras writes/accepts it
    exact: true
    handles: {keras: [GlobalAveragePooling2D.keepdims]}    # Class.key, for the catalog
    match:
      keras_class: [GlobalAveragePooling1D, GlobalAveragePooling2D]   # class_name; "*" for any
      where:                                                # all must hold
        - {key: config.keepdims, equals: false}             # equals / in / not_in / present / type
        - {not: {...}} / {any: [...]} / {all: [...]}
    rewrite:                         # or `refuse: "message"` (names the layer and the key)
      drop_keys: [config.keepdims]                 # remove keys (dotted paths into the object)
      rename_keys: {config.num_tokens: max_tokens} # rename the last part of a path, keep the value
      set: {config.output_mode: binary}            # set (or add) a value
      set_class_name: Model                        # rename the class
      replace_with: config.name                    # replace the whole object by one of its values
      warn: "recorded in the report's notes whenever the rule applies ({target}, {classes})"

A path is dotted keys; in conditions and drop_keys a part may also be `*` (every element of a list
or every value of an object) or a list index (`0`, `3`): `inbound_nodes.*.*.3.use_causal_mask` is
the call argument `use_causal_mask` of every input of every call of a layer in a functional
model's config (each input is `[layer, node, tensor, kwargs]`). A wildcard condition holds when it
holds at *every* place the wildcards reach (`present: false`: at none; `not: {present: false}`: at
some); drop_keys drops the key at every place.

A *Keras object* is every JSON object with a string `class_name` and a `config` key, at any depth
of a metadata string: the layer's own metadata (whose top level also has `name`, `dtype`,
`build_input_shape`, ...), the configs of the layers a Sequential or functional model lists,
nested layers (Bidirectional, TimeDistributed, RNN cells), initializers, regularizers,
constraints, dtype policies, InputSpecs. Paths are relative to that object: `config.keepdims`,
`module`, `registered_name`. Objects are visited innermost first, so a rule on a layer sees its
initializers already rewritten. A metadata string no rule changes keeps its exact bytes; a changed
one is written back with `json.dumps` (the format Keras writes and json.loads reads back).
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any, Callable

JSON_TYPES: dict[str, Any] = {"null": type(None), "bool": bool, "number": (int, float), "string": str, "list": list,
              "object": dict}
VALUE_TESTS = ("equals", "in", "not_in", "present", "type")
ACTIONS = ("drop_keys", "rename_keys", "set", "set_class_name", "replace_with")


class KerasRuleError(ValueError):
    """A malformed keras rule; the caller adds the file and line."""


@dataclass(frozen=True)
class KerasMatch:
    classes: tuple[str, ...]  # "*" matches any class
    where: tuple[Any, ...]


@dataclass(frozen=True)
class KerasRewrite:
    drop_keys: tuple[str, ...] = ()
    rename_keys: tuple[tuple[str, str], ...] = ()
    set: tuple[tuple[str, Any], ...] = ()
    set_class_name: str | None = None
    replace_with: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.drop_keys or self.rename_keys or self.set or self.set_class_name or self.replace_with)


# --- parsing -------------------------------------------------------------------------------
def _check_keys(mapping: Any, allowed: set[str], what: str) -> None:
    if not isinstance(mapping, dict):
        raise KerasRuleError(f"{what} must be a mapping")
    unknown = set(mapping) - allowed
    if unknown:
        raise KerasRuleError(f"{what}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


def parse_condition(cond: Any) -> Any:
    if not isinstance(cond, dict) or not cond:
        raise KerasRuleError("a condition must be a mapping")
    if "not" in cond:
        _check_keys(cond, {"not"}, "not")
        return {"not": parse_condition(cond["not"])}
    for combinator in ("any", "all"):
        if combinator in cond:
            _check_keys(cond, {combinator}, combinator)
            if not isinstance(cond[combinator], list) or not cond[combinator]:
                raise KerasRuleError(f"{combinator} takes a non-empty list of conditions")
            return {combinator: [parse_condition(c) for c in cond[combinator]]}
    _check_keys(cond, {"key", *VALUE_TESTS}, "condition")
    if not isinstance(cond.get("key"), str) or not cond["key"]:
        raise KerasRuleError("a condition names a `key:` (a dotted path into the Keras object)")
    tests = [t for t in VALUE_TESTS if t in cond]
    if len(tests) != 1:
        raise KerasRuleError(f"a key condition takes exactly one of {list(VALUE_TESTS)}")
    test = tests[0]
    if test in ("in", "not_in") and not isinstance(cond[test], list):
        raise KerasRuleError(f"{test} takes a list")
    if test == "present" and not isinstance(cond[test], bool):
        raise KerasRuleError("present takes true or false")
    if test == "type" and (not isinstance(cond[test], str) or cond[test] not in JSON_TYPES):
        raise KerasRuleError(f"type takes one of {sorted(JSON_TYPES)}")
    return dict(cond)


def parse_match(match: Any) -> KerasMatch:
    _check_keys(match, {"keras_class", "where"}, "match")
    classes = match.get("keras_class")
    if isinstance(classes, str):
        classes = [classes]
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) and c for c in classes):
        raise KerasRuleError("keras_class takes a class name or a list of them (\"*\" for any)")
    where = match.get("where", [])
    if not isinstance(where, list):
        raise KerasRuleError("where is a list of conditions")
    return KerasMatch(tuple(classes), tuple(parse_condition(c) for c in where))


def parse_rewrite(rewrite: dict[str, Any]) -> KerasRewrite:
    def paths(name: str) -> tuple[str, ...]:
        value = rewrite.get(name, [])
        if not isinstance(value, list) or not all(isinstance(p, str) and p for p in value):
            raise KerasRuleError(f"{name} takes a list of dotted paths")
        return tuple(value)

    def pairs(name: str) -> tuple[tuple[str, Any], ...]:
        value = rewrite.get(name, {})
        if not isinstance(value, dict):
            raise KerasRuleError(f"{name} takes a mapping of dotted path -> value")
        return tuple((str(k), v) for k, v in value.items())

    for name in ("rename_keys", "set"):
        for path, _ in pairs(name):
            if WILDCARD in path.split("."):
                raise KerasRuleError(f"{name}: {path}: a `*` path part is for conditions and drop_keys only")
    if rewrite.get("replace_with") and WILDCARD in str(rewrite["replace_with"]).split("."):
        raise KerasRuleError("replace_with: a `*` path part is for conditions and drop_keys only")
    renames = pairs("rename_keys")
    for path, new in renames:
        if not isinstance(new, str) or not new or "." in new:
            raise KerasRuleError(f"rename_keys: {path} -> {new!r}: the new name is one key, not a path")
    for name in ("set_class_name", "replace_with"):
        if name in rewrite and (not isinstance(rewrite[name], str) or not rewrite[name]):
            raise KerasRuleError(f"{name} takes a string")
    return KerasRewrite(drop_keys=paths("drop_keys"), rename_keys=renames, set=pairs("set"),
                        set_class_name=rewrite.get("set_class_name"), replace_with=rewrite.get("replace_with"))


# --- evaluating ----------------------------------------------------------------------------
_MISSING = object()


WILDCARD = "*"


def _step(obj: Any, part: str) -> list[Any]:
    """The values one path part reaches from obj: `*` every element/value, a number a list index."""
    if part == WILDCARD:
        if isinstance(obj, dict):
            return list(obj.values())
        return list(obj) if isinstance(obj, list) else [_MISSING]
    if isinstance(obj, dict):
        return [obj[part]] if part in obj else [_MISSING]
    if isinstance(obj, list) and part.isdigit():
        return [obj[int(part)]] if int(part) < len(obj) else [_MISSING]
    return [_MISSING]


def get_values(obj: Any, dotted: str) -> list[Any]:
    """Every value a (possibly wildcard) path reaches; _MISSING where it reaches nothing. A
    wildcard over an empty list reaches nothing: [_MISSING]."""
    values = [obj]
    for part in dotted.split("."):
        values = [v for value in values for v in (_step(value, part) if value is not _MISSING else [_MISSING])]
    return values or [_MISSING]


def get_path(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return _MISSING
        obj = obj[part]
    return obj


def _parents(obj: Any, dotted: str) -> list[tuple[dict[str, Any], str]]:
    """(holder, key) of every place a (possibly wildcard) path names, for dropping."""
    parts = dotted.split(".")
    holders = [obj]
    for part in parts[:-1]:
        holders = [v for h in holders for v in _step(h, part) if v is not _MISSING]
    return [(h, parts[-1]) for h in holders if isinstance(h, dict)]


def _parent(obj: Any, dotted: str, create: bool = False) -> tuple[dict[str, Any], str] | None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        if not isinstance(obj, dict):
            return None
        if part not in obj:
            if not create:
                return None
            obj[part] = {}
        obj = obj[part]
    return (obj, parts[-1]) if isinstance(obj, dict) else None


def _same(a: Any, b: Any) -> bool:
    # JSON equality without Python's True == 1: a rule saying `equals: false` must not match 0.
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else bool(a == b)


def holds(cond: Any, obj: dict[str, Any]) -> bool:
    if "not" in cond:
        return not holds(cond["not"], obj)
    if "any" in cond:
        return any(holds(c, obj) for c in cond["any"])
    if "all" in cond:
        return all(holds(c, obj) for c in cond["all"])
    values = get_values(obj, cond["key"])
    if "present" in cond:
        return all((value is not _MISSING) == cond["present"] for value in values)
    return all(value is not _MISSING and _test(cond, value) for value in values)


def _test(cond: Any, value: Any) -> bool:
    if "equals" in cond:
        return _same(value, cond["equals"])
    if "in" in cond:
        return any(_same(value, v) for v in cond["in"])
    if "not_in" in cond:
        return not any(_same(value, v) for v in cond["not_in"])
    wanted = JSON_TYPES[cond["type"]]
    return isinstance(value, wanted) and not (cond["type"] == "number" and isinstance(value, bool))


def matches(match: KerasMatch, obj: dict[str, Any]) -> bool:
    if "*" not in match.classes and obj.get("class_name") not in match.classes:
        return False
    return all(holds(c, obj) for c in match.where)


def is_keras_object(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("class_name"), str) and "config" in value


def apply_rewrite(rewrite: KerasRewrite, obj: dict[str, Any]) -> tuple[Any, list[str]]:
    """Apply one rewrite to a Keras object; return the new value (the same dict unless
    replace_with) and what changed, for the report."""
    changes: list[str] = []
    for path in rewrite.drop_keys:
        dropped = 0
        for holder, key in _parents(obj, path):
            if key in holder:
                del holder[key]
                dropped += 1
        if dropped:
            changes.append(f"dropped {path}" + (f" ({dropped} places)" if dropped > 1 else ""))
    for path, new in rewrite.rename_keys:
        found = _parent(obj, path)
        if found is not None and found[1] in found[0]:
            holder, old = found
            # Keep the key's position: configs are read by name, but stable bytes are easier to diff.
            items = [(new if k == old else k, v) for k, v in holder.items()]
            holder.clear()
            holder.update(items)
            changes.append(f"renamed {path} to {new}")
    for path, value in rewrite.set:
        found = _parent(obj, path, create=True)
        if found is not None and (found[1] not in found[0] or not _same(found[0][found[1]], value)):
            # A copy: the rule's value is shared by every object it is set on, and by every
            # conversion in the process (the rules are parsed once); a later rule may edit it here.
            found[0][found[1]] = copy.deepcopy(value)
            changes.append(f"set {path} = {json.dumps(value)}")
    if rewrite.set_class_name is not None and obj.get("class_name") != rewrite.set_class_name:
        changes.append(f"class_name {obj.get('class_name')} -> {rewrite.set_class_name}")
        obj["class_name"] = rewrite.set_class_name
    if rewrite.replace_with is not None:
        value = get_path(obj, rewrite.replace_with)
        if value is not _MISSING:
            changes.append(f"replaced by its {rewrite.replace_with} ({json.dumps(value)})")
            return value, changes
    return obj, changes


Visitor = Callable[[str, dict[str, Any]], Any]


def transform(value: Any, visit: Visitor, path: str = "") -> Any:
    """Walk a decoded metadata value innermost first; `visit(path, keras_object)` returns the
    object's replacement (itself when unchanged)."""
    if isinstance(value, dict):
        for key in list(value):
            value[key] = transform(value[key], visit, f"{path}.{key}" if path else key)
        if is_keras_object(value):
            return visit(path or "<top>", value)
        return value
    if isinstance(value, list):
        return [transform(item, visit, f"{path}[{i}]") for i, item in enumerate(value)]
    return value


def decode(text: str) -> Any:
    return json.loads(text)


def encode(value: Any) -> str:
    # json.dumps' defaults are what Keras' json_utils.Encoder writes (", " and ": " separators,
    # ASCII escapes, NaN/Infinity as Python's json spells them).
    return json.dumps(value)
