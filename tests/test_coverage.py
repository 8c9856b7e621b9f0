"""docs/coverage.md: every op, attr, allowed type and arg change after 2.3 has an entry.

The rows come from the shipped registries (tools/gen_coverage.py diffs them release by release).
A registry change that adds a row no rule handles and no exclusion explains makes a MISSING row,
which fails here unless it is a listed known gap.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rewriter.rules.loader import load_rules
from conftest import load_tool

ROOT = Path(__file__).resolve().parent.parent


tool = load_tool("gen_coverage")


@pytest.fixture(scope="module")
def generated() -> tuple[str, list[Any]]:
    return tool.generate()


def test_coverage_md_is_up_to_date(generated: tuple[str, list[Any]]) -> None:
    text, _ = generated
    assert (ROOT / "docs" / "coverage.md").read_text("utf-8") == text, "run tools/gen_coverage.py"


def test_no_row_is_missing_except_the_known_gaps(generated: tuple[str, list[Any]]) -> None:
    _, entries = generated
    missing = {e.row.key for e in entries if e.status == "MISSING"}
    assert missing - tool.KNOWN_GAPS == set(), "registry rows with no rule, refusal or exclusion"
    assert tool.KNOWN_GAPS - missing == set(), "handled rows still listed in KNOWN_GAPS"


def test_every_exclusion_matches_a_row(generated: tuple[str, list[Any]]) -> None:
    _, entries = generated
    used = {id(e.exclusion) for e in entries if e.exclusion is not None}
    unused = [x.pattern for x in tool.EXCLUSIONS if id(x) not in used]
    assert not unused, f"exclusions that match no row: {unused}"


def test_the_diff_sees_the_known_additions(generated: tuple[str, list[Any]]) -> None:
    """The release-by-release diff finds NOTES.md §5's additions, with their first release."""
    _, entries = generated
    rows = {e.row.key: e.row.since for e in entries}
    expected = {"DisableCopyOnRead": "2.10", "StatelessRandomGetKeyCounter": "2.5", "BatchMatMulV3": "2.6",
                "FFTND": "2.15", "Conv": "2.14", "VarHandleOp.debug_name": "2.15", "TopKV2.Tk": "2.13",
                "TensorListGetItem.Tshape": "2.21", "MaxPool.explicit_paddings": "2.4",
                "CTCGreedyDecoder.blank_index": "2.6", "XlaCallModule": "2.10", "DecodeWebP": "2.20"}
    assert {k: rows.get(k) for k in expected} == expected


def test_a_row_nobody_handles_is_missing() -> None:
    """The check can fail: a new op, attr or type that no rule names and no exclusion explains."""
    rules = load_rules()
    rows = [tool.Row("op", "BrandNewInferenceOp", "BrandNewInferenceOp", "2.22"),
            tool.Row("attr", "MatMul.new_flag", "MatMul", "2.22"),
            tool.Row("type", "AddV2.T:DT_FLOAT8_E5M2", "AddV2", "2.22")]
    assert [e.status for e in tool.classify(rows, rules)] == ["MISSING"] * 3


def test_rules_win_over_exclusions_and_exclusions_need_a_match() -> None:
    rules = load_rules()
    handled = tool.classify([tool.Row("op", "XlaCallModule", "XlaCallModule", "2.10"),
                             tool.Row("op", "_MklSomething", "_MklSomething", "2.5")], rules)
    assert handled[0].status == "refusal" and "xla-call-module" in handled[0].rules
    assert handled[1].status == "excluded" and handled[1].exclusion.category == "internal"
