#!/usr/bin/env python3
"""Regenerate the golden fixture SavedModels and their reference data.

Each fixture is written with the installed TensorFlow / Keras through the public
APIs users use (`keras.Model.export`, `tf.saved_model.save`), then reloaded with
`tf.saved_model.load` to compute the expected outputs of every signature.

Layout written (under --out, default: the repo's golden/):

    fixtures/<name>/saved_model/   the SavedModel, exactly as TF writes it
    fixtures/<name>/data.npz       <sig>/inputs/<name>, <sig>/outputs/<name>
    fixtures/<name>/meta.json      JAX back-compat style metadata
    examples/keras_cnn/            copy of the keras3_cnn SavedModel (README demo)

Usage:
    .venv/bin/python tools/make_fixtures.py [--out DIR] [--only NAME ...]
    .venv/bin/python tools/make_fixtures.py --inventory DIR   # ops/attrs per function

Determinism: all weights come from keras.utils.set_random_seed(0) or
np.random.default_rng(0); inputs from np.random.default_rng(0) per fixture.
Set SOURCE_DATE_EPOCH to pin meta.json's "created" date.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

REPO = Path(__file__).resolve().parent.parent
GENERATOR = "tools/make_fixtures.py"

# Unknown dimensions of a signature input are filled with this size.
UNKNOWN_DIM = 2
# Fixed word list the string fixture draws its inputs from: mixed case, an
# out-of-vocabulary word, a non-ASCII word and an empty string on purpose.
# The order matters: with default_rng(0) and 2 elements the draws are indices
# [6, 5], i.e. one in-vocabulary mixed-case word and one non-ASCII miss
# (build checks this coverage, see check_string_coverage).
WORDS: list[str] = ["Hello", "world", "SAVED", "model", "", "Grüße", "TensorFlow", "unknown"]
# Vocabulary written to the string fixture's asset file (line number = id).
VOCAB: list[str] = ["hello", "world", "tensorflow", "saved", "model"]


@contextlib.contextmanager
def _chdir(path: Path) -> Iterator[None]:
    # contextlib.chdir only exists from Python 3.11; the project supports 3.10.
    prev = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(prev)


# --------------------------------------------------------------------------- #
# Fixture builders. Each writes a SavedModel into `export_dir` and returns its
# human-readable description. TF/Keras are imported lazily so --inventory does
# not pay for Keras.
# --------------------------------------------------------------------------- #


def build_keras3_cnn(export_dir: Path) -> str:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input(shape=(16, 16, 3), name="image"),
            keras.layers.Conv2D(4, 3, padding="same", name="conv"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.ReLU(name="relu"),
            keras.layers.MaxPooling2D(2, name="pool"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(3, activation="softmax", name="dense"),
        ],
        name="keras3_cnn",
    )
    # Non-trivial BatchNorm statistics (fresh ones are 0/1, which would hide a
    # broken FusedBatchNorm rewrite); drawn from a seeded generator, no training.
    rng = np.random.default_rng(0)
    bn = model.get_layer("bn")
    gamma, beta, mean, var = (w.shape for w in bn.get_weights())
    bn.set_weights(
        [
            (1.0 + 0.1 * rng.standard_normal(gamma)).astype(np.float32),
            (0.1 * rng.standard_normal(beta)).astype(np.float32),
            (0.1 * rng.standard_normal(mean)).astype(np.float32),
            (1.0 + 0.5 * rng.random(var)).astype(np.float32),
        ]
    )
    model.export(str(export_dir), verbose=False)
    return (
        "Keras 3 Sequential CNN (16x16x3 -> Conv2D(4) -> BatchNormalization -> ReLU -> "
        "MaxPooling2D -> GlobalAveragePooling2D -> Dense(3, softmax)), exported with "
        "model.export(); BatchNorm statistics set from a seeded RNG."
    )


def build_keras3_lstm(export_dir: Path) -> str:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input(shape=(6, 4), name="seq"),
            keras.layers.LSTM(8, name="lstm"),
            keras.layers.Dense(2, name="dense"),
        ],
        name="keras3_lstm",
    )
    model.export(str(export_dir), verbose=False)
    return "Keras 3 Sequential (6 steps x 4 features -> LSTM(8) -> Dense(2)), exported with model.export()."


def build_tf_module(export_dir: Path) -> str:
    import tensorflow as tf

    rng = np.random.default_rng(0)

    class DenseModule(tf.Module):
        def __init__(self) -> None:
            super().__init__(name="dense_module")
            self.w = tf.Variable(rng.standard_normal((4, 3)).astype(np.float32), name="w")
            self.b = tf.Variable(rng.standard_normal((3,)).astype(np.float32), name="b")
            self.scale = tf.Variable(np.float32(0.5), name="scale")

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            pre = tf.matmul(x, self.w) + self.b
            hidden = tf.nn.tanh(pre)
            return {"hidden": hidden, "y": tf.nn.sigmoid(hidden * self.scale)}

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def logits(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"logits": tf.matmul(x, self.w) + self.b}

    module = DenseModule()
    tf.saved_model.save(
        module,
        str(export_dir),
        signatures={"serving_default": module.serve, "logits": module.logits},
    )
    return (
        "tf.Module with tf.Variables (w 4x3, b 3, scalar scale); signature serving_default "
        "returns {hidden: tanh(xW+b), y: sigmoid(hidden*scale)}, signature logits returns "
        "{logits: xW+b}; saved with tf.saved_model.save(signatures=...)."
    )


def build_string_input(export_dir: Path) -> str:
    import tensorflow as tf

    export_dir = export_dir.resolve()  # we chdir below
    # The vocabulary lives outside export_dir so that saving has to copy it into
    # assets/ (that is what exercises the asset machinery). It is named by a
    # relative path from inside the temp dir because the table's shared_name
    # embeds the path as given: an absolute /tmp/tmpXXXX path would make
    # saved_model.pb differ on every run.
    with tempfile.TemporaryDirectory() as tmp, _chdir(Path(tmp)):
        vocab_path = Path("vocab.txt")
        vocab_path.write_text("".join(w + "\n" for w in VOCAB), encoding="utf-8")

        class StringModule(tf.Module):
            def __init__(self) -> None:
                super().__init__(name="string_module")
                init = tf.lookup.TextFileInitializer(
                    str(vocab_path),
                    key_dtype=tf.string,
                    key_index=tf.lookup.TextFileIndex.WHOLE_LINE,
                    value_dtype=tf.int64,
                    value_index=tf.lookup.TextFileIndex.LINE_NUMBER,
                )
                self.table = tf.lookup.StaticHashTable(init, default_value=-1)

            @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
            def serve(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
                lowered = tf.strings.lower(text)
                normalized = tf.strings.regex_replace(lowered, "[^a-z]", "_")
                return {
                    "length": tf.strings.length(text),  # bytes, int32
                    "normalized": normalized,
                    "ids": self.table.lookup(lowered),  # int64, -1 when unknown
                }

        module = StringModule()
        tf.saved_model.save(module, str(export_dir), signatures={"serving_default": module.serve})
    return (
        "tf.Module taking a tf.string vector; returns tf.strings.length (int32), a lowercased + "
        "regex_replace'd string, and int64 ids from a StaticHashTable whose vocabulary is an "
        "asset file (tf.lookup.TextFileInitializer), -1 for unknown words."
    )


def build_int_output(export_dir: Path) -> str:
    import tensorflow as tf

    rng = np.random.default_rng(0)

    class IntModule(tf.Module):
        def __init__(self) -> None:
            super().__init__(name="int_module")
            self.w = tf.Variable(rng.standard_normal((4, 5)).astype(np.float32), name="w")
            self.b = tf.Variable(rng.standard_normal((5,)).astype(np.float32), name="b")

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            logits = tf.matmul(x, self.w) + self.b
            return {
                "argmax": tf.argmax(logits, axis=-1),  # int64
                # floor() first so the int value never depends on float rounding ties
                "bucket": tf.cast(tf.floor(logits * 4.0), tf.int32),
                "positive": logits > 0.0,  # bool
            }

    module = IntModule()
    tf.saved_model.save(module, str(export_dir), signatures={"serving_default": module.serve})
    return (
        "tf.Module with variables (w 4x5, b 5) from float input; returns argmax (int64), "
        "cast(floor(4*logits), int32) and logits > 0 (bool)."
    )


FIXTURES: dict[str, Callable[[Path], str]] = {
    "keras3_cnn": build_keras3_cnn,
    "keras3_lstm": build_keras3_lstm,
    "tf_module": build_tf_module,
    "string_input": build_string_input,
    "int_output": build_int_output,
}
# golden/examples/<name> is a copy of fixture <source>'s SavedModel.
EXAMPLES: dict[str, str] = {"keras_cnn": "keras3_cnn"}


# --------------------------------------------------------------------------- #
# Reference data
# --------------------------------------------------------------------------- #


def _spec_json(spec: Any) -> dict[str, Any]:
    return {"dtype": spec.dtype.name, "shape": spec.shape.as_list() if spec.shape.rank is not None else None}


def make_inputs(specs: dict[str, Any], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Seeded inputs for one signature, in sorted input-name order."""
    inputs: dict[str, np.ndarray] = {}
    for name in sorted(specs):
        spec = specs[name]
        if spec.shape.rank is None:
            raise ValueError(f"input {name!r} has unknown rank; fixture inputs need a rank")
        shape = tuple(UNKNOWN_DIM if d is None else d for d in spec.shape.as_list())
        dtype = spec.dtype.name
        if dtype == "float32":
            inputs[name] = rng.standard_normal(shape).astype(np.float32)
        elif dtype == "string":
            picks = rng.integers(0, len(WORDS), size=shape)
            # 'S' (bytes) arrays round-trip through .npz without pickle.
            inputs[name] = np.array([WORDS[i].encode("utf-8") for i in picks.ravel()], dtype=bytes).reshape(shape)
        else:
            raise ValueError(f"no input generator for dtype {dtype} (input {name!r})")
    return inputs


