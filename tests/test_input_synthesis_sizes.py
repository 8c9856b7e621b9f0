"""Integer inputs that are sizes or counts, and outputs with no elements.

`tf.range(n)`, `tf.math.top_k(x, k=n)`, `tf.tile(x, [1, n])`, `tf.image.resize(img, size)` and
`tf.slice(x, begin, size)` with those as signature inputs: random integers in [0, 5) hold 0 one
time in five, which makes every such output empty. Parity then compared nothing and said
"bit-identical" (exit 0). Now the `graph` strategy gives sizes at least 1 (a Slice its begin 0
and size 1), every output has values, and an output that still has no elements is named in the
report; if no output has any, parity is not proven (exit 3).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import run_cli
from test_input_synthesis_composites import _graph_candidate, _source_accepts

MODELS = r'''
import sys, tensorflow as tf
out = sys.argv[1]


class Sizes(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32, name="x"), tf.TensorSpec([], tf.int32, name="n"),
                                  tf.TensorSpec([2], tf.int32, name="size")])
    def counts(self, x, n, size):
        image = tf.reshape(x, [-1, 2, 4, 1])
        return {"resized": tf.image.resize(image, size), "tiled": tf.tile(x, [1, n]), "range": tf.range(n),
                "top": tf.math.top_k(x, k=n).values}

    @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32, name="x"), tf.TensorSpec([2], tf.int32, name="begin"),
                                  tf.TensorSpec([2], tf.int32, name="size")])
    def sliced(self, x, begin, size):
        return {"part": tf.slice(x, begin, size), "zeros": tf.zeros(size) + 1.0}

    @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32, name="x")])
    def nothing(self, x):  # no random input reaches 100
        return {"big": tf.boolean_mask(x, x > 100.0)}


module = Sizes()
for name in ["counts", "sliced", "nothing"]:
    tf.saved_model.save(module, f"{out}/{name}", signatures={"serving_default": getattr(module, name)})
'''


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sizes")
    made = subprocess.run([sys.executable, "-c", MODELS, str(out)], capture_output=True, text=True, timeout=900)
    assert made.returncode == 0, made.stderr[-3000:]
    return out


@pytest.mark.parametrize("name", ["counts", "sliced"])
def test_sizes_and_counts_are_at_least_one(name: str, models: Path) -> None:
    graph, base = _graph_candidate(models / name)
    integers = {key: value for key, value in graph.values.items() if value.dtype.kind == "i"}
    assert integers and all(np.all(value >= 1) for key, value in integers.items() if key != "begin"), integers
    if name == "sliced":
        assert list(graph.values["begin"]) == [0, 0] and list(graph.values["size"]) == [1, 1]
    outputs = _source_accepts(models / name, graph, base)
    assert all(np.asarray(value).size > 0 for value in outputs.values()), {k: np.shape(v) for k, v in outputs.items()}


def test_outputs_without_elements_prove_nothing(models: Path, tmp_path: Path, runtime_2_3: Any) -> None:
    result = run_cli(models / "nothing", tmp_path / "out", "--to", "2.3", "--report", str(tmp_path / "r.json"))
    text = result.stdout + result.stderr
    assert result.code == 3, text
    assert "no elements: only its dtype and shape were compared" in text
    assert "every output has no elements" in text and not (tmp_path / "out").exists()


def test_sized_model_converts_with_every_output_compared(models: Path, tmp_path: Path, runtime_2_3: Any) -> None:
    result = run_cli(models / "counts", tmp_path / "out", "--to", "2.3")
    text = result.stdout + result.stderr
    assert result.code == 0, text
    assert "no elements" not in text and "a size or count of" in text
