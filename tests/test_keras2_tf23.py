"""Keras-2 models (issue 6 §3): saved by tf_keras (TF_USE_LEGACY_KERAS=1) on TF 2.21, converted to
2.3, come back from TF 2.3's *own* `tf.keras.models.load_model` as real `tf.keras.Model`s whose
predict() matches what tf_keras computed, and TF 2.3's `tf.saved_model.load` runs every signature
to the same values. No mocks: the judge is TF 2.3.4's Python API (rewriter/runtimes/python23.py).

Fixtures: golden/keras2/<name> (tools/make_keras2_fixtures.py). Each is converted once per session
through the CLI (which also checks parity in TF 2.3.4's C++ runtime); one TF 2.3 process then
judges every fixture, so the tier costs a few TF imports, not one per check.
"""
from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import ROOT, run_cli
from rewriter.runtimes.python23 import Py23Env

from rewriter.rules import keras_config
from rewriter.rules.object_graph_loader import parse_object_graph_rules_text

KERAS2 = ROOT / "golden" / "keras2"
NAMES = sorted(p.name for p in KERAS2.iterdir() if (p / "saved_model").is_dir())
# predict() in TF 2.3 rebuilds the layers from their configs and runs TF 2.3's kernels; float32
# through two TF builds: explicit tolerances.
RTOL, ATOL = 1e-4, 1e-5
# What TF 2.3's load_model cannot rebuild, by design (a rule keeps the config and warns instead of
# producing a model that computes something else): fixture -> (error text, warning rule).
LOAD_MODEL_REFUSED = {"keras2_string_lookup": ("Unable to restore a layer of class StringLookup",
                                               "keras-string-lookup-table")}
# Layers whose class TF 2.3's Keras lacks: load_model revives them from their saved call functions
# (measured: predict still matches), and a warn-only rule says so: fixture -> {layer: rule}.
REVIVED = {"keras2_revived": {"group_norm": "keras-layer-new-in-2-11", "identity": "keras-layer-new-in-2-11",
                              "unit_norm": "keras-layer-new-in-2-9", "mha": "keras-layer-new-in-2-4",
                              "dense_orthogonal": "keras-regularizer-new-in-2-10", "affine": "keras-lambda-bytecode"}}
# What TF 2.3's load_model has no form of at all: the Keras metadata is left out (a warning naming the
# rule), so load_model returns the generic restored object; the signatures still match.
# Configs TF 2.3's Keras cannot read, left out of the metadata with a warning (load_model still
# returns a real Keras model): fixture -> rule.
CONFIG_LEFT_OUT = {"keras2_compiled": "keras-optimizer-new-in-2-11"}  # training_config: Custom>Adam
METADATA_LEFT_OUT = {"keras2_augmentation_geometric": ("keras-augmentation-generator-state",
                                                      "keras-text-vectorization"),
                     "keras2_grouped_conv": ("keras-grouped-conv-cpu",)}


@pytest.fixture(scope="session")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, Any]]]:
    results = {}
    for name in NAMES:
        base = tmp_path_factory.mktemp(name)
        out, report = base / "out", base / "report.json"
        result = run_cli(KERAS2 / name / "saved_model", out, "--to", "2.3", "--report", report)
        assert result.code == 0, f"{name}: {result.stderr[-3000:]}"
        results[name] = (out, json.loads(report.read_text()))
    return results


