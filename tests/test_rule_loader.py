"""The rule loader: the shipped rules load, and every malformed rule fails with file:line."""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from rewriter.errors import RuleFileError
from rewriter.rules.conditions import AttrRef, Compare
from rewriter.rules.loader import load_rules, parse_rule_text

RULES_DIR = Path(__file__).resolve().parent.parent / "rules"

GOOD = """\
id: sample
description: a sample
since: "2.10"
match:
  nodes:
    node: {op: DisableCopyOnRead}
rewrite:
  remove: [node]
"""


def _error(text: str, path: str = "rules/x.yaml") -> str:
    with pytest.raises(RuleFileError) as caught:
        parse_rule_text(text, path)
    return str(caught.value)


def _line(message: str) -> int:
    match = re.match(r"^rules/x\.yaml:(\d+): ", message)
    assert match, f"no file:line prefix in {message!r}"
    return int(match.group(1))


def test_builtin_rules_load_with_unique_ids() -> None:
    rules = load_rules()
    assert rules, "rules/ holds no rule"
    ids = [rule.id for rule in rules]
    assert len(ids) == len(set(ids))
    for rule in rules:
        assert re.match(r"^rules/[\w.-]+\.yaml:\d+$", rule.source)
        assert (rule.rewrite is None) != (rule.refuse is None)


def test_good_rule_parses() -> None:
    (rule,) = parse_rule_text(GOOD, "rules/x.yaml")
    assert rule.id == "sample" and str(rule.since) == "2.10" and rule.exact
    assert rule.handles_ops == ("DisableCopyOnRead",)
    assert rule.rewrite is not None and rule.rewrite.remove == ("node",)


def test_bad_yaml_names_file_and_line() -> None:
    message = _error(GOOD + "  nodes: [unclosed\n")
    assert "not valid YAML" in message
    assert _line(message) >= 9


def test_duplicate_key_names_its_line() -> None:
    message = _error(GOOD.replace('since: "2.10"\n', 'since: "2.10"\nsince: "2.11"\n'))
    assert "duplicate key 'since'" in message and _line(message) == 4


def test_unknown_top_level_key() -> None:
    message = _error(GOOD + "colour: blue\n")
    assert "unknown key(s) ['colour']" in message and _line(message) == 1


def test_unknown_key_in_nested_mapping_names_its_line() -> None:
    message = _error(GOOD.replace("  remove: [node]", "  remove: [node]\n  delete: [node]"))
    assert "rewrite: unknown key(s) ['delete']" in message and _line(message) == 8


def test_unknown_node_reference_in_condition() -> None:
    text = GOOD.replace("rewrite:", "  where:\n    - {attr: other.debug_name, present: true}\nrewrite:")
    message = _error(text)
    assert "'other.debug_name'" in message and _line(message) == 8


def test_unknown_node_reference_in_rewrite() -> None:
    message = _error(GOOD.replace("remove: [node]", "remove: [ghost]"))
    assert "'ghost' is not a matched node" in message and _line(message) == 8


def test_unknown_reference_in_new_node_inputs() -> None:
    text = GOOD.replace("  remove: [node]", "  nodes:\n    n2: {op: Identity, inputs: [\"ghost:0\"]}")
    message = _error(text)
    assert "'ghost:0'" in message and _line(message) == 9


def test_unreachable_pattern_node() -> None:
    text = GOOD.replace("    node: {op: DisableCopyOnRead}", "    node: {op: DisableCopyOnRead}\n    lonely: {op: VarHandleOp}")
    message = _error(text)
    assert "['lonely'] are not reached from the first node 'node'" in message and _line(message) == 5


def test_duplicate_id_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text("# another\n\n" + GOOD)
    with pytest.raises(RuleFileError) as caught:
        load_rules(tmp_path)
    assert f"{tmp_path.name}/b.yaml:3: rule id 'sample' is used again (first at {tmp_path.name}/a.yaml:1)" in str(caught.value)


def test_rewrite_and_refuse_together_or_neither() -> None:
    assert "exactly one of rewrite: or refuse:" in _error(GOOD + "refuse: no\n")
    assert "exactly one of rewrite: or refuse:" in _error(GOOD.split("rewrite:")[0])


