"""The wheel carries the rules: `pip wheel .` builds tfdowngrade, a fresh venv installs it without
-e, and the installed command converts the bundled example (golden/examples/keras_cnn) to 2.3 with
parity in the real TF 2.3.4 runtime, using the rules the wheel installed (not the source tree's).

Cost: the wheel builds without build isolation (setuptools from the test venv, no download) and the
fresh venv borrows the test venv's installed dependencies through a path file instead of installing
TensorFlow again, so the test is one wheel build, one small install and one conversion.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from conftest import ROOT


def _run(args: list[object], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env)


def test_wheel_installed_without_editable_converts_the_example(tmp_path: Path) -> None:
    # built from a copy of what the wheel is made of: pip builds in the tree, and a build/ left in
    # ROOT by an earlier build would still hold files deleted since
    source = tmp_path / "source"
    for part in ("pyproject.toml", "README.md", "rewriter", "rules"):
        if (ROOT / part).is_dir():
            shutil.copytree(ROOT / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy(ROOT / part, source / part)
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                  "-w", tmp_path / "dist", source], cwd=tmp_path)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("tfdowngrade-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {Path(n).relative_to("tfdowngrade_rules").as_posix() for n in names if n.startswith("tfdowngrade_rules/")}
    expected = {p.relative_to(ROOT / "rules").as_posix() for p in (ROOT / "rules").rglob("*")
                if p.is_file() and p.suffix in (".yaml", ".json")}
    assert expected and shipped == expected

    venv = tmp_path / "venv"
    created = _run([sys.executable, "-m", "venv", venv], cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    python = venv / "bin" / "python"
    # the test venv's dependencies (TensorFlow, numpy, ...) without its editable tfdowngrade: a
    # path line adds the folder, and the editable finder's .pth inside it is not processed
    fresh_site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                           cwd=tmp_path).stdout.strip())
    (fresh_site / "borrowed-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = _run([python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", wheel], cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr[-3000:]

    where = _run([python, "-c", "import rewriter, rewriter.rules.loader as r; print(rewriter.__file__); "
                  "print(r.builtin_rules_dir()); print(len(r.load_rules()))"], cwd=tmp_path)
    assert where.returncode == 0, where.stderr[-3000:]
    module, rules_dir, count = where.stdout.split()
    assert Path(module).is_relative_to(venv) and Path(rules_dir).is_relative_to(venv), where.stdout
    assert int(count) > 100

    out = tmp_path / "keras_cnn-tf2.3"
    converted = _run([venv / "bin" / "tfdowngrade", ROOT / "golden" / "examples" / "keras_cnn", out, "--to", "2.3",
                      "--report", tmp_path / "report.json"], cwd=tmp_path)
    assert converted.returncode == 0, converted.stdout[-2000:] + converted.stderr[-3000:]
    assert (out / "saved_model.pb").is_file() and "match" in converted.stdout
