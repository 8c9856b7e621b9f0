"""Unseeded random ops in a signature (rewriter/verify/seeds.py).

`x + tf.random.uniform(tf.shape(x))` without a seed draws other numbers on every run, the source's
own included: parity said "1 output(s) differ" of a conversion that changed nothing (exit 3; a
helper's sweep). Parity now runs copies of both models with the same seeds on such ops, and OUT
keeps them unseeded.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli, saved_by_script

MODEL = r'''
import sys, tensorflow as tf
out = sys.argv[1]


class Noisy(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def call(self, x):
        return {"y": x + tf.random.uniform(tf.shape(x)) + tf.random.normal(tf.shape(x)), "seeded": tf.random.uniform([3], seed=7)}


module = Noisy()
tf.saved_model.save(module, out, signatures={"serving_default": module.call})
'''


@pytest.fixture(scope="module")
def noisy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return saved_by_script(MODEL, tmp_path_factory.mktemp("seeds") / "noisy")


def _random_seeds(model: Path) -> list[tuple[str, int, int]]:
    from rewriter.savedmodel.files import read_saved_model

    proto = read_saved_model(model).proto
    return sorted((node.op, node.attr["seed"].i if "seed" in node.attr else 0, node.attr["seed2"].i if "seed2" in node.attr else 0)
                  for function in proto.meta_graphs[0].graph_def.library.function for node in function.node_def
                  if node.op.startswith("Random"))


@pytest.mark.parametrize("target", ["2.3", "1.15"])
def test_unseeded_random_ops_are_compared_with_pinned_seeds(noisy: Path, tmp_path: Path, target: str) -> None:
    result = run_cli(noisy, tmp_path / "out", "--to", target, "--report", str(tmp_path / "r.json"))
    text = result.stdout + result.stderr
    assert result.code == 0, text
    assert "2 unseeded random op(s)" in text and "OUT keeps them unseeded" in text
    parity = json.loads((tmp_path / "r.json").read_text())["parity"]
    # Pinned, the draws are the same numbers: the uniform one bit for bit, the normal one within its noise.
    assert len(parity["pinned_seeds"]) == 2 and all(o["status"] == "match" for o in parity["outputs"])
    # OUT is the conversion: its random ops are as unseeded as IN's (the seeded one keeps its seeds).
    assert _random_seeds(tmp_path / "out") == _random_seeds(noisy)
    assert [seeds for seeds in _random_seeds(noisy) if seeds[1:] == (0, 0)] and noisy.joinpath("saved_model.pb").exists()


def test_pin_gives_absent_and_zero_seeds_a_name_derived_seed() -> None:
    from rewriter.protos import saved_model_pb2
    from rewriter.verify.seeds import PINNED_SEED, pin

    proto = saved_model_pb2.SavedModel()
    graph = proto.meta_graphs.add().graph_def
    graph.node.add(name="a", op="RandomUniform")  # attrs left out: the saver strips defaults
    seeded = graph.node.add(name="b", op="RandomStandardNormal")
    seeded.attr["seed"].i, seeded.attr["seed2"].i = 1, 7
    graph.node.add(name="c", op="StatelessRandomUniformV2")  # seeded by its inputs
    pinned = pin(proto)
    assert [(p.node, p.op) for p in pinned] == [("a", "RandomUniform")]
    assert graph.node[0].attr["seed"].i == PINNED_SEED and graph.node[0].attr["seed2"].i > 0
    assert (seeded.attr["seed"].i, seeded.attr["seed2"].i) == (1, 7) and not graph.node[2].attr
