#!/usr/bin/env python3
"""Convert every fixture to each target release and judge it in that release's real runtime;
write the table into docs/targets.md (between the MATRIX markers).

    .venv/bin/python tools/target_matrix.py                       # fixtures x 1.15,2.3,2.5,2.7,2.9,2.10,2.11,2.15
    .venv/bin/python tools/target_matrix.py --releases 1.15,2.9 --models keras_cnn,keras3_lstm

Models: the bundled example (golden/examples/keras_cnn), golden/fixtures/* and golden/keras2/*.
Each cell is `match` (converted, and every output matched in the real runtime), `refused: ...`
(the conversion was refused: the first reason), or `FAILED: ...` (parity failed or the runtime
could not load the output). One process converts everything (TensorFlow imported once); each
parity check runs the target's runtime in a subprocess, as every conversion does.

`--rules` proves the rule catalog instead: every rule fixture (golden/rules/, tools/make_rule_fixtures.py)
converted to every release from 1.15 to 2.20 that is older than the `since` of a rule it holds, and
judged in that release's real runtime. Per rule and release: `proven` (the rule applied and every
output matched, bit for bit when the rule claims exactness; a refusal: the conversion was refused
by that rule), else why not. The summary goes into docs/targets.md (between the RULES markers);
the slow test tier tests/test_targets_rules.py runs the same proofs as tests.

    .venv/bin/python tools/target_matrix.py --rules --releases 1.15,2.7,2.9
    .venv/bin/python tools/target_matrix.py --rules --rule-ids fused-batch-norm-nchw-to-nhwc
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_RELEASES = "1.15,2.3,2.5,2.7,2.9,2.10,2.11,2.15"
DOC = ROOT / "docs" / "targets.md"
BEGIN, END = "<!-- MATRIX BEGIN (tools/target_matrix.py) -->", "<!-- MATRIX END -->"
RULES_BEGIN, RULES_END = "<!-- RULES BEGIN (tools/target_matrix.py --rules) -->", "<!-- RULES END -->"
# The rule tier's releases: every target from 1.15 to 2.20 (2.21 is the newest writer, no target).
RULE_TIER_FIRST, RULE_TIER_LAST = "1.15", "2.20"


def models() -> dict[str, Path]:
    found = {"keras_cnn": ROOT / "golden" / "examples" / "keras_cnn"}
    for group in ("fixtures", "keras2"):
        for folder in sorted((ROOT / "golden" / group).iterdir()):
            if (folder / "saved_model").is_dir():
                found[folder.name] = folder / "saved_model"
    return found


def judge(source: Path, target: str, out: Path) -> str:
    from rewriter import api
    from rewriter.errors import Refused, TfDowngradeError

    try:
        report = api.convert(source, out, to=target)
    except Refused as error:
        first = error.findings[0].message if getattr(error, "findings", None) else str(error)
        return f"refused: {first.splitlines()[0][:120]}"
    except TfDowngradeError as error:
        return f"FAILED: {str(error).splitlines()[0][:120]}"
    if report.parity is None or not report.parity.ok:
        return "FAILED: parity"
    return "match"


# --------------------------------------------------------------------------------------- #
# The rule tier: every rule fixture in every release its rules apply to
# --------------------------------------------------------------------------------------- #
@dataclass
class RuleProof:
    """One rule in one release: `ok` and what was seen (`detail`: why not, or the evidence)."""

    rule: str
    release: str
    ok: bool
    detail: str


def tier_releases() -> list[Any]:
    from rewriter.targets.releases import known_releases, parse_release

    first, last = parse_release(RULE_TIER_FIRST), parse_release(RULE_TIER_LAST)
    return [r for r in known_releases() if first <= r <= last]


def rule_tier_cases(rule_ids: set[str] | None = None, releases: set[str] | None = None) -> list[tuple[Any, str]]:
    """(rule, release) for every rule with a fixture and every tier release it applies to: older
    than its since, and not older than its targets_from."""
    from rewriter.rules.loader import load_rules

    cases = []
    for rule in load_rules():
        if rule.fixture is None or (rule_ids and rule.id not in rule_ids):
            continue
        for release in tier_releases():
            if rule.applies_to(release) and (not releases or release.key in releases):
                cases.append((rule, release.key))
    return cases


class FixtureProofs:
    """Converts each fixture once per release (lazily) and judges the rules it holds."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._conversions: dict[tuple[str, str], tuple[Any, str | None]] = {}
        self._checks: dict[tuple[str, str], Any] = {}

    def _tool(self) -> Any:
        sys.path.insert(0, str(ROOT / "tools"))
        import make_rule_fixtures

        return make_rule_fixtures

    def _convert(self, fixture: str, release: str) -> tuple[Any, str | None]:
        """(report, error) of fixture converted to release with parity in its real runtime, as
        tests/test_rules_catalog.py converts for 2.3 (its data.npz inputs, every lossy rule allowed)."""
        if (fixture, release) in self._conversions:
            return self._conversions[fixture, release]
        from rewriter import api
        from rewriter.errors import TfDowngradeError
        from rewriter.verify.parity import ParityOptions
        from rewriter.report.conversion import Report
        from rewriter.rules.loader import load_rules

        tool = self._tool()
        folder = tool.fixture_dir(fixture)
        base = self.workdir / f"{fixture}-{release}"
        base.mkdir(parents=True, exist_ok=True)
        report = Report("convert", folder / "saved_model", base / "out")
        error = None
        try:
            parity = ParityOptions(inputs_file=tool.inputs_file(folder, base / "inputs.npz"),
                                   expected_file=tool.expected_file(folder, base / "expected.npz"))
            api.convert(folder / "saved_model", base / "out", release, report=report, parity=parity, force=True,
                        allow_lossy=[r.id for r in load_rules() if not r.exact])
        except TfDowngradeError as exc:
            findings = getattr(exc, "findings", None)
            # a refusal's first finding says what (op, node, release); the exception only counts them
            what = findings[0].message if findings else str(exc)
            error = f"{type(exc).__name__}: {what.splitlines()[0] if what else ''}"
        self._conversions[fixture, release] = (report, error)
        return report, error

    def prove(self, rule: Any, release: str) -> RuleProof:
        if rule.refuse is not None:
            return self._prove_refusal(rule, release)
        from rewriter.targets.registry import load_registry
        from rewriter.targets.releases import parse_release

        registry = load_registry(parse_release(release))
        lacking = [op for op in rule.rewrite.written_ops if op not in registry]
        if lacking:  # the rule cannot apply there: the claim to prove is that it refuses
            return self._prove_refusal(rule, release, f"TensorFlow {release} lacks {', '.join(lacking)}")
        report, error = self._convert(rule.fixture, release)
        applied = report.plan is not None and any(a.rule == rule.id for a in report.plan.applications)
        if error:
            return RuleProof(rule.id, release, False, error[:300])
        if not applied:
            return RuleProof(rule.id, release, False, f"the rule did not apply to its fixture {rule.fixture}")
        parity = report.parity
        if parity is None:
            return RuleProof(rule.id, release, False, "no parity run")
        bad = [o for o in parity.outputs if o.status != "match"]
        if bad or not parity.ok:
            first = bad[0] if bad else None
            why = f"{first.signature}/{first.output}: {first.status} {first.message}" if first else json.dumps(parity.to_json())[:200]
            return RuleProof(rule.id, release, False, f"parity failed in TensorFlow {parity.target_version}: {why}"[:300])
        if rule.exact:
            off = [o for o in parity.outputs if o.max_abs_error not in (None, 0)]
            if off:
                return RuleProof(rule.id, release, False, f"claims exactness, but {off[0].signature}/{off[0].output} "
                                 f"differs by {off[0].max_abs_error} in TensorFlow {parity.target_version}")
        grade = "bit-identical" if rule.exact else "matched"
        return RuleProof(rule.id, release, True, f"{grade}, {len(parity.outputs)} output(s) in TensorFlow {parity.target_version}")

    def _prove_refusal(self, rule: Any, release: str, lacking: str | None = None) -> RuleProof:
        from rewriter.api import check
        from rewriter.errors import TfDowngradeError

        tool = self._tool()
        if (rule.fixture, release) not in self._checks:
            try:
                self._checks[rule.fixture, release] = check(tool.fixture_dir(rule.fixture) / "saved_model", release)
            except TfDowngradeError as exc:
                self._checks[rule.fixture, release] = exc
        plan = self._checks[rule.fixture, release]
        if isinstance(plan, Exception):
            return RuleProof(rule.id, release, False, f"{type(plan).__name__}: {plan}"[:300])
        refused = [f for f in plan.refusals if f.rule == rule.id]
        if not refused:
            return RuleProof(rule.id, release, False, f"did not refuse its fixture {rule.fixture}")
        if lacking is not None:
            return RuleProof(rule.id, release, True, f"refused: {lacking}")
        if refused[0].message != rule.refuse:
            return RuleProof(rule.id, release, False, "refused with another message")
        return RuleProof(rule.id, release, True, "refused")


