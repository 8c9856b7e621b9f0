"""Every rule holds in every target it applies to (issue 11, issue 13's last "Done when").

A rule with `since: S` applies to every target older than S. tests/test_rules_catalog.py proves
each rule in one release (2.3, or 1.15 for a rule of older targets only); this tier proves every
rule fixture in every release from 1.15 to 2.20 older than the `since` of a rule it holds, in that
release's real runtime: the rule applied, every output matched, bit for bit when the rule claims
exactness (a refusal: its fixture is refused by it with its message). The proofs are
tools/target_matrix.py's (`--rules`), which also writes the summary in docs/targets.md.

    .venv/bin/python -m pytest -m slow tests/test_targets_rules.py            # everything (~20 min)
    .venv/bin/python -m pytest -m slow tests/test_targets_rules.py -k "to-1.15]"   # one release

The main suite runs one case: the 1.15-only batch-norm rule in TF 1.15.5 is already proven by
the catalog, so here it is 2.9 for one rule whose since is newer (a few seconds): the tier's own
machinery, on a release the catalog never runs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import load_tool

matrix = load_tool("target_matrix")
CASES = matrix.rule_tier_cases()
# Main suite: one rule in one release the catalog (2.3) does not run: disable-copy-on-read (TF
# 2.10) in TF 2.9.3, the tfjs-node release; its fixture is tiny.
MAIN = [("disable-copy-on-read", "2.9")]


@pytest.fixture(scope="module")
def prover(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return matrix.FixtureProofs(tmp_path_factory.mktemp("rule-tier"))


def _case_id(case: tuple[Any, str]) -> str:
    return f"{case[0].id}-to-{case[1]}"


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_rule_holds_in_every_release_it_applies_to(case: tuple[Any, str], prover: Any) -> None:
    rule, release = case
    proof = prover.prove(rule, release)
    assert proof.ok, f"{rule.id} in {release}: {proof.detail}"


@pytest.mark.parametrize("case", [c for c in CASES if (c[0].id, c[1]) in MAIN], ids=_case_id)
def test_rule_tier_representative_case(case: tuple[Any, str], prover: Any) -> None:
    rule, release = case
    proof = prover.prove(rule, release)
    assert proof.ok, f"{rule.id} in {release}: {proof.detail}"
    assert f"TensorFlow {release}." in proof.detail


def test_tier_cases_are_the_releases_older_than_since() -> None:
    """The case list is what issue 13 asks: a rule with since S in every tier release older than
    S, 1.15 ... 2.20, and in no other (none older than its targets_from, if it names one)."""
    from rewriter.targets.releases import Release

    by_rule: dict[str, list[str]] = {}
    for rule, release in CASES:
        by_rule.setdefault(rule.id, []).append(release)
    rules = {rule.id: rule for rule, _ in CASES}
    assert "fused-batch-norm-nchw-to-nhwc" in rules and by_rule["fused-batch-norm-nchw-to-nhwc"] == ["1.15"]
    for rule_id, releases in by_rule.items():
        since, oldest = rules[rule_id].since, rules[rule_id].targets_from
        expected = [r.key for r in matrix.tier_releases() if r < since and (oldest is None or r >= oldest)]
        assert releases == expected, rule_id
        assert all(Release(1, 15) <= Release(*map(int, r.split("."))) <= Release(2, 20) for r in releases)
    assert {c[1] for c in CASES} >= {"1.15", "2.3", "2.9"}
    assert "1.15" not in by_rule["segment-sum-v2"] and "2.3" in by_rule["segment-sum-v2"]


def test_rule_summary_lists_what_is_not_proven(tmp_path: Path) -> None:
    proofs = [matrix.RuleProof("a", "1.15", True, "bit-identical"),
              matrix.RuleProof("b", "1.15", False, "parity failed | x"),
              matrix.RuleProof("c", "1.15", False, "refused: y"),
              matrix.RuleProof("d", "1.15", False, "parity failed | x"),
              matrix.RuleProof("a", "2.9", True, "bit-identical")]
    lines = matrix.rules_summary(proofs, "cmd", 1.0)
    assert "| 1.15 | 1 of 4 | b, d: parity failed / x; c: refused: y |" in lines
    assert "| 2.9 | 1 of 1 | - |" in lines
    doc = tmp_path / "t.md"
    doc.write_text("# T\n\nkept\n")
    matrix.write_section(doc, matrix.RULES_BEGIN, matrix.RULES_END, lines)
    matrix.write_section(doc, matrix.RULES_BEGIN, matrix.RULES_END, lines)
    text = doc.read_text()
    assert text.count(matrix.RULES_BEGIN) == 1 and "kept" in text and "| 2.9 | 1 of 1 | - |" in text
