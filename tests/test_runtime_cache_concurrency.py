"""The runtime cache under concurrency: processes fetching the same runtime at the same moment
(parallel jobs, two CI runs) leave one whole runtime, downloaded once, that really loads."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

FETCH = """
import json, sys, pathlib
from rewriter.targets.releases import Release
from rewriter.runtimes.fetch import obtain_runtime
said = []
handle = obtain_runtime(Release(2, 3), cache_dir=pathlib.Path(sys.argv[1]), progress=said.append)
print(json.dumps({"lib_dir": str(handle.lib_dir), "said": said}))
"""


def test_concurrent_fetches_share_one_whole_runtime(tmp_path: Path) -> None:
    cache = tmp_path / "runtimes"  # empty: every process wants to fetch
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TFDOWNGRADE_WHEELHOUSE", None)
    procs = [subprocess.Popen([sys.executable, "-c", FETCH, str(cache)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=900)
        assert proc.returncode == 0, stderr
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    assert {r["lib_dir"] for r in results} == {str(cache / "2.3")}
    downloads = [r for r in results if any(m.startswith("downloading") for m in r["said"])]
    assert len(downloads) == 1, [r["said"] for r in results]  # the others waited for it, then reused it
    # Nothing half-built is left: the runtime, and the lock file.
    assert sorted(p.name for p in cache.iterdir()) == [".lock-2.3", "2.3"]

    from rewriter.targets.releases import Release
    from rewriter.runtimes import TargetRuntime
    from rewriter.runtimes.fetch import obtain_runtime

    handle = obtain_runtime(Release(2, 3), cache_dir=cache, offline=True)  # whole, per its marker
    assert TargetRuntime(handle).version() == "2.3.4"  # and the real library loads
