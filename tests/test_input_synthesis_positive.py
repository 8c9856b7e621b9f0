"""The `positive` input strategy: models that assert their inputs are positive probabilities, take a
log under CheckNumerics, or reshape and frame by integer inputs.

Random inputs (standard normal floats, integers in [0, 5)) and zeros fail in the source for each
of these ("Condition x > 0 did not hold", "bad log : Tensor had NaN values", "Input to reshape is
a tensor with 2 values, but the requested shape has 0"), so parity compared nothing and a right
conversion ended "not proven" (exit 3; a helper's sweep of unseen models). `positive` moves every
float into (0.1, 0.9) and sets every integer the graph does not constrain to 1.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli, saved_by_script

MODELS = r'''
import sys, tensorflow as tf
out = sys.argv[1]


class Checked(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="probs")])
    def asserts(self, probs):
        with tf.control_dependencies([tf.debugging.assert_positive(probs), tf.debugging.assert_less_equal(probs, 1.0)]):
            return {"entropy": -tf.reduce_sum(probs * tf.math.log(probs), -1)}

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def log(self, x):
        return {"y": tf.debugging.check_numerics(tf.math.log(x), "bad log")}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="flat"), tf.TensorSpec([], tf.int32, name="rows"),
                                  tf.TensorSpec([], tf.int32, name="k")])
    def reshape_by(self, flat, rows, k):
        m = tf.reshape(flat, [rows, -1])
        return {"m": m, "top": tf.math.top_k(m, k).values, "frames": tf.signal.frame(flat, k, 1)}

    @tf.function(input_signature=[tf.TensorSpec([None, 3, 3], tf.float32, name="a")])
    def cholesky(self, a):  # TF 2.4 on fills NaN for a matrix that is not positive definite; 2.3 raises
        return {"l": tf.linalg.cholesky(a)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="data")])
    def gzip(self, data):  # random words are no gzip data, and empty strings decode to nothing
        text = tf.io.decode_compressed(data, compression_type="GZIP")
        return {"length": tf.strings.length(text), "upper": tf.strings.upper(text)}


module = Checked()
for name in ["asserts", "log", "reshape_by", "cholesky", "gzip"]:
    tf.saved_model.save(module, f"{out}/{name}", signatures={"serving_default": getattr(module, name)})
'''
NAMES = ["asserts", "log", "reshape_by"]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return saved_by_script(MODELS, tmp_path_factory.mktemp("positive"))


@pytest.mark.parametrize("name", NAMES)
def test_positive_inputs_make_the_source_run(name: str, models: Path, tmp_path: Path, runtime_2_3: Any) -> None:
    result = run_cli(models / name, tmp_path / "out", "--to", "2.3", "--report", str(tmp_path / "r.json"))
    text = result.stdout + result.stderr
    assert result.code == 0, text
    assert "inputs of serving_default: positive" in text
    assert "no elements" not in text


def test_positive_values_keep_what_was_given_and_constrained() -> None:
    import numpy as np

    from rewriter.verify.input_synthesis import positive_values

    values: dict[str, np.ndarray] = {"x": np.array([-3.0, 0.0, 5.0], np.float32), "given": np.array([-1.0], np.float32),
              "n": np.array(0, np.int32), "ids": np.array([0, 4], np.int64)}
    out = positive_values(values, {"given"}, {"ids"})
    assert np.all((out["x"] > 0.1) & (out["x"] < 0.9)) and len(set(out["x"].tolist())) == 3
    assert out["x"].dtype == np.float32 and out["n"] == 1 and out["n"].dtype == np.int32
    assert out["given"] is values["given"] and out["ids"] is values["ids"]


def test_a_cholesky_input_is_positive_definite(models: Path, tmp_path: Path, runtime_2_3: Any) -> None:
    """Random matrices are not positive definite: the source gave NaN, TF 2.3.4 raised, and a right
    conversion ended 'fails to compute' (exit 3; a helper's sweep)."""
    result = run_cli(models / "cholesky", tmp_path / "out", "--to", "2.3")
    text = result.stdout + result.stderr
    assert result.code == 0, text
    assert "symmetric positive definite matrices for Cholesky" in text and "NaN" not in text


def test_compressed_text_is_compressed(models: Path, tmp_path: Path, runtime_2_3: Any) -> None:
    """tf.io.decode_compressed(GZIP): random words fail in the source and only the zeros strategy
    (empty strings) ran, a weak proof (a helper's sweep). The input is now gzip data of a phrase."""
    result = run_cli(models / "gzip", tmp_path / "out", "--to", "2.3")
    text = result.stdout + result.stderr
    assert result.code == 0, text
    assert "inputs of serving_default: graph - data: GZIP compressed text decoded by DecodeCompressed" in text
