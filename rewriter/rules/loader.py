"""Reading rules/*.yaml into checked Rule objects. A malformed rule fails with its file and line.

The rule format (docs/writing-rules.md has the full guide):

    id: disable-copy-on-read            # unique, kebab-case
    description: why the rewrite is exact
    since: "2.10"                       # first release with what it handles; applies when --to is older
    exact: true                         # false: lossy, applied only with --allow-lossy ID
    # or exactness: exact | narrowing | lossy; narrowing (same values wherever the output runs, a
    # loud error on some inputs) needs fails_on: "which inputs fail, and how"; it applies by
    # default with a warning, and --strict refuses it
    handles: {ops: [DisableCopyOnRead], attrs: ["VarHandleOp.debug_name"],
              types: ["AddV2.T:DT_UINT32"]}  # a type an attr's allowed list gained (docs/coverage.md)
                                        # or types: {ops: [A, B], attr: T, in: [DT_X, DT_Y]}
    match:
      nodes:                            # the first node is the root; the others hang off its inputs
        rng:  {op: StatelessRandomUniformV2, inputs: {1: "kc:0", 2: "kc:1"}}   # input 1 reads kc:0
        kc:   {op: [StatelessRandomGetKeyCounter, StatelessRandomGetKeyCounterAlg]}  # any of these
        # a pattern node reached on several paths binds only if every path reaches the same node
        # (rules/stateless-rng.yaml's *-philox rules meet one mix node and one seed Cast this way)
        # (the examples below also name a `node`: one rule has one set of names)
      where:                            # conditions, all must hold
        - {attr: rng.dtype, in: [DT_FLOAT, DT_DOUBLE]}
        - {attr: node.debug_name, present: true}
        - {const: "rng.input[3]", in: [1, 3]}     # the input is a Const node holding 1 or 3
        - {const: "node.input[1]", range: [0, 2147483647]}   # every element of it within [lo, hi]
        - {attr: node.N, range: [1, 4]}
        - {attr: node.strides, length: 4}        # a list attr (or const) with 4 elements
        - {const: "node.input[1]", distinct: 1}  # a scalar, or a list of equal numbers
        - {attr: "node.explicit_paddings[0]", equals: 0}   # one element of a list attr
        - {compare: ["node.explicit_paddings[2]", "<", "node.ksize[1]"]}  # numbers or attr (elements):
                                                 # <, <=, ==, !=, >, >=; false if a side is missing
        - {producer: "rng.input[3]", in: ["StatelessRandomGetAlg", "StatelessRandomGetKeyCounterAlg:2"]}
                                                 # the input comes from one of these ops (and output)
        - {shape: "node.input[1]", dim: 2, equals: 1}  # the static shape TF recorded at save time
                                                 # (_output_shapes, arg shapes, Const values; sizes
                                                 # -1 if unknown) of the tensor an input reads;
                                                 # without dim: the list of sizes. Holds only
                                                 # where a shape was recorded.
        - {shape: "rng:0", ends_with: "rng.input[0]"}  # ... or of a node's own output: its last sizes
                                                 # are the values of that Const input, or of a list
                                                 # like [-1, 4] (-1: a size TF recorded as unknown)
        - {unused: kc}                           # no node or return value reads any output of kc
        - {same: [rng.Tshape, kc.Tseed]}         # (quote n.input[i] inside {...}: YAML reads [ ] there)
        - {scope: graph}                         # where the match is: graph (a MetaGraph's GraphDef)
                                                 # or function (a FunctionDef of its library)
        - {returned: node}                       # every reader of node's outputs is a return value of
                                                 # its function, directly or through Identity nodes
        - {readers: node, in: [StatefulPartitionedCall, PartitionedCall]}
                                                 # every node reading node's outputs has one of these ops
                                                 # (and there is one; a function return is "_Retval")
        - {axis_size: "node.input[0]", axis: "node.input[1]", range: [1, 32768]}
                                                 # the recorded size along the axis a Const input holds
        - {any: [...]} / {all: [...]} / {not: {...}}
        (each kind is one class in rewriter/rules/conditions.py; families and fragments, which
        expand into such rules before they are checked, are in rewriter/rules/expand.py)
    rewrite:                            # or `refuse: "message for the user"`
      drop_attrs: [node.debug_name]
      set_attrs: {"node.attr": value}
      set_attrs: {"node.shared_name": {format: "table/{scope}/{node}"}}
                                        # a string built from the scope's name (the function's, or
                                        # the graph's tags) and the matched root node's name: unique
                                        # per node and the same on every run; also for new nodes' attrs
      nodes:                            # new nodes, named <root>/<key> in the graph
        uniform:
          op: StatelessRandomUniform
          inputs: ["rng.input[0]", "kc.input[0]"] # or "uniform2:0" (a new node's output), "rng:1"
          attrs: {dtype: {copy: rng.dtype}, T: {copy: rng.Tshape}, Tseed: DT_INT64}
                                        # {copy: n.attr, default: v}: the matched node's value
                                        # {copy: n.ksize, permute: [0, 2, 3, 1]}: a list attr's
                                        # elements in a new order (element i is old element p[i];
                                        # k per dimension move as groups of k, as explicit_paddings'
                                        # pairs; an empty list stays empty)
                                        # {copy: n.explicit_paddings, if_present: true}: written only
                                        # where the matched node's op has that attr (one family for
                                        # Conv2D, which has it, and Conv3D, which has not)
        one: {const: {dtype: DT_INT32, value: 1}}   # a Const node (shape: [...] optional)
        pads: {const: {dtype: DT_INT64, value: {copy: node.explicit_paddings}, shape: [4, 2]}}
                                        # its value from a matched node's attr, reshaped
        low: {const: {dtype: {copy: node.T}, value: {limit: lowest}}}   # the dtype's lowest
                                        # finite value (highest: the largest), in a copied dtype
        k: {const: {dtype: DT_INT32, value: {copy: node.k}}}   # a Const of a matched node's attr
      retype: {node: Case}              # change a matched node's op in place (same inputs, attrs
                                        # and output arg names; the engine checks the names)
      inputs: {"node.input[1]": "cast:0"}   # a kept matched node now reads another tensor
      outputs: {"rng:0": "uniform:0"}   # every consumer of rng:0 now reads uniform:0
      remove: [rng]                     # control dependencies through removed nodes are kept
      remove_if_unused: [kc]

Inside a rewrite, matched nodes are retyped first (so set_attrs can name the new op's attrs),
then attrs are dropped and set, new nodes are added, then `inputs` and `outputs` are rewired (a new
node that reads the very output being rewired keeps reading it), then nodes are removed.
Refusal rules (`refuse:`) run after every rewrite has reached its fixpoint, so they only see
what no rule could rewrite.
"""
from __future__ import annotations