@pytest.mark.parametrize(
    "replace, expected",
    [
        (('since: "2.10"', "since: soon"), "must be a release"),
        (("id: sample", "id: Sample_Rule"), "must be kebab-case"),
        (("rewrite:\n  remove: [node]", "exact: maybe\nrewrite:\n  remove: [node]"), "exact must be true or false"),
        (("remove: [node]", "retype: {node: 12}"), "retype: write matched_node: NewOp"),
        (("remove: [node]", "inputs: {\"node:0\": \"node:0\"}"), "must be matched_node.input[I]"),
        (("remove: [node]", "nodes:\n    c: {const: {dtype: DT_NOPE, value: 1}}"), "is not a TensorFlow dtype"),
        (("remove: [node]", "nodes:\n    c: {const: {value: 1}}"), "missing key(s) ['dtype']"),
        (("remove: [node]", "nodes:\n    c: {const: {dtype: DT_INT32, value: {limit: smallest}}}"), "limit must be one of"),
        (("remove: [node]", "nodes:\n    c: {const: {dtype: DT_INT32, value: {copy: ghost.x}}}"), "'ghost.x' must be"),
        (("remove: [node]", "nodes:\n    c: {const: {dtype: {copy: node.T}, value: {copy: node.x, limit: lowest}}}"),
         "write {copy: n.attr} or {limit: lowest}"),
        (("remove: [node]", "nodes:\n    c: {const: {dtype: DT_NOPE, value: {limit: lowest}}}"), "is not a TensorFlow dtype"),
        (("remove: [node]", "nodes:\n    c: {const: {dtype: DT_INT32, value: {copy: node.x}, shape: [-1]}}"),
         "shape must be a list of whole numbers"),
        (("remove: [node]", "nodes:\n    c: {const: {dtype: DT_INT32, value: {copy: ghost.k}}}"), "'ghost.k' must be"),
        (("remove: [node]", "nodes:\n    c: {const: {dtype: DT_NOPE, value: {copy: node.k}}}"), "is not a TensorFlow dtype"),
        (("remove: [node]", "set_attrs: {node.shared_name: {format: \"t/{graph}\"}}"), "may only use {scope} and {node}"),
        (("remove: [node]", "set_attrs: {node.shared_name: {format: \"fixed\"}}"), "may only use {scope} and {node}"),
        (("remove: [node]", "set_attrs: {node.shared_name: {format: \"t/{node\"}}"), "format 't/{node'"),
        (("remove: [node]", "nodes:\n    n: {op: HashTableV2, attrs: {shared_name: {format: \"{node!r}\"}}}"),
         "may only use {scope} and {node}"),
    ],
)
def test_malformed_rewrites(replace: tuple[str, str], expected: str) -> None:
    message = _error(GOOD.replace(*replace))
    assert expected in message
    _line(message)


@pytest.mark.parametrize(
    "condition, expected",
    [
        ("{attr: node.x}", "exactly one of present"),
        ("{attr: node.x, present: 1}", "present: must be true or false"),
        ("{attr: node.x, in: 3}", "in: needs a list"),
        ("{attr: node.x, range: [5, 1]}", "range: needs [low, high]"),
        ("{const: node.x, equals: 1}", "must name a matched node's input"),
        ("{producer: 'node.input[0]', in: [\"Bad Op\"]}", "needs a list of Op or Op:OUTPUT"),
        ("{same: [node.x]}", "two or more attr references"),
        ("{colour: red}", "unknown condition ['colour']"),
        ("{shape: node.x, equals: [1]}", "must name a matched node's input"),
        ("{shape: 'node.input[0]', dim: two, equals: 1}", "dim: needs an integer"),
        ("{shape: 'node.input[0]', dim: 1}", "a shape condition needs exactly one of"),
        ("{shape: node, ends_with: [4]}", "must name a matched node's input"),
        ("{shape: 'ghost:0', ends_with: [4]}", "must name a matched node's output (n:0) or input"),
        ("{shape: 'node:0', ends_with: [4, x]}", "ends_with: needs a list of sizes"),
        ("{shape: 'node:0', ends_with: [-2]}", "ends_with: needs a list of sizes"),
        ("{shape: 'node:0', ends_with: 'node:1'}", "must name a matched node's input"),
        ("{shape: 'node:0', dim: 0, ends_with: [4]}", "takes no dim"),
        ("{shape: 'node:0'}", "a shape condition needs exactly one of"),
        ("{attr: node.x, length: -1}", "length: needs a whole number"),
        ("{attr: node.x, length: [4]}", "length: needs a whole number"),
        ("{const: 'node.input[1]', distinct: 0}", "distinct: needs a whole number >= 1"),
        ("{attr: 'node.x[a]', equals: 1}", "must be <matched node>.<attr> or"),
        ("{compare: [node.x, '=<', 1]}", "compare: write [left, OP, right]"),
        ("{compare: [node.x, '<']}", "compare: write [left, OP, right]"),
        ("{compare: ['ghost.x[1]', '<', 1]}", "'ghost.x[1]' must be"),
        ("{compare: [true, '<', 1]}", "must be a number or an attr reference"),
        ("{scope: module}", "scope: must be one of ['graph', 'function']"),
        ("{returned: ghost}", "returned: 'ghost' is not a matched node"),
        ("{readers: node, in: []}", "readers: `in` needs a list of op names"),
        ("{readers: ghost, in: [Identity]}", "readers: 'ghost' is not a matched node"),
        ("{not: {attr: ghost.x, present: true}}", "'ghost.x' must be <matched node>.<attr>"),
    ],
)
def test_malformed_conditions(condition: str, expected: str) -> None:
    text = GOOD.replace("rewrite:", f"  where:\n    - {condition}\nrewrite:")
    message = _error(text)
    assert expected in message
    assert _line(message) == 8


