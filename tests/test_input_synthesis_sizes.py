"""Integer inputs that are sizes or counts, and outputs with no elements.

`tf.range(n)`, `tf.math.top_k(x, k=n)`, `tf.tile(x, [1, n])`, `tf.image.resize(img, size)` and
`tf.slice(x, begin, size)` with those as signature inputs: random integers in [0, 5) hold 0 one
time in five, which makes every such output empty. Parity then compared nothing and said
"bit-identical" (exit 0). Now the `graph` strategy gives sizes at least 1 (a Slice its begin 0
and size 1), every output has values, and an output that still has no elements is named in the
report; if no output has any, parity is not proven (exit 3).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import run_cli, saved_by_script
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


def audio(upper):
    class Audio(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="waveform")])
        def call(self, waveform):  # 400-sample frames: 2 samples make no frame, and the mean of none is NaN
            stft = tf.signal.stft(waveform, frame_length=400, frame_step=160, fft_length=512)
            mel = tf.signal.linear_to_mel_weight_matrix(40, 257, 16000, 20.0, upper)
            return {"mean": tf.reduce_mean(tf.math.log(tf.matmul(tf.abs(stft), mel) + 1e-3), 0)}
    return Audio()


for name, upper in [("audio", 7600.0), ("audio_other_mel", 4000.0)]:
    module = audio(upper)
    tf.saved_model.save(module, f"{out}/{name}", signatures={"serving_default": module.call})
'''


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return saved_by_script(MODELS, tmp_path_factory.mktemp("sizes"))


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
    assert "every output has no elements or only NaN" in text and not (tmp_path / "out").exists()


def test_sized_model_converts_with_every_output_compared(models: Path, tmp_path: Path, runtime_2_3: Any) -> None:
    result = run_cli(models / "counts", tmp_path / "out", "--to", "2.3")
    text = result.stdout + result.stderr
    assert result.code == 0, text
    assert "no elements" not in text and "a size or count of" in text


def test_a_window_longer_than_the_inputs_gets_long_inputs(models: Path, tmp_path: Path, runtime_2_3: Any) -> None:
    """An STFT of 400-sample frames on a [None] waveform: 2 samples give no frame and an all-NaN
    mean, which matched "bit-identical" (exit 0). The `long` strategy gives the waveform 16000."""
    result = run_cli(models / "audio", tmp_path / "out", "--to", "2.3", "--report", str(tmp_path / "r.json"))
    text = result.stdout + result.stderr
    assert result.code == 0, text
    assert "inputs of serving_default: long" in text and "output mean is all NaN" in text
    fed = json.loads((tmp_path / "r.json").read_text())["parity"]["inputs"]["serving_default"]["waveform"]
    assert fed["shape"] == [16000]


def test_another_model_is_not_proven_on_inputs_too_short_to_tell(models: Path, tmp_path: Path,
                                                                   runtime_2_3: Any) -> None:
    """A model with another mel matrix, checked against the right one: on 2 samples both give NaN
    and parity called it proven (a helper's repro); on long inputs the values differ."""
    out = tmp_path / "other"
    assert run_cli(models / "audio_other_mel", out, "--to", "2.3", "--no-verify").code == 0
    result = run_cli("verify", out, "--against", models / "audio", "--to", "2.3")
    assert result.code == 3, result.stdout + result.stderr
    assert "serving_default/mean" in result.stdout + result.stderr


def test_vacuous_outputs_are_named() -> None:
    from rewriter.verify.parity import _vacuous

    assert _vacuous({"a": np.ones(3, np.float32), "b": np.zeros((2, 0))}) == "output b has no elements"
    assert _vacuous({"a": np.full(3, np.nan, np.float32)}) == "output a is all NaN"
    assert _vacuous({"a": np.array([np.nan, 1.0]), "s": np.array([b""], object)}) is None


def test_long_inputs_keep_the_batch() -> None:
    """`long` lengthens unknown dimensions but the batch: a rank-1 input beside a [batch, time] one
    is a batch of labels or lengths and keeps its size (a helper saw it made 16000 long)."""
    from rewriter.protos import meta_graph_pb2
    from rewriter.verify.input_synthesis import LONG_DIM, lengthened

    signature = meta_graph_pb2.SignatureDef()
    for name, rank in (("audio", 2), ("lengths", 1)):
        for _ in range(rank):
            signature.inputs[name].tensor_shape.dim.add().size = -1
    values = {"audio": np.zeros((2, 2), np.float32), "lengths": np.zeros(2, np.int32)}
    long = lengthened(signature, values, frozenset())
    assert long is not None and long["audio"].shape == (2, LONG_DIM) and long["lengths"].shape == (2,)
    alone = lengthened(signature, {"lengths": values["lengths"]}, frozenset())
    assert alone is not None and alone["lengths"].shape == (LONG_DIM,)
