"""Input synthesis for signature inputs whose dimensions the signature leaves unknown.

A `[None, None]` input read by a MatMul with a [100, 8] weight, a `[None] * 4` image read by a
Conv2D with a 3-channel filter or by 3x3 pooling windows, a `[None, None]` input reshaped to
[-1, 28, 28, 1] or checked by tf.ensure_shape(x, [None, 8]), and an int input that is a Reshape's
shape: the random inputs (every unknown dimension 2) fail in the source
("Matrix size-incompatible", "input depth must be evenly divisible", "requested shape requires a
multiple of 784"), so parity compared nothing and a right model failed (exit 3). The `graph`
strategy gives each input the shape (or value) the ops reading it need, and the source accepts it.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli
from test_input_synthesis_composites import _graph_candidate, _source_accepts

MODELS = r'''
import sys, numpy as np, tensorflow as tf
out = sys.argv[1]


class Shapes(tf.Module):
    def __init__(self):
        self.w = tf.Variable(np.ones((100, 8), np.float32))
        self.k = tf.Variable(np.ones((3, 3, 3, 4), np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="x")])
    def matmul(self, x):  # through a shape-keeping op and a scalar product first
        return {"y": tf.matmul(tf.nn.relu(x) * 2.0, self.w)}

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="x")])
    def matmul_transposed(self, x):
        return {"y": tf.matmul(x, self.w, transpose_a=True)}

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, None], tf.float32, name="x")])
    def conv(self, x):  # VALID: the spatial dimensions must hold the 3x3 filter
        return {"y": tf.nn.conv2d(x, self.k, 1, "VALID")}

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="x")])
    def reshape(self, x):
        return {"y": tf.reshape(x, [-1, 28, 28, 1]) * 2.0}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x"), tf.TensorSpec([3], tf.int32, name="shape")])
    def reshape_to(self, x, shape):
        return {"y": tf.reshape(x, shape) + 1.0}

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="x")])
    def pool(self, x):  # 3x3 windows, VALID: the spatial dimensions must hold them
        return {"y": tf.nn.max_pool2d(x, 3, 1, "VALID") + tf.nn.avg_pool2d(x, 3, 1, "VALID")}

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="x")])
    def ensure_shape(self, x):
        return {"y": tf.ensure_shape(x, [None, 8]) * 2.0}


module = Shapes()
for name in ["matmul", "matmul_transposed", "conv", "reshape", "reshape_to", "pool", "ensure_shape"]:
    tf.saved_model.save(module, f"{out}/{name}", signatures={"serving_default": getattr(module, name)})
'''
NAMES = ["matmul", "matmul_transposed", "conv", "reshape", "reshape_to", "pool", "ensure_shape"]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shapes")
    made = subprocess.run([sys.executable, "-c", MODELS, str(out)], capture_output=True, text=True, timeout=900)
    assert made.returncode == 0, made.stderr[-3000:]
    return out


@pytest.mark.parametrize("name", NAMES)
def test_unknown_dimensions_take_what_the_ops_need(name: str, models: Path) -> None:
    graph, base = _graph_candidate(models / name)
    x = graph.values["x"]
    if name == "matmul":
        assert x.shape[1] == 100 and base["x"].shape[1] == 2
    elif name == "matmul_transposed":
        assert x.shape[0] == 100
    elif name == "conv":
        assert x.shape[3] == 3 and x.shape[1] >= 3 and x.shape[2] >= 3
    elif name == "reshape":
        assert x.size % 784 == 0
    elif name == "pool":
        assert x.shape[1] >= 3 and x.shape[2] >= 3
    elif name == "ensure_shape":
        assert x.shape[1] == 8
    else:
        assert list(graph.values["shape"]) == [-1, 1, 1]
    _source_accepts(models / name, graph, base)


def test_converts_to_2_3_with_synthesised_shapes(models: Path, tmp_path: Path, runtime_2_3: Any) -> None:
    result = run_cli(models / "matmul", tmp_path / "out", "--to", "2.3")
    assert result.code == 0, result.stdout + result.stderr
    assert "contracted dimension of MatMul" in result.stdout + result.stderr


def test_a_signature_without_inputs_is_fed_by_no_strategy() -> None:
    """It was reported as fed by --inputs although none were given (sweep-I F8): every input it has
    (none) counted as given."""
    from rewriter.protos import meta_graph_pb2
    from rewriter.verify.input_synthesis import candidates

    meta_graph = meta_graph_pb2.MetaGraphDef()
    meta_graph.signature_def["read"].outputs["y"].name = "y:0"
    assert [c.strategy for c in candidates(meta_graph, "read", {}, 0)] == ["none"]