# Runs in TF 2.3.4 (Python 3.9): for each (name, converted dir, data.npz, meta.json), load_model,
# describe the model and its layers, predict, and tf.saved_model.load + every signature.
_JUDGE = textwrap.dedent(r'''
    import json, sys, traceback
    import numpy as np
    import tensorflow as tf

    def error(e):
        return "".join(traceback.format_exception_only(type(e), e)).strip()

    def walk(layer):
        for child in getattr(layer, "layers", []):
            yield child
            yield from walk(child)

    results = {}
    for name, out_dir, data_npz, meta_json in json.loads(sys.argv[1]):
        meta = json.load(open(meta_json))
        data = np.load(data_npz)
        res = results[name] = {}
        try:
            model = tf.keras.models.load_model(out_dir)
        except Exception as e:
            res["load_model_error"] = error(e)
        else:
            res["type"] = type(model).__name__
            res["is_keras_model"] = isinstance(model, tf.keras.Model)
            res["layers"] = [[l.name, type(l).__name__, type(l).__module__] for l in walk(model)]
            if res["is_keras_model"]:
                feed = [data["predict/inputs/" + n] for n in meta["predict"]["inputs"]]
                got = model.predict(feed if len(feed) > 1 else feed[0])
                got = got if isinstance(got, list) else [got]
                np.savez(out_dir + ".predict.npz", **{str(i): v for i, v in enumerate(got)})
        loaded = tf.saved_model.load(out_dir)
        outputs = {}
        for key in sorted(loaded.signatures.keys()):
            fn = loaded.signatures[key]
            _, kwargs = fn.structured_input_signature
            out = fn(**{a: tf.constant(data[key + "/inputs/" + a], dtype=s.dtype) for a, s in kwargs.items()})
            outputs.update({key + "/" + k: v.numpy() for k, v in out.items()})
        np.savez(out_dir + ".signatures.npz", **outputs)
    print("@@JUDGE@@" + json.dumps(results))
''')


@pytest.fixture(scope="session")
def judged(converted: dict[str, tuple[Path, dict[str, Any]]], py23_env: Py23Env) -> dict[str, dict[str, Any]]:
    jobs = [[name, str(out), str(KERAS2 / name / "data.npz"), str(KERAS2 / name / "meta.json")]
            for name, (out, _) in sorted(converted.items())]
    proc = py23_env.run(_JUDGE, json.dumps(jobs), timeout=900)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("@@JUDGE@@")), None)
    assert line is not None, f"TF 2.3 judge exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    results: dict[str, dict[str, Any]] = json.loads(line[len("@@JUDGE@@"):])
    return results


def _expected(name: str, prefix: str) -> dict[str, np.ndarray]:
    with np.load(KERAS2 / name / "data.npz") as data:
        return {k[len(prefix):]: data[k] for k in data.files if k.startswith(prefix)}


@pytest.mark.parametrize("name", [n for n in NAMES if n not in LOAD_MODEL_REFUSED and n not in METADATA_LEFT_OUT])
def test_load_model_in_tf23_is_a_real_keras_model_and_predict_matches(
        name: str, converted: dict[str, tuple[Path, dict[str, Any]]], judged: dict[str, dict[str, Any]]) -> None:
    out, report = converted[name]
    assert report["parity"]["ok"], report["parity"]
    res = judged[name]
    assert "load_model_error" not in res, res.get("load_model_error")
    meta = json.loads((KERAS2 / name / "meta.json").read_text())
    assert res["is_keras_model"]
    assert res["type"] == meta["predict"]["model_class"], res["type"]
    # Every layer rebuilt from its config as TF 2.3's own class, none revived as a generic layer
    # from the saved functions (which is what an unknown config quietly falls back to).
    revived = REVIVED.get(name, {})
    for layer_name, cls, module in res["layers"]:
        assert module.startswith("tensorflow.python.keras."), (layer_name, cls, module)
        assert (".saving." in module) == (layer_name in revived), (layer_name, cls, module)
    for rule in set(revived.values()) | ({CONFIG_LEFT_OUT[name]} if name in CONFIG_LEFT_OUT else set()):
        assert any(note.startswith(f"warning [{rule}]") for note in report["notes"]), (rule, report["notes"])
    rebuilt = [cls for _, cls, _ in res["layers"] if cls != "InputLayer"]
    assert rebuilt == [c for c in meta["predict"]["layers"] if c != "InputLayer"] or \
        sorted(rebuilt) == sorted(c for c in meta["predict"]["layers"] if c != "InputLayer")
    want = _expected(name, "predict/outputs/")
    with np.load(f"{out}.predict.npz") as got:
        assert set(got.files) == set(want)
        for key, value in want.items():
            np.testing.assert_allclose(got[key], value, rtol=RTOL, atol=ATOL, err_msg=f"{name} predict output {key}")