import functools
import re
import string
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from rewriter.rules import repeat as rule_repeat
from rewriter.savedmodel.attr_values import AttrConversionError, tensor_from_plain, type_enum
from rewriter.errors import RuleFileError
from rewriter.targets.releases import Release, parse_release
from rewriter.rules.conditions import (  # noqa: F401  (the reference syntax, re-exported)
    ATTR_ELEMENT_REF_RE, ATTR_REF_RE, INPUT_REF_RE, NAME_RE, OUTPUT_REF_RE, Condition, parse_condition,
)
from rewriter.rules.expand import expand_documents

ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# handles.types: "Op.attr:DT_TYPE", a type that attr's allowed list gained after 2.3
TYPE_HANDLE_RE = re.compile(r"^[A-Za-z_]\w*\.[A-Za-z_]\w*:(DT_[A-Z0-9_]+|ANY)$")  # ANY: the list was lifted
CONST_LIMITS = ("lowest", "highest")  # value: {limit: lowest}: the dtype's lowest finite value
# {format: "..."} attr values may name these: the scope's name and the matched root node's name
FORMAT_FIELDS = frozenset({"scope", "node"})


class _LineLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """SafeLoader whose mappings remember the line they start on (libyaml's when PyYAML has it:
    the pure-Python scanner took 8 of the 10 s of `check` on the bundled example)."""


class LineDict(dict):
    line: int = 0


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


