"""NodeKinds: alike nodes share one reading of their attrs, and only alike nodes do.

The key of a node is cut from its serialization on the assumption that protobuf writes NodeDef's
name, op and inputs first (fields 1-3, in field-number order): checked here against the node
serialized without them, on every node of every fixture and on names the fast path does not take.
"""
from __future__ import annotations

import pytest
from google.protobuf import text_format

from conftest import FIXTURES, fixture_dir
from rewriter.protos import attr_value_pb2, function_pb2, node_def_pb2, op_def_pb2, saved_model_pb2
from rewriter.savedmodel.model import ProtoScope
from rewriter.savedmodel.node_reading import MAX_KEY_BYTES, NodeKinds, read_attrs
from rewriter.targets.registry import load_registry
from rewriter.targets.releases import Release
from rewriter.verify.validator import MalformedCheck, ValidationCache, validate_readings


def _holds_the_rest(key: tuple[str, bytes] | None, node: node_def_pb2.NodeDef) -> bool:
    """Whether a key is (the node's op, exactly the node without its name, op and inputs)
    (compared as messages: a copy may serialize its attr map in another order)."""
    rest = node_def_pb2.NodeDef()
    rest.CopyFrom(node)
    rest.ClearField("name")
    rest.ClearField("op")
    del rest.input[:]
    return key is not None and key[0] == node.op and node_def_pb2.NodeDef.FromString(key[1]) == rest


def _fixture_nodes(name: str) -> list[node_def_pb2.NodeDef]:
    proto = saved_model_pb2.SavedModel.FromString((fixture_dir(name) / "saved_model.pb").read_bytes())
    return [node for meta_graph in proto.meta_graphs
            for nodes in [meta_graph.graph_def.node, *(f.node_def for f in meta_graph.graph_def.library.function)]
            for node in nodes]


@pytest.mark.parametrize("name", FIXTURES)
def test_a_key_is_the_node_without_its_name_op_and_inputs(name: str) -> None:
    kinds = NodeKinds()
    for node in _fixture_nodes(name):
        key = kinds._key(node, node.name, node.op, list(node.input))
        if key is not None:
            assert _holds_the_rest(key, node), node.name


def _node(name: str, op: str, inputs: list[str], attrs: str = "", device: str = "") -> node_def_pb2.NodeDef:
    node = node_def_pb2.NodeDef(name=name, op=op, input=inputs, device=device)
    for line in filter(None, attrs.split(";")):
        key, _, text = line.partition("=")
        text_format.Parse(text, node.attr[key.strip()])
    return node


@pytest.mark.parametrize("name,op,inputs", [
    ("n" * 127, "Identity", ["x" * 127]),
    ("n" * 128, "Identity", ["x" * 200, "y", "^z" * 100]),
    ("café/ß", "Identity", ["straße:0", "^日本"]),
    ("n", "O" * 300, []),
    ("n", "Identity", [""]),
    ("n" * 20000, "Identity", ["x" * 3]),
])
def test_the_key_is_cut_right_for_long_and_non_ascii_strings(name: str, op: str, inputs: list[str]) -> None:
    node = _node(name, op, inputs, "T=type: DT_FLOAT")
    key = NodeKinds()._key(node, name, op, inputs)
    if len(node.SerializeToString()) > MAX_KEY_BYTES:
        assert key is None
    else:
        assert _holds_the_rest(key, node)


