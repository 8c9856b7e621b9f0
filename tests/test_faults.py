"""Faults while the tool runs (issue 16, issue 10 item 4), with real processes and the real TF 2.3.4:
OUT appears only when proven; a parity failure keeps the unverified output at OUT.unverified; an
internal error, SIGTERM or SIGKILL during parity leaves nothing at OUT; a damaged runtime cache is
fetched again or is exit 4, never a parity verdict (exit 3) on the model."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from conftest import CLI, ROOT, fixture_dir, run_cli

FIXTURE = "int_output"  # small: these tests are about OUT, not about the model


def _leftovers(parent: Path) -> list[str]:
    """Anything the run left beside OUT (temporary folders are hidden: '.out.tfdowngrade-...')."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith((".out", "out")))


def _expected_outputs(tmp_path: Path, shift: float) -> tuple[Path, Path]:
    """--inputs and --expected for FIXTURE: the source's own outputs on seeded inputs, with every
    float output shifted by `shift` (0: the truth)."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(fixture_dir(FIXTURE)))
    function = loaded.signatures["serving_default"]
    rng = np.random.default_rng(0)
    feeds = {}
    for name, spec in function.structured_input_signature[1].items():
        shape = [d if d is not None else 2 for d in spec.shape.as_list()]
        feeds[name] = (rng.integers(0, 5, shape) if spec.dtype.is_integer else rng.standard_normal(shape)).astype(
            spec.dtype.as_numpy_dtype)
    outputs = {name: np.asarray(t.numpy()) for name, t in function(**{k: tf.constant(v) for k, v in feeds.items()}).items()}
    shifted = {name: (v + np.asarray(shift, v.dtype) if v.dtype.kind in "fi" else v) for name, v in outputs.items()}
    inputs_file, expected_file = tmp_path / "inputs.npz", tmp_path / "expected.npz"
    np.savez(inputs_file, **{f"serving_default/{k}": v for k, v in feeds.items()})
    np.savez(expected_file, **{f"serving_default/{k}": v for k, v in shifted.items()})
    return inputs_file, expected_file


def test_parity_failure_leaves_nothing_at_out_and_keeps_the_unverified_copy(tmp_path: Path) -> None:
    """Outputs that differ in TF 2.3.4 (here: expected outputs shifted by 1): exit 3, nothing at OUT,
    the unverified output at OUT.unverified (replacing an older one), named by the error line and
    the report. With --force, the old OUT is left as it was."""
    inputs_file, expected_file = _expected_outputs(tmp_path, 1.0)
    out = tmp_path / "out"
    stale = tmp_path / "out.unverified"
    stale.mkdir()
    (stale / "old-file").write_text("from an older run")
    report = tmp_path / "r.json"
    result = run_cli(fixture_dir(FIXTURE), out, "--to", "2.3", "--inputs", inputs_file, "--expected", expected_file,
                     "--report", report, "--report-md", tmp_path / "r.md")
    assert result.code == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
    assert (stale / "saved_model.pb").is_file() and not (stale / "old-file").exists()
    assert str(stale) in result.stderr and f"nothing was written to {out}" in result.stderr
    data = json.loads(report.read_text())
    assert data["exit_code"] == 3 and data["output_state"] == "not written"
    assert data["unverified_output"] == str(stale)
    assert str(stale) in (tmp_path / "r.md").read_text()
    assert _leftovers(tmp_path) == ["out.unverified"]
    # The unverified copy is the real output: with the true outputs it verifies.
    inputs_file, true_file = _expected_outputs(tmp_path, 0.0)
    result = run_cli("verify", stale, "--against", fixture_dir(FIXTURE), "--to", "2.3", "--inputs", inputs_file,
                     "--expected", true_file)
    assert result.code == 0, result.stderr

    # --force over an existing OUT: a failure leaves the old OUT untouched.
    out.mkdir()
    (out / "keep-me").write_text("the user's previous output")
    inputs_file, expected_file = _expected_outputs(tmp_path, 1.0)
    result = run_cli(fixture_dir(FIXTURE), out, "--to", "2.3", "--force", "--inputs", inputs_file, "--expected",
                     expected_file)
    assert result.code == 3, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["keep-me"]


@pytest.mark.parametrize("point", ["after-writing", "after-parity"])
def test_internal_error_leaves_nothing_at_out(tmp_path: Path, point: str) -> None:
    """An internal error (exit 5) injected through the documented test-only hook
    (rewriter.api.TEST_FAULT_ENV) once the output is staged, and once parity has passed."""
    out = tmp_path / "out"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TFDOWNGRADE_TEST_FAULT": point, "TFDOWNGRADE_LOG_DIR": str(tmp_path)}
    proc = subprocess.run([*CLI, str(fixture_dir(FIXTURE)), str(out), "--to", "2.3", "--report", str(tmp_path / "r.json")],
                          capture_output=True, text=True, timeout=900, cwd=ROOT, env=env)
    assert proc.returncode == 5, proc.stderr
    assert "internal error" in proc.stderr and point in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()
    assert _leftovers(tmp_path) == []
    assert json.loads((tmp_path / "r.json").read_text())["output_state"] == "not written"


def _start_and_wait_for_parity(out: Path, runtime_dir: Path | None = None) -> subprocess.Popen[str]:
    """Start a conversion; return once it runs the output in TF 2.3.4 (a worker process is up)."""
    args = [*CLI, str(fixture_dir(FIXTURE)), str(out), "--to", "2.3"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           # hang the worker once it has loaded the model: the run is surely in parity when killed
           "TFDOWNGRADE_WORKER_TEST_HANG": "call serving_default"}
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=ROOT, env=env)
    assert proc.stderr is not None
    deadline = time.monotonic() + 600
    for line in proc.stderr:
        if "running the output in TensorFlow" in line:
            break
        assert time.monotonic() < deadline
    else:
        pytest.fail(f"the run ended (exit {proc.wait()}) before parity")
    time.sleep(3)  # the worker has started and hangs in the signature call
    return proc


def _workers_of(pid: int) -> list[int]:
    """Worker processes (rewriter.runtimes.worker) whose parent is pid."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"rewriter.runtimes.worker" in cmdline:
            found.append(int(entry.name))
    return found