@pytest.mark.parametrize("name", NAMES)
def test_saved_model_load_in_tf23_every_signature_matches(
        name: str, converted: dict[str, tuple[Path, dict[str, Any]]], judged: dict[str, dict[str, Any]]) -> None:
    out, _ = converted[name]
    want = {k.replace("/outputs/", "/"): v for k, v in _expected(name, "").items() if "/outputs/" in k
            and not k.startswith("predict/")}
    with np.load(f"{out}.signatures.npz") as got:
        assert set(got.files) == set(want)
        for key, value in want.items():
            np.testing.assert_allclose(got[key], value, rtol=RTOL, atol=ATOL, err_msg=f"{name} {key}")


@pytest.mark.parametrize("name", sorted(LOAD_MODEL_REFUSED))
def test_load_model_that_tf23_cannot_rebuild_fails_loudly_and_is_reported(
        name: str, converted: dict[str, tuple[Path, dict[str, Any]]], judged: dict[str, dict[str, Any]]) -> None:
    text, rule = LOAD_MODEL_REFUSED[name]
    assert text in judged[name].get("load_model_error", ""), judged[name]
    _, report = converted[name]
    assert any(note.startswith(f"warning [{rule}]") for note in report["notes"]), report["notes"]


@pytest.mark.parametrize("name", sorted(METADATA_LEFT_OUT))
def test_keras_metadata_tf23_cannot_load_is_left_out_with_a_warning(
        name: str, converted: dict[str, tuple[Path, dict[str, Any]]], judged: dict[str, dict[str, Any]]) -> None:
    _, report = converted[name]
    assert report["parity"]["ok"], report["parity"]
    assert "load_model_error" not in judged[name] and judged[name]["is_keras_model"] is False, judged[name]
    left_out = [n for n in report["notes"] if n.startswith("warning: the Keras metadata is left out")]
    assert left_out and any(rule in left_out[0] for rule in METADATA_LEFT_OUT[name]), report["notes"]


def test_unconverted_keras2_model_fails_in_tf23(py23_env: Py23Env) -> None:
    """The judge says no to the source: the passes above mean something."""
    loaded = py23_env.load_and_call(KERAS2 / "keras2_cnn" / "saved_model")
    assert not loaded.loaded


def test_reports_list_the_keras_config_rewrites(converted: dict[str, tuple[Path, dict[str, Any]]]) -> None:
    applied = {a["rule"] for _, report in converted.values()
               for a in report.get("object_graph_rules_applied", []) if a["rule"].startswith("keras-")}
    for rule in ("keras-input-layer-optional", "keras-global-pooling-keepdims", "keras-normalization-adapted",
                 "keras-category-encoding-count", "keras-category-encoding-multi-hot",
                 "keras-attention-score-mode-dot", "keras-attention-causal-mask-call", "keras-noise-seed-unset",
                 "keras-resizing-crop-to-aspect-ratio", "keras-hashing-int-output",
                 "keras-discretization-boundaries", "keras-random-rng-type-stateful-unseeded",
                 "keras-layer-new-in-2-4", "keras-layer-new-in-2-9", "keras-layer-new-in-2-11"):
        assert rule in applied, (rule, sorted(applied))


def _edit_metadata(src: Path, dst: Path, edit: Any) -> None:
    """A copy of a fixture with every metadata JSON string of keras_metadata.pb edited."""
    from rewriter.savedmodel import keras_metadata
    from rewriter.savedmodel.files import read_saved_model

    shutil.copytree(src, dst)
    keras = keras_metadata.read_keras_metadata(read_saved_model(dst))
    assert keras is not None
    for node in keras.nodes:  # type: ignore[attr-defined]
        node.metadata = json.dumps(keras_config.transform(json.loads(node.metadata), edit))
    (dst / "keras_metadata.pb").write_bytes(keras.SerializeToString())


