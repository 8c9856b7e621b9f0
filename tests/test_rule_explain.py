"""`tfdowngrade rules explain RULE_ID IN`: for each candidate node, which pattern part or condition
did not hold (rule_conditions.Condition.failure), read from the committed rule fixtures. Static: no
runtime runs."""
from __future__ import annotations

from pathlib import Path

import pytest

from rewriter.cli import main

RULES = Path(__file__).resolve().parent.parent / "golden" / "rules"


def _explain(capsys: pytest.CaptureFixture[str], rule_id: str, fixture: str) -> list[str]:
    assert main(["rules", "explain", rule_id, str(RULES / fixture / "saved_model")]) == 0
    return capsys.readouterr().out.splitlines()


def test_pattern_part_that_does_not_match(capsys: pytest.CaptureFixture[str]) -> None:
    # alg="philox" feeds the V2 op a computed key, not StatelessRandomGetKeyCounter's
    lines = _explain(capsys, "stateless-random-uniform-v2", "rng_philox")
    assert any("does not apply: pattern rng.input[1] (kc:0): it reads" in line
               and "wants StatelessRandomGetKeyCounter or StatelessRandomGetKeyCounterAlg" in line for line in lines)
    # ... while its -philox sibling matches that subgraph
    assert any(line.endswith(": applies") for line in _explain(capsys, "stateless-random-uniform-v2-philox", "rng_philox"))


def test_const_condition_and_the_nodes_that_match(capsys: pytest.CaptureFixture[str]) -> None:
    lines = _explain(capsys, "fftnd-innermost-2d", "fft_nd")
    assert any("condition 1 (const): the Const node.input[2] is [-1], wants [-2, -1]" in line for line in lines)
    assert sum(line.endswith(": applies") for line in lines) >= 1
    assert lines[-1].endswith("candidate nodes match (as IN is, before other rules run)")


def test_shape_condition_inside_any(capsys: pytest.CaptureFixture[str]) -> None:
    lines = _explain(capsys, "fftnd-innermost-2d", "fft_nd_refused")
    assert any("condition 2 (any): none of these holds: the shape of node:0, [2, 2, 2, 2], does not end with [1, 2]"
               in line for line in lines)


def test_attr_condition(capsys: pytest.CaptureFixture[str]) -> None:
    lines = _explain(capsys, "decode-image-grey", "decode_image")
    assert any("condition 1 (attr): attr node.dtype is 'DT_UINT16', wants 'DT_UINT8'" in line for line in lines)


def test_unknown_rule_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "explain", "no-such-rule", str(RULES / "fft_nd" / "saved_model")]) == 2
    assert "no rule 'no-such-rule'" in capsys.readouterr().err


def test_object_graph_rule_says_why_per_message(capsys: pytest.CaptureFixture[str]) -> None:
    """Object-graph rules explain themselves too: every message of the rule's type in its file,
    with the condition (rewriter/rules/message_conditions.py) that did not hold."""
    lines = _explain(capsys, "saved-object-saveable-objects-tf1", "anonymous_tables_all")
    assert lines[0].startswith("rule saved-object-saveable-objects-tf1 (") and "tensorflow.SavedObject" in lines[0]
    assert any(line.endswith("nodes[0]: does not apply: saveable_objects is not set") for line in lines)
    applying = [line for line in lines if line.endswith(": applies")]
    assert applying and lines[-1] == f"{len(applying)} of {len(lines) - 2} candidates match (as IN is, before other rules run)"
