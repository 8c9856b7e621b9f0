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
from rewriter.rules.object_graph_loader import ObjectGraphRule, load_object_graph_rules


@dataclass(frozen=True)
class Verdict:
    where: str  # the scope: the graph of a MetaGraph, or a function
    node: str
    op: str
    reason: str | None  # None: the rule applies here

    def line(self) -> str:
        what = "applies" if self.reason is None else f"does not apply: {self.reason}"
        return f"{self.where}, node {self.node!r} ({self.op}): {what}"


def find_rule(rule_id: str, rules_dir: Path | None = None) -> Rule | ObjectGraphRule:
    """A graph rule, or else an object-graph or Keras-config rule, of that id."""
    for rule in load_rules(rules_dir):
        if rule.id == rule_id:
            return rule
    for og_rule in load_object_graph_rules(rules_dir / "object-graph" if rules_dir is not None else None):
        if og_rule.id == rule_id:
            return og_rule
    raise BadInput(f"no rule {rule_id!r} (see `tfdowngrade rules list`)")


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
    if isinstance(rule, ObjectGraphRule):
        return _explain_object_graph_text(rule, input_dir, target)
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


def _explain_object_graph_text(rule: ObjectGraphRule, input_dir: Path, target: Release | None) -> str:
    from rewriter.rules.object_graph import explain_messages
    from rewriter.savedmodel.files import read_saved_model

    what = "Keras objects" if rule.keras_match is not None else f"{rule.message} messages of {rule.file}"
    lines = [f"rule {rule.id} ({rule.source}): candidates are the {what}"]
    if target is not None and not rule.applies_to(target):
        lines.append(f"note: the rule is not used for --to {target} (it is for targets older than {rule.since}"
                     + (f" and not older than {rule.targets_from}" if rule.targets_from else "") + ")")
    verdicts = explain_messages(rule, read_saved_model(input_dir))
    if not verdicts:
        lines.append(f"{input_dir} has no {what}: nothing to match")
    for file, path, reason in verdicts:
        lines.append(f"{file}: {path}: " + ("applies" if reason is None else f"does not apply: {reason}"))
    applies = sum(reason is None for _, _, reason in verdicts)
    lines.append(f"{applies} of {len(verdicts)} candidates match (as IN is, before other rules run)")
    return "\n".join(lines) + "\n"
