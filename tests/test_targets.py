"""Intermediate targets and consumer names (issue 11).

- The full-type rules (rules/object-graph/full-type.yaml): each group's `since` is the first
  release whose schema has its FullTypeId values, and the `mentions:` condition finds a value
  anywhere in a FullTypeDef tree.
- Consumers (`--to tfjs-node@4.22`): names resolve to the release their own files name; bad
  names are one clear line; `tfdowngrade targets --json` lists them with their sources.
- Real runtimes: a Keras-3 LSTM and a StringLookup model (both were refused on TFT_SHAPE_TENSOR)
  convert to 2.7 and 2.9 and match in the real TF 2.7.4 and 2.9.3; the bundled example in 2.7,
  2.9 (as tfjs-node@4.22) and 1.15.5. The slow tier runs every model in every release 1.15 ... 2.21.
  Conversions run in-process (TF imported once); each parity check runs the target runtime in its
  own subprocess as every conversion does.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from tensorflow.core.framework import full_type_pb2, node_def_pb2

from conftest import ROOT, fixture_dir, run_cli
from rewriter.errors import BadInput
from rewriter.rules.message_conditions import Field
from rewriter.rules.object_graph_loader import load_object_graph_rules, parse_object_graph_rules_text
from rewriter.targets.releases import Release, known_releases, parse_release
from rewriter.verify.schema_check import first_release_with

FULL_TYPE_RULES = [r for r in load_object_graph_rules() if r.source.split(":")[0].endswith("full-type.yaml")]


def test_full_type_rules_since_is_the_release_that_added_their_values() -> None:
    assert FULL_TYPE_RULES
    for rule in FULL_TYPE_RULES:
        values = [f for f in rule.handles_fields if f.startswith("tensorflow.FullTypeId.")]
        assert values, rule.id
        firsts = {first_release_with("schema-enum", v, Release(2, 6)) for v in values}
        assert firsts == {rule.since.key}, (rule.id, firsts)
        mentioned = {name for cond in rule.where if isinstance(cond, Field) and cond.test == "mentions"
                     for name in cond.value}
        assert mentioned == {v.rpartition(".")[2] for v in values}, rule.id


def _node(type_ids: list[int]) -> node_def_pb2.NodeDef:
    node = node_def_pb2.NodeDef(name="n", op="Shape")
    inner = node.experimental_type
    inner.type_id = full_type_pb2.TFT_PRODUCT
    for type_id in type_ids:
        inner = inner.args.add()
        inner.type_id = type_id
    return node


def test_mentions_finds_a_value_at_any_depth_and_only_that_value() -> None:
    cond = Field("experimental_type", "mentions", frozenset({"TFT_SHAPE_TENSOR"}))
    deep = _node([full_type_pb2.TFT_ARRAY, full_type_pb2.TFT_SHAPE_TENSOR, full_type_pb2.TFT_INT32])
    assert cond.holds(deep)
    assert not cond.holds(_node([full_type_pb2.TFT_ARRAY, full_type_pb2.TFT_INT32]))
    assert not cond.holds(node_def_pb2.NodeDef(name="bare"))


def test_mentions_takes_a_list() -> None:
    from rewriter.errors import RuleFileError

    text = ("id: x\ndescription: d\nsince: '2.12'\nexact: true\nhandles: {fields: []}\n"
            "match: {message: tensorflow.NodeDef, where: [{field: experimental_type, mentions: TFT_X}]}\n"
            "rewrite: {drop_fields: [experimental_type]}\n")
    with pytest.raises(RuleFileError, match="mentions takes a list"):
        parse_object_graph_rules_text(text, "r.yaml")


@pytest.mark.parametrize("name, release", [
    ("tfjs-node@4.22", "2.9"), ("tfjs-node@4.22.0", "2.9"), ("tfjs-node@3.12", "2.7"),
    ("tf-java@0.4", "2.7"), ("tf-java@0.5", "2.10"), ("tf-java@1.0", "2.16"),
    ("jetpack@4.6:tf2", "2.7"), ("jetpack@4.6:tf1", "1.15"), ("serving@2.5", "2.5"),
    ("serving@1.15", "1.15"), ("serving@2.9.3", "2.9"), ("serving@2.20", "2.20"),
])
def test_consumer_names_resolve_to_their_release(name: str, release: str) -> None:
    resolved = parse_release(name)
    assert resolved == parse_release(release)
    assert resolved.consumer is not None and name.startswith(resolved.consumer.split("@")[0])
    assert release in resolved.describe() and resolved.consumer in resolved.describe()


@pytest.mark.parametrize("name, says", [
    ("jetpack@4.6", "say which: jetpack@4.6:tf1 (TF 1.15.5), jetpack@4.6:tf2 (TF 2.7.0)"),
    ("nosuch@1.0", "unknown consumer 'nosuch'"),
    ("tfjs-node@9.9", "tfjs-node 9.9 is not listed"),
    ("tfjs-node@x", "is not a consumer"),
    ("serving@2.21", "serving 2.21 is not listed"),  # tensorflow/serving has no r2.21 branch yet
])
def test_bad_consumer_names_are_bad_input(name: str, says: str) -> None:
    with pytest.raises(BadInput, match=None) as error:
        parse_release(name)
    assert says in str(error.value)


def test_targets_command_lists_every_consumer_with_its_source() -> None:
    result = run_cli("targets", "--json")
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    by_name = {row["name"]: row for row in data["consumers"]}
    assert by_name["tfjs-node@4.22"]["tensorflow"] == "2.9.1"
    assert by_name["tfjs-node@4.22"]["source"]["repo"] == "tensorflow/tfjs"
    assert by_name["jetpack@4.6:tf2"]["tensorflow"] == "2.7.0"
    assert all(row["source"]["repo"] and row["source"]["path"] for row in data["consumers"])
    # every mapping was read from the consumer's own files (TF Serving: each rX.Y branch's
    # setup.py requirement and WORKSPACE pin), none taken on faith
    assert all(row["verified"] for row in data["consumers"])
    assert by_name["serving@2.9"]["tensorflow"] == "2.9.3" and "setup.py" in by_name["serving@2.9"]["source"]["path"]
    assert all(row["tensorflow"].startswith(row["version"] + ".") for row in data["consumers"] if row["consumer"] == "serving")
    assert "2.9" in data["releases"]
    text = run_cli("targets")
    assert text.code == 0 and "tfjs-node@4.22" in text.stdout and "tensorflow/tfjs" in text.stdout


# --- the real TF 2.7.4 and 2.9.3 runtimes ----------------------------------------------------
MODELS = {
    "keras_cnn": ROOT / "golden" / "examples" / "keras_cnn",
    **{name: fixture_dir(name) for name in sorted(p.name for p in (ROOT / "golden" / "fixtures").iterdir())},
    "keras2_string_lookup": ROOT / "golden" / "keras2" / "keras2_string_lookup" / "saved_model",
    # Keras 2's LayerNormalization: FusedBatchNormV3 NCHW, which TF 1.15's CPU kernel refuses
    # (rules/batch-norm-nchw.yaml; its fixture proves the rewrite in the main suite's catalog)
    "keras2_rnn": ROOT / "golden" / "keras2" / "keras2_rnn" / "saved_model",
    # mutable, dense and static anonymous tables: SavedObject.saveable_objects, which TF 1.15 lacks
    # (rules/object-graph/saved-object.yaml, saved-object-saveable-objects-tf1)
    "anonymous_tables_all": ROOT / "golden" / "rules" / "anonymous_tables_all" / "saved_model",
    # tracked anonymous tables: every session loader fails on them, TF 2.21's own included; the
    # named-table rewrites apply to every target (rules/hash-tables.yaml)
    "anonymous_tables": ROOT / "golden" / "rules" / "anonymous_tables" / "saved_model",
}


# Main suite: the models that were refused on TFT_SHAPE_TENSOR (the LSTM, a Keras-2 StringLookup
# model) in 2.7 and 2.9, and the bundled example in 1.15 and 2.7 (2.9: the tfjs-node test below).
MAIN = [("keras3_lstm", "2.7"), ("keras3_lstm", "2.9"), ("keras2_string_lookup", "2.7"),
        ("keras2_string_lookup", "2.9"), ("keras_cnn", "2.7"), ("keras_cnn", "1.15"), ("tf_module", "1.15"),
        ("anonymous_tables_all", "1.15"), ("anonymous_tables", "2.9")]
# Slow tier: every model in every release with a shipped registry (1.15 ... 2.21).
SLOW = [(model, release.key) for release in known_releases() for model in sorted(MODELS)
        if (model, release.key) not in MAIN]


def _converts_and_matches(model: str, target: str, out: Path) -> None:
    from rewriter import api

    report = api.convert(MODELS[model], out, to=target)
    assert report.parity is not None and report.parity.ok, report.to_json().get("parity")
    assert report.parity.target_version.startswith(target + ".")


@pytest.mark.parametrize("model, target", MAIN)
def test_model_converts_and_matches_in_the_real_runtime(model: str, target: str, tmp_path: Path) -> None:
    _converts_and_matches(model, target, tmp_path / "out")


@pytest.mark.slow
@pytest.mark.parametrize("model, target", SLOW)
def test_every_release_model_converts_and_matches(model: str, target: str, tmp_path: Path) -> None:
    _converts_and_matches(model, target, tmp_path / "out")


def test_tfjs_node_converts_the_example_and_its_report_names_tf_2_9(tmp_path: Path) -> None:
    out, report = tmp_path / "out", tmp_path / "r.json"
    result = run_cli(MODELS["keras_cnn"], out, "--to", "tfjs-node@4.22", "--report", report)
    assert result.code == 0, result.stderr
    data = json.loads(report.read_text())
    assert data["target"] == {"release": "2.9", "consumer": "tfjs-node@4.22"}
    assert data["parity"]["runtime"]["version"].startswith("2.9.")
    assert "2.9 (tfjs-node@4.22)" in result.stdout
    # tfjs-node 4.22 links libtensorflow 2.9.1; parity ran in PyPI's newest 2.9: the summary says so
    ran = data["parity"]["runtime"]["version"]
    assert ran == "2.9.1" or f"tfjs-node@4.22 runs TensorFlow 2.9.1; parity ran in {ran}" in result.stdout


def test_check_to_1_15_names_the_op_the_node_and_the_release_that_added_it(tmp_path: Path) -> None:
    import tensorflow as tf

    class Model(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def f(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": tf.math.erfinv(x)}

    model = Model()
    tf.saved_model.save(model, str(tmp_path / "in"), signatures={"serving_default": model.f})
    result = run_cli("check", tmp_path / "in", "--to", "jetpack@4.6:tf1")
    assert result.code == 1, result.stderr
    text = result.stdout + result.stderr
    assert "node 'Erfinv'" in text or "'Erfinv'" in text
    # (this tool has no registry between 1.15 and 2.3: 'added in 2.3' would claim more than it knows)
    assert "op 'Erfinv' is not registered in TensorFlow 1.15 (added after TensorFlow 1.15, by 2.3)" in text
    assert "target TensorFlow 2.3 or later" in text


def test_a_type_the_target_rejects_names_the_release_that_takes_it(tmp_path: Path) -> None:
    """A dtype an older OpDef rejects gets the same remedy as an op the target lacks (a sweep saw
    'DT_INT8 is not allowed here ...; no rule brings it to 1.15' with nothing to do about it)."""
    import tensorflow as tf

    class Model(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.int8)])
        def f(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": tf.raw_ops.Reciprocal(x=x)}  # 1.15's Reciprocal takes no int8, 2.3's does

    model = Model()
    tf.saved_model.save(model, str(tmp_path / "in"), signatures={"serving_default": model.f})
    result = run_cli("check", tmp_path / "in", "--to", "1.15")
    assert result.code == 1, result.stderr
    assert ("attr 'T': DT_INT8 is not allowed here (allowed: " in result.stdout
            and "(allowed after TensorFlow 1.15, by 2.3); no rule brings it to 1.15: target TensorFlow 2.3 or newer"
            in result.stdout), result.stdout