# --- the checked model of a rule ----------------------------------------------------------
@dataclass(frozen=True)
class NodePattern:
    name: str
    ops: tuple[str, ...]
    inputs: tuple[tuple[int, str, int], ...]  # (input index, pattern node, output index)


@dataclass(frozen=True)
class NewNode:
    key: str
    op: str
    inputs: tuple[str, ...]
    attrs: tuple[tuple[str, Any], ...]  # attr name -> plain value or {"copy": "n.attr", "default": v}


@dataclass(frozen=True)
class Rewrite:
    drop_attrs: tuple[tuple[str, str], ...] = ()
    set_attrs: tuple[tuple[str, str, Any], ...] = ()
    nodes: tuple[NewNode, ...] = ()
    outputs: tuple[tuple[str, int, str], ...] = ()  # (pattern node, output index, new ref)
    remove: tuple[str, ...] = ()
    remove_if_unused: tuple[str, ...] = ()
    retype: tuple[tuple[str, str], ...] = ()  # (pattern node, new op)
    inputs: tuple[tuple[str, int, str], ...] = ()  # (pattern node, input index, new ref)

    @property
    def written_ops(self) -> tuple[str, ...]:
        """The ops the rewrite writes (its new nodes' and its retypes'): a target lacking one
        cannot take it."""
        return tuple(dict.fromkeys([new.op for new in self.nodes] + [op for _, op in self.retype]))


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    since: Release
    exact: bool
    handles_ops: tuple[str, ...]
    handles_attrs: tuple[str, ...]
    patterns: tuple[NodePattern, ...]
    where: tuple[Condition, ...]
    rewrite: Rewrite | None
    refuse: str | None
    source: str  # "rules/x.yaml:12"
    notes: str = ""
    fixture: str | None = None
    handles_types: tuple[str, ...] = ()
    exactness: str = "exact"  # one of EXACTNESS; `exact` is False only for lossy
    fails_on: str | None = None  # a narrowing rule: the inputs on which the output fails loudly
    extra: dict = field(default_factory=dict, compare=False)
    # The oldest target the rule holds for (`targets_from:`), when its proof needs a runtime
    # feature older targets lack; None: every target older than `since`.
    targets_from: Release | None = None

    @property
    def root(self) -> NodePattern:
        return self.patterns[0]

    @functools.cached_property
    def pattern_by_name(self) -> dict[str, NodePattern]:
        """The match's node patterns by name (the matcher follows inputs by name, per candidate)."""
        return {p.name: p for p in self.patterns}

    def applies_to(self, target: Release) -> bool:
        return target < self.since and (self.targets_from is None or target >= self.targets_from)