def test_config_tf23_has_no_form_for_is_refused_and_nothing_written(tmp_path: Path) -> None:
    def keepdims(path: str, obj: dict[str, Any]) -> Any:
        if obj.get("class_name") == "GlobalAveragePooling2D":
            obj["config"]["keepdims"] = True
        return obj

    source = tmp_path / "in"
    _edit_metadata(KERAS2 / "keras2_cnn" / "saved_model", source, keepdims)
    result = run_cli(source, tmp_path / "out", "--to", "2.3", "--no-verify", "--strict")
    assert result.code != 0
    assert "keepdims=True" in result.stderr and "keras-global-pooling-keepdims-true" in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def _set_in(layer_name: str, where: str, key: str, value: Any) -> Any:
    """An edit for _edit_metadata: set `key` in the config (where="config") or in every call's
    kwargs (where="calls") of the layer named layer_name, wherever its config appears."""
    def edit(path: str, obj: dict[str, Any]) -> Any:
        if obj.get("config", {}).get("name") != layer_name:
            return obj
        if where == "config":
            obj["config"][key] = value
        for node in obj.get("inbound_nodes", []) if where == "calls" else []:
            for inp in node:
                inp[3][key] = value
        return obj
    return edit


def _drop_from_config(class_name: str, key: str) -> Any:
    """An edit for _edit_metadata: remove `key` from the config of every layer of that class."""
    def edit(path: str, obj: dict[str, Any]) -> Any:
        if obj.get("class_name") == class_name and isinstance(obj.get("config"), dict):
            obj["config"].pop(key, None)
        return obj
    return edit


def test_keras_warnings_reach_the_terminal(tmp_path: Path) -> None:
    """Every warning note is printed, not only in the reports (a revived layer class here)."""
    result = run_cli(KERAS2 / "keras2_revived" / "saved_model", tmp_path / "out", "--to", "2.3", "--no-verify")
    assert result.code == 0, result.stderr
    assert "warning [keras-layer-new-in-2-4]" in result.stdout, result.stdout


@pytest.mark.parametrize("fixture, edit, rule, text", [
    ("keras2_attention", _set_in("dot_attention", "config", "score_mode", "concat"),
     "keras-attention-score-mode-concat", "score_mode"),
    ("keras2_attention", _set_in("dot_attention", "calls", "return_attention_scores", True),
     "keras-attention-call-other", "return_attention_scores"),
    ("keras2_layer_arguments", _set_in("resize", "config", "crop_to_aspect_ratio", True),
     "keras-resizing-crop-to-aspect-ratio-true", "crop_to_aspect_ratio=True"),
    ("keras2_hashing", _set_in("hash_words", "config", "mask_value", ""), "keras-hashing-other", "mask_value"),
    ("keras2_hashing", _set_in("hash_ids", "config", "output_mode", "one_hot"), "keras-hashing-other", "output_mode"),
    ("keras2_hashing", _set_in("buckets", "config", "bin_boundaries", None), "keras-discretization-other",
     "adapted"),
    ("keras2_layer_arguments", _set_in("softmax", "config", "robust_masking", True),
     "keras-softmax-robust-masking", "robust_masking"),
    ("keras2_layer_arguments", _set_in("dropout", "config", "rng_type", "stateless"),
     "keras-random-rng-type", "--allow-lossy keras-random-rng-type"),
    ("keras2_attention", _set_in("additive_attention", "calls", "use_causal_mask", False),
     "keras-attention-causal-mask-call-false", None),
    ("keras2_layer_arguments", _set_in("gaussian_noise", "config", "seed", 12),
     "keras-noise-seed-set", "--allow-lossy keras-noise-seed-set"),
    # A seeded or stateless random layer: the rng_type rule for unseeded stateful ones leaves it to
    # the lossy one (reproducible training draws would change).
    ("keras2_augmentation", _set_in("contrast", "config", "seed", 5),
     "keras-random-rng-type", "--allow-lossy keras-random-rng-type"),
    ("keras2_augmentation", _set_in("dropout", "config", "rng_type", "stateless"),
     "keras-random-rng-type", "--allow-lossy keras-random-rng-type"),
    # Keras 2.12 and 2.15 write no `invert` (they cannot invert): the adapted-layer rule still applies.
    ("keras2_preprocessing", _drop_from_config("Normalization", "invert"), "keras-normalization-adapted", None),
    # No TF 2.3 load_model form (generator state): --strict refuses instead of leaving metadata out.
    ("keras2_augmentation_geometric", lambda path, obj: obj, "keras-augmentation-generator-state",
     "generator state"),
    ("keras2_augmentation_geometric", lambda path, obj: obj, "keras-text-vectorization", "TextVectorization"),
])
def test_edited_layer_argument_is_refused_or_dropped_by_its_rule(
        tmp_path: Path, fixture: str, edit: Any, rule: str, text: str | None) -> None:
    """A fixture's config edited to a value TF 2.3 cannot express is refused under --strict (text:
    what stderr names; without --strict the metadata is left out: test_unreadable_keras_metadata_*);
    a default value (text None) is dropped by the rule."""
    source, report = tmp_path / "in", tmp_path / "report.json"
    _edit_metadata(KERAS2 / fixture / "saved_model", source, edit)
    result = run_cli(source, tmp_path / "out", "--to", "2.3", "--no-verify", "--report", report, "--strict")
    if text is None:  # a default value: dropped, and the report says by which rule
        assert result.code == 0, result.stderr[-3000:]
        applied = {a["rule"] for a in json.loads(report.read_text()).get("object_graph_rules_applied", [])}
        assert rule in applied, sorted(applied)
        return
    assert result.code != 0
    assert rule in result.stderr and text in result.stderr, result.stderr[-3000:]
    assert not (tmp_path / "out").exists()