def _gone(pid: int, within: float = 30.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] if Path(f"/proc/{pid}").exists() else "X"
        if state in ("Z", "X"):
            return True
        time.sleep(0.2)
    return False


def test_sigterm_during_parity_leaves_nothing_and_stops_the_worker(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _start_and_wait_for_parity(out)
    workers = _workers_of(proc.pid)
    assert workers, "no worker process found during parity"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    assert proc.stderr is not None and "terminated" in proc.stderr.read()
    assert not out.exists() and _leftovers(tmp_path) == []
    assert all(_gone(pid) for pid in workers)


def test_sigkill_during_parity_leaves_nothing_at_out_and_the_next_run_cleans_up(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _start_and_wait_for_parity(out)
    workers = _workers_of(proc.pid)
    proc.kill()
    proc.wait(timeout=60)
    assert not out.exists() and not (tmp_path / "out.unverified").exists()
    # SIGKILL leaves no chance to clean up: the staged folder stays, hidden, beside OUT ...
    assert [name for name in _leftovers(tmp_path) if name.startswith(".out.tfdowngrade-")]
    # ... the orphaned worker dies with its parent (PR_SET_PDEATHSIG) ...
    assert all(_gone(pid) for pid in workers)
    # ... and the next run to the same OUT removes it, and writes OUT.
    result = run_cli(fixture_dir(FIXTURE), out, "--to", "2.3", "--no-verify")
    assert result.code == 0, result.stderr
    assert (out / "saved_model.pb").is_file() and _leftovers(tmp_path) == ["out"]


# ---------- the runtime cache ----------

@pytest.fixture()
def cache_copy(tmp_path: Path) -> Path:
    """A private copy of the TF 2.3.4 runtime cache (the shared one stays untouched)."""
    from rewriter.targets.releases import Release
    from rewriter.runtimes.fetch import obtain_runtime

    handle = obtain_runtime(Release(2, 3))
    root = tmp_path / "runtimes"
    shutil.copytree(handle.lib_dir, root / "2.3")
    return root


def _truncate_framework(root: Path) -> Path:
    lib = root / "2.3" / "tensorflow" / "libtensorflow_framework.so.2"
    with open(lib, "r+b") as fh:
        fh.truncate(lib.stat().st_size // 2)
    return lib


def test_truncated_runtime_offline_is_exit_4_never_3(cache_copy: Path, tmp_path: Path) -> None:
    _truncate_framework(cache_copy)
    out = tmp_path / "out"
    result = run_cli(fixture_dir(FIXTURE), out, "--to", "2.3", "--offline", "--runtime-dir", cache_copy)
    assert result.code == 4, result.stderr
    assert "cannot be trusted" in result.stderr and "libtensorflow_framework.so.2" in result.stderr
    assert not out.exists() and (tmp_path / "out.unverified" / "saved_model.pb").is_file()


def test_truncated_runtime_is_fetched_again(cache_copy: Path, tmp_path: Path) -> None:
    lib = _truncate_framework(cache_copy)
    out = tmp_path / "out"
    result = run_cli(fixture_dir(FIXTURE), out, "--to", "2.3", "--runtime-dir", cache_copy)
    assert result.code == 0, result.stderr
    assert "fetching it again" in result.stderr
    assert (out / "saved_model.pb").is_file()
    assert lib.stat().st_size > 30_000_000  # whole again


def test_a_runtime_that_cannot_load_its_library_is_exit_4(cache_copy: Path, tmp_path: Path) -> None:
    """A library that fails to load for real (truncated, and its manifest made to agree, so the
    cache check passes): the worker dies while loading its library. That is the runtime's fault:
    exit 4, never a parity verdict on the model."""
    from rewriter.runtimes.fetch import MARKER, manifest

    lib = _truncate_framework(cache_copy)
    marker_path = cache_copy / "2.3" / MARKER
    marker = json.loads(marker_path.read_text())
    marker["files"] = manifest(cache_copy / "2.3", marker["capi_libs"])
    marker_path.write_text(json.dumps(marker))
    out = tmp_path / "out"
    result = run_cli(fixture_dir(FIXTURE), out, "--to", "2.3", "--offline", "--runtime-dir", cache_copy)
    assert result.code == 4, result.stderr
    assert "while loading its library" in result.stderr and "not the model" in result.stderr
    assert not out.exists()
    assert lib.exists()


def test_an_output_the_target_fails_to_compute_is_not_called_a_difference() -> None:
    """TF 2.7.4 cannot run a bfloat16 Conv2D ("Missing 0-th output"): the error line said the outputs
    "differ", as if values had been compared. It says the target fails to compute them."""
    from rewriter.api import _parity_failure
    from rewriter.verify.parity import OutputResult, ParityReport

    outputs = [OutputResult("serve", "output_0", "error", message="Missing 0-th output from conv2d_1/convolution"),
               OutputResult("serve", "output_1", "mismatch", message="values differ (exact comparison)")]
    line = _parity_failure(ParityReport("2.7.4", "", 0, {}, outputs))
    assert "fails to compute 1 output(s), first serve/output_0: Missing 0-th output" in line
    assert "differ" not in line


def test_a_full_scratch_folder_in_the_worker_is_exit_4_never_a_verdict(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The target's worker cannot write a signature's results (its TMPDIR is full: the documented
    test-only hook fails that stage with ENOSPC). The machine's fault: exit 4 in one line naming
    the folder, never exit 3 blaming the signature (which it was before) nor exit 5."""
    from rewriter.runtimes import worker

    monkeypatch.setenv(worker.NO_SPACE_ENV, "call serving_default")
    out = tmp_path / "out"
    result = run_cli(fixture_dir(FIXTURE), out, "--to", "2.3")
    assert result.code == 4, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "cannot write its results in" in line and "No space left on device" in line and "TMPDIR" in line
    assert "Traceback" not in result.stderr
    assert not out.exists() and (tmp_path / "out.unverified" / "saved_model.pb").is_file()


def test_a_full_scratch_folder_in_the_parent_is_exit_4_never_an_internal_error(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Parity's own scratch files (the inputs it feeds the worker) cannot be written: exit 4 with
    the reason, where it was an internal error (exit 5) before."""
    import errno

    from rewriter import api
    from rewriter.errors import EXIT_RUNTIME_UNAVAILABLE, RuntimeUnavailable
    from rewriter.runtimes import wire

    def full(path: Path, store: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(wire, "save", full)
    out = tmp_path / "out"
    with pytest.raises(RuntimeUnavailable) as raised:
        api.convert(fixture_dir(FIXTURE), out, "2.3")
    assert raised.value.exit_code == EXIT_RUNTIME_UNAVAILABLE
    assert "parity cannot write its scratch files" in str(raised.value) and "No space left on device" in str(raised.value)
    assert not out.exists() and (tmp_path / "out.unverified" / "saved_model.pb").is_file()


@pytest.mark.parametrize("room", [4096, 40960], ids=["parent", "worker"])
def test_a_real_full_tmpdir_is_exit_4(room: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      small_tmpfs: Callable[[int], Path]) -> None:
    """TMPDIR on a real tmpfs of one page (parity cannot write the inputs it feeds) or of ten (the
    worker cannot write a signature's results): exit 4 in one line, never 3 or 5."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the two tests above inject the same failures")
    monkeypatch.setenv("TMPDIR", str(small_tmpfs(room)))
    out = tmp_path / "out"
    result = run_cli(fixture_dir("keras3_cnn"), out, "--to", "2.3")
    assert result.code == 4, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "No space left on device" in line or "is that disk full?" in line, line
    assert "TMPDIR" in line and "Traceback" not in result.stderr
    assert not out.exists() and (tmp_path / "out.unverified" / "saved_model.pb").is_file()
