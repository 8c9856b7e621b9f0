#!/usr/bin/env python3
"""Which channels-first (NCHW / NCDHW) CPU kernels each release's real runtime runs.

Saves one small SavedModel with one signature per op in a channels-first layout (written by the
installed TensorFlow, which runs them on CPU), converts it to each release given, and prints per
op and release whether the output ran and matched there (parity in the real runtime), or the
runtime's error. The measurement behind rules/batch-norm-nchw.yaml, pool-nchw.yaml and
conv-nchw.yaml and the list in docs/targets.md ("Channels-first (NCHW) kernels on CPU"). Those
rules are left out of the conversions here (a copy of rules/ without them), so that the kernels
themselves are measured; --with-rules keeps them (then 1.15 ... 2.8 should read "runs").

    .venv/bin/python tools/measure_nchw_kernels.py --releases 1.15,2.3,2.7,2.8,2.9,2.15

Note: TF 2.21 runs most of these on CPU only through oneDNN (TF_ENABLE_ONEDNN_OPTS, on by default
on x86 Linux since 2.9); with it off they fail there too ("... only supports NHWC").
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The rules that rewrite channels-first ops (left out unless --with-rules).
LAYOUT_RULES = ("batch-norm-nchw.yaml", "pool-nchw.yaml", "conv-nchw.yaml")


def cases() -> dict[str, tuple[list[int], Callable[[Any], Any]]]:
    import tensorflow as tf

    raw = tf.raw_ops
    k2 = np.linspace(-1, 1, 3 * 3 * 3 * 4, dtype=np.float32).reshape(3, 3, 3, 4)
    dk = np.linspace(-1, 1, 3 * 3 * 3 * 2, dtype=np.float32).reshape(3, 3, 3, 2)
    k3 = np.linspace(-1, 1, 2 * 3 * 3 * 3 * 4, dtype=np.float32).reshape(2, 3, 3, 3, 4)
    four, five = [2, 3, 6, 6], [2, 3, 4, 6, 6]
    return {
        "FusedBatchNormV3 NCHW": (four, lambda x: raw.FusedBatchNormV3(
            x=x, scale=tf.ones([3]), offset=tf.zeros([3]), mean=tf.zeros([3]), variance=tf.ones([3]),
            data_format="NCHW", is_training=False).y),
        "FusedBatchNormV3 NCHW training": (four, lambda x: raw.FusedBatchNormV3(
            x=x, scale=tf.ones([3]), offset=tf.zeros([3]), mean=[], variance=[], data_format="NCHW",
            is_training=True).y),
        "FusedBatchNormV3 NCHW float16": (four, lambda x: tf.cast(raw.FusedBatchNormV3(
            x=tf.cast(x, tf.float16), scale=tf.ones([3]), offset=tf.zeros([3]), mean=tf.zeros([3]),
            variance=tf.ones([3]), data_format="NCHW", is_training=False).y, tf.float32)),
        "FusedBatchNormV3 NCDHW": (five, lambda x: raw.FusedBatchNormV3(
            x=x, scale=tf.ones([3]), offset=tf.zeros([3]), mean=tf.zeros([3]), variance=tf.ones([3]),
            data_format="NCDHW", is_training=False).y),
        "MaxPool NCHW": (four, lambda x: raw.MaxPool(input=x, ksize=[1, 1, 2, 2], strides=[1, 1, 2, 2],
                                                     padding="VALID", data_format="NCHW")),
        "AvgPool NCHW": (four, lambda x: raw.AvgPool(value=x, ksize=[1, 1, 2, 2], strides=[1, 1, 2, 2],
                                                     padding="VALID", data_format="NCHW")),
        "Conv2D NCHW": (four, lambda x: raw.Conv2D(input=x, filter=k2, strides=[1, 1, 1, 1], padding="SAME",
                                                   data_format="NCHW")),
        "DepthwiseConv2dNative NCHW": (four, lambda x: raw.DepthwiseConv2dNative(
            input=x, filter=dk, strides=[1, 1, 1, 1], padding="SAME", data_format="NCHW")),
        "BiasAdd NCHW": (four, lambda x: raw.BiasAdd(value=x, bias=tf.constant([1.0, 2.0, 3.0]), data_format="NCHW")),
        "Conv3D NCDHW": (five, lambda x: raw.Conv3D(input=x, filter=k3, strides=[1, 1, 1, 1, 1], padding="SAME",
                                                    data_format="NCDHW")),
        "MaxPool3D NCDHW": (five, lambda x: raw.MaxPool3D(input=x, ksize=[1, 1, 2, 2, 2], strides=[1, 1, 2, 2, 2],
                                                          padding="VALID", data_format="NCDHW")),
        "AvgPool3D NCDHW": (five, lambda x: raw.AvgPool3D(input=x, ksize=[1, 1, 2, 2, 2], strides=[1, 1, 2, 2, 2],
                                                          padding="VALID", data_format="NCDHW")),
    }


def _signature(op: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda x: {"y": op(x)}


def write_model(folder: Path, shape: list[int], op: Callable[[Any], Any]) -> tuple[Path, Path]:
    """One op, one signature (a release that refuses one layout must not hide the others)."""
    import tensorflow as tf

    module = tf.Module()
    module.f = tf.function(_signature(op), input_signature=[tf.TensorSpec(shape, tf.float32, name="x")])
    tf.saved_model.save(module, str(folder / "model"), signatures={"serving_default": module.f})
    rng = np.random.default_rng(0)
    np.savez(folder / "inputs.npz", **{"serving_default/x": (rng.integers(-8, 9, shape) / 4).astype(np.float32)})
    return folder / "model", folder / "inputs.npz"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", default="1.15,2.3,2.7,2.8,2.9,2.15")
    parser.add_argument("--ops", help="only the cases whose name contains one of these (comma-separated)")
    parser.add_argument("--with-rules", action="store_true", help="keep the channels-first rules")
    args = parser.parse_args(argv)
    from rewriter import api
    from rewriter.errors import TfDowngradeError
    from rewriter.verify.parity import ParityOptions
    from rewriter.report.conversion import Report

    with tempfile.TemporaryDirectory(prefix="nchw-") as tmp:
        rules_dir = None
        if not args.with_rules:
            rules_dir = Path(tmp) / "rules"
            shutil.copytree(ROOT / "rules", rules_dir, ignore=shutil.ignore_patterns(*LAYOUT_RULES))
        for index, (name, (shape, op)) in enumerate(cases().items()):
            if args.ops and not any(part in name for part in args.ops.split(",")):
                continue
            folder = Path(tmp) / f"op{index}"
            folder.mkdir()
            model, inputs = write_model(folder, shape, op)
            for release in args.releases.split(","):
                report = Report("convert", model, folder / release)
                verdict = "runs, matches"
                try:
                    api.convert(model, folder / release, release, report=report, rules_dir=rules_dir,
                                parity=ParityOptions(inputs_file=inputs))
                except TfDowngradeError as error:
                    findings = getattr(error, "findings", None)
                    verdict = "refused: " + (findings[0].message if findings else str(error)).splitlines()[0][:110]
                    if report.parity is not None and report.parity.outputs:
                        out = report.parity.outputs[0]
                        verdict = f"{out.status}: {out.message.splitlines()[0][-110:]}" if out.message else out.status
                print(f"{release:5s} {name:28s} {verdict}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
