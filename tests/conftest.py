"""Shared test fixtures: the golden fixture models, a CLI runner, and one real target runtime."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES_DIR = ROOT / "golden" / "fixtures"
FIXTURES = sorted(p.name for p in FIXTURES_DIR.iterdir() if (p / "saved_model").is_dir())
CLI = [sys.executable, "-m", "rewriter.cli"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def load_tool(name: str) -> ModuleType:
    """tools/<name>.py as a module (tools/ is not a package), loaded once and registered in
    sys.modules, where dataclasses look their module up."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def fixture_dir(name: str) -> Path:
    return FIXTURES_DIR / name / "saved_model"


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


def run_cli(*args: object, timeout: float = 900) -> CliResult:
    """Run `tfdowngrade` as a user would, in a subprocess (its own TF, its own exit code)."""
    proc = subprocess.run(
        [*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def saved_by_script(script: str, out: Path, timeout: float = 900) -> Path:
    """Run a Python SCRIPT (with the installed TensorFlow, in a subprocess) that saves one or more
    models under sys.argv[1] = OUT; OUT."""
    made = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, text=True, timeout=timeout)
    assert made.returncode == 0, made.stderr[-3000:]
    return out


def converted_without_parity(source: Path, tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """SOURCE converted to 2.3 by the CLI, parity skipped: for tests that judge OUT themselves."""
    out = tmp_path_factory.mktemp(name) / "out"
    result = run_cli(source, out, "--to", "2.3", "--no-verify")
    assert result.code == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def py23_env() -> Any:
    """TF 2.3.4's Python API (NOTES §7), built once into the user cache (rewriter/runtimes/py23env/)."""
    from rewriter.runtimes.python23 import ensure_py23_env

    return ensure_py23_env()


@pytest.fixture(scope="session")
def runtime_2_3():
    """The real TF 2.3.4 runtime, fetched once into the user cache (or $TFDOWNGRADE_RUNTIME_DIR)."""
    from rewriter.targets.releases import Release
    from rewriter.runtimes import obtain_runtime

    return obtain_runtime(Release(2, 3))


@pytest.fixture(scope="session")
def converted(tmp_path_factory: pytest.TempPathFactory, runtime_2_3) -> dict[str, tuple[Path, dict, object]]:
    """Each fixture converted once, with parity, through the CLI a user runs."""
    results = {}
    for name in FIXTURES:
        base = tmp_path_factory.mktemp(name)
        out, report = base / "out", base / "report.json"
        result = run_cli(fixture_dir(name), out, "--to", "2.3", "--report", report, "--report-md", base / "report.md")
        results[name] = (out, json.loads(report.read_text()), result)
    return results


def split_golden_data(data_npz: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """golden data.npz (`<signature>/inputs|outputs/<name>`) -> ({sig/name: input}, {sig/name: output})."""
    inputs, outputs = {}, {}
    with np.load(data_npz, allow_pickle=False) as data:
        for key in data.files:
            signature, kind, name = key.split("/", 2)
            (inputs if kind == "inputs" else outputs)[f"{signature}/{name}"] = data[key]
    return inputs, outputs


def assert_tf23_python_loader_matches(py23_env: Any, out: Path, data_npz: Path, tmp_path: Path,
                                      rtol: float, atol: float) -> None:
    """TF 2.3's `tf.saved_model.load` on OUT, every signature called with the golden inputs, gives
    the golden outputs: floats within rtol/atol, everything else (strings included) exactly."""
    from rewriter.runtimes.python23 import save_feeds

    inputs, expected = split_golden_data(data_npz)
    inputs_npz, out_npz = tmp_path / "inputs.npz", tmp_path / "outputs.npz"
    save_feeds(inputs_npz, inputs)
    loaded = py23_env.load_and_call(out, inputs_npz, out_npz)
    assert loaded.loaded, loaded.load_error
    assert loaded.ok, {k: s.error for k, s in loaded.signatures.items() if s.error}
    # Our own subprocess wrote this file; string outputs come back as object arrays of bytes.
    with np.load(out_npz, allow_pickle=True) as got:
        assert set(got.files) == set(expected), (sorted(got.files), sorted(expected))
        for key, want in expected.items():
            have = got[key]
            assert have.shape == want.shape, key
            if want.dtype.kind == "f":
                np.testing.assert_allclose(have, want, rtol=rtol, atol=atol, err_msg=key)
            elif want.dtype.kind == "S":
                assert [bytes(v) for v in have.ravel()] == [bytes(v) for v in want.ravel()], key
            else:
                assert np.array_equal(have, want), key


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """mount(size) -> a fresh tmpfs of `size` bytes (needs root); unmounted afterwards."""
    mounted: list[Path] = []

    def mount(size: int) -> Path:
        point = tmp_path / f"tmpfs{len(mounted)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {done.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], check=True)