# --- checking ------------------------------------------------------------------------------
class _Checker:
    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, where: Any, message: str) -> RuleFileError:
        line = getattr(where, "line", 0) if where is not None else 0
        return RuleFileError(f"{self.path}:{line}: {message}")

    def keys(self, mapping: Any, allowed: set[str], required: set[str], what: str) -> None:
        if not isinstance(mapping, dict):
            raise self.fail(mapping, f"{what} must be a mapping")
        unknown = set(mapping) - allowed
        if unknown:
            raise self.fail(mapping, f"{what}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        missing = required - set(mapping)
        if missing:
            raise self.fail(mapping, f"{what}: missing key(s) {sorted(missing)}")


def _mapping(checker: _Checker, parent: Any, value: Any, what: str, shape: str) -> dict[Any, Any]:
    """A mapping of the rule (None: empty); anything else fails naming its `shape`."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise checker.fail(parent, f"{what} must map {shape}")
    return value


def _str_list(checker: _Checker, parent: Any, value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise checker.fail(parent, f"{what} must be a list of strings")
    return tuple(value)


def _attr_ref(checker: _Checker, where: Any, ref: Any, names: set[str], element: bool = False) -> tuple[str, str]:
    match = (ATTR_ELEMENT_REF_RE if element else ATTR_REF_RE).match(str(ref))
    if not match or match.group("node") not in names:
        shape = "<matched node>.<attr> or <matched node>.<attr>[k]" if element else "<matched node>.<attr>"
        raise checker.fail(where, f"{ref!r} must be {shape}, with a node named in match.nodes")
    return match.group("node"), match.group("attr")


def _parse_patterns(checker: _Checker, match: Any) -> tuple[NodePattern, ...]:
    checker.keys(match, {"nodes", "where", "counts"}, {"nodes"}, "match")
    nodes = match["nodes"]
    if not isinstance(nodes, dict) or not nodes:
        raise checker.fail(match, "match.nodes must map names to node patterns")
    names = set(nodes)
    patterns = []
    for name, spec in nodes.items():
        if not NAME_RE.match(str(name)):
            raise checker.fail(nodes, f"pattern node name {name!r} must be an identifier")
        checker.keys(spec, {"op", "inputs"}, {"op"}, f"match.nodes.{name}")
        ops = _str_list(checker, spec, spec["op"], f"match.nodes.{name}.op")
        inputs = []
        for index, ref in _mapping(checker, spec, spec.get("inputs"), f"match.nodes.{name}.inputs",
                                   "input indexes to other nodes' outputs, like {0: other_node:0}").items():
            out = OUTPUT_REF_RE.match(str(ref))
            if not isinstance(index, int) or not out or out.group("node") not in names or out.group("node") == name:
                raise checker.fail(spec, f"match.nodes.{name}.inputs: write INDEX: other_node:OUTPUT, got {index}: {ref}")
            inputs.append((index, out.group("node"), int(out.group("index"))))
        patterns.append(NodePattern(str(name), ops, tuple(sorted(inputs))))
    # Every node must be reachable from the root through inputs: matching walks that way.
    reached, frontier = {patterns[0].name}, [patterns[0]]
    by_name = {p.name: p for p in patterns}
    while frontier:
        pattern = frontier.pop()
        for _, other, _ in pattern.inputs:
            if other not in reached:
                reached.add(other)
                frontier.append(by_name[other])
    if reached != names:
        raise checker.fail(match, f"match.nodes {sorted(names - reached)} are not reached from the first node {patterns[0].name!r} through inputs")
    return tuple(patterns)


def _check_ref(checker: _Checker, where: Any, ref: Any, names: set[str], new: set[str]) -> str:
    text = str(ref)
    match = INPUT_REF_RE.match(text) or OUTPUT_REF_RE.match(text)
    if not match or (match.group("node") not in names and match.group("node") not in new):
        raise checker.fail(where, f"{text!r} must be n.input[I] or n:O, naming a matched or new node")
    return text


REWRITE_KEYS = {"drop_attrs", "set_attrs", "nodes", "outputs", "remove", "remove_if_unused", "retype", "inputs"}


def _parse_rewrite(checker: _Checker, spec: Any, names: set[str]) -> Rewrite:
    checker.keys(spec, REWRITE_KEYS, set(), "rewrite")
    if not spec:
        raise checker.fail(spec, "rewrite: says nothing to do")
    new_specs = spec.get("nodes") or {}
    if not isinstance(new_specs, dict):
        raise checker.fail(spec, "rewrite.nodes must map names to new nodes")
    new_names = set(new_specs)
    clash = new_names & names
    if clash:
        raise checker.fail(spec, f"rewrite.nodes reuse matched names {sorted(clash)}")
    drop = tuple(_attr_ref(checker, spec, ref, names) for ref in _str_list(checker, spec, spec.get("drop_attrs"), "drop_attrs"))
    set_attrs = []
    for ref, value in _mapping(checker, spec, spec.get("set_attrs"), "set_attrs", "matched_node.attr to values").items():
        node, attr = _attr_ref(checker, spec, ref, names)
        _check_format(checker, spec, value, f"set_attrs {ref}")
        set_attrs.append((node, attr, value))
    new_nodes = []
    for key, node_spec in new_specs.items():
        if not NAME_RE.match(str(key)):
            raise checker.fail(new_specs, f"new node name {key!r} must be an identifier")
        if isinstance(node_spec, dict) and "const" in node_spec:
            checker.keys(node_spec, {"const"}, {"const"}, f"rewrite.nodes.{key}")
            new_nodes.append(_parse_const_node(checker, str(key), node_spec["const"], names))
            continue
        checker.keys(node_spec, {"op", "inputs", "attrs"}, {"op"}, f"rewrite.nodes.{key}")
        input_refs = node_spec.get("inputs") or []
        if not isinstance(input_refs, list):
            raise checker.fail(node_spec, f"rewrite.nodes.{key}.inputs must be a list of n.input[I] or n:O")
        inputs = tuple(_check_ref(checker, node_spec, ref, names, new_names) for ref in input_refs)
        attrs = node_spec.get("attrs") or {}
        if not isinstance(attrs, dict):
            raise checker.fail(node_spec, f"rewrite.nodes.{key}.attrs must be a mapping")
        for attr_name, value in attrs.items():
            if isinstance(value, dict) and "copy" in value:
                checker.keys(value, {"copy", "default", "permute", "if_present"}, {"copy"}, f"rewrite.nodes.{key}.attrs copy")
                _attr_ref(checker, value, value["copy"], names, element=True)  # n.attr or n.attr[k]
                permute = value.get("permute")
                if permute is not None and (not isinstance(permute, list) or sorted(permute) != list(range(len(permute)))):
                    raise checker.fail(value, f"rewrite.nodes.{key}.attrs.{attr_name}.permute must list 0 ... n-1 "
                                              f"in the new order, got {permute!r}")
            _check_format(checker, node_spec, value, f"rewrite.nodes.{key}.attrs.{attr_name}")
        new_nodes.append(NewNode(str(key), str(node_spec["op"]), inputs, tuple(attrs.items())))
    outputs = []
    for source, target in _mapping(checker, spec, spec.get("outputs"), "rewrite.outputs",
                                   "matched_node:OUTPUT to what replaces it").items():
        out = OUTPUT_REF_RE.match(str(source))
        if not out or out.group("node") not in names:
            raise checker.fail(spec, f"rewrite.outputs key {source!r} must be matched_node:OUTPUT")
        outputs.append((out.group("node"), int(out.group("index")), _check_ref(checker, spec, target, names, new_names)))
    remove = _str_list(checker, spec, spec.get("remove"), "remove")
    unused = _str_list(checker, spec, spec.get("remove_if_unused"), "remove_if_unused")
    for name in remove + unused:
        if name not in names:
            raise checker.fail(spec, f"remove: {name!r} is not a matched node")
    retype = []
    for name, op in _mapping(checker, spec, spec.get("retype"), "retype", "matched_node: NewOp").items():
        if name not in names or not isinstance(op, str) or not NAME_RE.match(op):
            raise checker.fail(spec, f"retype: write matched_node: NewOp, got {name}: {op}")
        if name in remove:
            raise checker.fail(spec, f"retype: {name!r} is also removed")
        retype.append((str(name), op))
    rewired = []
    for source, target in _mapping(checker, spec, spec.get("inputs"), "rewrite.inputs",
                                   "matched_node.input[I] to what it reads instead").items():
        match = INPUT_REF_RE.match(str(source))
        if not match or match.group("node") not in names:
            raise checker.fail(spec, f"rewrite.inputs key {source!r} must be matched_node.input[I]")
        if match.group("node") in remove:
            raise checker.fail(spec, f"rewrite.inputs: {match.group('node')!r} is removed, its inputs do not matter")
        rewired.append((match.group("node"), int(match.group("index")), _check_ref(checker, spec, target, names, new_names)))
    return Rewrite(drop, tuple(set_attrs), tuple(new_nodes), tuple(outputs), remove, unused, tuple(retype), tuple(rewired))


def _parse_const_node(checker: _Checker, key: str, value: Any, names: set[str]) -> NewNode:
    """A `const:` new node. Its dtype may be {copy: n.attr} (a type attr of a matched node) and its
    value {copy: n.attr} (a matched node's attr value) or {limit: lowest|highest} (the dtype's
    finite extreme); such a tensor is built when the rule applies, any other when it loads."""
    what = f"rewrite.nodes.{key}.const"
    checker.keys(value, {"dtype", "value", "shape"}, {"dtype", "value"}, what)
    dtype, content, shape = value["dtype"], value["value"], value.get("shape")
    deferred = False
    if isinstance(dtype, dict):
        checker.keys(dtype, {"copy"}, {"copy"}, f"{what}.dtype")
        _attr_ref(checker, dtype, dtype["copy"], names)
        deferred = True
    if isinstance(content, dict):
        checker.keys(content, {"copy", "limit"}, set(), f"{what}.value")
        if len(content) != 1:
            raise checker.fail(content, f"{what}.value: write {{copy: n.attr}} or {{limit: lowest}}")
        if "copy" in content:
            _attr_ref(checker, content, content["copy"], names)
        elif content["limit"] not in CONST_LIMITS:
            raise checker.fail(content, f"{what}.value: limit must be one of {list(CONST_LIMITS)}")
        deferred = True
    if shape is not None and (not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape)):
        raise checker.fail(value, f"{what}: shape must be a list of whole numbers")
    if deferred:
        if not isinstance(dtype, dict):
            try:
                type_enum(str(dtype))
            except AttrConversionError as error:
                raise checker.fail(value, f"{what}: {error}") from None
        spec = _ConstSpec(dtype, content, tuple(shape) if shape is not None else None)
        return NewNode(key, "Const", (), (("dtype", dtype), ("value", spec)))
    try:
        tensor = tensor_from_plain(dict(value))
    except (AttrConversionError, TypeError, ValueError) as error:  # (numpy's, for a value of another shape or type)
        raise checker.fail(value, f"{what}: {error}") from None
    return NewNode(key, "Const", (), (("dtype", str(dtype)), ("value", _TensorAttr(tensor))))


@dataclass(frozen=True)
class _ConstSpec:
    """A const node's tensor that depends on the match: built by the engine when the rule applies."""

    dtype: Any  # "DT_INT64" or {"copy": "n.attr"}
    value: Any  # a plain value, {"copy": "n.attr"} or {"limit": "lowest" | "highest"}
    shape: tuple[int, ...] | None

    def __hash__(self) -> int:  # the fields hold dicts
        return hash(repr(self))


def _check_format(checker: _Checker, where: Any, value: Any, what: str) -> None:
    """A {format: "..."} value names only FORMAT_FIELDS, as {scope} / {node}."""
    if not (isinstance(value, dict) and "format" in value):
        return
    checker.keys(value, {"format"}, {"format"}, f"{what} format")
    template = value["format"]
    if not isinstance(template, str) or not template:
        raise checker.fail(where, f"{what}: format needs a non-empty string")
    try:
        fields = {name for _, name, spec, conv in string.Formatter().parse(template) if name is not None}
        bad = [name for _, name, spec, conv in string.Formatter().parse(template)
               if name is not None and (name not in FORMAT_FIELDS or spec or conv)]
    except ValueError as error:
        raise checker.fail(where, f"{what}: format {template!r}: {error}") from None
    if bad or not fields:
        raise checker.fail(where, f"{what}: format {template!r} may only use {{scope}} and {{node}}, and needs one")


class _TensorAttr:
    """A tensor attr value built when the rule was loaded (the `const:` shorthand)."""

    def __init__(self, tensor: Any) -> None:
        self.tensor = tensor

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _TensorAttr) and self.tensor == other.tensor

    def __hash__(self) -> int:
        return hash(self.tensor.SerializeToString())