def test_several_rules_in_one_file_keep_their_lines() -> None:
    rules = parse_rule_text(GOOD + "---\n" + GOOD.replace("id: sample", "id: sample-two"), "rules/x.yaml")
    assert [r.source for r in rules] == ["rules/x.yaml:1", "rules/x.yaml:10"]


def test_empty_file_is_an_error() -> None:
    assert "holds no rule" in _error("# nothing\n")


def test_handles_types_parse_and_alone_name_no_op() -> None:
    text = GOOD.replace("match:", 'handles: {types: ["AddV2.T:DT_UINT32", "Equal.T:ANY"]}\nmatch:')
    (rule,) = parse_rule_text(text, "rules/x.yaml")
    assert rule.handles_types == ("AddV2.T:DT_UINT32", "Equal.T:ANY")
    assert rule.handles_ops == ()  # a types-only `handles` claims no op


def test_handles_types_must_be_op_attr_type() -> None:
    message = _error(GOOD.replace("match:", 'handles: {types: ["AddV2:uint32"]}\nmatch:'))
    assert "handles.types" in message and "Op.attr:DT_TYPE" in message and _line(message) == 4


def test_list_conditions_and_match_built_consts_parse() -> None:
    text = GOOD.replace("rewrite:\n  remove: [node]", """\
  where:
    - {attr: node.strides, length: 4}
    - {attr: "node.strides[1]", range: [1, 3]}
    - {compare: ["node.strides[1]", "<=", "node.ksize[1]"]}
rewrite:
  nodes:
    pads: {const: {dtype: DT_INT32, value: {copy: node.explicit_paddings}, shape: [4, 2]}}
    low: {const: {dtype: {copy: node.T}, value: {limit: lowest}}}
    one: {const: {dtype: DT_INT32, value: 1}}
  remove: [node]""")
    (rule,) = parse_rule_text(text, "rules/x.yaml")
    assert rule.where[2] == Compare(AttrRef("node", "strides", 1), "<=", AttrRef("node", "ksize", 1))
    assert rule.rewrite is not None and [n.key for n in rule.rewrite.nodes] == ["pads", "low", "one"]


FAMILY = """\
fragments:
  drop_it: {remove: [node]}
  why: "${op} is dropped"
---
family:
  columns: [name, op]
  rows:
    - [first, OpA]
    - [second, OpB]
rule:
  id: drop-${name}
  description: "${why}"
  since: "2.10"
  match:
    nodes:
      node: {op: "${op}"}
  rewrite: {use: drop_it}
"""


def test_a_family_expands_one_rule_per_row_with_fragments() -> None:
    rules = parse_rule_text(FAMILY, "rules/x.yaml")
    assert [r.id for r in rules] == ["drop-first", "drop-second"]
    assert [r.root.ops for r in rules] == [("OpA",), ("OpB",)]
    assert [r.description for r in rules] == ["OpA is dropped", "OpB is dropped"]
    assert all(r.rewrite is not None and r.rewrite.remove == ("node",) for r in rules)
    assert rules[1].extra["row"] == {"name": "second", "op": "OpB"}


@pytest.mark.parametrize("replace, expected, line", [
    (('id: drop-${name}', 'id: drop-${nmae}'), "${nmae} is neither a parameter here", 11),
    (("rewrite: {use: drop_it}", "rewrite: {use: drop_that}"), "use: no fragment 'drop_that'", 17),
    (("    - [second, OpB]", "    - [second]"), "needs 2 values", 6),
    (('op: "${op}"', 'op: "${op}", op2: x'), "unknown key(s) ['op2']", 16),
])
def test_family_errors_name_the_template_line(replace: tuple[str, str], expected: str, line: int) -> None:
    message = _error(FAMILY.replace(*replace))
    assert expected in message and _line(message) == line, message


