"""Repeated rewrite nodes (rewriter/rules/repeat.py): match.counts from recorded shapes, `repeat:`,
`{each: ...}` inputs and `{count: ...}` attrs, on hand-built graphs and inline rules."""
from __future__ import annotations

import pytest

from rewriter.errors import RuleFileError
from test_rule_engine import _shapes, graph, inputs_of, node, rules, run

# One Relu per part of x's last dim, split in parts of the size y's last dim records.
PER_PART = """
id: per-part
description: test
since: "2.4"
match:
  nodes: {node: {op: AddV2}}
  counts:
    parts: {quotient: [{shape: "node.input[0]", dim: -1}, {shape: "node.input[1]", dim: -1}], range: [2, 8]}
rewrite:
  nodes:
    axis: {const: {dtype: DT_INT32, value: -1}}
    split: {op: Split, inputs: ["axis:0", "node.input[0]"], attrs: {T: DT_FLOAT, num_split: {count: parts}}}
    part: {op: Relu, repeat: parts, inputs: ["split:{i}"], attrs: {T: DT_FLOAT}}
    joined: {op: ConcatV2, inputs: [{each: parts, ref: "part_{i}:0"}, "axis:0"],
             attrs: {N: {count: parts}, T: DT_FLOAT, Tidx: DT_INT32}}
  outputs: {"node:0": "joined:0"}
  remove: [node]
"""


def _scope(x_last: int, y_last: int) -> object:
    return graph(node("x", "Placeholder", dtype="DT_FLOAT", _output_shapes=_shapes([2, x_last])),
                 node("y", "Placeholder", dtype="DT_FLOAT", _output_shapes=_shapes([2, y_last])),
                 node("add", "AddV2", ["x", "y"], T="DT_FLOAT"),
                 node("out", "Identity", ["add"], T="DT_FLOAT"))


def test_a_count_repeats_nodes_and_lists_their_outputs() -> None:
    scope = _scope(6, 2)
    outcome = run([scope], rules(PER_PART))
    assert len(outcome.applications) == 1 and not outcome.findings
    edges = inputs_of(scope)  # type: ignore[arg-type]
    assert edges["add/joined"] == ["add/part_0:0", "add/part_1:0", "add/part_2:0", "add/axis:0"]
    assert edges["add/part_2"] == ["add/split:2"]
    assert edges["out"] == ["add/joined:0"]
    split = scope.node_def("add/split")  # type: ignore[attr-defined]
    joined = scope.node_def("add/joined")  # type: ignore[attr-defined]
    assert split.attr["num_split"].i == 3 and joined.attr["N"].i == 3


@pytest.mark.parametrize("x_last, y_last", [(6, 4), (6, 6), (40, 2), (-1, 2), (6, -1)])
def test_an_unknown_uneven_or_out_of_range_count_does_not_match(x_last: int, y_last: int) -> None:
    # 6/4 is not whole, 6/6 = 1 and 40/2 = 20 are out of [2, 8], -1 is a size TF did not know
    assert not run([_scope(x_last, y_last)], rules(PER_PART)).applications


@pytest.mark.parametrize("edit, message", [
    (("    part: {op: Relu, repeat: parts,", "    part: {op: Relu, repeat: other,"), "not one of match.counts"),
    (('inputs: ["split:{i}"], attrs: {T: DT_FLOAT}}', 'inputs: ["split:0"], attrs: {T: DT_FLOAT}}\n    more: {op: Relu, inputs: ["split:{i}"], attrs: {T: DT_FLOAT}}'),
     "only known in a node with `repeat:`"),
    (("range: [2, 8]", "range: [2, 100000]"), "range"),
    (("range: [2, 8]", ""), "range"),
    (('{shape: "node.input[1]", dim: -1}', '{shape: "other.input[1]", dim: -1}'), "a term is"),
    (("  counts:\n    parts: {quotient: [{shape: \"node.input[0]\", dim: -1}, {shape: \"node.input[1]\", dim: -1}], range: [2, 8]}\n", ""),
     "need match.counts"),
])
def test_malformed_repetition_fails_with_file_and_line(edit: tuple[str, str], message: str) -> None:
    old, new = edit
    assert old in PER_PART
    with pytest.raises(RuleFileError, match=message) as raised:
        rules(PER_PART.replace(old, new))
    assert str(raised.value).startswith("test.yaml:")