def test_attention_called_with_and_without_causal_mask_is_refused(tmp_path: Path) -> None:
    """use_causal_mask in one call only: TF 2.3's causal is one constructor setting for all calls."""
    def second_call_unmasked(path: str, obj: dict[str, Any]) -> Any:
        if obj.get("config", {}).get("name") == "causal_self_attention":
            (node,) = obj["inbound_nodes"]
            obj["inbound_nodes"] = [node, [[inp[0], inp[1], inp[2], {}] for inp in node]]
        return obj

    source = tmp_path / "in"
    _edit_metadata(KERAS2 / "keras2_attention" / "saved_model", source, second_call_unmasked)
    result = run_cli(source, tmp_path / "out", "--to", "2.3", "--no-verify", "--strict")
    assert result.code != 0
    assert "keras-attention-call-other" in result.stderr, result.stderr[-3000:]


def test_seeded_noise_layer_converts_with_allow_lossy_and_says_so(tmp_path: Path) -> None:
    source, out, report = tmp_path / "in", tmp_path / "out", tmp_path / "report.json"
    _edit_metadata(KERAS2 / "keras2_layer_arguments" / "saved_model", source, _set_in("gaussian_noise", "config", "seed", 12))
    result = run_cli(source, out, "--to", "2.3", "--no-verify", "--allow-lossy", "keras-noise-seed-set",
                     "--report", report)
    assert result.code == 0, result.stderr[-3000:]
    notes = json.loads(report.read_text())["notes"]
    assert any(note.startswith("warning [keras-noise-seed-set]") for note in notes), notes


def test_newer_serialization_envelope_and_dtype_policy_are_unwrapped(tmp_path: Path) -> None:
    """Keras >= 2.13's envelope (module, registered_name) and a plain dtype policy object, as a newer
    writer spells them, come out as TF 2.3's Keras spells them."""
    def newer(path: str, obj: dict[str, Any]) -> Any:
        obj = dict(obj)
        obj["module"], obj["registered_name"] = "keras.layers", None
        config = obj.get("config")
        if isinstance(config, dict) and isinstance(config.get("dtype"), str):
            config["dtype"] = {"module": "keras", "class_name": "Policy", "config": {"name": config["dtype"]},
                               "registered_name": None}
        return obj

    source, out = tmp_path / "in", tmp_path / "out"
    _edit_metadata(KERAS2 / "keras2_cnn" / "saved_model", source, newer)
    result = run_cli(source, out, "--to", "2.3", "--no-verify")
    assert result.code == 0, result.stderr[-3000:]
    from rewriter.protos import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((out / "saved_model.pb").read_bytes())
    texts = [n.user_object.metadata for n in proto.meta_graphs[0].object_graph_def.nodes if n.user_object.metadata]
    assert texts
    for text in texts:
        assert '"module"' not in text and '"registered_name"' not in text and '"Policy"' not in text
    conv = json.loads(texts[0])["config"]["layers"][1]["config"]
    assert conv["dtype"] == "float32"


