"""The rule engine on small hand-built graphs: matching, conditions, rewiring, removal, fixpoint.

Graphs are written as protos by hand so each test shows exactly the edges it is about.
Rules are inline YAML, so the tests do not depend on the shipped catalog.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from rewriter.protos import function_pb2, graph_pb2, node_def_pb2, types_pb2

from rewriter.savedmodel import attr_values
from rewriter.savedmodel.graph_model import (
    Scope,
    function_from_scope,
    graph_def_from_scope,
    scope_from_function,
    scope_from_graph_def,
)
from rewriter.targets.registry import load_registry, newest_registry
from rewriter.targets.releases import Release
from rewriter.rules.engine import RuleApplicationError, RuleOutcome, apply_rules
from rewriter.savedmodel.op_signatures import OpSignatures
from rewriter.rules.loader import Rule, parse_rule_text

T23 = Release(2, 3)


# --- building graphs --------------------------------------------------------------------
def node(name: str, op: str, inputs: list[str] | None = None, **attrs: Any) -> node_def_pb2.NodeDef:
    """attrs: a str starting with DT_ is a type, other str a string, bool/int/float as such."""
    result = node_def_pb2.NodeDef(name=name, op=op, input=inputs or [])
    for key, value in attrs.items():
        if isinstance(value, str) and value.startswith("DT_"):
            result.attr[key].type = types_pb2.DataType.Value(value)
        elif isinstance(value, str):
            result.attr[key].s = value.encode()
        elif isinstance(value, bool):
            result.attr[key].b = value
        elif isinstance(value, int):
            result.attr[key].i = value
        elif isinstance(value, float):
            result.attr[key].f = value
        else:
            result.attr[key].CopyFrom(value)
    return result


def const(name: str, value: Any, dtype: str = "DT_INT32") -> node_def_pb2.NodeDef:
    result = node(name, "Const", dtype=dtype)
    result.attr["value"].CopyFrom(attr_values.from_plain({"dtype": dtype, "value": value}, "tensor"))
    return result


def graph(*nodes: node_def_pb2.NodeDef) -> Scope:
    return scope_from_graph_def("serve", graph_pb2.GraphDef(node=list(nodes)))


def function(
    name: str,
    args: list[tuple[str, str]],
    nodes: list[node_def_pb2.NodeDef],
    ret: dict[str, str] | None = None,
    control_ret: dict[str, str] | None = None,
) -> Scope:
    fn = function_pb2.FunctionDef()
    fn.signature.name = name
    for arg, dtype in args:
        fn.signature.input_arg.add(name=arg, type=types_pb2.DataType.Value(dtype))
    for out in ret or {}:
        fn.signature.output_arg.add(name=out, type=types_pb2.DT_FLOAT)
    fn.node_def.extend(nodes)
    for key, value in (ret or {}).items():
        fn.ret[key] = value
    for key, value in (control_ret or {}).items():
        fn.control_ret[key] = value
        fn.signature.control_output.append(key)
    return scope_from_function(fn)


def rules(text: str) -> list[Rule]:
    return parse_rule_text(text, "test.yaml")


def run(
    scopes: list[Scope],
    rule_list: list[Rule],
    target: Release = T23,
    allow_lossy: frozenset[str] = frozenset(),
    external: set[str] | None = None,
) -> RuleOutcome:
    ops = OpSignatures(newest_registry(), load_registry(target), {})
    for scope in scopes:
        scope.ops, scope.external_names = ops, frozenset(external or ())
    return apply_rules(scopes, rule_list, target, allow_lossy)


def inputs_of(scope: Scope) -> dict[str, list[str]]:
    """node name -> its input list as the proto will hold it."""
    if scope.is_function:
        fn = function_from_scope(scope)
        return {n.name: list(n.input) for n in fn.node_def}
    return {n.name: list(n.input) for n in graph_def_from_scope(scope, []).node}


REMOVE_DCOR = rules("""
id: remove-dcor
description: test
since: "2.10"
match: {nodes: {node: {op: DisableCopyOnRead}}}
rewrite: {remove: [node]}
""")

RNG_V2_TO_V1 = rules("""
id: rng
description: test
since: "2.4"
match:
  nodes:
    rng: {op: StatelessRandomUniformV2, inputs: {1: "kc:0", 2: "kc:1"}}
    kc: {op: StatelessRandomGetKeyCounter}
  where:
    - {const: "rng.input[3]", in: [1, 3]}
rewrite:
  nodes:
    v1:
      op: StatelessRandomUniform
      inputs: ["rng.input[0]", "kc.input[0]"]
      attrs: {dtype: {copy: rng.dtype}, T: {copy: rng.Tshape}, Tseed: {copy: kc.Tseed}}
  outputs: {"rng:0": "v1:0"}
  remove: [rng]
  remove_if_unused: [kc]
