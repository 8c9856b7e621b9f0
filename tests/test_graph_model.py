"""The graph model: GraphDef/FunctionDef -> networkx -> back is lossless, ports and control edges kept."""
from __future__ import annotations

import pytest
from rewriter.protos import function_pb2, graph_pb2
from rewriter.protos import saved_model_pb2

from conftest import FIXTURES, fixture_dir
from rewriter.savedmodel import graph_model
from rewriter.savedmodel.graph_model import (
    ARG, CONTROL_RET, RET, GraphModelError, fill_nodes, function_from_scope, graph_def_from_scope,
    scope_from_function, scope_from_graph_def,
)
from rewriter.savedmodel.model import build_scopes, write_back


def _load(name: str) -> tuple[bytes, saved_model_pb2.SavedModel]:
    data = (fixture_dir(name) / "saved_model.pb").read_bytes()
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString(data)
    return data, proto


@pytest.mark.parametrize("name", FIXTURES)
def test_round_trip_is_byte_identical(name: str) -> None:
    data, proto = _load(name)
    models = build_scopes(proto)
    write_back(proto, models)
    assert proto.SerializeToString(deterministic=True) == data


@pytest.mark.parametrize("name", FIXTURES)
def test_every_input_becomes_an_edge(name: str) -> None:
    _, proto = _load(name)
    for model in build_scopes(proto):
        source = proto.meta_graphs[model.index].graph_def
        expected = len(source.node) and sum(len(n.input) for n in source.node)
        assert model.graph.graph.number_of_edges() == expected
        for scope, function in zip(model.functions, source.library.function):
            inputs = sum(len(n.input) for n in function.node_def)
            assert scope.graph.number_of_edges() == inputs + len(function.ret) + len(function.control_ret)


def _function() -> function_pb2.FunctionDef:
    function = function_pb2.FunctionDef()
    function.signature.name = "f"
    function.signature.input_arg.add(name="x", type=1)
    function.signature.output_arg.add(name="y", type=1)
    function.signature.control_output.append("side")
    a = function.node_def.add(name="a", op="Split", input=["dim", "x"])
    a.attr["num_split"].i = 2
    function.node_def.add(name="dim", op="Const")
    function.node_def.add(name="b", op="AddV2", input=["a:output:1", "x", "^dim"])
    function.node_def.add(name="side", op="NoOp", input=["^b", "^x"])
    function.ret["y"] = "b:z:0"
    function.control_ret["side"] = "side"
    return function


def test_function_ports_args_and_control_edges() -> None:
    scope = scope_from_function(_function())
    assert scope.data_inputs("b") == [("a", ":output:1"), ((ARG, "x"), "")]
    assert scope.control_inputs("b") == ["dim"]
    assert scope.in_edges((RET, "y"))[0].src == "b"
    assert scope.in_edges((CONTROL_RET, "side"))[0].src == "side"
    assert scope.control_inputs("side") == ["b", (ARG, "x")]  # a control input on an arg is valid
    assert function_from_scope(scope) == _function()


def test_edits_without_added_nodes_are_written_in_place_as_a_rebuild_writes_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """write_function edits a whole copy of the FunctionDef when no node was added
    (edit_nodes_in_place); what it writes is what filling the nodes one by one writes, which it
    falls back to where the deletes would cost too much."""
    scope = scope_from_function(_function())
    scope.editable_node_def("a").attr["num_split"].i = 2  # owned: its NodeDef is written again
    scope.remove_node("dim")  # b loses ^dim, a its data input (rewired)
    scope.add_edge("a", "side", None, scope.next_input_index("side"))
    scope.remove_node((CONTROL_RET, "side"))
    in_place = function_from_scope(scope)
    assert [n.name for n in in_place.node_def] == ["a", "b", "side"]
    assert list(in_place.node_def[1].input) == ["a:output:1", "x"]
    assert list(in_place.node_def[2].input) == ["^b", "^x", "^a"]
    assert list(in_place.signature.control_output) == [] and not in_place.control_ret
    rebuilt = function_pb2.FunctionDef()
    rebuilt.CopyFrom(in_place)
    del rebuilt.node_def[:]
    fill_nodes(rebuilt.node_def, scope)
    assert rebuilt == in_place
    monkeypatch.setattr(graph_model, "IN_PLACE_POINTER_MOVES", 0)
    untouched = function_pb2.FunctionDef()
    untouched.node_def.extend(_function().node_def)
    assert not graph_model.edit_nodes_in_place(untouched.node_def, scope)
    assert untouched.node_def == _function().node_def  # declined before any delete
    assert function_from_scope(scope) == in_place


