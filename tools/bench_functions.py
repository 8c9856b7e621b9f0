"""Benchmark: large function libraries (issue 16) through `tfdowngrade IN OUT --to 2.3`.

Generates the fixtures of tools/make_function_library.py (default: 20,000 small functions, and a
chain of calls 2,000 deep), converts each with the CLI a user runs (parity in the real TF 2.3.4),
and prints the wall time of each step, read from the CLI's own progress lines as they come.

    .venv/bin/python tools/bench_functions.py                       # many:20000 chain:2000
    .venv/bin/python tools/bench_functions.py many:2000 chain:500   # the main suite's sizes
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))


def bench(shape: str, count: int, work: Path) -> int:
    import make_function_library

    start = time.monotonic()
    source = make_function_library.make(shape, count, work / f"{shape}-{count}")
    print(f"{shape} {count}: generated in {time.monotonic() - start:.1f} s")
    cmd = [sys.executable, "-m", "rewriter.cli", str(source), str(work / f"out-{shape}-{count}"), "--to", "2.3",
           "--force"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.monotonic()
    last_step, last_time = "starting", start
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=ROOT, env=env)
    assert proc.stderr is not None
    for line in proc.stderr:
        if not line.startswith("tfdowngrade: "):
            continue
        now = time.monotonic()
        print(f"  {now - last_time:8.1f} s  {last_step}")
        last_step, last_time = line.strip()[len("tfdowngrade: "):], now
    code = proc.wait()
    end = time.monotonic()
    print(f"  {end - last_time:8.1f} s  {last_step}")
    print(f"{shape} {count}: exit {code}, converted and verified in {end - start:.1f} s")
    return code


def main(argv: list[str]) -> int:
    specs = argv or ["many:20000", "chain:2000"]
    worst = 0
    with tempfile.TemporaryDirectory(prefix="bench-functions-") as tmp:
        for spec in specs:
            shape, _, count = spec.partition(":")
            worst = max(worst, bench(shape, int(count), Path(tmp)))
    return worst


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
