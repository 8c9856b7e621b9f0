"""Findings: what the validator and the rules say about one node, in a form users and CI can read."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Finding:
    """One problem at one node. `kind` is a stable token for CI:

    unknown-op, unknown-attr, bad-attr, arity, missing-function (validator);
    refused (a refuse: rule), lossy (a lossy rule not allowed), rule-error (a rule could not apply).
    """

    kind: str
    where: str  # "function __inference_call_12" or "graph serve"
    node: str
    op: str
    message: str
    rule: str | None = None
    since: str | None = None  # first release that has the op/attr (bad-attr: that takes the value), when known
    attr: str | None = None  # the attr a release lacks (unknown-attr), else None

    def lacking(self) -> str:
        """What the target lacks, in words: the op, or the op's attr."""
        return f"{self.op}'s attr {self.attr}" if self.attr else self.op

    def line(self) -> str:
        rule = f" [rule {self.rule}]" if self.rule else ""
        return f"{self.where}, node {self.node!r} ({self.op}): {self.message}{rule}"

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}
