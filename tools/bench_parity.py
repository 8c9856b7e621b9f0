#!/usr/bin/env python3
"""Benchmark parity against what TensorFlow itself needs to load and run both models.

    .venv/bin/python tools/bench_parity.py [--apps] [--only NAME ...]

For each fixture (golden/fixtures, golden/parity; with --apps also the deep Keras applications
of tools/make_parity_fixtures.py, generated into a temporary folder): convert to 2.3 without
parity, then time, once each, in this process:

  tf       loading the source with tf.saved_model.load and calling every signature once, plus
           loading OUT in the real TF 2.3.4 runtime and running every signature once (the floor:
           what any parity check has to pay);
  parity   rewriter.verify.parity.verify with its defaults (source run + noise measurement, target run,
           function import in the target);
  no-noise the same with --rtol/--atol given, which skips the noise measurement (the verdict's
           own cost is the difference).

Prints one line per fixture and the ratios parity/tf and parity/no-noise. One run, no warm-up:
the figures are indicative (2 shared cores), no test asserts on them.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
APPS = ["app_mobilenet_v2", "app_efficientnet_b0"]


def _fixtures(apps: Path | None) -> dict[str, Path]:
    found = {p.parent.name: p for p in sorted((REPO / "golden" / "fixtures").glob("*/saved_model"))}
    found.update({p.parent.name: p for p in sorted((REPO / "golden" / "parity").glob("*/saved_model"))})
    if apps is not None:
        found.update({p.parent.name: p for p in sorted(apps.glob("*/saved_model"))})
    return found


def _tf_alone(source: Path, out: Path, runtime: object) -> float:
    """Load + run the source in the installed TF, load + run OUT in the target: once each."""
    import tensorflow as tf

    from rewriter.verify.parity import select_meta_graph, signature_calls, signature_inputs
    from rewriter.savedmodel.files import read_saved_model

    meta = select_meta_graph(read_saved_model(out).proto, ["serve"])
    inputs = signature_inputs(meta, 0, None)
    start = time.perf_counter()
    loaded = tf.saved_model.load(str(source))
    for key, arrays in inputs.items():
        try:
            loaded.signatures[key](**{k: tf.constant(v) for k, v in arrays.items()})
        except Exception:  # random inputs some sources reject: the call was still paid for
            pass
    runtime.run_savedmodel(out, ["serve"], signature_calls(meta, inputs, list(inputs)))  # type: ignore[attr-defined]
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", action="store_true", help="also the deep Keras applications (generated, ~1 min each)")
    parser.add_argument("--only", nargs="*")
    args = parser.parse_args(argv)

    from rewriter import api
    from rewriter.verify.parity import ParityOptions
    from rewriter.targets.releases import Release
    from rewriter.runtimes import TargetRuntime, obtain_runtime

    target = Release(2, 3)
    runtime = TargetRuntime(obtain_runtime(target))
    with tempfile.TemporaryDirectory(prefix="bench-parity-") as tmp:
        apps = None
        if args.apps:
            apps = Path(tmp) / "apps"
            wanted = [name for name in APPS if not args.only or name in args.only]
            subprocess.run([sys.executable, str(REPO / "tools" / "make_parity_fixtures.py"), "--out", str(apps), "--only",
                            *wanted], check=True, capture_output=True)
        print(f"{'fixture':22} {'tf s':>7} {'parity s':>9} {'no-noise s':>10} {'parity/tf':>9} {'parity/no-noise':>15}")
        for name, source in _fixtures(apps).items():
            if args.only and name not in args.only:
                continue
            out = Path(tmp) / name
            api.convert(source, out, target, verify_parity=False)
            alone = _tf_alone(source, out, runtime)
            start = time.perf_counter()
            report = api.verify(out, source, target)
            parity = time.perf_counter() - start
            start = time.perf_counter()
            api.verify(out, source, target, ParityOptions(rtol=1e-5, atol=1e-6))
            plain = time.perf_counter() - start
            grades = ",".join(sorted({o.grade for o in report.outputs if o.grade}))
            print(f"{name:22} {alone:7.2f} {parity:9.2f} {plain:10.2f} {parity / alone:9.2f} {parity / plain:15.2f}  {grades}",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