""")


# --- removing a control-only node --------------------------------------------------------
def test_removed_node_hands_its_dependencies_to_control_consumers() -> None:
    scope = graph(
        node("v", "VarHandleOp", dtype="DT_FLOAT", shape=attr_values.from_plain([], "shape")),
        node("c", "NoOp"),
        node("dcor", "DisableCopyOnRead", ["v", "^c"]),
        node("read", "ReadVariableOp", ["v", "^dcor"], dtype="DT_FLOAT"),
        node("after", "NoOp", ["^dcor", "^c"]),
    )
    outcome = run([scope], REMOVE_DCOR)
    assert [a.removed for a in outcome.applications] == [["dcor"]]
    got = inputs_of(scope)
    assert "dcor" not in got
    # read waited on dcor, which waited on v (data) and c (control): it now waits on both.
    assert got["read"] == ["v", "^c"]  # no ^v: reading v already orders read after it
    assert got["after"] == ["^c", "^v"]


def test_data_input_producer_becomes_control_dependency() -> None:
    scope = graph(
        node("v", "VarHandleOp", dtype="DT_FLOAT", shape=attr_values.from_plain([], "shape")),
        node("dcor", "DisableCopyOnRead", ["v"]),
        node("other", "NoOp", ["^dcor"]),
    )
    run([scope], REMOVE_DCOR)
    assert inputs_of(scope)["other"] == ["^v"]


def test_control_ret_moves_to_the_single_anchor() -> None:
    scope = function(
        "f", [("h", "DT_RESOURCE")],
        [node("c", "NoOp"), node("dcor", "DisableCopyOnRead", ["h", "^c"])],
        control_ret={"dcor": "dcor"},
    )
    run([scope], REMOVE_DCOR)
    fn = function_from_scope(scope)
    assert dict(fn.control_ret) == {"dcor": "c"}
    assert list(fn.signature.control_output) == ["dcor"]


def test_control_ret_with_several_anchors_gets_a_noop() -> None:
    scope = function(
        "f", [],
        [
            node("v", "VarHandleOp", dtype="DT_FLOAT", shape=attr_values.from_plain([], "shape")),
            node("c", "NoOp"),
            node("dcor", "DisableCopyOnRead", ["v", "^c"]),
        ],
        control_ret={"dcor": "dcor"},
    )
    run([scope], REMOVE_DCOR)
    fn = function_from_scope(scope)
    anchor = fn.control_ret["dcor"]
    nodes = {n.name: n for n in fn.node_def}
    assert nodes[anchor].op == "NoOp"
    assert sorted(nodes[anchor].input) == ["^c", "^v"]
    assert "NoOp" in load_registry(T23)


def test_control_ret_with_nothing_to_wait_for_is_dropped() -> None:
    scope = function(
        "f", [("h", "DT_RESOURCE")],
        [node("dcor", "DisableCopyOnRead", ["h"]), node("keep", "NoOp")],
        control_ret={"dcor": "dcor", "keep": "keep"},
    )
    run([scope], REMOVE_DCOR)
    fn = function_from_scope(scope)
    assert dict(fn.control_ret) == {"keep": "keep"}
    assert list(fn.signature.control_output) == ["keep"]


def test_node_named_from_outside_is_not_removed() -> None:
    scope = graph(node("c", "NoOp"), node("dcor", "DisableCopyOnRead", ["^c"]))
    outcome = run([scope], REMOVE_DCOR, external={"dcor"})
    assert not outcome.applications
    assert [f.kind for f in outcome.findings] == ["rule-error"]
    assert "a signature or the saver names" in outcome.findings[0].message
    assert "dcor" in inputs_of(scope)


def test_removing_a_node_whose_output_is_read_is_an_error() -> None:
    broken = rules("""
id: broken
description: removes a node that is read
since: "2.10"
match: {nodes: {node: {op: Identity}}}
rewrite: {remove: [node]}
""")
    scope = graph(const("x", 1), node("node", "Identity", ["x"], T="DT_INT32"), node("y", "Identity", ["node"], T="DT_INT32"))
    outcome = run([scope], broken)
    assert [f.kind for f in outcome.findings] == ["rule-error"]
    assert "still reads its output" in outcome.findings[0].message


# --- rewiring outputs in both port formats ------------------------------------------------
def _rng_nodes(prefix: str = "") -> list[node_def_pb2.NodeDef]:
    return [
        const("shape", [3]),
        const("alg", 3),
        node("kc", "StatelessRandomGetKeyCounter", ["seed"], Tseed="DT_INT64"),
    ]


def test_output_rewiring_in_graphdef_ports() -> None:
    scope = graph(
        node("seed", "Placeholder", dtype="DT_INT64"),
        *_rng_nodes(),
        node("rng", "StatelessRandomUniformV2", ["shape", "kc", "kc:1", "alg"], dtype="DT_FLOAT", Tshape="DT_INT32"),
        node("y", "Identity", ["rng:0", "^kc"], T="DT_FLOAT"),
        node("z", "Neg", ["rng"], T="DT_FLOAT"),
    )
    outcome = run([scope], RNG_V2_TO_V1)
    assert len(outcome.applications) == 1
    got = inputs_of(scope)
    assert "rng" not in got
    assert got["rng/v1"] == ["shape", "seed"]
    assert got["y"] == ["rng/v1:0", "^kc"]  # kc is still a control input, so it stays
    assert got["z"] == ["rng/v1:0"]
    assert "kc" in got


def test_output_rewiring_in_functiondef_ports_and_unused_producer_removed() -> None:
    scope = function(
        "f", [("seed", "DT_INT64")],
        [
            *_rng_nodes(),
            node("rng", "StatelessRandomUniformV2", ["shape:output:0", "kc:key:0", "kc:counter:0", "alg:output:0"],
                 dtype="DT_FLOAT", Tshape="DT_INT32"),
            node("y", "Identity", ["rng:output:0"], T="DT_FLOAT"),
        ],
        ret={"out": "rng:output:0", "y": "y:output:0"},
    )
    run([scope], RNG_V2_TO_V1)
    fn = function_from_scope(scope)
    nodes = {n.name: n for n in fn.node_def}
    assert set(nodes) == {"shape", "alg", "rng/v1", "y"}  # kc had no other consumer
    assert list(nodes["rng/v1"].input) == ["shape:output:0", "seed"]
    assert nodes["rng/v1"].op == "StatelessRandomUniform"
    assert attr_values.to_plain(nodes["rng/v1"].attr["Tseed"]) == "DT_INT64"
    assert list(nodes["y"].input) == ["rng/v1:output:0"]
    assert fn.ret["out"] == "rng/v1:output:0"


def test_conditions_gate_the_rewrite() -> None:
    scope = graph(
        node("seed", "Placeholder", dtype="DT_INT64"),
        const("shape", [3]), const("alg", 2),
        node("kc", "StatelessRandomGetKeyCounter", ["seed"], Tseed="DT_INT64"),
        node("rng", "StatelessRandomUniformV2", ["shape", "kc", "kc:1", "alg"], dtype="DT_FLOAT", Tshape="DT_INT32"),
    )
    assert not run([scope], RNG_V2_TO_V1).applications  # alg 2 is ThreeFry
    assert "rng" in inputs_of(scope)


def test_pattern_input_port_must_match() -> None:
    scope = graph(
        node("seed", "Placeholder", dtype="DT_INT64"),
        *_rng_nodes(),
        # key and counter swapped: the pattern says input 1 reads kc:0
        node("rng", "StatelessRandomUniformV2", ["shape", "kc:1", "kc", "alg"], dtype="DT_FLOAT", Tshape="DT_INT32"),
    )
    assert not run([scope], RNG_V2_TO_V1).applications


SQUARE = rules("""
id: square
description: test
since: "2.4"
match:
  nodes:
    mul: {op: Mul, inputs: {0: "x:0", 1: "x:0"}}
    x: {op: Placeholder}
rewrite:
  nodes:
    square: {op: Square, inputs: ["x:0"], attrs: {T: {copy: mul.T}}}
  outputs: {"mul:0": "square:0"}
  remove: [mul]
