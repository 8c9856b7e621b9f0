"""Input synthesis for the components of composite tensors given as separate signature inputs.

- Ragged: tf.RaggedTensor.from_row_lengths / from_value_rowids / from_row_starts / from_row_limits
  of a `values` input and an int64 partition input. The graph asserts that the partition covers
  exactly the values ("Arguments to _from_row_partition do not form a valid RaggedTensor") and
  that lengths (and row id steps) are non-negative: random, zero and number inputs all fail it.
- Sparse: tf.sparse.SparseTensor(indices, values, dense_shape) with `indices` and `values` inputs
  and dense_shape a Const or a third input, read by SparseToDense, SparseTensorDenseMatMul,
  SparseReorder, SparseReduceSum and SparseTensorToCSRSparseMatrix: every index row within the
  dense shape, rows unique and in row-major order, one value per row.

The `graph` strategy of rewriter.verify.input_synthesis.candidates must be accepted by the source
(run here by parity.run_source on that strategy alone), and a conversion to 2.3 with parity must
pass with no --inputs for one ragged and one sparse model.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import run_cli

MODELS = r'''
import sys, tensorflow as tf
out = sys.argv[1]
F, I = tf.float32, tf.int64


def save(name, signature, body):
    module = tf.Module()
    module.serve = tf.function(body, input_signature=signature)
    tf.saved_model.save(module, f"{out}/{name}", signatures={"serving_default": module.serve})


def values():
    return tf.TensorSpec([None], F, name="values")


def ragged(name, partition, make):
    def body(values, partition_input):
        rt = make(values, partition_input)
        return {"dense": rt.to_tensor(), "sums": tf.reduce_sum(rt, axis=1)}
    save(name, [values(), tf.TensorSpec([None], I, name=partition)], body)


ragged("ragged_lengths", "lengths", tf.RaggedTensor.from_row_lengths)
ragged("ragged_rowids", "rowids", tf.RaggedTensor.from_value_rowids)
ragged("ragged_starts", "starts", tf.RaggedTensor.from_row_starts)
ragged("ragged_limits", "limits", tf.RaggedTensor.from_row_limits)

INDICES = tf.TensorSpec([None, 2], I, name="indices")
weights = tf.constant([[1.0], [2.0], [3.0], [4.0]])


def sparse_const(indices, values):
    st = tf.sparse.SparseTensor(indices, values, [3, 4])
    return {"dense": tf.sparse.to_dense(st), "product": tf.sparse.sparse_dense_matmul(st, weights)}


def sparse_reorder(indices, values):
    return {"dense": tf.sparse.to_dense(tf.sparse.reorder(tf.sparse.SparseTensor(indices, values, [3, 4])))}


def sparse_shape_input(indices, values, dense_shape):
    st = tf.sparse.SparseTensor(indices, values, dense_shape)
    return {"sums": tf.sparse.reduce_sum(st, axis=1), "dense": tf.sparse.to_dense(st)}


def sparse_csr(indices, values):
    csr = tf.raw_ops.SparseTensorToCSRSparseMatrix(indices=indices, values=values, dense_shape=tf.constant([3, 4], I))
    return {"dense": tf.raw_ops.CSRSparseMatrixToDense(sparse_input=csr, type=F)}


def sparse_dense_partners(indices, values, dense_shape):
    # Each dense operand fixes dimensions of the input dense shape: the matmul its axis 1 (6),
    # the broadcast product its last (6), the dense add both (5, 6).
    st = tf.sparse.SparseTensor(indices, values, dense_shape)
    return {"product": tf.sparse.sparse_dense_matmul(st, tf.ones([6, 2])),
            "scaled": (st * tf.range(1.0, 7.0)).values,
            "sum": tf.sparse.add(st, tf.ones([5, 6]))}


class SparseSpec(tf.Module):
    # A SparseTensorSpec argument, as Keras' Input(shape=(6,), sparse=True) writes: three
    # signature inputs (x, x_1, x_2), the dense shape among them; the adjoint matmul fixes axis 0.
    def __init__(self):
        self.w = tf.Variable(tf.reshape(tf.range(12.0), [2, 6]))

    @tf.function(input_signature=[tf.SparseTensorSpec([6, None], F)])
    def serve(self, x):
        return {"y": tf.sparse.sparse_dense_matmul(x, self.w, adjoint_a=True, adjoint_b=True)}


spec = SparseSpec()
tf.saved_model.save(spec, f"{out}/sparse_spec", signatures={"serving_default": spec.serve})
save("sparse_const", [INDICES, values()], sparse_const)
save("sparse_reorder", [INDICES, values()], sparse_reorder)
save("sparse_shape_input", [INDICES, values(), tf.TensorSpec([2], I, name="dense_shape")], sparse_shape_input)
save("sparse_csr", [INDICES, values()], sparse_csr)
save("sparse_dense_partners", [INDICES, values(), tf.TensorSpec([2], I, name="dense_shape")], sparse_dense_partners)
'''
RAGGED = {"ragged_lengths": "lengths", "ragged_rowids": "rowids", "ragged_starts": "starts", "ragged_limits": "limits"}
SPARSE = ["sparse_const", "sparse_reorder", "sparse_shape_input", "sparse_csr", "sparse_dense_partners"]
SHAPE_INPUT = {"sparse_shape_input", "sparse_dense_partners"}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("composites")
    made = subprocess.run([sys.executable, "-c", MODELS, str(out)], capture_output=True, text=True, timeout=900)
    assert made.returncode == 0, made.stderr[-3000:]
    return out


def _graph_candidate(model: Path) -> tuple[Any, dict[str, np.ndarray]]:
    """The first candidate for serving_default (it must be the graph strategy) and the random base."""
    from tensorflow.core.protobuf import saved_model_pb2

    from rewriter.verify import input_synthesis
    from rewriter.verify.parity import signature_inputs

    meta = saved_model_pb2.SavedModel.FromString((model / "saved_model.pb").read_bytes()).meta_graphs[0]
    base = signature_inputs(meta, 0, None)["serving_default"]
    first = input_synthesis.candidates(meta, "serving_default", base, 0)[0]
    assert first.strategy == "graph", f"no graph constraint found for {model.name}: {first.strategy}"
    assert first.reasons, first
    return first, base


def _source_accepts(model: Path, candidate: Any, base: dict[str, np.ndarray]) -> dict[str, Any]:
    """Run the source on the graph strategy alone (no fallback): it must accept it."""
    from rewriter.verify.parity import run_source

    run = run_source(model, ["serve"], {"serving_default": dict(base)}, alternatives={"serving_default": [candidate]})
    fed = run.strategies["serving_default"]
    assert fed["strategy"] == "graph", fed
    outputs = run.outputs["serving_default"]
    assert "__error__" not in outputs, outputs
    return outputs


@pytest.mark.parametrize("name", sorted(RAGGED))
def test_ragged_partitions_are_valid(name: str, models: Path) -> None:
    graph, base = _graph_candidate(models / name)
    values, partition = graph.values["values"], graph.values[RAGGED[name]]
    n = len(values)
    assert partition.dtype == np.int64 and partition.ndim == 1 and np.all(partition >= 0)
    if name == "ragged_lengths":
        assert partition.sum() == n
    elif name == "ragged_rowids":
        assert len(partition) == n and np.all(np.diff(partition) >= 0)
    elif name == "ragged_starts":
        assert partition[0] == 0 and np.all(np.diff(partition) >= 0) and partition[-1] <= n
    else:
        assert np.all(np.diff(partition) >= 0) and partition[-1] == n
    outputs = _source_accepts(models / name, graph, base)
    assert outputs["sums"].sum() == pytest.approx(float(values.sum()), abs=1e-5)


@pytest.mark.parametrize("name", SPARSE)
def test_sparse_components_are_valid(name: str, models: Path) -> None:
    graph, base = _graph_candidate(models / name)
    indices, values = graph.values["indices"], graph.values["values"]
    shape = graph.values["dense_shape"] if name in SHAPE_INPUT else np.array([3, 4])
    if name == "sparse_dense_partners":
        assert list(shape) == [5, 6], "the dense operands fix the whole dense shape"
    assert indices.dtype == np.int64 and indices.ndim == 2 and indices.shape[1] == len(shape) == 2
    assert len(indices) == len(values) > 0
    assert np.all(indices >= 0) and np.all(indices < shape)
    flat = np.ravel_multi_index(indices.T, shape)
    assert np.all(np.diff(flat) > 0), "rows unique and in row-major order"
    _source_accepts(models / name, graph, base)


def test_sparse_spec_shape_follows_the_dense_operand(models: Path) -> None:
    """A SparseTensorSpec input read by an adjoint matmul: the contracted axis (0) takes the
    weight's size, so the source multiplies (it failed every strategy with [3, 3])."""
    graph, base = _graph_candidate(models / "sparse_spec")
    shape = graph.values["x_2"]
    assert shape[0] == 6, shape
    indices = graph.values["x"]
    assert np.all(indices >= 0) and np.all(indices < shape) and len(indices) == len(graph.values["x_1"])
    _source_accepts(models / "sparse_spec", graph, base)


@pytest.mark.parametrize("name", ["ragged_lengths", "sparse_const", "sparse_spec"])
def test_converts_to_2_3_with_synthesised_inputs(name: str, models: Path, tmp_path: Path, runtime_2_3: Any) -> None:
    """No --inputs: parity feeds the source (and the 2.3 output) from the graph strategy, and passes."""
    report = tmp_path / "report.json"
    result = run_cli(models / name, tmp_path / "out", "--to", "2.3", "--report", report)
    assert result.code == 0, result.stdout + result.stderr
    parity = json.loads(report.read_text())["parity"]
    assert parity["input_strategies"]["serving_default"]["strategy"] == "graph", parity["input_strategies"]
    assert parity["outputs"] and all(o["status"] == "match" for o in parity["outputs"]), parity["outputs"]
