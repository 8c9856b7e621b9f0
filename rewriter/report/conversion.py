"""Reports of a conversion: JSON for CI, Markdown for a pull request, a short terminal summary."""
from __future__ import annotations

import json
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from rewriter import __version__
from rewriter.findings import Finding
from rewriter.targets.consumers import runtime_note
from rewriter.verify.parity import ParityReport
from rewriter.pipeline import Plan

REPORT_FORMAT = 1


@dataclass
class Report:
    command: str
    input_dir: Path | None
    output_dir: Path | None
    plan: Plan | None = None
    written: dict[str, str] = field(default_factory=dict)
    parity: ParityReport | None = None
    parity_skipped: str | None = None
    exit_code: int = 0
    error: str | None = None
    lossy_allowed: list[str] = field(default_factory=list)
    # What is at OUT: "verified", "unverified (--no-verify)", "not written"; None before writing.
    output_state: str | None = None
    # Where an output that failed parity (or could not be judged) was kept instead of OUT.
    unverified_output: Path | None = None

    def to_json(self) -> dict[str, Any]:
        plan = self.plan
        data: dict[str, Any] = {
            "format": REPORT_FORMAT,
            "tool": f"tfdowngrade {__version__}",
            "command": self.command,
            "input": str(self.input_dir) if self.input_dir else None,
            "output": str(self.output_dir) if self.output_dir else None,
            "exit_code": self.exit_code,
            "error": self.error,
            "output_state": self.output_state,
            "unverified_output": str(self.unverified_output) if self.unverified_output else None,
        }
        if plan is not None:
            rules = {rule.id: rule for rule in plan.rules}
            data.update({
                "source": {"release": str(plan.source_release), "version": plan.source_version},
                "target": {"release": str(plan.target),
                           **({"consumer": plan.target.consumer} if plan.target.consumer else {})},
                "rules_applied": [
                    {**app.to_json(), "exact": rules[app.rule].exact, "exactness": rules[app.rule].exactness,
                     **({"fails_on": rules[app.rule].fails_on} if rules[app.rule].fails_on else {})}
                    for app in plan.applications
                ],
                # narrowing rules applied: the output fails loudly on these inputs (--strict refuses them)
                "narrowing": [
                    {"rule": rule_id, "fails_on": rules[rule_id].fails_on,
                     "applications": sum(app.rule == rule_id for app in plan.applications)}
                    for rule_id in sorted({app.rule for app in plan.applications if rules[app.rule].fails_on})
                ],
                "rule_counts": dict(sorted(Counter(app.rule for app in plan.applications).items())),
                "object_graph_rules_applied": [
                    {"rule": app.rule, "file": app.file, "path": app.path, "action": app.action}
                    for app in (plan.object_graph.applications if plan.object_graph else [])
                ],
                "lossy_rules_allowed": self.lossy_allowed,
                "findings_before": [f.to_json() for f in plan.before],
                "refusals": [f.to_json() for f in plan.refusals],
                "notes": plan.notes,
            })
        data["files"] = self.written
        if self.parity is not None:
            data["parity"] = self.parity.to_json()
        else:
            data["parity"] = {"skipped": self.parity_skipped or "not run"}
        return data

    def write_json(self, path: Path) -> None:
        _atomic_write(path, json.dumps(self.to_json(), indent=2, sort_keys=False) + "\n")

    def markdown(self) -> str:
        lines = ["# tfdowngrade report", ""]
        plan = self.plan
        if self.input_dir:
            lines.append(f"- input: `{self.input_dir}`")
        if self.output_dir:
            state = f" ({self.output_state})" if self.output_state else ""
            lines.append(f"- output: `{self.output_dir}`{state}")
        if self.unverified_output:
            lines.append(f"- unverified output kept at: `{self.unverified_output}`")
        if plan is not None:
            lines.append(f"- source: TensorFlow {plan.source_version}; target: TensorFlow {plan.target.describe()}")
        lines.append(f"- exit code: {self.exit_code}" + (f" ({self.error})" if self.error else ""))
        lines.append("")
        if plan is not None:
            lines += ["## Rules applied", ""]
            counts = Counter(app.rule for app in plan.applications)
            if counts:
                lines += ["| rule | applications |", "|---|---|"]
                lines += [f"| `{rule}` | {n} |" for rule, n in sorted(counts.items())]
            else:
                lines.append("No rule applied.")
            og_counts = Counter(app.rule for app in (plan.object_graph.applications if plan.object_graph else []))
            if og_counts:
                lines += ["", "## Object-graph rules applied", "", "| rule | changes |", "|---|---|"]
                lines += [f"| `{rule}` | {n} |" for rule, n in sorted(og_counts.items())]
            if self.lossy_allowed:
                lines += ["", f"**Lossy rules allowed by the user:** {', '.join(self.lossy_allowed)}"]
            rules = {rule.id: rule for rule in plan.rules}
            narrowing = sorted({app.rule for app in plan.applications if rules[app.rule].fails_on})
            if narrowing:
                lines += ["", "## Narrowing rules applied", "",
                          "The output computes the same values wherever it runs, and fails loudly on these inputs "
                          "(`--strict` refuses such rules):", ""]
                lines += [f"- `{rule_id}`: fails on {rules[rule_id].fails_on}" for rule_id in narrowing]
            if plan.refusals:
                lines += ["", "## Refusals", ""]
                lines += [f"- {f.line()}" for f in plan.refusals]
            if plan.notes:
                lines += ["", "## Notes", ""] + [f"- {note}" for note in plan.notes]
        lines += ["", "## Parity", ""]
        parity = self.parity
        if parity is None:
            lines.append(f"Skipped: {self.parity_skipped or 'not run'}.")
        else:
            lines.append(f"Target runtime: TensorFlow {parity.target_version} (wheel sha256 `{parity.runtime_sha256[:16]}…`), seed {parity.seed}.")
            lines += _runtimes_markdown(parity)
            if parity.load_error:
                lines.append(f"\n**The target failed to load the model:** {parity.load_error}")
            for name, error in sorted(parity.function_errors.items()):
                lines.append(f"- function `{name}` refused by the target's importer: {error}")
            if parity.pinned_seeds:
                lines.append(f"- {_pinned_words(parity.pinned_seeds)}")
            for key, fed in sorted(parity.input_strategies.items()):
                lines.append(f"- inputs of {key}: {_strategy_words(fed)}")
            if parity.outputs:
                lines += ["", "| signature | output | dtype | shape | grade | max abs err | error / range | bound / range "
                          "| precision | max rel err | rtol / atol |", "|---|---|---|---|---|---|---|---|---|---|---|"]
                for o in parity.outputs:
                    tol = f"{o.rtol:g} / {o.atol:g}" if o.rtol is not None else "—" if o.bound is not None else "exact"
                    lines.append(
                        f"| {o.signature} | {o.output} | {o.dtype} | {o.shape} | {o.grade or o.status}"
                        f"{': ' + o.message if o.message else ''} | {_num(o.max_abs_error)} | {_num(o.error_of_range)} "
                        f"| {_num(o.bound_of_range)} | {o.precision or ''} | {_num(o.max_rel_error)} | {tol} |"
                    )
                origins = [o for o in parity.outputs if o.bound_origin]
                if origins:
                    lines += ["", "Where each bound comes from:", ""]
                    lines += [f"- {o.signature}/{o.output}: {o.bound_origin}" for o in origins]
            for skipped in parity.skipped:
                lines.append(f"- skipped: {skipped}")
            for key, error in sorted(parity.source_session_errors.items()):
                lines.append(f"- {_source_session_note(key, error)}")
            if parity.source_load_note():
                lines.append(f"- {parity.source_load_note()}")
            loader = parity.python_loader
            if loader is not None:
                lines += ["", f"### TensorFlow {loader.version}'s Python loader (`tf.saved_model.load`)", ""]
                if loader.load_error:
                    lines.append(f"**It failed to load the model:** {loader.load_error}")
                lines += [f"- {o.signature}/{o.output}: {o.status}{': ' + o.message if o.message else ''}"
                          f"{'' if o.max_abs_error is None else f' (max abs err {_num(o.max_abs_error)})'}"
                          for o in loader.outputs]
        return "\n".join(lines) + "\n"

    def write_markdown(self, path: Path) -> None:
        _atomic_write(path, self.markdown())


