"""The `narrowing` exactness kind: a rewrite that computes the same values wherever its output runs
and fails loudly on the inputs its `fails_on` names (DecodeImage -> TF 2.3's per-format decoders:
WebP and JPEG XL). It applies by default with a warning and a report entry; --strict refuses it;
lossy stays opt-in. (tests/test_decode_image_tf23.py shows the loud failure in TF 2.3.4.)"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ROOT, run_cli
from rewriter.api import check
from rewriter.errors import RuleFileError
from rewriter.rules.loader import parse_rule_text

FIXTURE = ROOT / "golden" / "rules" / "decode_image" / "saved_model"


def test_narrowing_applies_by_default_and_strict_refuses_it() -> None:
    planned = check(FIXTURE, "2.3")
    applied = {app.rule for app in planned.applications}
    assert applied and all(rule.startswith("decode-image-") for rule in applied)
    assert not planned.refusals
    warnings = [note for note in planned.notes if note.startswith("warning: narrowing rule")]
    assert len(warnings) == len(applied) and all("WebP and JPEG XL" in w for w in warnings)

    strict = check(FIXTURE, "2.3", strict=True)
    assert not strict.applications
    assert {f.kind for f in strict.refusals} == {"narrowing"}
    assert {f.rule for f in strict.refusals} == applied
    assert all("--strict refuses that" in f.message for f in strict.refusals)


def test_report_records_the_inputs_that_fail_and_cli_strict_exits_1(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    result = run_cli("check", FIXTURE, "--to", "2.3", "--report", report)
    assert result.code == 0, result.stderr
    assert "warning: narrowing rule decode-image-" in result.stdout
    data = json.loads(report.read_text())
    assert data["narrowing"] and all("WebP" in entry["fails_on"] for entry in data["narrowing"])
    assert all(app["exactness"] == "narrowing" for app in data["rules_applied"])

    strict = run_cli("check", FIXTURE, "--to", "2.3", "--strict")
    assert strict.code == 1 and "--strict refuses that" in strict.stdout


GOOD = """\
id: sample
description: d
since: "2.10"
exactness: narrowing
fails_on: "inputs of kind X: the op fails with InvalidArgument"
match:
  nodes:
    node: {op: DisableCopyOnRead}
rewrite:
  remove: [node]
"""


def test_narrowing_header_is_checked() -> None:
    (rule,) = parse_rule_text(GOOD, "rules/x.yaml")
    assert rule.exactness == "narrowing" and rule.exact and rule.fails_on
    for text, message in [
        (GOOD.replace('fails_on: "inputs of kind X: the op fails with InvalidArgument"\n', ""), "fails_on"),
        (GOOD.replace("exactness: narrowing", "exactness: mostly"), "exactness must be one of"),
        (GOOD.replace("exactness: narrowing", "exactness: narrowing\nexact: true"), "not both"),
    ]:
        with pytest.raises(RuleFileError, match=message):
            parse_rule_text(text, "rules/x.yaml")