""")


@pytest.mark.parametrize(("second", "applies"), [("p", True), ("q", False)])
def test_pattern_node_reached_on_two_paths_is_one_node(second: str, applies: bool) -> None:
    """x is reached through both inputs of mul: it binds only when both read the same node (the
    pinned-Philox rules meet their mix node and seed Cast this way)."""
    scope = graph(
        node("p", "Placeholder", dtype="DT_FLOAT"), node("q", "Placeholder", dtype="DT_FLOAT"),
        node("mul", "Mul", ["p", second], T="DT_FLOAT"),
        node("out", "Identity", ["mul"], T="DT_FLOAT"),
    )
    assert bool(run([scope], SQUARE).applications) == applies
    assert inputs_of(scope)["out"] == (["mul/square:0"] if applies else ["mul"])


# --- new capabilities: producer / range conditions, const nodes, retype, inputs ---------
TOPK = rules("""
id: topk
description: test
since: "2.13"
match:
  nodes:
    node: {op: TopKV2}
  where:
    - {attr: node.Tk, equals: DT_INT64}
    - {const: "node.input[1]", range: [0, 2147483647]}
    - {producer: "node.input[0]", in: ["Placeholder:0", "Identity"]}
rewrite:
  nodes:
    k32: {op: Cast, inputs: ["node.input[1]"], attrs: {SrcT: DT_INT64, DstT: DT_INT32}}
    idx: {op: Cast, inputs: ["node:1"], attrs: {SrcT: DT_INT32, DstT: DT_INT64}}
    one: {const: {dtype: DT_INT64, value: 1}}
    plus: {op: AddV2, inputs: ["idx:0", "one:0"], attrs: {T: DT_INT64}}
  drop_attrs: [node.Tk, node.index_type]
  inputs: {"node.input[1]": "k32:0"}
  outputs: {"node:1": "plus:0"}
""")


def _topk_graph(k: int, source: str = "Placeholder") -> Scope:
    x = node("x", "Placeholder", dtype="DT_FLOAT") if source == "Placeholder" else const("x", [1.0, 2.0], "DT_FLOAT")
    return graph(
        x, const("k", k, "DT_INT64"),
        node("top", "TopKV2", ["x", "k"], T="DT_FLOAT", Tk="DT_INT64", index_type="DT_INT64"),
        node("i", "Identity", ["top:1"], T="DT_INT64"),
        node("v", "Identity", ["top"], T="DT_FLOAT"),
    )


def test_inputs_rewire_and_new_node_reading_the_rewired_output() -> None:
    scope = _topk_graph(2)
    outcome = run([scope], TOPK)
    assert len(outcome.applications) == 1
    got = inputs_of(scope)
    assert got["top"] == ["x", "top/k32:0"]
    assert got["top/idx"] == ["top:1"]  # the Cast still reads the output that was rewired
    assert got["i"] == ["top/plus:0"]
    assert got["v"] == ["top"]  # output 0 untouched
    one = scope.node_def("top/one")
    assert one.op == "Const" and attr_values.to_plain(one.attr["value"]) == 1
    assert attr_values.to_plain(one.attr["dtype"]) == "DT_INT64"
    assert "Tk" not in scope.node_def("top").attr
    # idempotent: the rewritten node no longer matches (Tk is gone)
    assert not run([scope], TOPK).applications


def test_range_condition() -> None:
    assert not run([_topk_graph(2**31)], TOPK).applications
    assert not run([_topk_graph(-1)], TOPK).applications


def test_producer_condition() -> None:
    assert not run([_topk_graph(2, source="Const")], TOPK).applications


SHAPED = rules("""
id: shaped
description: test
since: "2.4"
match:
  nodes:
    node: {op: Relu}
  where:
    - {shape: "node.input[0]", dim: -1, equals: 1}
    - {shape: "node.input[0]", not_in: [[2, 1]]}
rewrite: {retype: {node: Relu6}}
""")


def _shapes(*shapes: list[int] | None) -> Any:
    """An _output_shapes attr value (None: unknown rank)."""
    from rewriter.protos import attr_value_pb2, tensor_shape_pb2

    value = attr_value_pb2.AttrValue()
    for dims in shapes:
        shape = value.list.shape.add()
        if dims is None:
            shape.unknown_rank = True
        else:
            shape.dim.extend(tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims)
    return value


@pytest.mark.parametrize("recorded, applies", [
    ([3, 1], True), ([-1, 1], True),       # unknown leading dims don't matter
    ([3, 4], False), ([2, 1], False),      # dim test fails / whole-shape test fails
    ([3, -1], False), (None, False),       # unknown dim or rank: the condition does not hold
])
def test_shape_condition_reads_recorded_output_shapes(recorded: list[int] | None, applies: bool) -> None:
    scope = graph(node("x", "Placeholder", dtype="DT_FLOAT", _output_shapes=_shapes(recorded)),
                  node("y", "Relu", ["x"], T="DT_FLOAT"))
    assert bool(run([scope], SHAPED).applications) == applies


def test_shape_condition_without_a_record_does_not_hold() -> None:
    scope = graph(node("x", "Placeholder", dtype="DT_FLOAT"), node("y", "Relu", ["x"], T="DT_FLOAT"))
    assert not run([scope], SHAPED).applications


def test_shape_condition_uses_the_flat_output_and_const_values() -> None:
    # A second output's shape is the second entry of _output_shapes.
    scope = graph(node("x", "Placeholder", dtype="DT_FLOAT"),
                  node("u", "Unique", ["x"], T="DT_FLOAT", out_idx="DT_INT32", _output_shapes=_shapes([5, 3], [4, 1])),
                  node("y", "Relu", ["u:1"], T="DT_FLOAT"))
    assert run([scope], SHAPED).applications
    scope = graph(const("c", [[1], [2], [3]], "DT_FLOAT"), node("y", "Relu", ["c"], T="DT_FLOAT"))
    assert run([scope], SHAPED).applications


def test_shape_condition_reads_function_arg_shapes() -> None:
    fn = function("f", [("x", "DT_FLOAT")], [node("y", "Relu", ["x"], T="DT_FLOAT")], ret={"out": "y:activations:0"})
    assert not run([fn], SHAPED).applications
    for where in ("arg_attr", "_input_shapes"):
        fn = function("f", [("x", "DT_FLOAT")], [node("y", "Relu", ["x"], T="DT_FLOAT")], ret={"out": "y:activations:0"})
        proto = fn.proto
        assert isinstance(proto, function_pb2.FunctionDef)
        if where == "arg_attr":
            proto.arg_attr[0].attr["_output_shapes"].CopyFrom(_shapes([7, 1]))
        else:
            proto.attr["_input_shapes"].CopyFrom(_shapes([7, 1]))
        assert run([fn], SHAPED).applications, where


# --- the shape condition: the static shape TF recorded for an output ----------------------
SHAPE = rules("""
id: shape
description: test
since: "2.15"
match:
  nodes:
    node: {op: FFTND}
  where:
    - any:
        - {shape: "node:0", ends_with: "node.input[1]"}
        - {shape: "node:0", ends_with: [-1, -1]}