TOP_KEYS = {"id", "description", "since", "targets_from", "exact", "exactness", "fails_on", "handles", "match",
            "rewrite", "refuse", "notes", "fixture"}
# exact: the same values everywhere; narrowing: the same values wherever the output runs, and a loud
# error on the inputs `fails_on` names (applied by default with a warning, refused by --strict);
# lossy: other values (applied only with --allow-lossy ID).
EXACTNESS = ("exact", "narrowing", "lossy")


def parse_rule(data: Any, path: str) -> Rule:
    checker = _Checker(path)
    checker.keys(data, TOP_KEYS, {"id", "description", "since", "match"}, "rule")
    if not ID_RE.match(str(data["id"])):
        raise checker.fail(data, f"id {data['id']!r} must be kebab-case (a-z, 0-9, -)")
    try:
        since = parse_release(str(data["since"]))
    except Exception:
        raise checker.fail(data, f"since {data['since']!r} must be a release like \"2.10\"") from None
    targets_from = None
    if "targets_from" in data:
        try:
            targets_from = parse_release(str(data["targets_from"]))
        except Exception:
            raise checker.fail(data, f"targets_from {data['targets_from']!r} must be a release like \"2.3\"") from None
        if targets_from >= since:
            raise checker.fail(data, f"targets_from {targets_from} must be older than since {since}")
    if ("rewrite" in data) == ("refuse" in data):
        raise checker.fail(data, "a rule has exactly one of rewrite: or refuse:")
    exact = data.get("exact", True)
    if not isinstance(exact, bool):
        raise checker.fail(data, "exact must be true or false")
    if "exact" in data and "exactness" in data:
        raise checker.fail(data, "write exactness: (exact, narrowing or lossy) or exact: (true or false), not both")
    exactness = data.get("exactness", "exact" if exact else "lossy")
    if exactness not in EXACTNESS:
        raise checker.fail(data, f"exactness must be one of {', '.join(EXACTNESS)}, got {exactness!r}")
    fails_on = data.get("fails_on")
    if (exactness == "narrowing") != (fails_on is not None):
        raise checker.fail(data, "a narrowing rule names the inputs it fails on (fails_on: ...), and only it does")
    if fails_on is not None and not (isinstance(fails_on, str) and fails_on.strip()):
        raise checker.fail(data, "fails_on: must say which inputs fail, and how")
    if exactness != "exact" and "rewrite" not in data:
        raise checker.fail(data, f"a refusal has no exactness; {exactness} is for rewrites")
    handles = data.get("handles") or {}
    checker.keys(handles, {"ops", "attrs", "types"}, set(), "handles")
    types_spec = handles.get("types")
    if isinstance(types_spec, dict):  # {ops: [A, B], attr: T, in: [DT_X]}: every op with every type
        checker.keys(types_spec, {"ops", "attr", "in"}, {"ops", "attr", "in"}, "handles.types")
        ops = _str_list(checker, types_spec, types_spec["ops"], "handles.types.ops")
        kinds = _str_list(checker, types_spec, types_spec["in"], "handles.types.in")
        types_spec = [f"{op}.{types_spec['attr']}:{kind}" for op in ops for kind in kinds]
    handles_types = _str_list(checker, handles, types_spec, "handles.types")
    for entry in handles_types:
        if not TYPE_HANDLE_RE.match(entry):
            raise checker.fail(handles, f"handles.types: {entry!r} must be Op.attr:DT_TYPE")
    patterns = _parse_patterns(checker, data["match"])
    names = {p.name for p in patterns}
    where = data["match"].get("where") or []
    if not isinstance(where, list):
        raise checker.fail(data["match"], "match.where must be a list of conditions")
    conditions = tuple(parse_condition(checker, cond, names) for cond in where)
    # match.counts and repeated rewrite nodes: rewriter/rules/repeat.py expands the template
    extra: dict = {}
    rewrite: Rewrite | None = None
    if "counts" in data["match"]:
        extra["counts"] = rule_repeat.parse_counts(data["match"]["counts"], names, checker.fail)
    if "rewrite" in data and rule_repeat.uses_repetition(data["rewrite"]):
        if "counts" not in extra:
            raise checker.fail(data["rewrite"], "repeat/each/count in a rewrite need match.counts")
        extra["rewrite_template"] = data["rewrite"]
        rewrite = _parse_rewrite(checker, rule_repeat.expand(data["rewrite"], {n: 2 for n in extra["counts"]}, checker.fail), names)
    elif "rewrite" in data:
        rewrite = _parse_rewrite(checker, data["rewrite"], names)
    refuse = data.get("refuse")
    if refuse is not None and not (isinstance(refuse, str) and refuse.strip()):
        raise checker.fail(data, "refuse: must be a message for the user")
    # Without a `handles`, a rule handles the ops it matches; an attr-only `handles` names no op.
    handles_ops = _str_list(checker, handles, handles.get("ops"), "handles.ops")
    if not handles_ops and not handles.get("attrs") and not handles_types:
        handles_ops = tuple(op for p in patterns for op in p.ops)
    return Rule(
        id=str(data["id"]),
        description=" ".join(str(data["description"]).split()),
        since=since,
        exact=exactness != "lossy",
        handles_ops=handles_ops,
        handles_attrs=_str_list(checker, handles, handles.get("attrs"), "handles.attrs"),
        patterns=patterns,
        where=conditions,
        rewrite=rewrite,
        refuse=" ".join(refuse.split()) if refuse else None,
        source=f"{path}:{getattr(data, 'line', 1)}",
        notes=str(data.get("notes", "")),
        fixture=data.get("fixture"),
        handles_types=handles_types,
        exactness=exactness,
        fails_on=" ".join(fails_on.split()) if fails_on else None,
        extra=extra,
        targets_from=targets_from,
    )


