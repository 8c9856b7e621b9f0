"""The pinned-Philox rules (rules/stateless-rng.yaml, *-v2-philox) on what their fixture does not hold.

- Many more seeds than golden/rules/rng_philox/data.npz: the converted model, run in the real
  TF 2.3.4 runtime, draws what the source draws in the installed TF, bit for bit.
- The rules pin every Const and attr of the subgraph TF writes: one edited Const or attr (most
  edits give another key or counter) and no *-philox rule rewrites it; it stays refused.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import tensorflow as tf
from rewriter.protos import graph_pb2, node_def_pb2
from rewriter.protos import saved_model_pb2

from conftest import ROOT, converted_without_parity
from rewriter.savedmodel.graph_model import scope_from_graph_def
from rewriter.targets.registry import load_registry, newest_registry
from rewriter.targets.releases import Release
from rewriter.rules.engine import apply_rules
from rewriter.savedmodel.op_signatures import OpSignatures
from rewriter.rules.loader import load_rules
from rewriter.runtimes.client import SignatureCall, TargetRuntime

FIXTURE = ROOT / "golden" / "rules" / "rng_philox" / "saved_model"
PHILOX_RULES = {r.id for r in load_rules() if r.id.endswith("-v2-philox")}
SEED_ROWS = {"seeds64": (4, np.int64), "seeds32": (3, np.int32)}  # every signature takes both


def _random_seeds(rows: int, dtype: Any, draw: int) -> np.ndarray:
    info = np.iinfo(dtype)
    generator = np.random.default_rng(draw)
    return generator.integers(info.min, info.max, size=(rows, 2), dtype=dtype, endpoint=True)


@pytest.fixture(scope="module")
def philox_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return converted_without_parity(FIXTURE, tmp_path_factory, "rng_philox")


def test_converted_draws_match_the_source_on_many_seeds(philox_out: Path, runtime_2_3: Any) -> None:
    source = tf.saved_model.load(str(FIXTURE)).signatures
    proto = saved_model_pb2.SavedModel.FromString((philox_out / "saved_model.pb").read_bytes())
    signatures = proto.meta_graphs[0].signature_def
    x = np.arange(5, dtype=np.float32)
    calls, wanted = [], {}
    for name in sorted(k for k in signatures if not k.startswith("__")):
        signature = signatures[name]
        fetches = {key: info.name for key, info in signature.outputs.items()}
        for draw in range(8):
            feeds = {arg: _random_seeds(rows, dtype, draw) for arg, (rows, dtype) in SEED_ROWS.items()}
            feeds["x"] = x
            key = f"{name}/{draw}"
            calls.append(SignatureCall(key, {signature.inputs[k].name: v for k, v in feeds.items()},
                                       list(fetches.values())))
            expected = source[name](**{k: tf.constant(v) for k, v in feeds.items()})
            wanted[key] = {fetches[out]: value.numpy() for out, value in expected.items()}
    result = TargetRuntime(runtime_2_3, timeout=600).run_savedmodel(philox_out, ["serve"], calls)
    assert result.load_error is None, result.load_error
    assert not result.errors, result.errors
    for key, outputs in wanted.items():
        for fetch, value in outputs.items():
            np.testing.assert_array_equal(result.outputs[key][fetch], value, err_msg=f"{key} {fetch}")


def _scramble_graph() -> graph_pb2.GraphDef:
    """One pinned-Philox draw as TF writes it: the seed scrambled in the graph, then the V2 op."""

    @tf.function(input_signature=[tf.TensorSpec([2], tf.int64)])
    def draw(seed: Any) -> Any:
        return tf.random.stateless_uniform([3], seed, alg="philox")

    # TensorFlow's GraphDef, read as the vendored protos' (the rewriter's own classes)
    graph = graph_pb2.GraphDef.FromString(draw.get_concrete_function().graph.as_graph_def().SerializeToString())
    del graph.library.function[:]
    return graph


def _node(graph: graph_pb2.GraphDef, suffix: str) -> node_def_pb2.NodeDef:
    (node,) = [n for n in graph.node if n.name == f"stateless_random_uniform/{suffix}"]
    return node


def _set_const(suffix: str, value: Any) -> Callable[[graph_pb2.GraphDef], None]:
    def edit(graph: graph_pb2.GraphDef) -> None:
        node = _node(graph, suffix)
        dtype = tf.dtypes.as_dtype(node.attr["dtype"].type)
        shape = tf.make_ndarray(node.attr["value"].tensor).shape
        tensor = tf.make_tensor_proto(np.array(value, dtype.as_numpy_dtype).reshape(shape))
        node.attr["value"].tensor.ParseFromString(tensor.SerializeToString())  # TF's class -> the vendored one
    return edit


def _set_attr(suffix: str, attr: str, value: int) -> Callable[[graph_pb2.GraphDef], None]:
    def edit(graph: graph_pb2.GraphDef) -> None:
        _node(graph, suffix).attr[attr].i = value
    return edit


# Most edits change the key or counter the V2 op gets, or the algorithm; key_words_end_mask takes
# mix[0:] instead of mix[:2], which happens to give the same words, and is refused all the same.
EDITS: dict[str, Callable[[graph_pb2.GraphDef], None]] = {
    "scrambling_key": _set_const("Const", 0x02461E293EC8F721),
    "shift": _set_const("Const_1", 31),
    "counter_first_word": _set_const("stack/0", 1),
    "mix_size": _set_const("StatelessRandomUniformFullIntV2/shape", 8),
    "mix_alg": _set_const("StatelessRandomUniformFullIntV2/alg", 2),  # ThreeFry
    "draw_alg": _set_const("StatelessRandomUniformV2/alg", 2),
    "counter_words_begin": _set_const("strided_slice_3/stack", 1),
    "key_word_end": _set_const("strided_slice_1/stack_1", 2),
    "key_words_end_mask": _set_attr("strided_slice", "end_mask", 1),
    "key_word_shrink": _set_attr("strided_slice_2", "shrink_axis_mask", 0),
}


def _outcome(graph: graph_pb2.GraphDef) -> tuple[set[str], set[str]]:
    target = Release(2, 3)
    scope = scope_from_graph_def("serve", graph)
    scope.ops = OpSignatures(newest_registry(), load_registry(target), {})
    outcome = apply_rules([scope], load_rules(), target)
    return {a.rule for a in outcome.applications}, {f.rule for f in outcome.findings if f.kind == "refused" and f.rule}


def test_the_unedited_scrambling_is_rewritten() -> None:
    graph = _scramble_graph()
    applied, refused = _outcome(graph)
    assert "stateless-random-uniform-v2-philox" in applied
    assert "stateless-random-computed-key" not in refused


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_another_scrambling_is_refused(edit: str) -> None:
    graph = _scramble_graph()
    EDITS[edit](graph)
    applied, refused = _outcome(graph)
    assert not applied & PHILOX_RULES, f"{edit}: rewritten by {applied & PHILOX_RULES}"
    assert refused & {"stateless-random-computed-key", "stateless-random-threefry"}, refused
