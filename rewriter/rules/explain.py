"""`tfdowngrade rules explain RULE_ID IN`: why a rule does (not) apply to each candidate node.

A candidate is a node whose op is one of the rule's root ops. For each, the matcher binds the
pattern and evaluates the conditions with reasons (rule_conditions.Condition.failure), and the
first part that does not hold is reported. IN is read as it is, before any other rule runs: a
rule that only matches what another rewrite produced shows that rewrite's input here.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from rewriter.errors import BadInput
from rewriter.savedmodel.model import build_scopes
from rewriter.targets.registry import load_registry
from rewriter.targets.releases import Release
from rewriter.rules.engine import Matcher, OpIndex
from rewriter.savedmodel.op_signatures import OpSignatures
from rewriter.rules.loader import Rule, load_rules


@dataclass(frozen=True)
class Verdict:
    where: str  # the scope: the graph of a MetaGraph, or a function
    node: str
    op: str
    reason: str | None  # None: the rule applies here

    def line(self) -> str:
        what = "applies" if self.reason is None else f"does not apply: {self.reason}"
        return f"{self.where}, node {self.node!r} ({self.op}): {what}"


def find_rule(rule_id: str, rules_dir: Path | None = None) -> Rule:
    for rule in load_rules(rules_dir):
        if rule.id == rule_id:
            return rule
    raise BadInput(f"no graph rule {rule_id!r} (see `tfdowngrade rules list`)")


def explain(rule: Rule, input_dir: Path) -> list[Verdict]:
    """One verdict per candidate node of IN, in scope and node order."""
    from rewriter.pipeline import _registry_for, source_release_of
    from rewriter.savedmodel.files import read_saved_model

    files = read_saved_model(input_dir)
    source_release, _ = source_release_of(files.proto)
    proto = copy.deepcopy(files.proto)
    models = build_scopes(proto)
    # Port arithmetic needs OpDefs: the source's registry, then the oldest known one.
    source, oldest = _registry_for(source_release), load_registry(Release(2, 3))
    verdicts: list[Verdict] = []
    for model in models:
        ops = OpSignatures(source, oldest, model.signatures())
        for scope in model.scopes:
            scope.ops = ops
            index = OpIndex(scope)
            matcher = Matcher(scope, index)
            for name in index.names(rule.root.ops):
                verdicts.append(Verdict(scope.where(), name, scope.node_def(name).op, matcher.explain(rule, name)))
    return verdicts


def explain_text(rule_id: str, input_dir: Path, target: Release | None = None, rules_dir: Path | None = None) -> str:
    rule = find_rule(rule_id, rules_dir)
    lines = [f"rule {rule.id} ({rule.source}): root ops {', '.join(rule.root.ops)}"]
    if target is not None and not rule.applies_to(target):
        lines.append(f"note: the rule is for targets older than {rule.since}; --to {target} does not use it")
    verdicts = explain(rule, input_dir)
    if not verdicts:
        lines.append(f"no node of {input_dir} has op {' or '.join(rule.root.ops)}: nothing to match")
    lines.extend(v.line() for v in verdicts)
    applies = sum(v.reason is None for v in verdicts)
    lines.append(f"{applies} of {len(verdicts)} candidate nodes match (as IN is, before other rules run)")
    return "\n".join(lines) + "\n"