def parse_expanded_rewrite(rule: Rule, counts: dict[str, int]) -> Rewrite:
    """A repeating rule's rewrite for the counts of one match (rewriter/rules/repeat.py)."""
    checker = _Checker(rule.source.rsplit(":", 1)[0])
    names = {p.name for p in rule.patterns}
    return _parse_rewrite(checker, rule_repeat.expand(rule.extra["rewrite_template"], counts, checker.fail), names)


def parse_rule_text(text: str, path: str) -> list[Rule]:
    """A rule file holds one rule, or several separated by `---`."""
    try:
        documents = [doc for doc in yaml.load_all(text, Loader=_LineLoader) if doc is not None]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        hint = ""
        if "'['" in problem:
            hint = ' (inside [...] or {...}, quote references: "n.input[2]")'
        raise RuleFileError(f"{path}:{line}: not valid YAML: {problem}{hint}") from None
    if not documents:
        raise RuleFileError(f"{path}:1: holds no rule")
    rules: list[Rule] = []

    def one(document: Any, row: dict[str, Any] | None) -> None:
        rule = parse_rule(document, path)
        if row is not None or document is not None:
            rule.extra["document"] = document  # `rules show` prints a family member expanded
            if row is not None:
                rule.extra["row"] = row
        rules.append(rule)

    expand_documents(documents, path, one)
    if not rules:
        raise RuleFileError(f"{path}:1: holds no rule")
    return rules


