"""Parity judges every MetaGraphDef a loader can call, and a model with nothing to call is not proven.

- A TF1 export with a second MetaGraphDef (tags serve,gpu) whose signature computes something
  else: the rules rewrite both, so both are run in the target; before, only --tags' (serve) was,
  and a wrong second MetaGraphDef converted with exit 0 (a helper: an exclusive
  cumulative_logsumexp, -inf in 2.21 and -3.4e38 in TF 1.15.5, behind "all 1 output(s) match").
- A tf.Module saved without signatures: no C++ loader can call anything, parity ran nothing and
  said "all 0 output(s) match" (exit 0); now it is not proven (exit 3) and says why.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli

MODELS = r'''
import sys, tensorflow as tf
out = sys.argv[1]
graph = tf.Graph()
with graph.as_default():
    x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
    w = tf.compat.v1.get_variable("w", initializer=tf.constant(2.0))
    with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        builder = tf.compat.v1.saved_model.Builder(f"{out}/two_meta_graphs")
        builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map={
            "serving_default": tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"y": x * w})})
        builder.add_meta_graph(["serve", "gpu"], signature_def_map={
            "serving_default": tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"z": tf.nn.relu(x) + w})})
        builder.save()

module = tf.Module()
module.v = tf.Variable(3.0)
module.f = tf.function(lambda x: x * module.v, input_signature=[tf.TensorSpec([2], tf.float32)])
tf.saved_model.save(module, f"{out}/no_signatures", signatures={})
'''


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("meta_graphs")
    made = subprocess.run([sys.executable, "-c", MODELS, str(out)], capture_output=True, text=True, timeout=900)
    assert made.returncode == 0, made.stderr[-3000:]
    return out


def test_every_meta_graph_is_compared(models: Path, tmp_path: Path, runtime_2_3: Any) -> None:
    report = tmp_path / "report.json"
    result = run_cli(models / "two_meta_graphs", tmp_path / "out", "--to", "2.3", "--report", report)
    assert result.code == 0, result.stdout + result.stderr
    outputs = {(o["signature"], o["output"]): o["status"] for o in json.loads(report.read_text())["parity"]["outputs"]}
    assert outputs == {("serving_default", "y"): "match", ("gpu,serve:serving_default", "z"): "match"}


def test_nothing_to_call_is_not_proven(models: Path, tmp_path: Path, runtime_2_3: Any) -> None:
    result = run_cli(models / "no_signatures", tmp_path / "out", "--to", "2.3")
    assert result.code == 3, result.stdout + result.stderr
    assert "has no signature with outputs" in result.stderr and "--no-verify" in result.stderr
    assert not (tmp_path / "out").exists()