def test_copy_permute_must_be_an_order_of_0_to_n() -> None:
    """{copy: n.attr, permute: [...]} reorders a list attr (rules/pool-nchw.yaml's NCHW ksize to
    NHWC); anything but a permutation of 0 ... n-1 is a file:line error."""
    good = GOOD.replace("  remove: [node]",
                        "  nodes:\n    p: {op: MaxPool, attrs: {ksize: {copy: node.ksize, permute: [0, 2, 3, 1]}}}")
    parse_rule_text(good, "rules/x.yaml")
    message = _error(good.replace("[0, 2, 3, 1]", "[0, 2, 2, 1]"))
    assert "permute must list 0 ... n-1" in message and _line(message) == 9


def test_targets_from_bounds_the_targets_a_rule_applies_to() -> None:
    """`targets_from` is the oldest target a rule's proof holds for; it must be older than since."""
    from rewriter.errors import RuleFileError
    from rewriter.targets.releases import Release

    text = ("id: r\ndescription: d\nsince: '2.12'\ntargets_from: '2.3'\n"
            "match: {nodes: {n: {op: SegmentSumV2}}}\nrewrite: {retype: {n: UnsortedSegmentSum}}\n")
    (rule,) = parse_rule_text(text, "r.yaml")
    assert rule.applies_to(Release(2, 3)) and rule.applies_to(Release(2, 11))
    assert not rule.applies_to(Release(1, 15)) and not rule.applies_to(Release(2, 12))
    with pytest.raises(RuleFileError, match="r.yaml:1: targets_from 2.12 must be older than since 2.12"):
        parse_rule_text(text.replace("'2.3'", "'2.12'"), "r.yaml")


# --- a value of the wrong YAML kind anywhere: one clear error, never a crash ----------------
# The documents whose parsers read the most kinds of value (nodes, consts, repeat/each/count,
# outputs, retype, rewrite.inputs, returned, mentions, Keras-config types, drop_fields).
_KINDS_OF_VALUE_FILES = ["approx-top-k.yaml", "grouped-conv-split.yaml", "tf1-parse-example.yaml", "hash-tables.yaml",
                         "control-flow.yaml", "batch-norm-nchw.yaml", "object-graph/full-type.yaml",
                         "object-graph/keras-config.yaml", "object-graph/checkpoint.yaml"]
_OTHER_KINDS: list[Any] = [["x"], {"x": 1}, 3, None]


def _value_paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, inner in items:
        yield from _value_paths(inner, (*path, key))


def _replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copied = copy.deepcopy(document)
    holder = copied
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = value
    return copied


def _mutants(names: list[str], documents_per_file: int | None) -> Iterator[tuple[str, str]]:
    for name in names:
        for document in list(yaml.safe_load_all((RULES_DIR / name).read_text()))[:documents_per_file]:
            for path in _value_paths(document):
                for value in _OTHER_KINDS:
                    yield name, yaml.safe_dump(_replaced(document, path, value), sort_keys=False)


def _parses_or_says_why(name: str, text: str) -> None:
    from rewriter.rules.object_graph_loader import parse_object_graph_rules_text

    parse = parse_object_graph_rules_text if name.startswith("object-graph/") else parse_rule_text
    try:
        parse(text, f"rules/{name}")
    except RuleFileError as error:
        assert str(error).startswith(f"rules/{name}:")


def test_a_value_of_another_kind_anywhere_in_a_rule_is_a_rule_file_error() -> None:
    """Every value of the richest rule documents replaced by a list, a mapping, a number and
    nothing, one at a time: the loaders accept the document or raise RuleFileError (file:line and
    why), which `tfdowngrade rules check` and --rules print as one line; never TypeError or
    AttributeError (a traceback and exit 5)."""
    for name, text in _mutants(_KINDS_OF_VALUE_FILES, 1):
        _parses_or_says_why(name, text)


@pytest.mark.slow
def test_a_value_of_another_kind_in_any_rule_document_is_a_rule_file_error() -> None:
    """The same over every document of every rule file (about 35k documents: minutes)."""
    names = [str(path.relative_to(RULES_DIR)) for path in sorted(RULES_DIR.rglob("*.yaml"))]
    for name, text in _mutants(names, None):
        _parses_or_says_why(name, text)
