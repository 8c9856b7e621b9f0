"""Keras-3 application models (NOTES §7, issue 6): converted to 2.3, TF 2.3's *Python* loader
(`tf.saved_model.load`) loads them and every signature matches what TF 2.21 computed.

The models are generated once per session by tools/make_app_fixtures.py (one process, ~1 min);
they are too big to commit.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, assert_tf23_python_loader_matches, load_tool, run_cli
from rewriter.runtimes.python23 import Py23Env

MODELS = load_tool("make_app_fixtures").MODELS
# The main suite's three: a depthwise CNN, the deepest (gradient captures), a grouped conv. ResNet50
# adds no construct beyond these (plain Conv2D, BatchNorm, Add) and about a minute: slow tier.
MAIN_MODELS = ("convnext_tiny", "efficientnet_b0", "mobilenet_v2")


def _generate(out: Path, names: list[str]) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "make_app_fixtures.py"), str(out),
                           "--models", ",".join(names)], capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="session")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The main suite's models, generated in one process; any other is generated when a test asks."""
    out = tmp_path_factory.mktemp("apps")
    _generate(out, list(MAIN_MODELS))
    return out


def _app(apps: Path, name: str) -> Path:
    if not (apps / name / "saved_model").is_dir():
        _generate(apps, [name])
    return apps / name


# ConvNeXt's depthwise stage is a grouped Conv2D in a function marked _XlaMustCompile. TF 2.3's
# C++ loader honours the mark; its Python loader drops it and has no grouped-conv CPU kernel, so
# the rule grouped-conv2d-to-depthwise (rules/grouped-conv.yaml) is what makes it load there.


def _convert(apps: Path, name: str, tmp_path: Path) -> tuple[Path, Path]:
    out, report = tmp_path / "out", tmp_path / "report.json"
    # Parity in the real TF 2.3.4 C++ runtime runs too (the CLI's default).
    result = run_cli(_app(apps, name) / "saved_model", out, "--to", "2.3", "--report", report)
    assert result.code == 0, result.stderr[-3000:]
    data = json.loads(report.read_text())
    assert data["parity"]["ok"] and all(o["status"] == "match" for o in data["parity"]["outputs"])
    return out, report


def test_grouped_conv_app_matches_in_cxx_loader_and_warns(apps: Path, tmp_path: Path) -> None:
    _, report = _convert(apps, "convnext_tiny", tmp_path)
    notes = json.loads(report.read_text())["notes"]
    assert any("_XlaMustCompile" in note and "Python loader" in note for note in notes), notes


@pytest.mark.parametrize("name", [*MAIN_MODELS, *(pytest.param(name, marks=pytest.mark.slow)
                                                   for name in sorted(MODELS) if name not in MAIN_MODELS)])
def test_app_loads_in_tf23_python_and_matches(name: str, apps: Path, py23_env: Py23Env, tmp_path: Path) -> None:
    out, report = _convert(apps, name, tmp_path)
    # float32 CNNs through two TF builds: the tolerance is explicit, per dtype.
    assert_tf23_python_loader_matches(py23_env, out, _app(apps, name) / "data.npz", tmp_path, rtol=1e-4, atol=1e-5)
    if name == "efficientnet_b0":
        # Its gradient functions' captured tensors are dropped, and the report must say so.
        text = json.dumps(json.loads(report.read_text()))
        assert "warning [saved-object-captured-tensor]" in text


def test_unconverted_app_fails_in_tf23_python(apps: Path, py23_env: Py23Env) -> None:
    """The judge says no to the source: the passes above mean something."""
    loaded = py23_env.load_and_call(apps / "efficientnet_b0" / "saved_model")
    assert not loaded.loaded