# --- the engine, on plain JSON --------------------------------------------------------------
RULE = """
id: keras-test
description: test
since: "2.16"
exact: true
handles: {keras: [Thing.a]}
match:
  keras_class: [Thing]
  where:
    - {key: config.a, equals: false}
rewrite:
  drop_keys: [config.a]
  rename_keys: {config.b: c}
  set: {config.d: 1}
"""


def test_keras_rule_parses_and_rewrites_innermost_first() -> None:
    (rule,) = parse_object_graph_rules_text(RULE, "r.yaml")
    assert rule.keras_match is not None and rule.keras_rewrite is not None
    value = {"class_name": "Outer", "config": {"inner": {"class_name": "Thing", "config": {"a": False, "b": 2}}}}
    seen: list[str] = []

    def visit(path: str, obj: dict[str, Any]) -> Any:
        seen.append(path)
        assert rule.keras_match is not None and rule.keras_rewrite is not None
        if keras_config.matches(rule.keras_match, obj):
            return keras_config.apply_rewrite(rule.keras_rewrite, obj)[0]
        return obj

    out = keras_config.transform(value, visit)
    assert seen == ["config.inner", "<top>"]
    assert out["config"]["inner"]["config"] == {"c": 2, "d": 1}


def test_keras_rule_equals_false_does_not_match_zero() -> None:
    (rule,) = parse_object_graph_rules_text(RULE, "r.yaml")
    assert rule.keras_match is not None
    assert not keras_config.matches(rule.keras_match, {"class_name": "Thing", "config": {"a": 0}})
    assert keras_config.matches(rule.keras_match, {"class_name": "Thing", "config": {"a": False}})


@pytest.mark.parametrize("bad, message", [
    (RULE.replace("drop_keys", "drop_things"), "unknown key"),
    (RULE.replace("rename_keys: {config.b: c}", "rename_keys: {config.b: x.y}"), "one key"),
    (RULE.replace("{key: config.a, equals: false}", "{key: config.a}"), "exactly one of"),
    (RULE.replace("handles: {keras: [Thing.a]}", "handles: {fields: [x]}"), "handles"),
])
def test_malformed_keras_rules_name_the_problem(bad: str, message: str) -> None:
    from rewriter.errors import RuleFileError

    with pytest.raises(RuleFileError, match=message):
        parse_object_graph_rules_text(bad, "r.yaml")


# --- wildcard paths ---------------------------------------------------------------------------
WILDCARD_RULE = """
id: keras-test-calls
description: test
since: "2.10"
exact: true
handles: {keras: [Thing.flag]}
match:
  keras_class: [Thing]
  where:
    - {key: "inbound_nodes.*.*.3.flag", equals: true}
rewrite:
  drop_keys: ["inbound_nodes.*.*.3.flag"]
  set: {config.flag: true}
"""


def _thing(*calls: dict[str, Any]) -> dict[str, Any]:
    return {"class_name": "Thing", "config": {}, "inbound_nodes": [[["a", 0, 0, dict(kw)], ["b", 0, 0, dict(kw)]]
                                                                   for kw in calls]}


def test_wildcard_condition_holds_only_where_every_place_holds() -> None:
    (rule,) = parse_object_graph_rules_text(WILDCARD_RULE, "r.yaml")
    assert rule.keras_match is not None and rule.keras_rewrite is not None
    assert keras_config.matches(rule.keras_match, _thing({"flag": True}, {"flag": True}))
    assert not keras_config.matches(rule.keras_match, _thing({"flag": True}, {}))      # one call without it
    assert not keras_config.matches(rule.keras_match, _thing({"flag": True}, {"flag": 1}))
    assert not keras_config.matches(rule.keras_match, _thing())                          # no calls at all
    obj = _thing({"flag": True}, {"flag": True, "other": 2})
    new, changes = keras_config.apply_rewrite(rule.keras_rewrite, obj)
    assert new["config"] == {"flag": True}
    assert [inp[3] for node in new["inbound_nodes"] for inp in node] == [{}, {}, {"other": 2}, {"other": 2}]
    assert changes[0] == "dropped inbound_nodes.*.*.3.flag (4 places)"