def test_graph_ports_keep_their_text() -> None:
    graph_def = graph_pb2.GraphDef()
    graph_def.node.add(name="p", op="Placeholder")
    graph_def.node.add(name="s", op="Split", input=["p", "p:0", "^p"])
    graph_def.node.add(name="t", op="Identity", input=["s:1"])
    scope = scope_from_graph_def("serve", graph_def)
    assert scope.data_inputs("s") == [("p", ""), ("p", ":0")]
    assert graph_def_from_scope(scope, []) == graph_def


@pytest.mark.parametrize("bad_input", ["nowhere", "nowhere:0", "^nowhere"])
def test_input_naming_no_node_is_an_error(bad_input: str) -> None:
    graph_def = graph_pb2.GraphDef()
    graph_def.node.add(name="t", op="Identity", input=[bad_input])
    with pytest.raises(GraphModelError, match="names no node"):
        scope_from_graph_def("serve", graph_def)


def test_duplicate_node_names_are_an_error() -> None:
    graph_def = graph_pb2.GraphDef()
    graph_def.node.add(name="t", op="NoOp")
    graph_def.node.add(name="t", op="NoOp")
    with pytest.raises(GraphModelError, match="two nodes"):
        scope_from_graph_def("serve", graph_def)


def _malformed_functions() -> list[function_pb2.FunctionDef]:
    """One FunctionDef per thing the graph model rejects, in the order it checks them."""
    cases = []
    for edit in ("duplicate", "dangling input", "dangling control input", "arg with a port",
                 "dangling return", "dangling control return"):
        fn = function_pb2.FunctionDef()
        fn.signature.name = "f"
        fn.signature.input_arg.add(name="x")
        a = fn.node_def.add(name="a", op="Identity")
        a.input.append("x")
        fn.ret["y"] = "a:output:0"
        if edit == "duplicate":
            fn.node_def.add(name="a", op="NoOp")
        elif edit == "dangling input":
            a.input.append("missing:output:0")
        elif edit == "dangling control input":
            a.input.append("^missing")
        elif edit == "arg with a port":
            a.input[0] = "x:output:0"
        elif edit == "dangling return":
            fn.ret["z"] = "missing:output:0"
        else:
            fn.control_ret["c"] = "missing"
        cases.append(fn)
    return cases


@pytest.mark.parametrize("function", _malformed_functions())
def test_checking_without_building_rejects_what_building_rejects(function: function_pb2.FunctionDef) -> None:
    """check_function (plan's check before any graph model is built) and scope_from_function give
    the same error: two implementations of one set of checks must not drift apart."""
    from rewriter.savedmodel.graph_model import check_function

    with pytest.raises(GraphModelError) as built:
        scope_from_function(function)
    with pytest.raises(GraphModelError) as checked:
        check_function(function)
    assert str(checked.value) == str(built.value)


def test_checking_a_graph_def_rejects_what_building_rejects() -> None:
    from rewriter.savedmodel.graph_model import check_nodes

    graph_def = graph_pb2.GraphDef()
    graph_def.node.add(name="a", op="Identity").input.append("b:0")
    with pytest.raises(GraphModelError) as built:
        scope_from_graph_def("serve", graph_def)
    with pytest.raises(GraphModelError) as checked:
        check_nodes("graph", "serve", graph_def.node, [])
    assert str(checked.value) == str(built.value)