def _pinned_words(pinned: list[str]) -> str:
    """The unseeded random ops parity pinned (rewriter/verify/seeds.py), in one sentence."""
    more = f" and {len(pinned) - 1} more" if len(pinned) > 1 else ""
    return (f"{len(pinned)} unseeded random op(s) ({pinned[0]}{more}) ran with the same seeds in both models, "
            "since they draw other numbers on every run; OUT keeps them unseeded")


# A match whose bound is at least this part of the output's range says so on its line.
LOOSE_BOUND_OF_RANGE = 0.01


def _strategy_words(fed: dict[str, Any]) -> str:
    """Which input strategy fed a signature (rewriter/verify/input_synthesis.py), in words."""
    strategy = fed.get("strategy")
    failed = f" (failed first: {'; '.join(fed['failed'])})" if fed.get("failed") else ""
    if strategy is None:
        return f"nothing the source accepts{failed}"
    why = fed.get("why") or {}
    reasons = "; ".join(f"{name}: {', '.join(r)}" for name, r in sorted(why.items()))
    return f"{strategy}{' - ' + reasons if reasons else ''}{failed}"


def _runtimes_markdown(parity: ParityReport) -> list[str]:
    """Which runtime judged which side (README: "Which runtime judged which side")."""
    from rewriter.runtimes.source_runtime import TARGET_DESCRIBE

    source = parity.source_runtime
    lines = ["", "| side | runtime | why |", "|---|---|---|"]
    if source is not None:
        lines.append(f"| source (IN) | {source.describe()} | {source.reason} |")
    lines.append(f"| output (OUT) | {TARGET_DESCRIBE.format(version=parity.target_version)} | the target |")
    if source is not None and source.notes:
        lines += [""] + [f"- {note}" for note in source.notes]
    return lines