rewrite:
  nodes:
    fft: {op: FFT2D, inputs: ["node.input[0]"], attrs: {Tcomplex: DT_COMPLEX64}}
  outputs: {"node:0": "fft:0"}
  remove: [node]
""")


def _shaped_fftnd(recorded: list[int] | None, fft_length: list[int]) -> Scope:
    from rewriter.protos import attr_value_pb2, tensor_shape_pb2

    fftnd = node("fftnd", "FFTND", ["x", "fft_length", "axes"], Tcomplex="DT_COMPLEX64")
    if recorded is not None:
        shapes = attr_value_pb2.AttrValue()
        shapes.list.shape.add().CopyFrom(tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=size) for size in recorded]))
        fftnd.attr["_output_shapes"].CopyFrom(shapes)
    return graph(node("x", "Placeholder", dtype="DT_COMPLEX64"), const("fft_length", fft_length),
                 const("axes", [-2, -1]), fftnd, node("y", "Identity", ["fftnd"], T="DT_COMPLEX64"))


@pytest.mark.parametrize("recorded, fft_length, applies", [
    ([2, 4, 4], [4, 4], True),        # recorded sizes are fft_length
    ([2, 4, 4], [2, 4], False),       # a recorded 4 where fft_length says 2
    ([2, -1, -1], [2, 4], True),      # recorded unknown: nothing recorded is wrong
    ([2, -1, 4], [2, 4], False),      # unknown and a mismatch: neither branch holds
    ([4], [4, 4], False),             # fewer recorded sizes than asked for
    (None, [4, 4], False),            # nothing recorded proves nothing
])
def test_shape_condition(recorded: list[int] | None, fft_length: list[int], applies: bool) -> None:
    assert bool(run([_shaped_fftnd(recorded, fft_length)], SHAPE).applications) == applies


RETYPE = rules("""
id: retype
description: test
since: "2.4"
match: {nodes: {node: {op: StatelessCase}}}
rewrite: {retype: {node: Case}}
---
id: bad-retype
description: test
since: "2.4"
match: {nodes: {node: {op: Relu}}}
rewrite: {retype: {node: TopKV2}}
""")


def test_retype_keeps_inputs_attrs_and_consumers() -> None:
    scope = function(
        "f", [("i", "DT_INT32"), ("x", "DT_FLOAT")],
        [node("case", "StatelessCase", ["i", "x"], Tin=attr_values.from_plain(["DT_FLOAT"], "list(type)"),
              Tout=attr_values.from_plain(["DT_FLOAT"], "list(type)"),
              branches=attr_values.from_plain(["b0", "b1"], "list(func)"))],
        ret={"out": "case:output:0"},
    )
    outcome = run([scope], RETYPE)
    assert outcome.applications[0].retyped == ["case: StatelessCase -> Case"]
    fn = function_from_scope(scope)
    (case,) = fn.node_def
    assert case.op == "Case" and list(case.input) == ["i", "x"]
    assert attr_values.to_plain(case.attr["branches"]) == ["b0", "b1"]
    assert fn.ret["out"] == "case:output:0"


def test_retype_to_op_with_other_output_names_is_refused() -> None:
    scope = graph(node("x", "Placeholder", dtype="DT_FLOAT"), node("r", "Relu", ["x"], T="DT_FLOAT"))
    outcome = run([scope], RETYPE)
    assert [f.kind for f in outcome.findings] == ["rule-error"]
    assert "name their outputs differently" in outcome.findings[0].message
    assert scope.node_def("r").op == "Relu"


# --- a rewrite into ops the target lacks is a refusal, with its own reason -----------------------
LACKING = rules("""
id: to-full-int
description: test
since: "2.4"
match: {nodes: {node: {op: Relu}}}
rewrite: {retype: {node: StatelessRandomUniformFullInt}}
---
id: to-relu6
description: test
since: "2.4"
match: {nodes: {node: {op: Relu, inputs: {0: "x:0"}}, x: {op: Placeholder}}}
rewrite: {retype: {node: Relu6}}
---
id: relu-catch-all
description: test
since: "2.4"
match: {nodes: {node: {op: Relu}}}
refuse: a more general reason
""")


def _relu_graph(feed: str) -> Scope:
    return graph(node("x", "Placeholder", dtype="DT_FLOAT"), const("c", [1.0], "DT_FLOAT"),
                 node("r", "Relu", [feed], T="DT_FLOAT"))


def test_rewrite_into_an_op_the_target_lacks_refuses_with_that_reason() -> None:
    scope = _relu_graph("c")   # to-relu6 does not match: only the lacking rewrite and the catch-all do
    outcome = run([scope], [LACKING[0], LACKING[2]], target=Release(1, 15))
    assert not outcome.applications
    (finding,) = outcome.findings   # not also the catch-all's general reason
    assert (finding.kind, finding.rule, finding.node) == ("refused", "to-full-int", "r")
    assert "StatelessRandomUniformFullInt, but TensorFlow 1.15 lacks it" in finding.message
    assert "Target TensorFlow 2.3 or newer" in finding.message
    assert scope.node_def("r").op == "Relu"


def test_rewrite_into_an_op_the_target_lacks_yields_to_a_later_rule() -> None:
    scope = _relu_graph("x")
    outcome = run([scope], LACKING, target=Release(1, 15))
    assert [app.rule for app in outcome.applications] == ["to-relu6"]
    assert not outcome.findings
    assert scope.node_def("r").op == "Relu6"


# --- fixpoint, idempotence, since ---------------------------------------------------------
CHAIN = rules("""
id: second
description: runs on what the first rule makes; listed first so a second pass is needed
since: "2.4"
match: {nodes: {node: {op: Case}}}
where: []
rewrite: {drop_attrs: [node.output_shapes]}
---
id: first
description: test
since: "2.4"
match: {nodes: {node: {op: StatelessCase}}}
rewrite: {retype: {node: Case}}
""".replace("where: []\n", ""))


def _case_graph() -> Scope:
    return graph(
        node("i", "Placeholder", dtype="DT_INT32"),
        node("case", "StatelessCase", ["i"], Tin=attr_values.from_plain([], "list(type)"),
             Tout=attr_values.from_plain([], "list(type)"),
             branches=attr_values.from_plain(["b0"], "list(func)"),
             output_shapes=attr_values.from_plain([[1]], "list(shape)")),
    )


def test_fixpoint_runs_rules_on_what_other_rules_made_and_is_idempotent() -> None:
    scope = _case_graph()
    outcome = run([scope], CHAIN)
    assert [a.rule for a in outcome.applications] == ["first", "second"]
    before = graph_def_from_scope(scope, []).SerializeToString(deterministic=True)
    again = run([scope], CHAIN)
    assert not again.applications and not again.findings
    assert graph_def_from_scope(scope, []).SerializeToString(deterministic=True) == before


def test_rules_that_undo_each_other_are_caught() -> None:
    cycle = rules("""