def to_numpy(value: Any) -> np.ndarray:
    arr = value.numpy() if hasattr(value, "numpy") else np.asarray(value)
    if arr.dtype == object:  # tf.string comes back as object-of-bytes
        arr = arr.astype(bytes)
    return arr


def reference_data(saved_model_dir: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Run every signature of the SavedModel on seeded inputs.

    Returns (npz arrays, meta "signatures" dict).
    """
    import tensorflow as tf

    loaded = tf.saved_model.load(str(saved_model_dir))
    rng = np.random.default_rng(0)
    arrays: dict[str, np.ndarray] = {}
    sig_meta: dict[str, Any] = {}
    for key in sorted(loaded.signatures):
        fn = loaded.signatures[key]
        args, kwargs = fn.structured_input_signature
        assert not args, f"signature {key} has positional inputs"
        inputs = make_inputs(kwargs, rng)
        outputs = fn(**{k: tf.constant(v) for k, v in inputs.items()})
        for name, arr in inputs.items():
            arrays[f"{key}/inputs/{name}"] = arr
        for name in sorted(outputs):
            arrays[f"{key}/outputs/{name}"] = to_numpy(outputs[name])
        sig_meta[key] = {
            "inputs": {n: _spec_json(kwargs[n]) for n in sorted(kwargs)},
            "outputs": {n: _spec_json(s) for n, s in sorted(fn.structured_outputs.items())},
        }
    return arrays, sig_meta


def check_string_coverage(arrays: dict[str, np.ndarray]) -> None:
    # With only UNKNOWN_DIM=2 strings, make sure the golden data still covers
    # both a vocabulary hit and a miss (-1); fail loudly if seeds/words change.
    ids = arrays["serving_default/outputs/ids"]
    if not ((ids >= 0).any() and (ids == -1).any()):
        raise AssertionError(f"string_input inputs cover no hit/miss mix: ids={ids.tolist()}")


def created_date() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = _dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc) if epoch else _dt.datetime.now(_dt.timezone.utc)
    return when.date().isoformat()


def make_fixture(name: str, fixtures_root: Path) -> Path:
    import keras
    import tensorflow as tf

    out = fixtures_root / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    sm_dir = out / "saved_model"
    description = FIXTURES[name](sm_dir)
    arrays, sig_meta = reference_data(sm_dir)
    if name == "string_input":
        check_string_coverage(arrays)
    # numpy's stubs type **kwds against allow_pickle; the arrays hold no objects.
    np.savez(out / "data.npz", **arrays)  # type: ignore[arg-type]
    meta = {
        "name": name,
        "created": created_date(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "generator": GENERATOR,
        "description": description,
        "signatures": sig_meta,
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return out


# --------------------------------------------------------------------------- #
# Inventory: ops and attrs per function (also used by tests/test_fixtures.py)
# --------------------------------------------------------------------------- #


def op_inventory(saved_model_dir: Path) -> dict[str, dict[str, list[str]]]:
    """{function name or "<graph>": {op: sorted attr keys (union over its nodes)}}.

    Only needs the protobuf schema, not a TF runtime.
    """
    from rewriter.protos import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((Path(saved_model_dir) / "saved_model.pb").read_bytes())
    if len(sm.meta_graphs) != 1:
        raise ValueError(f"expected one MetaGraphDef, got {len(sm.meta_graphs)}")
    graph = sm.meta_graphs[0].graph_def
    inv: dict[str, dict[str, set[str]]] = {"<graph>": {}}
    for node in graph.node:
        inv["<graph>"].setdefault(node.op, set()).update(node.attr.keys())
    for fn in graph.library.function:
        ops = inv.setdefault(fn.signature.name, {})
        for node in fn.node_def:
            ops.setdefault(node.op, set()).update(node.attr.keys())
    return {f: {op: sorted(attrs) for op, attrs in sorted(ops.items())} for f, ops in inv.items()}


def print_inventory(saved_model_dir: Path) -> None:
    for fn, ops in op_inventory(saved_model_dir).items():
        print(f"  {fn}:")
        for op, attrs in ops.items():
            print(f"    {op}: {', '.join(attrs)}")


# --------------------------------------------------------------------------- #


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "golden", help="root to write fixtures/ and examples/ under")
    parser.add_argument("--only", nargs="+", choices=sorted(FIXTURES), help="regenerate only these fixtures")
    parser.add_argument("--inventory", type=Path, metavar="SAVED_MODEL_DIR", help="print ops/attrs per function and exit")
    # Internal: build one fixture in this process (see the loop below).
    parser.add_argument("--one", choices=sorted(FIXTURES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.inventory:
        print_inventory(args.inventory)
        return 0

    fixtures_root = args.out / "fixtures"
    if args.one:
        make_fixture(args.one, fixtures_root)
        return 0
    # One fresh process per fixture: TF numbers traced functions with a
    # process-global counter (__inference_serve_15 vs _2197), so building them
    # all in one process would make a fixture's function names depend on which
    # fixtures were built before it (and on --only).
    for name in args.only or list(FIXTURES):
        subprocess.run([sys.executable, __file__, "--out", str(args.out), "--one", name], check=True)
        print(f"wrote {fixtures_root / name}", file=sys.stderr)
    for example, source in EXAMPLES.items():
        if args.only and source not in args.only:
            continue
        dest = args.out / "examples" / example
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(fixtures_root / source / "saved_model", dest)
        print(f"wrote {dest}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