def rules_summary(proofs: list[RuleProof], command: str, seconds: float | None) -> list[str]:
    """One row per release; the rules not proven grouped by why (the same refusal often blocks
    every rule of one fixture)."""
    releases = sorted({p.release for p in proofs}, key=lambda k: tuple(int(x) for x in k.split(".")))
    lines = ["| release | rules proven | not proven (rules: why) |", "|---|---|---|"]
    for release in releases:
        here = [p for p in proofs if p.release == release]
        failed = [p for p in here if not p.ok]
        by_reason: dict[str, list[str]] = {}
        for proof in failed:
            by_reason.setdefault(proof.detail[:160], []).append(proof.rule)
        cell = "; ".join(f"{', '.join(rules)}: {why}" for why, rules in by_reason.items()).replace("|", "/")
        lines.append(f"| {release} | {len(here) - len(failed)} of {len(here)} | {cell or '-'} |")
    lines += ["", f"Written by `{command}`" + (f" in {seconds:.0f} s." if seconds is not None else ".")]
    return lines


def write_section(doc: Path, begin: str, end: str, lines: list[str]) -> None:
    text = doc.read_text("utf-8")
    if begin not in text:
        text = text.rstrip("\n") + "\n\n" + begin + "\n" + end + "\n"
    head, _, rest = text.partition(begin)
    _, _, tail = rest.partition(end)
    doc.write_text(head + begin + "\n" + "\n".join(lines) + "\n" + end + tail, "utf-8")