id: to-stateless
description: test
since: "2.4"
match: {nodes: {node: {op: If}}}
rewrite: {retype: {node: StatelessIf}}
---
id: to-stateful
description: test
since: "2.4"
match: {nodes: {node: {op: StatelessIf}}}
rewrite: {retype: {node: If}}
""")
    scope = graph(node("c", "Placeholder", dtype="DT_BOOL"), node("if", "If", ["c"], Tcond="DT_BOOL"))
    with pytest.raises(RuleApplicationError, match="still change the graph"):
        run([scope], cycle)


def test_rule_applies_only_below_its_since() -> None:
    scope = _case_graph()
    assert not run([scope], CHAIN, target=Release(2, 4)).applications
    assert scope.node_def("case").op == "StatelessCase"


# --- lossy and refusal rules ----------------------------------------------------------
LOSSY = rules("""
id: lossy-one
description: Not exact at all.
since: "2.4"
exact: false
match: {nodes: {node: {op: StatelessCase}}}
rewrite: {retype: {node: Case}}
""")


def test_lossy_rule_is_refused_unless_allowed() -> None:
    scope = _case_graph()
    outcome = run([scope], LOSSY)
    assert not outcome.applications
    (finding,) = outcome.findings
    assert finding.kind == "lossy" and "--allow-lossy lossy-one" in finding.message
    assert scope.node_def("case").op == "StatelessCase"
    outcome = run([scope], LOSSY, allow_lossy=frozenset({"lossy-one"}))
    assert [a.rule for a in outcome.applications] == ["lossy-one"] and not outcome.findings


REFUSE = rules("""
id: refuse-case
description: test
since: "2.4"
match:
  nodes: {node: {op: StatelessCase}}
  where: [{attr: node.output_shapes, present: true}]
refuse: Re-export without shapes.
---
id: fix-some
description: test
since: "2.4"
match:
  nodes: {node: {op: StatelessCase}}
  where: [{attr: node.Tout, equals: [DT_FLOAT]}]
rewrite: {retype: {node: Case}}
""")


def test_refusal_sees_only_what_rewrites_left() -> None:
    left = _case_graph()
    fixed = graph(
        node("i", "Placeholder", dtype="DT_INT32"),
        node("case", "StatelessCase", ["i"], Tin=attr_values.from_plain([], "list(type)"),
             Tout=attr_values.from_plain(["DT_FLOAT"], "list(type)"),
             branches=attr_values.from_plain(["b0"], "list(func)"),
             output_shapes=attr_values.from_plain([[1]], "list(shape)")),
    )
    outcome = run([left, fixed], REFUSE)
    assert [a.rule for a in outcome.applications] == ["fix-some"]
    (finding,) = outcome.findings
    assert (finding.kind, finding.rule, finding.message, finding.since) == ("refused", "refuse-case", "Re-export without shapes.", "2.4")


REPLACE_TOPK = rules("""
id: replace-topk
description: test
since: "2.13"
match:
  nodes: {node: {op: TopKV2}}
  where: [{attr: node.index_type, equals: DT_INT64}]
rewrite:
  nodes:
    top: {op: TopKV2, inputs: ["node.input[0]", "node.input[1]"], attrs: {T: {copy: node.T}}}
    idx: {op: Cast, inputs: ["top:1"], attrs: {SrcT: DT_INT32, DstT: DT_INT64}}
  outputs: {"node:0": "top:0", "node:1": "idx:0"}
  remove: [node]
""")


def test_externally_named_node_is_replaced_by_a_forwarding_identity_n() -> None:
    scope = graph(
        node("x", "Placeholder", dtype="DT_FLOAT"), const("k", 2),
        node("top", "TopKV2", ["x", "k"], T="DT_FLOAT", index_type="DT_INT64"),
    )
    outcome = run([scope], REPLACE_TOPK, external={"top"})
    assert [a.rule for a in outcome.applications] == ["replace-topk"] and not outcome.findings
    forwarder = scope.node_def("top")
    assert forwarder.op == "IdentityN"
    assert attr_values.to_plain(forwarder.attr["T"]) == ["DT_FLOAT", "DT_INT64"]
    assert inputs_of(scope)["top"] == ["top/top:0", "top/idx:0"]



# --- list attrs: length, elements, comparisons; consts built from the match ----------------
GUARDED_POOL_TEXT = """
id: pool-guarded
description: test
since: "2.4"
match:
  nodes:
    node: {op: MaxPool}
  where:
    - {attr: node.explicit_paddings, length: 8}
    - {attr: "node.explicit_paddings[0]", equals: 0}
    - {compare: ["node.explicit_paddings[2]", "<", "node.ksize[1]"]}
rewrite: {set_attrs: {node.padding: VALID}}
"""
GUARDED_POOL = rules(GUARDED_POOL_TEXT)

PAD_POOL = rules("""
id: pad-pool
description: test
since: "2.4"
match: {nodes: {node: {op: MaxPool}}}
rewrite:
  nodes:
    paddings: {const: {dtype: DT_INT32, value: {copy: node.explicit_paddings}, shape: [4, 2]}}
    lowest: {const: {dtype: {copy: node.T}, value: {limit: lowest}}}
    highest: {const: {dtype: DT_UINT8, value: {limit: highest}}}
    padded: {op: PadV2, inputs: ["node.input[0]", "paddings:0", "lowest:0"], attrs: {T: {copy: node.T}}}
  outputs: {"node:0": "padded:0"}
  remove: [node]
