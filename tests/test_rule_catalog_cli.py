"""One `rules list / show / check` for every kind of rule (graph, object-graph, Keras-config), and the
JSON Schema of the rule format (rules/rule.schema.json) that `check` and editors use."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from rewriter.cli import main

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules"


def test_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads((RULES / "rule.schema.json").read_text()))


def test_check_accepts_every_file_under_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check"]) == 0
    checked = {line.split(": ok")[0] for line in capsys.readouterr().out.splitlines()}
    assert checked == {str(p) for p in RULES.rglob("*.yaml")}
    assert any("/object-graph/" in path for path in checked)


OBJECT_GRAPH_RULE = """\
id: sample-object-rule
description: d
since: "2.6"
exact: true
handles: {fields: [tensorflow.SavedObject.registered_name]}
match:
  message: tensorflow.SavedObject
  where:
    - {field: registered_name, present: true}
rewrite:
  drop_fields: [registered_name]
"""


@pytest.mark.parametrize("text, line, needle", [
    # the schema: an unknown header key, on the rule's first line
    (OBJECT_GRAPH_RULE.replace("exact: true", "exact: true\ncolour: red"), 1, "'colour' was unexpected"),
    # the schema: exact must be true or false, at the rule
    (OBJECT_GRAPH_RULE.replace("exact: true", "exact: maybe"), 1, "exact: 'maybe' is not of type 'boolean'"),
    # the parser: a condition it does not know, at the condition's line
    (OBJECT_GRAPH_RULE.replace("{field: registered_name, present: true}", "{feld: registered_name}"), 9, "feld"),
])
def test_check_rejects_a_malformed_object_graph_rule_with_file_and_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: int, needle: str) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(OBJECT_GRAPH_RULE)
    assert main(["rules", "check", str(good)]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    assert main(["rules", "check", str(bad)]) == 2
    error = capsys.readouterr().err
    assert f"{bad}:{line}:" in error and needle in error, error


def test_list_shows_every_kind_and_show_finds_each(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "list"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    kinds = {row[2] for row in rows}
    assert kinds == {"graph", "object-graph", "keras-config"}
    assert {row[3] for row in rows} >= {"exact", "narrowing", "refusal"}
    since = [tuple(int(p) for p in row[1].split(".")) for row in rows]
    assert since == sorted(since)  # one ordering: by since, then id
    for rule_id in ("saved-object-captured-tensor", "keras-serialization-envelope", "types-2-13-unsortedsegmentsum-tindices"):
        assert main(["rules", "show", rule_id]) == 0
        assert f"id: {rule_id}" in capsys.readouterr().out


def test_rules_show_expands_an_object_graph_family_member(capsys: pytest.CaptureFixture[str]) -> None:
    """keras-layer-new-in-2-9 is one row of a family in rules/object-graph/keras-config.yaml:
    `rules show` prints that rule expanded, with its row, as it does for graph rules."""
    assert main(["rules", "show", "keras-layer-new-in-2-9"]) == 0
    shown = capsys.readouterr().out
    assert "expanded from a family" in shown and "id: keras-layer-new-in-2-9" in shown
    assert "${" not in shown and "keras-layer-new-in-2-11" not in shown