def test_alike_nodes_share_a_kind_and_others_do_not() -> None:
    nodes = [
        _node("a", "Identity", ["x"], "T=type: DT_FLOAT"),
        _node("b", "Identity", ["y", "^a"], "T=type: DT_FLOAT"),  # alike: other name and inputs
        _node("c", "Identity", ["x"], "T=type: DT_INT32"),  # another attr value
        _node("d", "Identity", ["x"], "T=type: DT_FLOAT", device="/cpu:0"),  # another device
        _node("e", "Snapshot", ["x"], "T=type: DT_FLOAT"),  # another op
        _node("f", "Identity", ["x"], "T=type: DT_FLOAT;_class=list { s: 'loc:@a' }"),  # one more attr
    ]
    readings = NodeKinds().read_nodes(nodes)
    kinds = [reading[4] for reading in readings]
    assert kinds[0] is kinds[1] and kinds[0].shared
    assert len({id(kind) for kind in kinds}) == 5
    for node, reading in zip(nodes, readings):
        assert [(name, kind) for name, _, kind in reading[4].attrs] == [(name, kind) for name, _, kind in read_attrs(node)]
        assert reading[1:4] == (node.name, node.op, list(node.input))


def test_nodes_of_an_op_that_holds_tensors_and_large_nodes_are_read_on_their_own() -> None:
    const = "value=tensor { dtype: DT_FLOAT tensor_shape { } float_val: 1 };dtype=type: DT_FLOAT"
    large = "shape=list { i: [%s] }" % ", ".join(["1000000"] * MAX_KEY_BYTES)
    nodes = [_node("c1", "Const", [], const), _node("c2", "Const", [], const),
             _node("p1", "Placeholder", [], large), _node("p2", "Placeholder", [], large),
             _node("p3", "Placeholder", [], "dtype=type: DT_FLOAT"), _node("p4", "Placeholder", [], "dtype=type: DT_FLOAT")]
    kinds = [reading[4] for reading in NodeKinds().read_nodes(nodes)]
    assert not any(kind.shared for kind in kinds)  # (after a large node, the op's nodes are not keyed)
    assert len({id(kind) for kind in kinds}) == len(nodes)


def test_a_verdict_shared_by_alike_nodes_is_made_out_for_each_node_and_each_library() -> None:
    """Alike nodes of two scopes get the findings a node-by-node validation gives, in each scope's
    own library (a function one library lacks) and with each node's own inputs (arity)."""
    registry = load_registry(Release(2, 3))
    source = load_registry(Release(2, 21))
    call = "f=func { name: 'fn' };Tin=list { };Tout=list { }"
    nodes = [
        _node("call1", "PartitionedCall", [], call),
        _node("call2", "PartitionedCall", ["^call1"], call),
        _node("id1", "Identity", ["x"], "T=type: DT_FLOAT"),
        _node("id2", "Identity", ["x", "y"], "T=type: DT_FLOAT"),  # one data input too many
        _node("v1", "VarHandleOp", [], "dtype=type: DT_FLOAT;shape=shape { };debug_name=s: 'v'"),
        _node("v2", "VarHandleOp", [], "dtype=type: DT_FLOAT;shape=shape { };debug_name=s: 'v'"),
        _node("d1", "DisableCopyOnRead", ["v1"], ""),
        _node("d2", "DisableCopyOnRead", ["v2"], ""),
        _node("m1", "Identity", ["x"], "T=s: 'float'"),  # malformed: a string where a type belongs
        _node("m2", "Identity", ["x"], "T=s: 'float'"),
    ]
    with_fn = {"fn": op_def_pb2.OpDef(name="fn")}
    cache = ValidationCache()
    kinds = NodeKinds()
    for library in (with_fn, {}, with_fn):
        shared = MalformedCheck(source)
        found = validate_readings("graph serve", kinds.read_nodes(nodes), library, registry, cache, shared)
        alone = MalformedCheck(source)
        expected = []
        for node in nodes:  # each node read on its own: no verdict shared
            expected += validate_readings("graph serve", NodeKinds().read_nodes([node]), library, registry,
                                          ValidationCache(), alone)
        assert found == expected
        assert shared.found == alone.found
        assert {f.node for f in found} >= {"id2", "v1", "v2", "d1", "d2"}
        assert ({"call1", "call2"} <= {f.node for f in found}) == (library == {})
        assert {f.node for f in shared.found} == {"m1", "m2"}