def test_wildcard_present_false_means_nowhere() -> None:
    cond = keras_config.parse_condition({"key": "inbound_nodes.*.*.3.flag", "present": False})
    assert keras_config.holds(cond, _thing({}, {}))
    assert not keras_config.holds(cond, _thing({}, {"flag": False}))
    assert keras_config.holds({"not": cond}, _thing({}, {"flag": False}))


def test_wildcard_is_refused_where_it_means_nothing() -> None:
    from rewriter.errors import RuleFileError

    with pytest.raises(RuleFileError, match="conditions and drop_keys only"):
        parse_object_graph_rules_text(WILDCARD_RULE.replace("set: {config.flag: true}", "set: {config.*: true}"),
                                      "r.yaml")


_GENERIC_JUDGE = textwrap.dedent(r'''
    import json, sys
    import tensorflow as tf
    model = tf.keras.models.load_model(sys.argv[1])
    print("@@JUDGE@@" + json.dumps({"is_keras_model": isinstance(model, tf.keras.Model),
                                    "signatures": sorted(model.signatures.keys())}))
''')


def test_unreadable_keras_metadata_is_left_out_with_a_warning(tmp_path: Path, py23_env: Py23Env) -> None:
    """Hashing with a mask_value (keras-hashing-other: no TF 2.3 form) only blocks the Keras
    metadata, not the graphs: without --strict the model is written without it, with a warning;
    TF 2.3's C++ loader (parity) and tf.saved_model.load match, and load_model returns the generic
    restored object, as for a Keras 3 export."""
    from conftest import assert_tf23_python_loader_matches

    source, out, report = tmp_path / "in", tmp_path / "out", tmp_path / "report.json"
    _edit_metadata(KERAS2 / "keras2_hashing" / "saved_model", source, _set_in("hash_words", "config", "mask_value", ""))
    result = run_cli(source, out, "--to", "2.3", "--report", report)
    assert result.code == 0, result.stderr[-3000:]
    written = json.loads(report.read_text())
    assert written["parity"]["ok"], written["parity"]
    warning = [n for n in written["notes"] if n.startswith("warning: the Keras metadata is left out")]
    assert warning and "keras-hashing-other" in warning[0] and "--strict" in warning[0], written["notes"]
    assert not (out / "keras_metadata.pb").exists()
    with np.load(KERAS2 / "keras2_hashing" / "data.npz") as data:  # the signatures' inputs and outputs
        np.savez(tmp_path / "signatures.npz", **{k: data[k] for k in data.files if not k.startswith("predict/")})
    assert_tf23_python_loader_matches(py23_env, out, tmp_path / "signatures.npz", tmp_path, rtol=RTOL, atol=ATOL)
    proc = py23_env.run(_GENERIC_JUDGE, str(out))
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("@@JUDGE@@")), None)
    assert line is not None, proc.stderr[-3000:]
    judged = json.loads(line[len("@@JUDGE@@"):])
    assert not judged["is_keras_model"] and judged["signatures"] == ["serving_default"], judged


def test_warnings_name_the_classes_the_model_has_and_the_target(
        converted: dict[str, tuple[Path, dict[str, Any]]]) -> None:
    """A warning of a rule that covers several classes names those the model has (keras2_revived
    has UnitNormalization, none of DepthwiseConv1D, HashedCrossing, RandomBrightness), and the
    target release it was converted for."""
    _, report = converted["keras2_revived"]
    (note,) = [n for n in report["notes"] if n.startswith("warning [keras-layer-new-in-2-9]")]
    assert "(UnitNormalization, new in Keras 2.9)" in note and "TensorFlow 2.3's Keras" in note
    assert "DepthwiseConv1D" not in note and "{" not in note


def test_a_keras_refusal_names_the_release_converted_for() -> None:
    """keras2_augmentation_geometric's augmentation layers have no form in an older Keras; for 2.5
    the note says TensorFlow 2.5's Keras (it said TF 2.3's for every target)."""
    from rewriter.api import check

    plan = check(KERAS2 / "keras2_augmentation_geometric" / "saved_model", "2.5")
    (note,) = [n for n in plan.notes if n.startswith("warning: the Keras metadata is left out")]
    assert "TensorFlow 2.5's Keras" in note and "2.3" not in note and "{" not in note
