"""A fresh venv without TensorFlow, with the oldest protobuf the package allows: tfdowngrade
installs (no extra), converts the bundled example
and proves parity, with the source run in the real runtime of the release that wrote it (TF
2.21.0's C API) and the output in TF 2.3.4's. This is the issue's "installs without TensorFlow"
CI step: pip builds the wheel from this checkout and fills the venv from its cache or PyPI (protobuf,
numpy, networkx, PyYAML, ml_dtypes): about a minute.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

# The floor of pyproject.toml's protobuf requirement (its `protobuf>=` line), read from there.
OLDEST_PROTOBUF = next(line.split(">=", 1)[1].split('"')[0] for line in (ROOT / "pyproject.toml").read_text().splitlines()
                       if line.strip().startswith('"protobuf>='))


def test_fresh_venv_without_tensorflow_converts_and_proves_parity(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    # not editable: pip builds the wheel from the checkout and installs that, rules and protos included;
    # with the oldest protobuf pyproject.toml allows, which a TF 2.12-2.17 environment is near (they
    # pin protobuf < 5: a helper's sweep found `FieldDescriptor.is_packed`, protobuf 5.28+, crashing there)
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(ROOT),
                              f"protobuf=={OLDEST_PROTOBUF}.*"], capture_output=True, text=True, timeout=1200)
    assert install.returncode == 0, install.stderr[-3000:]
    version = subprocess.run([str(python), "-c", "import google.protobuf as p; print(p.__version__)"],
                             capture_output=True, text=True, timeout=120).stdout.strip()
    assert version.startswith(OLDEST_PROTOBUF + "."), version
    found = subprocess.run([str(python), "-c", "import importlib.util as u; print(u.find_spec('tensorflow'))"],
                           capture_output=True, text=True, timeout=120)
    assert found.stdout.strip() == "None", "TensorFlow must not come with the base install"
    report = tmp_path / "r.json"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run([str(venv / "bin" / "tfdowngrade"), str(ROOT / "golden" / "examples" / "keras_cnn"),
                             str(tmp_path / "out"), "--to", "2.3", "--report", str(report)],
                            capture_output=True, text=True, timeout=1800, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    parity = json.loads(report.read_text())["parity"]
    assert parity["ok"] is True and all(o["status"] == "match" for o in parity["outputs"])
    source = parity["source_runtime"]
    assert (source["kind"], source["version"]) == ("capi", "2.21.0")
    assert source["reason"].startswith("auto: no TensorFlow is installed")
    assert parity["runtime"]["version"] == "2.3.4"
    assert "source: TensorFlow 2.21.0's C API" in result.stdout