""")


def _pool_graph(dtype: str, paddings: list[int], ksize: int = 2) -> Scope:
    return graph(
        node("x", "Placeholder", dtype=dtype),
        node("pool", "MaxPool", ["x"], T=dtype, padding="EXPLICIT",
             ksize=attr_values.from_plain([1, ksize, ksize, 1], "list(int)"),
             strides=attr_values.from_plain([1, 1, 1, 1], "list(int)"),
             explicit_paddings=attr_values.from_plain(paddings, "list(int)")),
        node("y", "Identity", ["pool"], T=dtype),
    )


def test_list_length_element_and_compare_conditions() -> None:
    assert run([_pool_graph("DT_FLOAT", [0, 0, 1, 1, 1, 1, 0, 0])], GUARDED_POOL).applications
    assert run([_pool_graph("DT_FLOAT", [0, 0, 2, 1, 1, 1, 0, 0], ksize=3)], GUARDED_POOL).applications
    assert not run([_pool_graph("DT_FLOAT", [0, 0, 2, 1, 1, 1, 0, 0])], GUARDED_POOL).applications  # 2 < 2
    assert not run([_pool_graph("DT_FLOAT", [1, 0, 1, 1, 1, 1, 0, 0])], GUARDED_POOL).applications  # element 0
    assert not run([_pool_graph("DT_FLOAT", [0, 0, 1, 1, 1, 1])], GUARDED_POOL).applications  # length 6


ONE_DIAGONAL = rules("""
id: one-diagonal
description: test
since: "2.3"
match:
  nodes: {node: {op: MatrixDiagPartV3}}
  where:
    - {const: "node.input[1]", distinct: 1}
rewrite: {drop_attrs: [node.align]}
""")


@pytest.mark.parametrize("k, applies", [(0, True), ([2], True), ([-1, -1], True), ([-1, 1], False), ([], False)])
def test_distinct_counts_the_different_numbers_of_a_scalar_or_list(k: Any, applies: bool) -> None:
    scope = graph(node("x", "Placeholder", dtype="DT_FLOAT"), const("k", k),
                  const("pad", 0.0, "DT_FLOAT"),
                  node("diag", "MatrixDiagPartV3", ["x", "k", "pad"], T="DT_FLOAT", align="LEFT_RIGHT"))
    assert bool(run([scope], ONE_DIAGONAL, target=Release(1, 15)).applications) is applies


def test_compare_with_a_missing_element_is_false() -> None:
    missing = rules(GUARDED_POOL_TEXT.replace('"node.explicit_paddings[2]"', '"node.explicit_paddings[9]"'))
    assert not run([_pool_graph("DT_FLOAT", [0, 0, 1, 1, 1, 1, 0, 0])], missing).applications


def test_const_from_an_attr_and_a_dtype_limit() -> None:
    for dtype, lowest in (("DT_FLOAT", float(np.finfo(np.float32).min)), ("DT_INT8", -128), ("DT_UINT16", 0)):
        scope = _pool_graph(dtype, [0, 0, 1, 2, 0, 1, 0, 0])
        assert run([scope], PAD_POOL).applications
        paddings = scope.node_def("pool/paddings")
        assert attr_values.to_plain(paddings.attr["value"]) == [[0, 0], [1, 2], [0, 1], [0, 0]]
        low = scope.node_def("pool/lowest")
        assert attr_values.to_plain(low.attr["dtype"]) == dtype
        assert low.attr["value"].tensor.dtype == types_pb2.DataType.Value(dtype)
        assert attr_values.to_plain(low.attr["value"]) == lowest
        assert attr_values.to_plain(scope.node_def("pool/highest").attr["value"]) == 255
        assert inputs_of(scope)["y"] == ["pool/padded:0"]


def test_const_limit_of_a_type_without_one_is_a_rule_error() -> None:
    outcome = run([_pool_graph("DT_STRING", [0, 0, 1, 2, 0, 1, 0, 0])], PAD_POOL)
    assert not outcome.applications
    assert [f.kind for f in outcome.findings] == ["rule-error"]


# --- scope / returned / readers conditions, {format} attrs, retype before set_attrs -------------
NAMED_TABLE = rules("""
id: named-table
description: test
since: "2.7"
match:
  nodes:
    node: {op: AnonymousHashTable}
  where:
    - any:
        - {returned: node}
        - all:
            - {scope: graph}
            - {readers: node, in: [StatefulPartitionedCall]}
rewrite:
  retype: {node: HashTableV2}
  set_attrs: {"node.shared_name": {format: "t/{scope}/{node}"}}
""")


def _anonymous_table(name: str = "table") -> node_def_pb2.NodeDef:
    return node(name, "AnonymousHashTable", key_dtype="DT_INT64", value_dtype="DT_FLOAT")


def test_a_table_only_returned_through_identity_becomes_named_with_a_per_node_shared_name() -> None:
    scope = function("creator", [], [_anonymous_table(), node("id", "Identity", ["table:table_handle:0"], T="DT_RESOURCE")],
                     ret={"out": "id:output:0"})
    outcome = run([scope], NAMED_TABLE)
    (app,) = outcome.applications
    assert app.retyped == ["table: AnonymousHashTable -> HashTableV2"] and app.set_attrs == ["table.shared_name"]
    (table,) = [n for n in function_from_scope(scope).node_def if n.name == "table"]
    assert table.op == "HashTableV2" and table.attr["shared_name"].s == b"t/creator/table"


def test_a_table_the_function_also_reads_is_left_for_a_refusal() -> None:
    scope = function(
        "inline", [("keys", "DT_INT64")],
        [_anonymous_table(), const("default", -1.0, "DT_FLOAT"),
         node("find", "LookupTableFindV2", ["table:table_handle:0", "keys", "default:output:0"],
              Tin="DT_INT64", Tout="DT_FLOAT"),
         node("id", "Identity", ["table:table_handle:0"], T="DT_RESOURCE")],
        ret={"out": "find:values:0", "handle": "id:output:0"},
    )
    assert not run([scope], NAMED_TABLE).applications
    assert function_from_scope(scope).node_def[0].op == "AnonymousHashTable"


def test_readers_condition_in_a_graph() -> None:
    called = graph(_anonymous_table(), node("call", "StatefulPartitionedCall", ["table"]))
    read = graph(_anonymous_table(), node("x", "Placeholder", dtype="DT_INT64"), const("d", -1.0, "DT_FLOAT"),
                 node("find", "LookupTableFindV2", ["table", "x", "d"], Tin="DT_INT64", Tout="DT_FLOAT"))
    unread = graph(_anonymous_table())
    outcome = run([called, read, unread], NAMED_TABLE)
    assert [a.where for a in outcome.applications] == ["graph serve"]
    assert called.node_def("table").attr["shared_name"].s == b"t/serve/table"
    assert read.node_def("table").op == unread.node_def("table").op == "AnonymousHashTable"


def test_returned_is_false_in_a_graph() -> None:
    scope = graph(_anonymous_table(), node("id", "Identity", ["table"], T="DT_RESOURCE"))
    assert not run([scope], NAMED_TABLE).applications


CONST_FROM_ATTR = rules("""
id: const-from-attr
description: test
since: "2.10"
match: {nodes: {node: {op: ApproxTopK}}}
rewrite:
  nodes:
    k: {const: {dtype: DT_INT32, value: {copy: node.k}}}
    top: {op: TopKV2, inputs: ["node.input[0]", "k:0"], attrs: {T: {copy: node.T}}}
  outputs: {"node:0": "top:0", "node:1": "top:1"}
  remove: [node]
