"""The validator's prepared checks (an _OpCheck per OpDef) pass a value only where the reference
functions find no problem, and validate_scopes says what the reference per-node checks say,
finding for finding, on every fixture mutated in every way the validator distinguishes."""
from __future__ import annotations

import copy
import random

import pytest
from google.protobuf import text_format

from conftest import FIXTURES, fixture_dir
from rewriter.findings import Finding
from rewriter.protos import attr_value_pb2, node_def_pb2, op_def_pb2, saved_model_pb2, types_pb2
from rewriter.savedmodel.model import ProtoScope, proto_scopes
from rewriter.targets.registry import OpRegistry, arg_count, load_registry
from rewriter.targets.releases import Release
from rewriter.verify import validator
from rewriter.verify.validator import MalformedCheck, ValidationCache, _kind_problem, _value_problem, malformed_attrs, validate_scopes

RELEASES = (Release(1, 15), Release(2, 3), Release(2, 21))


def _values() -> list[attr_value_pb2.AttrValue]:
    """One value of every kind, lists of every item kind, mixed lists, boundary ints, funcs."""
    values = [attr_value_pb2.AttrValue()]
    for text in ("s: 'NHWC'", "s: 'VALID'", "s: 'nope'", "i: -1", "i: 0", "i: 1", "i: 2", "f: 0.5", "b: true",
                 "type: DT_FLOAT", "type: DT_INT32", "type: DT_STRING", "type: DT_COMPLEX128", "shape { dim { size: 2 } }",
                 "tensor { dtype: DT_FLOAT }", "func { name: 'known' }", "func { name: 'missing' }",
                 "placeholder: 'T'", "list { }", "list { i: [1, 2] }", "list { i: [1] }", "list { type: [DT_FLOAT] }",
                 "list { type: [DT_FLOAT, DT_INT32] }", "list { s: ['a'] }", "list { f: [1.0] }", "list { b: [true] }",
                 "list { shape { } }", "list { tensor { } }", "list { func { name: 'known' } }",
                 "list { i: [1] type: [DT_FLOAT] }", "list { func { name: 'missing' } s: ['x'] }"):
        value = attr_value_pb2.AttrValue()
        text_format.Parse(text, value)
        values.append(value)
    return values


@pytest.mark.parametrize("release", RELEASES, ids=str)
def test_prepared_attr_checks_pass_only_what_the_reference_passes(release: Release) -> None:
    registry = load_registry(release)
    library = {"known"}
    values = _values()
    for op in registry.ops.values():
        check = validator._OpCheck(op)
        for attr_def in op.attr:
            attr_check = check.declared[attr_def.name]
            for value in values:
                if attr_check.passes(value, library):
                    assert _value_problem(value, attr_def, library) is None, (op.name, attr_def.name, value)
                    assert _kind_problem(value, attr_def.type) is None


def _reference(scopes: list[ProtoScope], registry, library: dict) -> list[Finding]:
    """validate_scopes as it was before the prepared checks (one OpDef lookup per node)."""
    findings: list[Finding] = []
    for scope in scopes:
        functions = library.get(id(scope), {})
        names = set(functions)
        for name, node in scope.nodes():
            op = functions.get(node.op) or registry.op(node.op)
            if op is None:
                findings.append(Finding("unknown-op", scope.where(), name, node.op,
                                        f"op {node.op!r} is not registered in TensorFlow {registry.release}",
                                        since=validator._since(validator.first_release_with_op(node.op))))
                continue
            declared = {attr.name: attr for attr in op.attr}
            for attr_name in sorted(node.attr):
                if attr_name.startswith("_"):
                    continue
                if attr_name not in declared:
                    findings.append(Finding("unknown-attr", scope.where(), node.name, node.op,
                                            f"attr {attr_name!r} is not in this release's {node.op}",
                                            since=validator._since(validator.first_release_with_attr(node.op, attr_name)),
                                            attr=attr_name))
                    continue
                problem = _value_problem(node.attr[attr_name], declared[attr_name], names)
                if problem:
                    findings.append(Finding("bad-attr", scope.where(), node.name, node.op, f"attr {attr_name!r}: {problem}"))
            for attr in op.attr:
                if attr.name not in node.attr and not attr.HasField("default_value"):
                    findings.append(Finding("bad-attr", scope.where(), node.name, node.op,
                                            f"required attr {attr.name!r} is missing"))
            expected = sum(arg_count(op, arg, node) for arg in op.input_arg)
            got = len(scope.data_inputs(name))
            if got != expected:
                findings.append(Finding("arity", scope.where(), name, node.op, f"has {got} data inputs, the op takes {expected}"))
    return findings


def _reference_malformed(scopes: list[ProtoScope], registry, library: dict) -> list[Finding]:
    findings: list[Finding] = []
    for scope in scopes:
        functions = library.get(id(scope), {})
        for name, node in scope.nodes():
            op = functions.get(node.op) or registry.op(node.op)
            if op is None:
                continue
            declared = {attr.name: attr for attr in op.attr}
            for attr_name in sorted(node.attr):
                if attr_name.startswith("_") or attr_name not in declared:
                    continue
                value = node.attr[attr_name]
                if value.WhichOneof("value") is None:
                    continue
                problem = _kind_problem(value, declared[attr_name].type)
                if problem:
                    findings.append(Finding("malformed-attr", scope.where(), name, node.op, f"attr {attr_name!r} {problem}"))
    return findings