def _source_session_note(key: str, error: str) -> str:
    return (f"the source fails on {key} too when loaded as a C++ loader loads it (a TF1 session in the installed "
            f"TensorFlow, as TF Serving does): {error}. The conversion did not cause this; fix the source export")


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, "utf-8")
    os.replace(tmp, path)


# --- terminal -------------------------------------------------------------------------
def _colors(stream: TextIO) -> tuple[str, str, str]:
    if os.environ.get("NO_COLOR") or not getattr(stream, "isatty", lambda: False)():
        return "", "", ""
    return "\033[32m", "\033[31m", "\033[0m"


def print_findings(findings: list[Finding], stream: TextIO = sys.stdout, limit: int = 50) -> None:
    for finding in findings[:limit]:
        print(f"  - {finding.line()}", file=stream)
    if len(findings) > limit:
        print(f"  ... and {len(findings) - limit} more (see --report)", file=stream)


def print_summary(report: Report, stream: TextIO = sys.stdout) -> None:
    green, red, reset = _colors(stream)
    plan = report.plan
    if plan is not None:
        counts = Counter(app.rule for app in plan.applications)
        print(f"TensorFlow {plan.source_version} -> {plan.target.describe()}: {sum(counts.values())} rewrite(s)", file=stream)
        for rule, n in sorted(counts.items()):
            print(f"  {rule}: {n}", file=stream)
        for note in plan.notes:
            if note.startswith("warning"):  # every warning reaches the terminal, not only the report
                print(f"{red}{note}{reset}", file=stream)
        if plan.refusals:
            print(f"{red}{len(plan.refusals)} refusal(s):{reset}", file=stream)
            print_findings(plan.refusals, stream)
    parity = report.parity
    if parity is None:
        if report.parity_skipped:
            print(f"parity: skipped ({report.parity_skipped})", file=stream)
        return
    if parity.source_runtime is not None:
        from rewriter.runtimes.source_runtime import TARGET_DESCRIBE

        print(f"parity: source: {parity.source_runtime.describe()}; output: "
              f"{TARGET_DESCRIBE.format(version=parity.target_version)}", file=stream)
    patch = runtime_note(plan.target.consumer if plan is not None else None, parity.target_version)
    if patch:
        print(f"parity: {patch}", file=stream)
    if parity.load_error:
        print(f"{red}parity: TensorFlow {parity.target_version} could not load the output: {parity.load_error}{reset}", file=stream)
        if parity.source_load_note():
            print(f"{red}parity: {parity.source_load_note()}{reset}", file=stream)
    for name, error in sorted(parity.function_errors.items()):
        print(f"{red}parity: TensorFlow {parity.target_version} refuses function {name}: {error}{reset}", file=stream)
    if parity.pinned_seeds:
        print(f"parity: {_pinned_words(parity.pinned_seeds)}", file=stream)
    for key, fed in sorted(parity.input_strategies.items()):
        if fed.get("strategy") not in ("random", "--inputs", None):
            print(f"parity: inputs of {key}: {_strategy_words(fed)}", file=stream)
    said: dict[tuple[str, str], str] = {}  # (signature, error message) -> the first output it was printed for
    for o in parity.outputs:
        color = green if o.status == "match" else red
        if o.status == "error" and o.message:
            first = said.setdefault((o.signature, o.message), o.output)
            if first != o.output:  # a signature that fails fails every output alike: say it once
                print(f"  {color}{o.status:16}{reset} {o.signature}/{o.output} {o.dtype}{list(o.shape)} "
                      f"(the same error as {o.signature}/{first})", file=stream)
                continue
        detail = f" max abs err {o.max_abs_error:.2g}" if o.max_abs_error is not None else ""
        if o.bound is not None and o.grade != "bit-identical":
            # (both absolute first, then both as parts of the range: a relative bound beside an
            # absolute error read as a pass above the bound)
            detail += (f", noise bound {_num(o.bound)} ({_num(o.error_of_range)} and {_num(o.bound_of_range)} "
                       f"of the range, {o.precision})")
            if o.status == "match" and o.bound_of_range is not None and o.bound_of_range >= LOOSE_BOUND_OF_RANGE:
                # (said in the line, not only in the report's bound_origin: the match is this weak)
                detail += f"; errors under {_num(o.bound_of_range)} of the range cannot be seen here"
        elif o.rtol is not None:
            detail += f" (--rtol {o.rtol:g} / --atol {o.atol:g})"
        extra = f" ({o.message})" if o.message else ""
        print(f"  {color}{o.grade or o.status:16}{reset} {o.signature}/{o.output} {o.dtype}{list(o.shape)}{detail}{extra}",
              file=stream)
    for key, error in sorted(parity.source_session_errors.items()):
        print(f"{red}parity: {_source_session_note(key, error)}{reset}", file=stream)
    for skipped in parity.skipped:
        print(f"{red}parity: not compared: {skipped}{reset}", file=stream)
    loader = parity.python_loader
    if loader is not None:
        if loader.load_error:
            print(f"{red}parity: TensorFlow {loader.version}'s Python loader fails: {loader.load_error}{reset}", file=stream)
        for o in loader.outputs:
            color = green if o.status == "match" else red
            extra = f" ({o.message})" if o.message else ""
            print(f"  {color}{o.status:8}{reset} {o.signature}/{o.output} in tf.saved_model.load {loader.version}{extra}",
                  file=stream)
    judges = " (C++ loader and tf.saved_model.load)" if parity.python_loader is not None else ""
    grades = ", ".join(f"{sum(o.grade == g for o in parity.outputs)} {g}" for g in ("bit-identical", "within-noise", "within-tolerance")
                       if any(o.grade == g for o in parity.outputs))
    from rewriter.verify.parity import VACUOUS  # (loaded already: parity ran)

    empty = sum(o.message in VACUOUS for o in parity.outputs)
    if empty:
        grades += f"{', ' if grades else ''}{empty} with no elements or only NaN, whose values were not compared"
    judges += f" ({grades})" if grades else ""
    verdict = f"{green}parity: all {len(parity.outputs)} output(s) match in TensorFlow {parity.target_version}{judges}{reset}" if parity.ok \
        else f"{red}parity: FAILED in TensorFlow {parity.target_version}{reset}"
    print(verdict, file=stream)
