"""Parity inputs that reach a model's lookup tables and tokenizers, and --inputs keys.

Random strings were single words of a fixed list and integers were in [0, 5): they never hit a
StringLookup's or a StaticHashTable's keys, so every lookup gave the default in both runtimes and an
output whose table was emptied or altered matched "bit-identical" (exit 0); n-grams of one word
were empty and matched too (a helper's sweep of TF 2.12 / 2.17 models). Now string inputs are
phrases and single words, the single words keys of the model's tables (input_synthesis.vocabulary),
integer lookup keys come from the tables, and an --inputs key that names no signature input is bad
input (exit 2) instead of being left out silently.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import run_cli, saved_by_script

MODELS = r'''
import sys, tensorflow as tf
out = sys.argv[1]


class Tables(tf.Module):
    def __init__(self):
        self.words = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(["red", "green", "blue"]), tf.constant([1, 2, 3], tf.int64)), -1)
        self.codes = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant([12, 36, 1001], tf.int64), tf.constant([5.0, 6.0, 7.0])), -1.0)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="color"), tf.TensorSpec([None], tf.int64, name="code")])
    def lookup(self, color, code):
        return {"id": self.words.lookup(color), "value": self.codes.lookup(code)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def bigrams(self, text):
        return {"bigrams": tf.strings.ngrams(tf.strings.split(text), 2).flat_values}


module = Tables()
tf.saved_model.save(module, f"{out}/lookup", signatures={"serving_default": module.lookup})
tf.saved_model.save(module, f"{out}/bigrams", signatures={"serving_default": module.bigrams})
'''


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return saved_by_script(MODELS, tmp_path_factory.mktemp("vocabulary"))


def test_the_tables_keys_are_the_vocabulary(models: Path) -> None:
    from rewriter.savedmodel.files import read_saved_model
    from rewriter.verify.input_synthesis import candidates, vocabulary
    from rewriter.verify.parity import signature_inputs

    meta = read_saved_model(models / "lookup").proto.meta_graphs[0]
    vocab = vocabulary(meta, models / "lookup")
    assert vocab.words == [b"red", b"green", b"blue"] and vocab.numbers == [12, 36, 1001]
    base = signature_inputs(meta, 0, None)["serving_default"]
    graph = candidates(meta, "serving_default", base, 0, frozenset(), vocab)[0]
    assert graph.strategy == "graph"
    assert graph.values["color"][1] in vocab.words and b" " in graph.values["color"][0]  # a key, and a phrase no table has
    assert set(graph.values["code"].tolist()) <= {12, 36, 1001, 1002}


def _tamper(model: Path, out: Path) -> None:
    """OUT with the string table's values changed to 99 (what a broken table conversion would do)."""
    from rewriter.protos import saved_model_pb2

    shutil.copytree(model, out)
    proto = saved_model_pb2.SavedModel.FromString((out / "saved_model.pb").read_bytes())
    changed = 0
    for node in proto.meta_graphs[0].graph_def.node:
        tensor = node.attr["value"].tensor if node.op == "Const" else None
        ids = np.array([1, 2, 3], "<i8").tobytes()
        if tensor is not None and tensor.dtype == 9 and (list(tensor.int64_val) == [1, 2, 3] or tensor.tensor_content == ids):
            tensor.ClearField("tensor_content")
            del tensor.int64_val[:]
            tensor.int64_val.extend([99, 99, 99])
            changed += 1
    assert changed == 1
    (out / "saved_model.pb").write_bytes(proto.SerializeToString())


def test_an_altered_table_is_a_mismatch(models: Path, tmp_path: Path, runtime_2_3: Any) -> None:
    converted = tmp_path / "converted"
    result = run_cli(models / "lookup", converted, "--to", "2.3")
    assert result.code == 0, result.stdout + result.stderr
    _tamper(converted, tmp_path / "tampered")
    result = run_cli("verify", tmp_path / "tampered", "--against", models / "lookup", "--to", "2.3")
    assert result.code == 3 and "serving_default/id" in result.stdout + result.stderr, result.stdout + result.stderr


def test_tokenized_text_gives_n_grams_to_compare(models: Path, tmp_path: Path, runtime_2_3: Any) -> None:
    result = run_cli(models / "bigrams", tmp_path / "out", "--to", "2.3")
    text = result.stdout + result.stderr
    assert result.code == 0, text
    assert "no elements" not in text and "text: single words and phrases" in text


def test_inputs_keys_naming_no_input_are_bad_input(models: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "in.npz"
    np.savez(inputs, **{"serving_default_color:0": np.array([b"red"]), "code": np.array([12])})
    result = run_cli(models / "lookup", tmp_path / "out", "--to", "2.3", "--inputs", inputs)
    assert result.code == 2, result.stdout + result.stderr
    assert "'serving_default_color:0' name(s) no signature input" in result.stderr
    assert "serving_default/color" in result.stderr and not (tmp_path / "out").exists()


MUTABLE = r'''
import sys, tensorflow as tf


class Mutable(tf.Module):
    def __init__(self):
        self.table = tf.lookup.experimental.MutableHashTable(tf.string, tf.int64, -1)
        self.table.insert(tf.constant(["the", "fox", "zebra"]), tf.constant([1, 2, 3], tf.int64))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="word")])
    def __call__(self, word):
        return {"id": self.table.lookup(word)}


module = Mutable()
tf.saved_model.save(module, sys.argv[1], signatures={"serving_default": module.__call__})
'''


def test_a_checkpointed_tables_keys_are_read_from_the_checkpoint(tmp_path: Path) -> None:
    """A MutableHashTable keeps its keys in the checkpoint ('<table>-keys'), not in a Const: its
    lookups missed on both sides and an emptied table matched (a helper's sweep)."""
    from rewriter.savedmodel.files import read_saved_model
    from rewriter.verify.input_synthesis import vocabulary

    model = saved_by_script(MUTABLE, tmp_path / "mutable")
    vocab = vocabulary(read_saved_model(model).proto.meta_graphs[0], model)
    assert sorted(vocab.words) == [b"fox", b"the", b"zebra"]