def main_rules(args: argparse.Namespace) -> int:
    releases = set(args.releases.split(",")) if args.releases != DEFAULT_RELEASES else None
    rule_ids = set(args.rule_ids.split(",")) if args.rule_ids else None
    cases = rule_tier_cases(rule_ids, releases)
    started = time.time()
    proofs = []
    with tempfile.TemporaryDirectory(prefix="rule-tier-") as tmp:
        prover = FixtureProofs(Path(tmp))
        # fixture by fixture, so that each conversion's folder can go once its rules are judged
        for rule, release in sorted(cases, key=lambda c: (c[1], c[0].fixture, c[0].id)):
            proof = prover.prove(rule, release)
            print(f"{release} {rule.id}: {'proven' if proof.ok else 'NOT PROVEN'}: {proof.detail}", flush=True)
            proofs.append(proof)
    command = "tools/target_matrix.py --rules" + (f" --releases {args.releases}" if releases else "") + (
        f" --rule-ids {args.rule_ids}" if rule_ids else "")
    if args.write_doc:
        write_section(args.doc, RULES_BEGIN, RULES_END, rules_summary(proofs, command, time.time() - started))
    if args.json:
        args.json.write_text(json.dumps([p.__dict__ for p in proofs], indent=1) + "\n", "utf-8")
    return 0 if all(p.ok for p in proofs) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", default=DEFAULT_RELEASES)
    parser.add_argument("--models", help="comma-separated model names (default: all)")
    parser.add_argument("--doc", type=Path, default=DOC)
    parser.add_argument("--rules", action="store_true",
                        help="prove every rule fixture in every release 1.15-2.20 older than the rule's since "
                             "(--releases: only those; default: all of them)")
    parser.add_argument("--rule-ids", help="with --rules: comma-separated rule ids (default: all)")
    parser.add_argument("--json", type=Path, help="with --rules: also write every verdict as JSON")
    parser.add_argument("--no-doc", dest="write_doc", action="store_false", help="do not rewrite docs/targets.md")
    args = parser.parse_args(argv)
    if args.rules:
        return main_rules(args)
    releases = args.releases.split(",")
    chosen = models()
    if args.models:
        chosen = {k: v for k, v in chosen.items() if k in args.models.split(",")}
    rows = []
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="target-matrix-") as tmp:
        for name, source in chosen.items():
            cells = []
            for release in releases:
                verdict = judge(source, release, Path(tmp) / f"{name}-{release}")
                print(f"{name} -> {release}: {verdict}", flush=True)
                cells.append(verdict)
            rows.append((name, cells))
    table = ["| model | " + " | ".join(releases) + " |", "|---|" + "---|" * len(releases)]
    table += [f"| {name} | " + " | ".join(c.replace("|", "/") for c in cells) + " |" for name, cells in rows]
    table.append("")
    command = f"tools/target_matrix.py --releases {args.releases}" + (f" --models {args.models}" if args.models else "")
    table.append(f"Written by `{command}` in {time.time() - started:.0f} s.")
    if args.write_doc:
        write_section(args.doc, BEGIN, END, table)
    return 0 if all(c == "match" for _, cells in rows for c in cells) else 1


if __name__ == "__main__":
    sys.exit(main())