""")


def test_a_const_node_takes_its_value_from_a_matched_attr() -> None:
    scope = graph(node("x", "Placeholder", dtype="DT_FLOAT"), node("node", "ApproxTopK", ["x"], T="DT_FLOAT", k=3),
                  node("y", "Identity", ["node:1"], T="DT_INT32"))
    run([scope], CONST_FROM_ATTR)
    k = scope.node_def("node/k")
    assert k.op == "Const" and k.attr["dtype"].type == types_pb2.DT_INT32
    assert attr_values.tensor_to_numpy(k.attr["value"].tensor).tolist() == 3
    assert inputs_of(scope)["node/top"] == ["x", "node/k:0"] and inputs_of(scope)["y"] == ["node/top:1"]


def test_a_const_of_an_attr_out_of_the_dtype_range_is_a_rule_error() -> None:
    scope = graph(node("x", "Placeholder", dtype="DT_FLOAT"), node("node", "ApproxTopK", ["x"], T="DT_FLOAT", k=2**40))
    outcome = run([scope], CONST_FROM_ATTR)
    assert not outcome.applications
    assert [f.kind for f in outcome.findings] == ["rule-error"] and "node.k = 1099511627776 does not fit DT_INT32" in outcome.findings[0].message


DROP_AND_KEEP = rules("""
id: drop-and-keep
description: test
since: "2.10"
match: {nodes: {node: {op: ApproxTopK}}}
rewrite:
  drop_attrs: [node.k]
  nodes:
    k: {const: {dtype: DT_INT32, value: {copy: node.k}}}
""")


def test_a_new_node_copies_the_matched_value_even_when_the_rule_drops_that_attr() -> None:
    scope = graph(node("x", "Placeholder", dtype="DT_FLOAT"), node("node", "ApproxTopK", ["x"], T="DT_FLOAT", k=3))
    run([scope], DROP_AND_KEEP)
    assert attr_values.tensor_to_numpy(scope.node_def("node/k").attr["value"].tensor).tolist() == 3
    assert "k" not in scope.node_def("node").attr


# --- the screen that spares scopes a graph model ------------------------------------------
@pytest.mark.parametrize("target", [Release(1, 15), Release(2, 3)])
def test_a_screened_scope_is_one_no_rule_matches(target: Release) -> None:
    """RuleRun.may_match matches rules on the NodeDefs as they are (a NodeDefView, no graph
    model); plan() skips a scope it says False for.
    On every golden model (rule fixtures, converter fixtures, the example), each such scope gets
    no application and no finding when the catalog runs on its graph model after all; and some
    scopes are screened out, or the check would prove nothing. Where it says True, the catalog
    does apply or find something there (the screen spares every scope it can). And the rewrites
    leave the input proto as it was."""
    from conftest import ROOT
    from rewriter.protos import saved_model_pb2
    from rewriter.rules.engine import RuleRun
    from rewriter.rules.loader import load_rules
    from rewriter.savedmodel.graph_model import NodeDefView
    from rewriter.savedmodel.model import proto_models

    rules = load_rules()
    models = sorted({*ROOT.glob("golden/rules/*/saved_model"), *ROOT.glob("golden/fixtures/*/saved_model"),
                     ROOT / "golden" / "examples" / "keras_cnn"})
    screened = 0
    for path in models:
        data = (path / "saved_model.pb").read_bytes()
        proto = saved_model_pb2.SavedModel.FromString(data)
        run = RuleRun(rules, target)
        for model in proto_models(proto):
            ops = OpSignatures(newest_registry(), load_registry(target), model.library)
            graph_def = proto.meta_graphs[model.index].graph_def
            built = [(NodeDefView.of_graph_def(model.label, graph_def, ops), scope_from_graph_def(model.label, graph_def))]
            built += [(NodeDefView.of_function(f, ops), scope_from_function(f)) for f in graph_def.library.function]
            for position, (view, scope) in enumerate(built):
                scope.ops = ops
                matches = run.may_match(view)
                screened += not matches
                assert run.apply(position, scope) == matches, f"{path.parent.name}: {scope.where()}, may_match {matches}"
        # The graph models share IN's NodeDefs until a rule edits one (Scope.editable_node_def).
        assert proto == saved_model_pb2.SavedModel.FromString(data), f"{path.parent.name}: the rules changed IN's proto"
    assert screened > 100


def test_the_screen_verdict_is_shared_only_by_nodes_with_the_same_screened_values() -> None:
    """may_match works a screen's verdict out once per op and values of the attrs the screen
    reads (Condition.attr_refs): a node with other values, or leaving the attr at its OpDef
    default, gets its own verdict, in the same run and in later scopes."""
    from rewriter.rules.engine import RuleRun
    from rewriter.savedmodel.graph_model import NodeDefView

    screened = rules("""
id: slow-pool
description: test
since: "2.10"
match:
  nodes: {node: {op: MaxPool}}
  where:
    - any: [{attr: node.data_format, equals: NCHW}, {compare: ["node.ksize[1]", ">", 2]}]