def builtin_rules_dir() -> Path:
    """The rules the package ships: rules/ of the source tree, which the wheel installs as the data
    package tfdowngrade_rules (an editable install maps that name back to rules/)."""
    import importlib.util

    spec = importlib.util.find_spec("tfdowngrade_rules")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        if Path(location).is_dir():
            return Path(location)
    return Path(str(resources.files("rewriter"))).parent / "rules"  # a source tree run without installing


def load_rules(directory: Path | None = None) -> list[Rule]:
    """Every rule of rules/*.yaml, sorted by file then position; ids must be unique.

    Parsed once per process for a given set of files (YAML parsing was most of a `check`); a
    file that changes (size or mtime) is read again.
    """
    directory = directory or builtin_rules_dir()
    if not directory.is_dir():
        raise RuleFileError(f"{directory}: the rules folder is missing")
    return list(_load_rules_cached(directory.resolve(), directory.name, yaml_files_stamp(directory)))


# (name, mtime in ns, size) of each rule file of a folder, by name
FilesStamp = tuple[tuple[str, int, int], ...]


def yaml_files_stamp(directory: Path) -> FilesStamp:
    """The *.yaml files of `directory` as a cache key: a parse cached under it is read again
    when a file is added, removed or changed (size or mtime). Object-graph rules use it too."""
    stamp = []
    for path in sorted(directory.glob("*.yaml")):
        stat = path.stat()
        stamp.append((path.name, stat.st_mtime_ns, stat.st_size))
    return tuple(stamp)


@functools.lru_cache(maxsize=8)
def _load_rules_cached(directory: Path, shown_dir: str, stamp: FilesStamp) -> tuple[Rule, ...]:
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for name, _, _ in stamp:
        shown = f"{shown_dir}/{name}"
        for rule in parse_rule_text((directory / name).read_text("utf-8"), shown):
            if rule.id in seen:
                raise RuleFileError(f"{rule.source}: rule id {rule.id!r} is used again (first at {seen[rule.id]})")
            seen[rule.id] = rule.source
            rules.append(rule)
    return tuple(rules)
