#!/usr/bin/env python3
"""Regenerate the parity fixtures: small SavedModels that judge parity's verdict and its inputs.

    .venv/bin/python tools/make_parity_fixtures.py [--out DIR] [--only NAME ...]

Writes OUT/<name>/saved_model (default OUT: golden/parity) and OUT/<name>/meta.json. Two families:

- verdict: a well-conditioned small CNN (the tampering tests shift or scale one of its weights),
  a mixed-precision Keras model (float16 compute, float32 output), an FFT model;
- inputs: signatures whose inputs random values do not fit: gather/scatter/one-hot/segment
  indices, serialized tf.Examples read by ParseExampleV2, ragged row splits, encoded images.
  Parity must find inputs the source accepts without --inputs (rewriter/verify/input_synthesis.py).

Deterministic: keras.utils.set_random_seed(0) and np.random.default_rng(0).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def build_small_cnn(export_dir: Path) -> str:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 3), name="image"),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv"),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv2"),
        keras.layers.GlobalAveragePooling2D(name="gap"),
        keras.layers.Dense(3, name="dense"),
    ], name="small_cnn")
    model.export(str(export_dir), verbose=False)
    return "Keras 3 CNN 8x8x3 -> Conv2D(4) -> Conv2D(4) -> GlobalAveragePooling2D -> Dense(3): well-conditioned"


def build_mixed_precision(export_dir: Path) -> str:
    import keras

    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = keras.Sequential([
            keras.Input((8, 8, 3), name="image"),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv"),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(4, name="dense"),
            keras.layers.Activation("softmax", dtype="float32", name="probs"),
        ], name="mixed_precision")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model.export(str(export_dir), verbose=False)
    return "Keras 3 CNN under the mixed_float16 policy: float16 compute, float32 softmax output"


def build_fft(export_dir: Path) -> str:
    import tensorflow as tf

    class Spectral(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([2, 64], tf.float32, name="signal")])
        def serve(self, signal: tf.Tensor) -> dict[str, tf.Tensor]:
            spectrum = tf.signal.rfft(signal)
            stft = tf.signal.stft(signal, frame_length=16, frame_step=8, fft_length=16)
            filtered = tf.signal.irfft(spectrum * tf.cast(tf.linspace(1.0, 0.0, 33), tf.complex64))
            return {"magnitude": tf.abs(stft), "filtered": filtered, "spectrum": spectrum}

    module = Spectral()
    tf.saved_model.save(module, str(export_dir), signatures={"serving_default": module.serve})
    return "tf.Module: rfft, stft magnitude and an irfft low-pass of a 64-sample signal"


def build_indices(export_dir: Path) -> str:
    import tensorflow as tf

    rng = np.random.default_rng(0)

    class Indexed(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.table = tf.Variable(rng.standard_normal((3, 4)).astype(np.float32), name="table")

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int32, name="ids")])
        def embed(self, ids: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"vectors": tf.nn.embedding_lookup(self.table, ids)}

        @tf.function(input_signature=[tf.TensorSpec([6, 2], tf.float32, name="data"),
                                      tf.TensorSpec([6], tf.int64, name="segment_ids")])
        def segments(self, data: tf.Tensor, segment_ids: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"sums": tf.math.segment_sum(data, segment_ids)}

        @tf.function(input_signature=[tf.TensorSpec([4, 2], tf.int32, name="where"),
                                      tf.TensorSpec([4], tf.float32, name="updates")])
        def scatter(self, where: tf.Tensor, updates: tf.Tensor) -> dict[str, tf.Tensor]:
            dense = tf.scatter_nd(where, updates, [3, 2])
            # gather_nd of the read value: TF 2.3 cannot import a ResourceGatherNd on a variable
            # whose handle data a function argument does not carry.
            return {"dense": dense, "picked": tf.gather_nd(tf.identity(self.table), where)}

        @tf.function(input_signature=[tf.TensorSpec([5], tf.int32, name="ids"),
                                      tf.TensorSpec([5, 2], tf.float32, name="data")])
        def unsorted(self, ids: tf.Tensor, data: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"maxima": tf.math.unsorted_segment_max(data, ids, 3),
                    "rows": tf.gather(self.table, ids, axis=0)}

    module = Indexed()
    tf.saved_model.save(module, str(export_dir), signatures={
        "serving_default": module.embed, "segments": module.segments, "scatter": module.scatter,
        "unsorted": module.unsorted})
    return ("tf.Module: embedding lookup in a 3-row table, sorted segment sums, scatter_nd/gather_nd "
            "into [3, 2] / [3, 4], unsorted segment max into 3 segments and a gather: random ids in [0, 5) fail")


def build_keras_embedding(export_dir: Path) -> str:
    import keras

    keras.utils.set_random_seed(0)
    ids = keras.Input((4,), dtype="int32", name="ids")
    vectors = keras.layers.Embedding(3, 4, name="embedding")(ids)
    model = keras.Model(ids, keras.layers.Dense(2, name="dense")(keras.layers.Flatten()(vectors)), name="keras_embedding")
    model.export(str(export_dir), verbose=False)
    return "Keras 3 Embedding(3, 4) -> Dense(2): ids index a 3-row table through where(ids < 0, ids + 3, ids)"


def build_parse_example(export_dir: Path) -> str:
    import tensorflow as tf

    features = {
        "age": tf.io.FixedLenFeature([1], tf.int64),
        "scores": tf.io.FixedLenFeature([3], tf.float32),
        "tags": tf.io.VarLenFeature(tf.string),
        "weights": tf.io.RaggedFeature(tf.float32),
    }

    class Parser(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def serve(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
            parsed = tf.io.parse_example(examples, features)
            tags = parsed["tags"]
            ones = tf.SparseTensor(tags.indices, tf.ones_like(tags.values, tf.int32), tags.dense_shape)
            return {"age": parsed["age"], "total": tf.reduce_sum(parsed["scores"], axis=1),
                    "tag_count": tf.sparse.reduce_sum(ones, axis=1),
                    "weight_sum": tf.reduce_sum(parsed["weights"], axis=1)}

    module = Parser()
    tf.saved_model.save(module, str(export_dir), signatures={"serving_default": module.serve})
    return "tf.Module: tf.io.parse_example (ParseExampleV2) of dense int64/float, sparse string and ragged float features"


def build_ragged(export_dir: Path) -> str:
    import tensorflow as tf

    class Ragged(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="values"),
                                      tf.TensorSpec([None], tf.int64, name="row_splits")])
        def serve(self, values: tf.Tensor, row_splits: tf.Tensor) -> dict[str, tf.Tensor]:
            ragged = tf.RaggedTensor.from_row_splits(values, row_splits)
            return {"row_sums": tf.reduce_sum(ragged, axis=1), "dense": ragged.to_tensor()}

    module = Ragged()
    tf.saved_model.save(module, str(export_dir), signatures={"serving_default": module.serve})
    return "tf.Module: a ragged tensor from values and row splits (validated), row sums and to_tensor"


def build_decode_image(export_dir: Path) -> str:
    import tensorflow as tf

    class Decoder(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="png")])
        def serve(self, png: tf.Tensor) -> dict[str, tf.Tensor]:
            image = tf.io.decode_png(png, channels=3)
            return {"mean": tf.reduce_mean(tf.cast(image, tf.float32), axis=[0, 1])}

    module = Decoder()
    tf.saved_model.save(module, str(export_dir), signatures={"serving_default": module.serve})
    return "tf.Module: decode_png of a scalar string, mean colour"


def build_number_strings(export_dir: Path) -> str:
    import tensorflow as tf

    class Numbers(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def parse(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"value": tf.strings.to_number(text, tf.float32) * 2.0}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="line")])
        def csv(self, line: tf.Tensor) -> dict[str, tf.Tensor]:
            fields = tf.strings.split(line, ",").to_tensor("0")
            return {"sum": tf.reduce_sum(tf.strings.to_number(fields, tf.int32), axis=1)}

    module = Numbers()
    tf.saved_model.save(module, str(export_dir), signatures={"serving_default": module.parse, "csv": module.csv})
    return ("tf.Module: strings parsed as numbers (StringToNumber), directly and after a split: the source fails "
            "on random and empty strings")


def _application(constructor: str, **kwargs: object) -> Callable[[Path], str]:
    def build(export_dir: Path) -> str:
        import keras

        keras.utils.set_random_seed(0)
        # Logits, not softmax: random weights saturate a softmax to 1/classes, which hides noise.
        model = getattr(keras.applications, constructor)(weights=None, input_shape=(32, 32, 3), classes=10,
                                                         classifier_activation=None, **kwargs)
        model.export(str(export_dir), verbose=False)
        return f"keras.applications.{constructor}({kwargs}) with random weights, 32x32x3 input, 10 logits"

    return build


BUILDERS: dict[str, Callable[[Path], str]] = {
    "small_cnn": build_small_cnn,
    "mixed_precision": build_mixed_precision,
    "fft": build_fft,
    "indices": build_indices,
    "keras_embedding": build_keras_embedding,
    "parse_example": build_parse_example,
    "ragged": build_ragged,
    "decode_image": build_decode_image,
    "number_strings": build_number_strings,
    # Deep networks: too big to commit (1.6 MB and more); tests and tools/bench_parity.py
    # generate them into a temporary folder with --only.
    "app_mobilenet_v2": _application("MobileNetV2", alpha=0.35),
    "app_efficientnet_b0": _application("EfficientNetB0"),
    "app_resnet50": _application("ResNet50"),
}
COMMITTED = ["small_cnn", "mixed_precision", "fft", "indices", "keras_embedding", "parse_example", "ragged", "decode_image",
             "number_strings"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "golden" / "parity")
    parser.add_argument("--only", nargs="*", default=COMMITTED)
    args = parser.parse_args(argv)
    import tensorflow as tf

    for name in args.only:
        if name not in BUILDERS:
            print(f"unknown fixture {name!r}; known: {', '.join(sorted(BUILDERS))}", file=sys.stderr)
            return 2
        folder = args.out / name
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        description = BUILDERS[name](folder / "saved_model")
        meta = {"name": name, "description": description, "generator": "tools/make_parity_fixtures.py",
                "tensorflow": tf.__version__}
        (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        print(f"{name}: {folder}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