# A node with a list of outputs replaced by another: `{i+K}` lists inputs from K on, a
# `sum` count, and `outputs: {"node:{i}": {each, ref}}` rewires every output by position (as
# rules/tf1-parse-example.yaml does for ParseExampleV2 -> ParseExample).
REPLACE_N = """
id: replace-n
description: test
since: "2.4"
match:
  nodes: {node: {op: IdentityN}}
  counts:
    rest: {value: 2, range: [0, 8]}
    every: {sum: [1, {shape: "node.input[0]", dim: 0}], range: [1, 8]}
rewrite:
  nodes:
    copy: {op: ShapeN, inputs: ["node.input[0]", {each: rest, ref: "node.input[{i+1}]"}],
           attrs: {N: {count: every}, T: {copy: "node.T[2]"}}}   # element 2 of IdentityN's list
  outputs: {"node:{i}": {each: every, ref: "copy:{i}"}}
  remove: [node]
"""


def test_each_from_a_sum_count_and_every_output_rewired_by_position() -> None:
    from rewriter.savedmodel import attr_values

    types = attr_values.from_plain(["DT_FLOAT"] * 3, "list(type)")
    scope = graph(node("x", "Placeholder", dtype="DT_FLOAT", _output_shapes=_shapes([2])),
                  node("y", "Placeholder", dtype="DT_FLOAT"), node("z", "Placeholder", dtype="DT_FLOAT"),
                  node("idn", "IdentityN", ["x", "y", "z"], T=types),
                  *[node(f"out{k}", "Identity", [f"idn:{k}" if k else "idn"], T="DT_FLOAT") for k in range(3)])
    outcome = run([scope], rules(REPLACE_N))
    assert len(outcome.applications) == 1 and not outcome.findings
    edges = inputs_of(scope)  # type: ignore[arg-type]
    assert edges["idn/copy"] == ["x", "y", "z"]
    assert [edges[f"out{k}"] for k in range(3)] == [["idn/copy:0"], ["idn/copy:1"], ["idn/copy:2"]]
    assert "idn" not in edges
    assert scope.node_def("idn/copy").attr["T"].type == 1  # type: ignore[attr-defined]  # DT_FLOAT


def test_outputs_each_needs_the_index_and_a_count() -> None:
    with pytest.raises(RuleFileError, match="outputs: write"):
        rules(REPLACE_N.replace('"node:{i}": {each: every', '"node:0": {each: every'))
    with pytest.raises(RuleFileError, match="must be <matched node>.<attr> or <matched node>.<attr>\\[k\\]"):
        rules(REPLACE_N.replace('"node.T[2]"', '"node.T[x]"'))
    with pytest.raises(RuleFileError, match="'rest2' in {i\\+...} is neither a whole number nor one of"):
        rules(REPLACE_N.replace('"node.input[{i+1}]"', '"node.input[{i+rest2}]"'))


def test_an_index_shifted_by_counts() -> None:
    # the second group of outputs: node:{i+rest} with rest = 2 reads copy:2 ... copy:{every-1}
    text = REPLACE_N.replace('outputs: {"node:{i}": {each: every, ref: "copy:{i}"}}',
                             'outputs: {"node:{i}": {each: rest, ref: "copy:{i}"}, '
                             '"node:{i+rest}": {each: one, ref: "copy:{i+rest+0}"}}')
    text = text.replace("    rest: {value: 2, range: [0, 8]}", "    rest: {value: 2, range: [0, 8]}\n    one: {value: 1, range: [1, 1]}")
    from rewriter.savedmodel import attr_values

    types = attr_values.from_plain(["DT_FLOAT"] * 3, "list(type)")
    scope = graph(node("x", "Placeholder", dtype="DT_FLOAT", _output_shapes=_shapes([2])),
                  node("y", "Placeholder", dtype="DT_FLOAT"), node("z", "Placeholder", dtype="DT_FLOAT"),
                  node("idn", "IdentityN", ["x", "y", "z"], T=types),
                  *[node(f"out{k}", "Identity", [f"idn:{k}" if k else "idn"], T="DT_FLOAT") for k in range(3)])
    outcome = run([scope], rules(text))
    assert len(outcome.applications) == 1 and not outcome.findings
    edges = inputs_of(scope)  # type: ignore[arg-type]
    assert [edges[f"out{k}"] for k in range(3)] == [["idn/copy:0"], ["idn/copy:1"], ["idn/copy:2"]]