rewrite: {set_attrs: {node.data_format: NHWC}}
""")
    ops = OpSignatures(newest_registry(), load_registry(T23), {})

    def pool(name: str, data_format: str | None, ksize: list[int]) -> node_def_pb2.NodeDef:
        made = node(name, "MaxPool", ["x"], T="DT_FLOAT", padding="VALID")
        if data_format is not None:
            made.attr["data_format"].s = data_format.encode()
        made.attr["ksize"].list.i.extend(ksize)
        made.attr["strides"].list.i.extend([1, 1, 1, 1])
        return made

    def view(*pools: node_def_pb2.NodeDef) -> NodeDefView:
        return NodeDefView.of_graph_def("serve", graph_pb2.GraphDef(node=[node("x", "Placeholder"), *pools]), ops)

    run_ = RuleRun(screened, T23)
    nhwc, nchw = pool("a", "NHWC", [1, 2, 2, 1]), pool("b", "NCHW", [1, 2, 2, 1])
    default, wide = pool("c", None, [1, 2, 2, 1]), pool("d", "NHWC", [1, 3, 3, 1])
    assert not run_.may_match(view(nhwc))
    assert run_.may_match(view(nhwc, nchw))  # the first node's verdict is not the second's
    assert not run_.may_match(view(nhwc, default))  # left out: its default, NHWC
    assert run_.may_match(view(wide))  # an element of a list attr read by compare
    assert not run_.may_match(view(pool("e", "NHWC", [1, 2, 2, 1])))  # a known verdict, for another node
    assert RuleRun(screened, T23).may_match(view(nchw)) and run_.may_match(view(nchw))


def test_an_attr_only_tested_for_presence_keys_the_screen_verdict_by_presence() -> None:
    """An attr the op's screens only test for presence (`present: true`) goes into the verdict's
    key as set or not (VarHandleOp.debug_name differs on every node, so keying by value would
    judge each node anew); once another screen on the op reads its value, its value keys it."""
    from rewriter.rules.engine import RuleRun
    from rewriter.savedmodel.graph_model import NodeDefView

    def on_var_handle(rule_id: str, condition: str, rewrite: str) -> str:
        return (f"id: {rule_id}\ndescription: test\nsince: \"2.10\"\nmatch:\n  nodes: {{node: {{op: VarHandleOp}}}}\n"
                f"  where: [{condition}]\nrewrite: {rewrite}\n")

    absent = on_var_handle("no-debug-name", "{attr: node.debug_name, present: false}", "{set_attrs: {node.shared_name: x}}")
    named_b = on_var_handle("debug-name-b", "{attr: node.debug_name, equals: b}", "{drop_attrs: [node.debug_name]}")
    ops = OpSignatures(newest_registry(), load_registry(T23), {})

    def view(debug_name: str) -> NodeDefView:
        handle = node(f"v_{debug_name}", "VarHandleOp", dtype="DT_FLOAT", debug_name=debug_name)
        handle.attr["shape"].shape.SetInParent()
        return NodeDefView.of_graph_def("serve", graph_pb2.GraphDef(node=[handle]), ops)

    only_presence = RuleRun(rules(absent), T23)
    assert not only_presence.may_match(view("a")) and not only_presence.may_match(view("b"))
    (verdicts,) = [found for _, found in only_presence._verdicts.values()]
    assert len(verdicts) == 1  # one verdict for every node that has a debug_name

    value_read = RuleRun(rules(absent + "---\n" + named_b), T23)
    assert not value_read.may_match(view("a"))
    assert value_read.may_match(view("b"))  # not the verdict of "a": the value keys it


def test_holds_is_failure_is_none_on_every_candidate() -> None:
    """Matching asks Condition.holds (no failure worded); `rules explain` asks failure(). On every
    golden model, for every rule and every node of its root ops that binds, each condition's
    holds says exactly whether failure() is None, both ways."""
    from collections import Counter

    from conftest import ROOT
    from rewriter.protos import saved_model_pb2
    from rewriter.rules.engine import Matcher
    from rewriter.rules.loader import load_rules
    from rewriter.savedmodel.model import proto_models

    rules = [rule for rule in load_rules() if rule.where]
    verdicts: Counter[bool] = Counter()
    for path in sorted(ROOT.glob("golden/rules/*/saved_model")):
        proto = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
        for model in proto_models(proto):
            ops = OpSignatures(newest_registry(), load_registry(Release(2, 3)), model.library)
            graph_def = proto.meta_graphs[model.index].graph_def
            for scope in [scope_from_graph_def(model.label, graph_def), *map(scope_from_function, graph_def.library.function)]:
                scope.ops = ops
                matcher = Matcher(scope)
                for rule in rules:
                    for name in matcher.index.names(rule.root.ops):
                        binding = matcher.bind(rule, name)
                        if binding is None:
                            continue
                        for cond in rule.where:
                            holds = cond.holds(matcher, binding)
                            assert holds == (cond.failure(matcher, binding) is None), (path.parent.name, rule.id, cond)
                            verdicts[holds] += 1
    assert verdicts[True] > 100 and verdicts[False] > 100, verdicts


def test_permute_moves_a_list_of_pairs_pair_by_pair() -> None:
    """explicit_paddings holds a (before, after) pair per dimension: NCHW [n, n, c, c, h, h, w, w]
    becomes NHWC [n, n, h, h, w, w, c, c] by the dimension order [0, 2, 3, 1]; one per dimension
    (strides) moves element by element; an empty list stays empty; any other length is an error."""
    from rewriter.rules.engine import RuleApplicationError, _permuted
    from rewriter.savedmodel import attr_values

    def ints(values: list[int]) -> object:
        value = attr_values.AttrValue()
        value.list.i.extend(values)
        return value

    rule = type("R", (), {"id": "r"})()
    order = [0, 2, 3, 1]
    assert list(_permuted(rule, ints([0, 0, 0, 0, 2, 0, 1, 3]), order).list.i) == [0, 0, 2, 0, 1, 3, 0, 0]
    assert list(_permuted(rule, ints([1, 1, 2, 3]), order).list.i) == [1, 2, 3, 1]
    assert list(_permuted(rule, ints([]), order).list.i) == []
    with pytest.raises(RuleApplicationError):
        _permuted(rule, ints([1, 2, 3]), order)


def test_a_match_is_tried_again_once_an_earlier_application_changed_one_of_its_nodes() -> None:
    """RuleRun.apply lists a rule's matches, then rewrites them in turn, each matched again first:
    an earlier application may have edited one of its nodes. Here two Identity nodes
    read one Cast; the rule drops the Cast's Truncate and the reader's `_marked`, but only while
    the Cast has Truncate, so the second match, listed while it had, must not apply."""
    unmark_once = rules("""
id: unmark-once
description: test
since: "2.10"
match:
  nodes:
    node: {op: Identity, inputs: {0: "cast:0"}}
    cast: {op: Cast}
  where: [{attr: cast.Truncate, present: true}]
rewrite: {drop_attrs: [cast.Truncate, node._marked]}
""")
    scope = graph(node("x", "Placeholder", dtype="DT_FLOAT"),
                  node("cast", "Cast", ["x"], SrcT="DT_FLOAT", DstT="DT_INT32", Truncate=True),
                  node("a", "Identity", ["cast"], T="DT_INT32", _marked=True),
                  node("b", "Identity", ["cast"], T="DT_INT32", _marked=True))
    outcome = run([scope], unmark_once)
    assert [app.matched["node"] for app in outcome.applications] == ["a"]
    assert "_marked" in scope.node_def("b").attr and "Truncate" not in scope.node_def("cast").attr