def _mutate(proto: saved_model_pb2.SavedModel, rng: random.Random) -> None:
    graph_def = proto.meta_graphs[0].graph_def
    scopes = [s for s in [list(graph_def.node)] + [list(f.node_def) for f in graph_def.library.function] if s]
    nodes = rng.choice(scopes)
    node = rng.choice(nodes)
    attrs = list(node.attr)
    pick = rng.choice(attrs) if attrs else "zz"
    functions = [f.signature.name for f in graph_def.library.function]
    edits = [
        lambda: setattr(node, "op", "NoSuchOp"),
        lambda: setattr(node, "op", rng.choice(functions)),
        lambda: node.attr["zz_unknown"].CopyFrom(attr_value_pb2.AttrValue(i=3)),
        lambda: node.attr.pop(pick, None),
        lambda: node.attr[pick].CopyFrom(attr_value_pb2.AttrValue(s=b"x")),
        lambda: node.attr[pick].CopyFrom(attr_value_pb2.AttrValue(type=types_pb2.DT_COMPLEX128)),
        lambda: node.attr[pick].CopyFrom(attr_value_pb2.AttrValue(i=-5)),
        lambda: node.attr[pick].list.i.extend([1, 2]),
        lambda: node.attr[pick].Clear(),
        lambda: node.attr[pick].func.SetInParent() or setattr(node.attr[pick].func, "name", rng.choice(functions + ["gone"])),
        lambda: node.attr["N"].CopyFrom(attr_value_pb2.AttrValue(i=rng.choice([-1, 0, 1, 7]))),
        lambda: node.input.append("^" + nodes[0].name),
        lambda: node.input.append(nodes[0].name),
        lambda: node.input.pop() if node.input else None,
        lambda: node.attr[pick].CopyFrom(attr_value_pb2.AttrValue(placeholder="T")),
        lambda: node.attr[pick].list.type.append(types_pb2.DT_STRING),
    ]
    rng.choice(edits)()


@pytest.mark.parametrize("name", FIXTURES)
def test_validate_scopes_says_what_the_reference_says(name: str) -> None:
    rng = random.Random(name)
    original = saved_model_pb2.SavedModel.FromString((fixture_dir(name) / "saved_model.pb").read_bytes())
    for _ in range(30):
        proto = copy.deepcopy(original)
        for _ in range(rng.randrange(1, 4)):
            _mutate(proto, rng)
        for release in RELEASES:
            registry = load_registry(release)
            cache = ValidationCache()  # shared by every call, as the pipeline shares it
            for _, scopes, signatures in proto_scopes(proto):
                library = {id(scope): signatures for scope in scopes}
                got = [f for scope in scopes for f in validate_scopes([scope], registry, library, cache)]
                assert got == _reference(scopes, registry, library)
                assert malformed_attrs(scopes, registry, library) == _reference_malformed(scopes, registry, library)
                # The pipeline's walk: the validator against this target, malformed attrs against
                # the source (each release's registry as the source of the next older one).
                for source in RELEASES:
                    source_registry = load_registry(source)
                    malformed = MalformedCheck(source_registry)
                    both = [f for scope in scopes for f in validate_scopes([scope], registry, library, cache, malformed)]
                    assert both == got
                    assert malformed.found == _reference_malformed(scopes, source_registry, library)


def _registry(release: Release, text: str) -> OpRegistry:
    ops = op_def_pb2.OpList()
    text_format.Parse(text, ops)
    return OpRegistry(release, ops)


def test_one_walk_checks_malformed_attrs_against_the_source_where_the_opdefs_differ() -> None:
    """validate_scopes(malformed=...) skips the source's kind check only for attrs whose passing
    target check vouches for it: every attr kind the two OpDefs declare alike or not, ops only the
    source has, attrs only one side declares, every kind of value."""
    source = _registry(Release(2, 21), """
        op { name: "Probe" attr { name: "a" type: "int" } attr { name: "b" type: "type" }
             attr { name: "c" type: "list(int)" } attr { name: "d" type: "string" } attr { name: "e" type: "func" }
             attr { name: "f" type: "list(type)" } }
        op { name: "OnlySource" attr { name: "x" type: "int" } attr { name: "y" type: "list(string)" } }""")
    target = _registry(Release(2, 3), """
        op { name: "Probe" attr { name: "a" type: "string" } attr { name: "b" type: "type" }
             attr { name: "c" type: "list(type)" } attr { name: "e" type: "func" } attr { name: "f" type: "list(type)" }
             attr { name: "g" type: "int" } }""")
    nodes = []
    for op, attrs in (("Probe", "abcdefg"), ("OnlySource", "xyz")):
        for attr_name in [*attrs, "_private"]:
            for value in _values():
                node = node_def_pb2.NodeDef(name=f"n{len(nodes)}", op=op)
                node.attr[attr_name].CopyFrom(value)
                node.attr["b"].type = types_pb2.DT_FLOAT  # a second attr, well-kinded on both sides
                nodes.append(node)
    scope = ProtoScope("function f", nodes, name="f", is_function=True)
    library = {id(scope): {"known": op_def_pb2.OpDef(name="known")}}
    malformed = MalformedCheck(source)
    got = validate_scopes([scope], target, library, ValidationCache(), malformed)
    assert got == _reference([scope], target, library)
    expected = _reference_malformed([scope], source, library)
    assert malformed.found == expected
    assert len(expected) > 20  # the values of the wrong kind for a, c, d, x and y
