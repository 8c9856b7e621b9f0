"""Checking every node against a release's real op registry, as that release's importer would.

This is our own check, used to plan and as a post-condition before anything is written. It is
not the judge of compatibility: the real target runtime is (rewriter/runtimes, rewriter/parity).
"""
from __future__ import annotations

import functools
from typing import Iterable

from rewriter.protos import attr_value_pb2, node_def_pb2, op_def_pb2
from rewriter.protos.op_def_pb2 import OpDef
from rewriter.protos.node_def_pb2 import NodeDef

from rewriter.savedmodel.attr_values import type_name
from rewriter.findings import Finding
from rewriter.savedmodel.graph_model import Scope
from rewriter.targets.registry import OpRegistry, arg_count, load_registry
from rewriter.targets.releases import Release, known_releases


# AttrValue oneof field a plain OpDef attr type must use.
_FIELD_OF_TYPE = {
    "string": "s", "int": "i", "float": "f", "bool": "b", "type": "type",
    "shape": "shape", "tensor": "tensor", "func": "func",
}


@functools.cache
def first_release_with_op(op_name: str) -> Release | None:
    for release in known_releases():
        if op_name in load_registry(release):
            return release
    return None


@functools.cache
def first_release_with_attr(op_name: str, attr_name: str) -> Release | None:
    for release in known_releases():
        if load_registry(release).attr_def(op_name, attr_name) is not None:
            return release
    return None


def _since(release: Release | None) -> str | None:
    return str(release) if release is not None else None


def _attr_findings(scope: Scope, node: NodeDef, op: OpDef, library: set[str]) -> Iterable[Finding]:
    declared = {attr.name: attr for attr in op.attr}
    where = scope.where()
    for name in sorted(node.attr):
        if name.startswith("_"):
            continue  # internal attrs are not checked by the importer (and must not be stripped blindly)
        value = node.attr[name]
        attr_def = declared.get(name)
        if attr_def is None:
            yield Finding(
                "unknown-attr", where, node.name, node.op,
                f"attr {name!r} is not in this release's {node.op}",
                since=_since(first_release_with_attr(node.op, name)),
            )
            continue
        problem = _value_problem(value, attr_def, library)
        if problem:
            yield Finding("bad-attr", where, node.name, node.op, f"attr {name!r}: {problem}")
    for attr_def in op.attr:
        if attr_def.name not in node.attr and not attr_def.HasField("default_value"):
            yield Finding("bad-attr", where, node.name, node.op, f"required attr {attr_def.name!r} is missing")


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


def _arity_problem(scope: Scope, name: str, node: NodeDef, op: OpDef) -> str | None:
    try:
        expected = sum(arg_count(op, arg, node) for arg in op.input_arg)
    except Exception:  # an attr the count depends on is malformed: reported as bad-attr
        return None
    got = len(scope.data_inputs(name))
    if got != expected:
        return f"has {got} data inputs, the op takes {expected}"
    return None


def validate_scopes(scopes: list[Scope], registry: OpRegistry, library: dict[int, dict[str, OpDef]]) -> list[Finding]:
    """Findings for every node of every scope. `library[id(scope)]` = function signatures visible to it."""
    findings: list[Finding] = []
    for scope in scopes:
        functions = library.get(id(scope), {})
        names = set(functions)
        for name, node in scope.nodes():
            op = functions.get(node.op) or registry.op(node.op)
            if op is None:
                findings.append(Finding(
                    "unknown-op", scope.where(), name, node.op,
                    f"op {node.op!r} is not registered in TensorFlow {registry.release}",
                    since=_since(first_release_with_op(node.op)),
                ))
                continue
            findings.extend(_attr_findings(scope, node, op, names))
            problem = _arity_problem(scope, name, node, op)
            if problem:
                findings.append(Finding("arity", scope.where(), name, node.op, problem))
    return findings


def malformed_attrs(scopes: list[Scope], registry: OpRegistry, library: dict[int, dict[str, OpDef]]) -> list[Finding]:
    """Attrs holding another kind of value than the op's own OpDef (the release that wrote the
    model) declares: TensorFlow's importer rejects such a node in every release, so the model is
    malformed, not merely new (a bad input, not a refusal). An attr holding nothing is left to
    the validator, which reports it against the target."""
    findings: list[Finding] = []
    for scope in scopes:
        functions = library.get(id(scope), {})
        for name, node in scope.nodes():
            op = functions.get(node.op) or registry.op(node.op)
            if op is None:
                continue
            declared = {attr.name: attr.type for attr in op.attr}
            for attr_name in sorted(node.attr):
                value = node.attr[attr_name]
                if attr_name.startswith("_") or attr_name not in declared or value.WhichOneof("value") is None:
                    continue
                problem = _kind_problem(value, declared[attr_name])
                if problem:
                    findings.append(Finding("malformed-attr", scope.where(), name, node.op, f"attr {attr_name!r} {problem}"))
    return findings
