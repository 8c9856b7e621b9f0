"""Progress (rewriter/progress.py): drawn live on a terminal (download bytes and rate, each parity
step with its time), absent when stderr is a pipe, silenced by --quiet."""
from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import CLI, ROOT, fixture_dir

ESC = "\x1b["


def _run_in_pty(args: list[str]) -> tuple[int, str]:
    """Run the CLI with stderr (and stdout) on a pseudo-terminal; returns its exit code and output."""
    leader, follower = pty.openpty()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TERM": "xterm-256color", "COLUMNS": "120"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([*CLI, *args], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=follower, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 1.0)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    code = proc.wait(timeout=900)
    os.close(leader)
    return code, b"".join(chunks).decode("utf-8", "replace")


def test_progress_on_a_terminal_and_not_in_a_pipe(tmp_path: Path) -> None:
    source = fixture_dir("int_output")
    # An empty runtime cache, so the download's bar shows too.
    code, shown = _run_in_pty([source, tmp_path / "tty", "--to", "2.3", "--runtime-dir", tmp_path / "rt1"])
    assert code == 0, shown
    assert ESC in shown  # drawn live
    assert "/138 MB" in shown and "MB/s" in shown  # the download: bytes of the total, and the rate
    # Each step stays as a line with its duration once the next starts.
    assert "running the output in TensorFlow 2.3.4 (C++ loader) (" in shown
    assert " s)" in shown

    # In a pipe (a CI log) and with --quiet: no live display. Parity is skipped here to keep the
    # suite short: every step goes through the same switch (rewriter/progress.py).
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TERM": "xterm-256color"}
    piped = subprocess.run([*CLI, source, tmp_path / "pipe", "--to", "2.3", "--no-verify"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert piped.returncode == 0, piped.stderr
    assert ESC not in piped.stderr and " s)" not in piped.stderr  # no live display in a log
    assert "tfdowngrade: reading " in piped.stderr  # the plain lines

    code, shown = _run_in_pty([source, tmp_path / "quiet", "--to", "2.3", "--quiet", "--no-verify"])
    assert code == 0, shown
    assert "tfdowngrade:" not in shown and "\x1b[?25l" not in shown  # --quiet: no lines, no live display


def test_repository_progress_counts_versions(tmp_path: Path) -> None:
    for version in ("1", "2"):
        shutil.copytree(fixture_dir("int_output"), tmp_path / "models" / "m" / version)
    code, shown = _run_in_pty([tmp_path / "models", tmp_path / "out", "--to", "2.3", "--no-verify"])
    assert code == 0, shown
    assert "converting" in shown and "1/2" in shown  # the versions' count bar
    assert "2 of 2 version(s) converted" in shown
