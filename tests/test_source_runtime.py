"""--source-runtime: which runtime runs the SOURCE side of parity (rewriter/runtimes/source_runtime.py).

The real checks run the source in TF 2.21.0's C API (from its PyPI wheel, 274 MB once, cached
like the target runtime) and the output in TF 2.3.4's, and look at what the reports say. One
converts in a process where TensorFlow cannot be imported at all, as after a `pip install
tfdowngrade` without TensorFlow (test_without_tensorflow.py does that install for real).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT, run_cli
from rewriter.errors import BadInput
from rewriter.targets.releases import Release, known_releases
from rewriter.runtimes.source_runtime import (
    AUTO,
    INSTALLED,
    KIND_CAPI,
    KIND_INSTALLED,
    Choice,
    decide,
    installed_tensorflow,
    parse_choice,
)

KERAS_CNN = ROOT / "golden" / "examples" / "keras_cnn"
NEWEST = known_releases()[-1]


# ---------- the decision (pure: no runtime needed) ----------

def test_parse_choice() -> None:
    assert parse_choice("auto") == Choice(AUTO)
    assert parse_choice(" Installed ") == Choice(INSTALLED)
    assert parse_choice("2.21") == parse_choice("2.21.0") == Choice("release", Release(2, 21))
    for bad in ("", "latest", "2", "2.21.0.1", "9.99"):
        with pytest.raises(BadInput):
            parse_choice(bad)


def test_auto_uses_the_installed_tf_only_when_it_can_read_the_model() -> None:
    w21 = Release(2, 21)
    assert decide(Choice(AUTO), w21, "2.21.0", "2.21.0").kind == KIND_INSTALLED
    assert decide(Choice(AUTO), Release(2, 15), "2.15.1", "2.21.0").kind == KIND_INSTALLED
    older = decide(Choice(AUTO), w21, "2.21.0", "2.20.0")
    assert (older.kind, older.release) == (KIND_CAPI, w21) and "older than the release that wrote" in older.reason
    none = decide(Choice(AUTO), Release(2, 16), "2.16.2", None)
    assert (none.kind, none.release) == (KIND_CAPI, Release(2, 16)) and "no TensorFlow is installed" in none.reason


def test_auto_for_a_writer_without_a_known_runtime() -> None:
    # newer than every known release: the newest known runtime, and the report says so
    future = decide(Choice(AUTO), Release(NEWEST.major, NEWEST.minor + 1), "x", None)
    assert future.release == NEWEST and future.notes
    # older than every known release: the oldest known one after it
    ancient = decide(Choice(AUTO), Release(1, 0), "1.0.0", None)
    assert ancient.release == known_releases()[0] and ancient.notes


def test_explicit_choices() -> None:
    pinned = decide(Choice("release", Release(2, 15)), Release(2, 21), "2.21.0", "2.21.0")
    assert (pinned.kind, pinned.release) == (KIND_CAPI, Release(2, 15))
    assert "older than the release that wrote" in pinned.notes[0]  # it may not load there: said, not hidden
    assert decide(Choice(INSTALLED), Release(2, 21), "2.21.0", "2.21.0").kind == KIND_INSTALLED
    with pytest.raises(BadInput, match="not installed"):
        decide(Choice(INSTALLED), Release(2, 21), "2.21.0", None)


def test_installed_tf_is_found_without_importing_it() -> None:
    code = ("import sys; from rewriter.runtimes.source_runtime import installed_tensorflow as f; v = f(); "
            "print(v, 'tensorflow' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    import tensorflow as tf

    assert proc.stdout.split() == [tf.__version__, "False"], proc.stderr
    assert installed_tensorflow() == tf.__version__


def test_bad_source_runtime_is_bad_input_before_writing(tmp_path: Path) -> None:
    result = run_cli(KERAS_CNN, tmp_path / "out", "--to", "2.3", "--source-runtime", "2.99")
    assert result.code == 2 and "Traceback" not in result.stderr
    assert "--source-runtime 2.99" in result.stderr and not (tmp_path / "out").exists()


# ---------- real runtimes ----------

@pytest.fixture(scope="module")
def converted_with_capi_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str, str]:
    tmp = tmp_path_factory.mktemp("capi_source")
    result = run_cli(KERAS_CNN, tmp / "out", "--to", "2.3", "--source-runtime", "2.21",
                     "--report", tmp / "r.json", "--report-md", tmp / "r.md", timeout=1800)
    assert result.code == 0, result.stderr
    return tmp / "out", json.loads((tmp / "r.json").read_text()), (tmp / "r.md").read_text(), result.stdout


def test_keras_cnn_source_in_tf_2_21_c_api_matches_in_tf_2_3(converted_with_capi_source) -> None:
    _, report, markdown, stdout = converted_with_capi_source
    parity = report["parity"]
    assert parity["ok"] is True and parity["outputs"]
    assert all(o["status"] == "match" for o in parity["outputs"])
    source, target = parity["source_runtime"], parity["runtime"]
    assert (source["kind"], source["api"]) == (KIND_CAPI, "c") and source["version"].startswith("2.21.")
    assert len(source["wheel_sha256"]) == 64 and source["reason"] == "--source-runtime 2.21"
    assert (target["version"], target["api"]) == ("2.3.4", "c")
    # each report names both runtimes
    assert f"TensorFlow {source['version']}'s C API" in markdown and "TensorFlow 2.3.4's C API" in markdown
    assert f"source: TensorFlow {source['version']}'s C API" in stdout
    assert "output: TensorFlow 2.3.4's C API" in stdout


def test_verify_auto_uses_the_installed_tf_that_wrote_the_model(converted_with_capi_source, tmp_path: Path) -> None:
    import tensorflow as tf

    out = converted_with_capi_source[0]
    result = run_cli("verify", out, "--against", KERAS_CNN, "--to", "2.3", "--report", tmp_path / "r.json")
    assert result.code == 0, result.stderr
    source = json.loads((tmp_path / "r.json").read_text())["parity"]["source_runtime"]
    assert (source["kind"], source["api"], source["version"]) == (KIND_INSTALLED, "python", tf.__version__)
    assert source["reason"].startswith("auto: the installed TensorFlow")
    assert f"source: the installed TensorFlow {tf.__version__}, Python API" in result.stdout


def test_source_runtime_unavailable_offline_exits_4_and_says_whose(converted_with_capi_source, tmp_path: Path) -> None:
    empty_cache = tmp_path / "cache"
    empty_cache.mkdir()
    result = run_cli("verify", converted_with_capi_source[0], "--against", KERAS_CNN, "--to", "2.3",
                     "--source-runtime", "2.21", "--offline", "--runtime-dir", empty_cache)
    assert result.code == 4 and "Traceback" not in result.stderr
    assert "the source's runtime (--source-runtime 2.21)" in result.stderr and "offline" in result.stderr


# A process where TensorFlow cannot be imported at all (tensorflow, keras and tf_keras are
# forbidden; the package's own protos, rewriter.protos, stand in for TensorFlow's), as after a
# `pip install tfdowngrade` without TensorFlow. HIDE_TF_METADATA also hides the installed
# distribution from the package metadata, so `auto` sees no TensorFlow either.
NO_TF_PYTHON_API = textwrap.dedent("""
    import importlib.abc, os, sys
    class Forbid(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
                raise ImportError(f"{name} is forbidden here: the parity source run must not need it")
            return None
    sys.meta_path.insert(0, Forbid())
    if os.environ.get("HIDE_TF_METADATA"):  # and no distribution says it installed `tensorflow`
        import importlib.metadata
        everything = importlib.metadata.packages_distributions()
        importlib.metadata.packages_distributions = lambda: {k: v for k, v in everything.items() if k != "tensorflow"}
    from rewriter.cli import main
    code = main(sys.argv[1:])
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
    print("EXIT", code, "LOADED", loaded)
""")


def test_convert_with_a_c_api_source_never_imports_tensorflow(converted_with_capi_source, tmp_path: Path) -> None:
    out = converted_with_capi_source[0]
    report = tmp_path / "r.json"
    proc = subprocess.run(
        [sys.executable, "-c", NO_TF_PYTHON_API, str(KERAS_CNN), str(tmp_path / "out"), "--to", "2.3",
         "--source-runtime", "2.21", "--report", str(report)],
        capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert proc.stdout.strip().splitlines()[-1] == "EXIT 0 LOADED []", proc.stdout + proc.stderr
    parity = json.loads(report.read_text())["parity"]
    assert parity["ok"] is True and parity["source_runtime"]["kind"] == KIND_CAPI
    # `auto` where no TensorFlow is installed: the release that wrote the model (2.21.0) runs the source
    proc = subprocess.run(
        [sys.executable, "-c", NO_TF_PYTHON_API, "verify", str(out), "--against", str(KERAS_CNN), "--to", "2.3",
         "--report", str(report)],
        capture_output=True, text=True, cwd=ROOT, timeout=1800, env={**os.environ, "HIDE_TF_METADATA": "1"})
    assert proc.stdout.strip().splitlines()[-1] == "EXIT 0 LOADED []", proc.stdout + proc.stderr
    source = json.loads(report.read_text())["parity"]["source_runtime"]
    assert (source["kind"], source["version"]) == (KIND_CAPI, "2.21.0")
    assert source["reason"].startswith("auto: no TensorFlow is installed")
    # the harness bites: the installed-TF source run (tf.saved_model.load) cannot work in that process
    proc = subprocess.run(
        [sys.executable, "-c", NO_TF_PYTHON_API, "verify", str(out), "--against", str(KERAS_CNN), "--to", "2.3",
         "--source-runtime", "installed"],
        capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert proc.stdout.strip().splitlines()[-1].startswith("EXIT 5"), proc.stdout + proc.stderr
    assert "tensorflow is forbidden here" in proc.stderr


_COUNTER_MODEL = """
import sys, tensorflow as tf
class Counter(tf.Module):
    def __init__(self):
        self.count = tf.Variable(0.0)
    @tf.function(input_signature=[tf.TensorSpec([2], tf.float32, name="x")])
    def step(self, x):
        self.count.assign_add(1.0)
        return {"y": x * self.count}
m = Counter()
tf.saved_model.save(m, sys.argv[1], signatures={"serving_default": m.step})
"""


def test_capi_source_calls_see_one_session(tmp_path: Path) -> None:
    """CapiSource.call replays the earlier calls in each new worker, so a model with state sees
    what one loaded session would; a refused call is an error and leaves the history alone."""
    import numpy as np

    from rewriter.verify.parity import select_meta_graph
    from rewriter.runtimes.source_runtime import CapiSource, SourceCallError, resolve
    from rewriter.savedmodel.files import read_saved_model

    model = tmp_path / "counter"
    made = subprocess.run([sys.executable, "-c", _COUNTER_MODEL, str(model)], capture_output=True, text=True,
                          timeout=600)
    assert made.returncode == 0, made.stderr[-2000:]
    proto = read_saved_model(model).proto
    side = resolve("2.21", proto)
    assert side.kind == KIND_CAPI and side.version.startswith("2.21.")
    source = CapiSource(side, model, ["serve"], select_meta_graph(proto, ["serve"]), timeout=600)
    x = np.array([1.0, 2.0], np.float32)
    wrong = np.array([1, 2], np.int32)  # the session refuses a feed of the wrong dtype
    batch = source.run_batch([("serving_default", {"x": x}), ("serving_default", {"x": wrong}),
                              ("serving_default", {"x": x})])
    assert batch[0]["y"].tolist() == [1.0, 2.0] and isinstance(batch[1], str) and batch[2]["y"].tolist() == [2.0, 4.0]
    assert source.call("serving_default", {"x": x})["y"].tolist() == [1.0, 2.0]
    with pytest.raises(SourceCallError):
        source.call("serving_default", {"x": wrong})
    assert source.call("serving_default", {"x": x})["y"].tolist() == [2.0, 4.0]
