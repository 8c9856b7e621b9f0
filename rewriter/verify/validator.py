"""Checking every node against a release's real op registry, as that release's importer would.

This is our own check, used to plan and as a post-condition before anything is written. It is
not the judge of compatibility: the real target runtime is (rewriter/runtimes, rewriter/parity).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable, Iterator, Protocol, Sequence

from rewriter.protos import attr_value_pb2, node_def_pb2, op_def_pb2
from rewriter.protos.op_def_pb2 import OpDef

from rewriter.savedmodel.attr_values import type_name
from rewriter.savedmodel.node_reading import AttrReading, NodeKind, NodeKinds, NodeReading, read_attrs
from rewriter.findings import Finding
from rewriter.protos.node_def_pb2 import NodeDef
from rewriter.targets.registry import OpRegistry, first_release_with_attr, first_release_with_op, load_registry
from rewriter.targets.releases import Release, known_releases


class NodeScope(Protocol):
    """What the validator reads of a scope: a graph model (graph_model.Scope) or a scope read
    straight from its proto (model.ProtoScope)."""

    def where(self) -> str: ...

    def nodes(self) -> Iterator[tuple[str, NodeDef]]: ...

    def data_inputs(self, name: str) -> Sequence[tuple[object, str]]: ...


# AttrValue oneof field a plain OpDef attr type must use.
_FIELD_OF_TYPE = {
    "string": "s", "int": "i", "float": "f", "bool": "b", "type": "type",
    "shape": "shape", "tensor": "tensor", "func": "func",
}


def _since(release: Release | None) -> str | None:
    return str(release) if release is not None else None


def _first_release_allowing(op_name: str, attr_name: str, value: attr_value_pb2.AttrValue,
                            names: set[str]) -> Release | None:
    """The oldest shipped release whose OpDef takes this value of the attr (a dtype an older
    release's kernels did not have); None if none does. Asked only for a value the target rejects."""
    for release in known_releases():
        attr_def = load_registry(release).attr_def(op_name, attr_name)
        if attr_def is not None and _value_problem(value, attr_def, names) is None:
            return release
    return None


def _kind_problem(value: attr_value_pb2.AttrValue, attr_type: str) -> str | None:
    """The value holds another kind than the OpDef's attr type (a string where a type belongs)."""
    kind = value.WhichOneof("value")
    if kind == "placeholder":
        return None  # bound when the enclosing function is instantiated
    if attr_type.startswith("list("):
        if kind != "list":
            return f"should be a {attr_type}, holds a {kind}"
        inner = _FIELD_OF_TYPE[attr_type[5:-1]]
        others = [f for f in _FIELD_OF_TYPE.values() if f != inner and len(getattr(value.list, f))]
        if others:
            return f"should be a {attr_type}, holds list({others[0]})"
    elif kind != _FIELD_OF_TYPE[attr_type]:
        return f"should be a {attr_type}, holds {kind or 'nothing'}"
    return None


def _value_problem(value: attr_value_pb2.AttrValue, attr_def: OpDef.AttrDef, library: set[str]) -> str | None:
    kind = value.WhichOneof("value")
    if kind == "placeholder":
        return None  # bound when the enclosing function is instantiated
    attr_type = attr_def.type
    problem = _kind_problem(value, attr_type)
    if problem:
        return problem
    if attr_type.startswith("list("):
        items = list(getattr(value.list, _FIELD_OF_TYPE[attr_type[5:-1]]))
        if attr_def.has_minimum and len(items) < attr_def.minimum:
            return f"needs at least {attr_def.minimum} items, has {len(items)}"
    else:
        assert kind is not None
        items = [getattr(value, kind)]
        if attr_type == "int" and attr_def.has_minimum and value.i < attr_def.minimum:
            return f"is {value.i}, below the minimum {attr_def.minimum}"
    allowed = attr_def.allowed_values.list
    if attr_type.endswith("type") and len(allowed.type):
        for item in items:
            if item not in allowed.type:
                return f"{type_name(item)} is not allowed here (allowed: {', '.join(type_name(t) for t in allowed.type)})"
    if attr_type.endswith("string") and len(allowed.s):
        for item in items:
            if item not in allowed.s:
                return f"{item.decode('utf-8', 'replace')!r} is not allowed here"
    if attr_type.endswith("func"):
        for item in items:
            if item.name not in library:
                return f"names function {item.name!r}, which the library lacks"
    return None


# --- the same checks, prepared once per OpDef -------------------------------------------------
# Validating read every OpDef's attrs again for every node (their types, minimums, allowed values:
# protobuf accessors, each a Python call). An _OpCheck reads them once per OpDef; a node then costs
# one WhichOneof per attr in the common case. Whatever the prepared check cannot pass as fine is
# handed to the functions above, which word the finding: the messages come from one place.
class _AttrCheck:
    """What _value_problem checks of one OpDef attr, read out of its AttrDef."""

    __slots__ = ("attr_def", "field", "inner", "minimum", "allowed", "is_func", "kind_only")

    def __init__(self, attr_def: OpDef.AttrDef) -> None:
        self.attr_def = attr_def
        attr_type = attr_def.type
        self.inner: str | None = None
        self.minimum: int | None = None
        self.allowed: frozenset | None = None
        self.is_func = False
        if attr_type.startswith("list("):
            self.inner = _FIELD_OF_TYPE.get(attr_type[5:-1])
            # An unknown item type: None, so the slow path runs (and fails as it always did).
            self.field: str | None = "list" if self.inner is not None else None
            if attr_def.has_minimum:
                self.minimum = attr_def.minimum
            self.kind_only = False
            return  # _value_problem's allowed-value and function checks match no list type
        self.field = _FIELD_OF_TYPE.get(attr_type)
        if attr_type == "int" and attr_def.has_minimum:
            self.minimum = attr_def.minimum
        allowed = attr_def.allowed_values.list
        if attr_type == "type" and len(allowed.type):
            self.allowed = frozenset(allowed.type)
        elif attr_type == "string" and len(allowed.s):
            self.allowed = frozenset(allowed.s)
        self.is_func = attr_type == "func"
        # Only the kind of value is checked (most attrs): validate_readings tests it inline.
        self.kind_only = (self.field is not None and self.minimum is None and self.allowed is None
                          and not self.is_func)

    def passes(self, value: attr_value_pb2.AttrValue, library: set[str]) -> bool:
        """True only where _value_problem(value, self.attr_def, library) is None; False means ask it."""
        kind = value.WhichOneof("value")
        if kind == "placeholder":
            return True
        if self.field is None or kind != self.field:
            return False
        if self.inner is not None:  # a list: no other kind of item, and enough of them
            items = value.list
            for item_field, _ in items.ListFields():
                if item_field.name != self.inner:
                    return False
            return self.minimum is None or len(getattr(items, self.inner)) >= self.minimum
        if self.minimum is not None and value.i < self.minimum:
            return False
        if self.allowed is not None and getattr(value, kind) not in self.allowed:
            return False
        return not self.is_func or value.func.name in library


class _OpCheck:
    """One OpDef's attrs (by name, and those a node must set) and how its inputs are counted."""

    __slots__ = ("op", "declared", "required", "fixed_arity", "counted_args")

    def __init__(self, op: OpDef) -> None:
        self.op = op
        self.declared = {attr.name: _AttrCheck(attr) for attr in op.attr}
        self.required = tuple(attr.name for attr in op.attr if not attr.HasField("default_value"))
        # Per input arg, as arg_count counts it: ("n", attr, default) for number_attr,
        # ("t", attr, default) for type_list_attr; the default is what attr_or_default finds.
        counted: list[tuple[str, str, int]] = []
        fixed = 0
        for arg in op.input_arg:
            if arg.number_attr:
                default = _default_of(op, arg.number_attr)
                counted.append(("n", arg.number_attr, int(default.i) if default is not None else 0))
            elif arg.type_list_attr:
                default = _default_of(op, arg.type_list_attr)
                counted.append(("t", arg.type_list_attr, len(default.list.type) if default is not None else 0))
            else:
                fixed += 1
        self.fixed_arity = fixed
        self.counted_args = tuple(counted)

    def arity(self, attrs: object) -> int:
        expected = self.fixed_arity
        for how, attr_name, default in self.counted_args:
            if attr_name in attrs:  # type: ignore[operator]
                value = attrs[attr_name]  # type: ignore[index]
                expected += int(value.i) if how == "n" else len(value.list.type)
            else:
                expected += default
        return expected


def _default_of(op: OpDef, name: str) -> attr_value_pb2.AttrValue | None:
    """attr_or_default's answer for a node that leaves `name` out."""
    for attr in op.attr:
        if attr.name == name and attr.HasField("default_value"):
            return attr.default_value
    return None


class ValidationCache:
    """What validate_scopes prepares once and can share between calls: an _OpCheck per OpDef, and
    per (library, registry) each op name's _OpCheck, the library's function names and the
    verdicts on shared NodeKinds, and the NodeKinds the nodes are read with. Entries hold the
    objects their ids come from, so no id is reused while cached."""

    def __init__(self) -> None:
        self._checks: dict[int, _OpCheck] = {}
        self._resolved: dict[tuple[int, int], tuple[dict, OpRegistry, set[str], dict[str, _OpCheck | None]]] = {}
        self._vouched: dict[tuple[int, int], tuple[_OpCheck, _OpCheck, frozenset[str]]] = {}
        self._verdicts: dict[tuple[int, int, int], tuple[dict, OpRegistry, OpRegistry | None, dict[NodeKind, _Verdict]]] = {}
        self.kinds = NodeKinds()  # alike nodes of every scope validated with this cache share one reading

    def check_of(self, op: OpDef) -> _OpCheck:
        found = self._checks.get(id(op))
        if found is None or found.op is not op:
            found = self._checks[id(op)] = _OpCheck(op)
        return found

    def resolver(self, functions: dict[str, OpDef], registry: OpRegistry) -> tuple[set[str], dict[str, _OpCheck | None]]:
        """The library's function names, and a memo of op name -> its _OpCheck (None: unknown op)."""
        key = (id(functions), id(registry))
        found = self._resolved.get(key)
        if found is None or found[0] is not functions or found[1] is not registry:
            found = self._resolved[key] = (functions, registry, set(functions), {})
        return found[2], found[3]


    def verdicts(self, functions: dict[str, OpDef], registry: OpRegistry,
                 source: OpRegistry | None) -> dict[NodeKind, _Verdict]:
        """The verdicts on shared NodeKinds against this library and registry (and the source's
        registry, for the malformed-attr check, if asked)."""
        key = (id(functions), id(registry), id(source))
        found = self._verdicts.get(key)
        if found is None or found[0] is not functions or found[1] is not registry or found[2] is not source:
            found = self._verdicts[key] = (functions, registry, source, {})
        return found[3]

    def vouched(self, source: _OpCheck, target: _OpCheck) -> frozenset[str]:
        """The attrs whose value, once `target`'s prepared check passes it, holds the kind
        `source`'s OpDef declares too (the same field, and for a list the same item field): no
        malformed-attr check is needed for them."""
        key = (id(source), id(target))
        found = self._vouched.get(key)
        if found is None or found[0] is not source or found[1] is not target:
            names = frozenset(
                name for name, check in target.declared.items()
                if check.field is not None and name in source.declared
                and (source.declared[name].field, source.declared[name].inner) == (check.field, check.inner))
            found = self._vouched[key] = (source, target, names)
        return found[2]


def _malformed_problem(value: attr_value_pb2.AttrValue, attr_check: _AttrCheck, kind: str | None) -> str | None:
    """What malformed_attrs says of one value of an attr its OpDef declares (None: nothing);
    `kind`: the value's WhichOneof("value")."""
    if kind is None:
        return None  # holding nothing is left to the validator, against the target
    if attr_check.field is not None and kind == attr_check.field and (
            attr_check.inner is None or all(f.name == attr_check.inner for f, _ in value.list.ListFields())):
        return None  # the kind the OpDef declares (what _kind_problem passes)
    return _kind_problem(value, attr_check.attr_def.type)


def _malformed_in_node(node: NodeDef, check: _OpCheck, where: str) -> list[Finding]:
    """malformed_attrs' findings on one node, in attr-name order."""
    return _malformed_in_reading(node.name, node.op, read_attrs(node), check, where)


def _malformed_in_reading(name: str, op: str, attr_readings: Sequence[AttrReading], check: _OpCheck,
                          where: str) -> list[Finding]:
    """_malformed_in_node on a node read already (node_reading: its name, op and attrs, or just
    the attrs to check)."""
    declared = check.declared
    by_attr: list[tuple[str, Finding]] = []
    for attr_name, value, kind in attr_readings:
        if attr_name[:1] == "_":
            continue
        attr_check = declared.get(attr_name)
        if attr_check is None:
            continue
        problem = _malformed_problem(value, attr_check, kind)
        if problem:
            by_attr.append((attr_name, Finding("malformed-attr", where, name, op, f"attr {attr_name!r} {problem}")))
    by_attr.sort(key=lambda item: item[0])
    return [finding for _, finding in by_attr]


def _resolve(name: str, functions: dict[str, OpDef], registry: OpRegistry, memo: dict[str, _OpCheck | None],
             cache: ValidationCache) -> _OpCheck | None:
    if name in memo:
        return memo[name]
    op = functions.get(name) or registry.op(name)
    check = memo[name] = cache.check_of(op) if op is not None else None
    return check


def validate_scopes(scopes: Sequence[NodeScope], registry: OpRegistry, library: dict[int, dict[str, OpDef]],
                    cache: ValidationCache | None = None, malformed: "MalformedCheck | None" = None) -> list[Finding]:
    """Findings for every node of every scope. `library[id(scope)]` = function signatures visible to it.
    `cache`: what is prepared per OpDef and per library, to share between calls while their OpDefs live.
    `malformed`: also malformed_attrs' check against `malformed.registry` (the source's), in the
    same walk over the attrs (each attr read once for both), its findings put in `malformed.found`."""
    from rewriter.savedmodel.model import ProtoScope

    findings: list[Finding] = []
    cache = ValidationCache() if cache is None else cache
    for scope in scopes:
        readings = cache.kinds.read_nodes(node for _, node in scope.nodes())
        # A ProtoScope's NodeDef `input` lists are the truth (a graph model's are its edges).
        data_inputs = None if isinstance(scope, ProtoScope) else scope.data_inputs
        findings += validate_readings(scope.where(), readings, library.get(id(scope), {}), registry, cache,
                                      malformed, data_inputs)
    return findings


class _Verdict:
    """What validate_readings finds on every node of one NodeKind, but for the count of its data
    inputs: its findings and malformed_attrs' (made with no scope and node: each node's are
    copies naming its own), and the data inputs the op takes (None: they are not counted, as
    for an op the registry lacks)."""

    __slots__ = ("findings", "malformed", "expected")

    def __init__(self, findings: list[Finding], malformed: list[Finding], expected: int | None) -> None:
        self.findings, self.malformed, self.expected = findings, malformed, expected


def _placed(found: list[Finding], where: str, node: str) -> Iterator[Finding]:
    """A verdict's findings, made out for one node of one scope."""
    for finding in found:
        yield Finding(finding.kind, where, node, finding.op, finding.message, finding.rule, finding.since, finding.attr)


def validate_readings(where: str, readings: list[NodeReading], functions: dict[str, OpDef], registry: OpRegistry,
                      cache: ValidationCache, malformed: "MalformedCheck | None" = None,
                      data_inputs: Callable[[str], Sequence[object]] | None = None) -> list[Finding]:
    """validate_scopes on one scope's nodes as node_reading reads them (`functions`: the signatures
    visible to it). Their input texts are counted for the arity unless `data_inputs` is given (a
    graph model's edges, where a NodeDef's inputs are not the truth). Alike nodes (a shared
    NodeKind) are judged once, in `cache`: the verdict depends on nothing else of a node."""
    findings: list[Finding] = []
    names, memo = cache.resolver(functions, registry)
    source_memo = cache.resolver(functions, malformed.registry)[1] if malformed is not None else {}
    verdicts = cache.verdicts(functions, registry, malformed.registry if malformed is not None else None)
    # Per op name, what a node of it is checked with: (its _OpCheck here, its _OpCheck in the
    # source, the attrs a passing check vouches for), worked out once per scope.
    per_op: dict[str, tuple[_OpCheck | None, _OpCheck | None, frozenset[str] | None]] = {}
    for node, name, op_name, inputs, kind in readings:
        verdict = verdicts.get(kind)
        if verdict is None:
            prepared = per_op.get(op_name)
            if prepared is None:
                check = memo[op_name] if op_name in memo else _resolve(op_name, functions, registry, memo, cache)
                found_source: _OpCheck | None = None
                if malformed is not None:
                    found_source = (source_memo[op_name] if op_name in source_memo
                                    else _resolve(op_name, functions, malformed.registry, source_memo, cache))
                # Attrs the source's OpDef may see holding another kind: those a passing check here
                # does not vouch for (every attr, if no source check is asked for or the op is not in it).
                prepared = per_op[op_name] = (check, found_source, cache.vouched(found_source, check)
                                              if found_source is not None and check is not None else None)
            verdict = _judge(op_name, kind.attrs, prepared, names, registry)
            if kind.shared:
                verdicts[kind] = verdict
        if verdict.findings:
            findings.extend(_placed(verdict.findings, where, name))
        if verdict.malformed:
            assert malformed is not None
            malformed.found.extend(_placed(verdict.malformed, where, name))
        expected = verdict.expected
        if expected is None:
            continue
        if data_inputs is None:  # len(scope.data_inputs(name)), without making the list
            got = len(inputs)
            if got and "^" in "".join(inputs):  # (one C call rules out control inputs in most nodes)
                got = sum(1 for text in inputs if text[:1] != "^")
        else:
            got = len(data_inputs(name))
        if got != expected:
            findings.append(Finding("arity", where, name, op_name, f"has {got} data inputs, the op takes {expected}"))
    return findings


def _judge(op_name: str, attr_readings: list[AttrReading],
           prepared: tuple[_OpCheck | None, _OpCheck | None, frozenset[str] | None], names: set[str],
           registry: OpRegistry) -> _Verdict:
    """The verdict on nodes of an op with these attrs (`prepared`: validate_readings' per_op entry;
    `names`: the library's function names). Its findings name no scope and no node."""
    check, source_check, vouched = prepared
    if check is None:
        return _Verdict([Finding(
            "unknown-op", "", "", op_name,
            f"op {op_name!r} is not registered in TensorFlow {registry.release}",
            since=_since(first_release_with_op(op_name)),
        )], _malformed_in_reading("", op_name, attr_readings, source_check, "") if source_check is not None else [], None)
    declared = check.declared
    unvouched: list[AttrReading] = []  # the attrs the source's OpDef may see holding another kind
    # The attrs in the map's own order; their findings in attr-name order (sorting every
    # node's keys cost more than the checks of most nodes).
    by_attr: list[tuple[str, Finding]] = []
    for attr_name, value, kind in attr_readings:
        if attr_name[:1] == "_":
            continue  # internal attrs are not checked by the importer (and must not be stripped blindly)
        attr_check = declared.get(attr_name)
        if attr_check is None:
            by_attr.append((attr_name, Finding(
                "unknown-attr", "", "", op_name,
                f"attr {attr_name!r} is not in this release's {op_name}",
                since=_since(first_release_with_attr(op_name, attr_name)), attr=attr_name,
            )))
            if vouched is not None:
                unvouched.append((attr_name, value, kind))
            continue
        if attr_check.kind_only:  # passes(), inline: the value holds the declared kind
            passed = kind == attr_check.field or kind == "placeholder"
        else:
            passed = attr_check.passes(value, names)
        if not passed:
            if vouched is not None:
                unvouched.append((attr_name, value, kind))
            problem = _value_problem(value, attr_check.attr_def, names)
            if problem:
                by_attr.append((attr_name, Finding(
                    "bad-attr", "", "", op_name, f"attr {attr_name!r}: {problem}",
                    since=_since(_first_release_allowing(op_name, attr_name, value, names)))))
        elif vouched is not None and attr_name not in vouched:
            unvouched.append((attr_name, value, kind))
    malformed_found: list[Finding] = []
    if unvouched and source_check is not None:
        malformed_found = _malformed_in_reading("", op_name, unvouched, source_check, "")
    by_attr.sort(key=lambda item: item[0])
    found = [finding for _, finding in by_attr]
    expected: int | None = check.fixed_arity
    if check.required or check.counted_args:
        attrs = {attr_name: value for attr_name, value, _ in attr_readings}
        for required in check.required:
            if required not in attrs:
                found.append(Finding("bad-attr", "", "", op_name, f"required attr {required!r} is missing"))
        if check.counted_args:
            try:
                expected = check.arity(attrs)
            except Exception:  # as _arity_problem: a malformed attr the count depends on is reported as bad-attr
                expected = None
    return _Verdict(found, malformed_found, expected)


@dataclass
class MalformedCheck:
    """What validate_scopes is asked to check against the source's registry too (malformed_attrs),
    and what it found there."""

    registry: OpRegistry
    found: list[Finding] = field(default_factory=list)


def malformed_attrs(scopes: Sequence[NodeScope], registry: OpRegistry, library: dict[int, dict[str, OpDef]]) -> list[Finding]:
    """Attrs holding another kind of value than the op's own OpDef (the release that wrote the
    model) declares: TensorFlow's importer rejects such a node in every release, so the model is
    malformed, not merely new (a bad input, not a refusal). An attr holding nothing is left to
    the validator, which reports it against the target. (validate_scopes(malformed=...) checks
    the same in its own walk.)"""
    findings: list[Finding] = []
    cache = ValidationCache()
    for scope in scopes:
        functions = library.get(id(scope), {})
        _, memo = cache.resolver(functions, registry)
        where = scope.where()
        for _, node in scope.nodes():
            op_name = node.op
            check = memo[op_name] if op_name in memo else _resolve(op_name, functions, registry, memo, cache)
            if check is not None:
                findings.extend(_malformed_in_node(node, check, where))
    return findings
