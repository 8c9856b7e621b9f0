"""The issue's mixed models: several rules in one model, converted to 2.3 and run in TF 2.3.4.

Fixtures (golden/rules/mixed_*, tools/make_rule_fixtures.py) are saved by the installed TF with
the public API. Each converts once, with parity in the real TF 2.3.4 runtime.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rewriter.report.conversion import Report
from conftest import load_tool

ROOT = Path(__file__).resolve().parent.parent


tool = load_tool("make_rule_fixtures")

# fixture -> (rules that must apply, outputs compared with a tolerance instead of bit-exactly)
CASES = {
    # Keras layers after stateless random noise: the noise is bit-identical, and so is y here.
    "mixed_rng_keras": ({"stateless-random-normal-v2", "stateless-random-uniform-v2",
                         "disable-copy-on-read", "var-handle-op-debug-name"}, set()),
    "mixed_switch_tensor_array": ({"stateless-case-to-case", "tensor-list-set-item-resize"}, set()),
    # FFT is not rewritten (2.3 has it); its float rounding is outside TF's compatibility promise.
    "mixed_topk_fft_matmul": ({"top-k-v2-int64", "batch-mat-mul-v3-int8"}, {"serving_default/spectrum"}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_mixed_model_converts_to_2_3_with_parity(name: str, tmp_path: Path, runtime_2_3: Any) -> None:
    from rewriter import api
    from rewriter.verify.parity import ParityOptions

    folder = tool.fixture_dir(name)
    report = Report("convert", folder / "saved_model", tmp_path / "out")
    parity = ParityOptions(inputs_file=tool.inputs_file(folder, tmp_path / "inputs.npz"))
    api.convert(folder / "saved_model", tmp_path / "out", "2.3", report=report, parity=parity)

    expected_rules, tolerant = CASES[name]
    assert report.plan is not None and report.parity is not None
    applied = {app.rule for app in report.plan.applications}
    assert expected_rules <= applied, f"rules that did not apply: {expected_rules - applied}"
    assert not report.plan.refusals
    outputs = report.parity.outputs
    assert outputs and all(o.status == "match" for o in outputs)
    for output in outputs:
        key = f"{output.signature}/{output.output}"
        if output.max_abs_error is not None and key not in tolerant:
            assert output.max_abs_error == 0, f"{key} differs by {output.max_abs_error}"
