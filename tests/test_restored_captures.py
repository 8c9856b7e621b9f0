"""signature-reads-restore-only-copy (rewriter/rules/restored_captures.py): a Keras 3 model held by a
tf.Module and saved with tf.saved_model.save fails in every C++ loader (TF 2.21's own included,
see test_convert_parity.py's diagnosis test); converted, its signature calls read the variables the
restore op fills, and it serves bit-identical in the real TF 2.3.4 (C++ and Python loaders) and,
in the slow tier, 2.9.3, 1.15.5, 2.7.4 and 2.21.0 itself. Without the rule, parity names the
source as the cause (the diagnosis this rule builds on)."""
from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rewriter.protos import saved_model_pb2

from conftest import ROOT, fixture_dir, run_cli
from rewriter.savedmodel.checkpoint import read_checkpoint_graph
from rewriter.rules.restored_captures import WIRE_CAPTURES_TO_RESTORED, restored_handles
from rewriter.savedmodel.files import read_saved_model

RULE = "signature-reads-restore-only-copy"

# Two layers with trainable and non-trainable variables (BatchNormalization's moving statistics,
# set away from their initial values so a capture wired to the wrong variable shows), a Dropout
# (its seed-generator state is a variable no signature reads), and two signatures over one model.
# relu, not tanh: TF 2.3's tanh kernel rounds differently from 2.21's (measured: 1.2e-7, within
# noise), which would hide whether the wiring itself is exact.
_KERAS3_IN_MODULE = """
import sys
import numpy as np
import keras, tensorflow as tf
keras.utils.set_random_seed(3)
model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4), keras.layers.BatchNormalization(),
                          keras.layers.Dropout(0.5), keras.layers.Dense(3, activation="relu")])
bn = model.layers[1]
bn.moving_mean.assign(np.linspace(-1, 1, 4).astype("float32"))
bn.moving_variance.assign(np.linspace(0.5, 2, 4).astype("float32"))
class Holder(tf.Module):
    def __init__(self):
        super().__init__()
        self.model = model
    @tf.function(input_signature=[tf.TensorSpec([None, 5], tf.float32, name="x")])
    def serve(self, x):
        return {"y": self.model(x)}
    @tf.function(input_signature=[tf.TensorSpec([None, 5], tf.float32, name="x")])
    def doubled(self, x):
        return {"z": 2.0 * self.model(x)}
holder = Holder()
tf.saved_model.save(holder, sys.argv[1], signatures={"serving_default": holder.serve, "doubled": holder.doubled})
"""


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("keras3_in_module") / "source"
    made = subprocess.run([sys.executable, "-c", _KERAS3_IN_MODULE, str(folder)], capture_output=True, text=True,
                          timeout=600)
    assert made.returncode == 0, made.stderr[-2000:]
    return folder


def _proto_and_checkpoint(folder: Path):
    files = read_saved_model(folder)
    ckpt = read_checkpoint_graph(files)
    assert ckpt is not None
    return copy.deepcopy(files.proto), ckpt.graph


def test_the_planner_wires_every_variable_capture_to_its_restored_handle(source: Path) -> None:
    proto, checkpoint = _proto_and_checkpoint(source)
    meta = proto.meta_graphs[0]
    restored = restored_handles(meta)
    rewirings = WIRE_CAPTURES_TO_RESTORED.plan(meta, checkpoint)
    # 2 Dense (kernel, bias) + BatchNormalization (gamma, beta, moving mean, moving variance): 8
    # variables, read by 2 signature calls.
    assert len(rewirings) == 16
    assert {r.node for r in rewirings} == {n.name for n in meta.graph_def.node if n.op == "StatefulPartitionedCall"
                                           and n.attr["f"].func.name.startswith("__inference_signature_wrapper")}
    for r in rewirings:
        assert r.new == restored[r.checkpoint_key] and r.old not in restored.values()
        assert meta.object_graph_def.nodes[r.object_id].WhichOneof("kind") == "variable"
    # Applying it twice changes nothing more: every capture now reads a restored handle.
    WIRE_CAPTURES_TO_RESTORED.apply(meta, checkpoint)
    assert WIRE_CAPTURES_TO_RESTORED.plan(meta, checkpoint) == []


def test_nothing_is_wired_without_proof(source: Path) -> None:
    proto, checkpoint = _proto_and_checkpoint(source)
    meta = proto.meta_graphs[0]
    first = WIRE_CAPTURES_TO_RESTORED.plan(meta, checkpoint)[0]
    nodes = {n.name: n for n in meta.graph_def.node}
    # A restored handle of another shape: not the same variable, that capture stays.
    changed = copy.deepcopy(meta)
    shape = {n.name: n for n in changed.graph_def.node}[first.new].attr["shape"].shape
    shape.dim.add().size = 1
    assert all(r.new != first.new for r in WIRE_CAPTURES_TO_RESTORED.plan(changed, checkpoint))
    # Something other than readers and signature calls uses the unrestored handle (it may write it).
    changed = copy.deepcopy(meta)
    writer = changed.graph_def.node.add(name="write_it", op="AssignVariableOp")
    writer.input.extend([first.old, nodes[first.old].name + "/Read/ReadVariableOp"])
    assert all(r.old != first.old for r in WIRE_CAPTURES_TO_RESTORED.plan(changed, checkpoint))
    # No checkpoint object graph, or no restore op: nothing proves where the values are.
    assert WIRE_CAPTURES_TO_RESTORED.plan(meta, None) == []
    changed = copy.deepcopy(meta)
    changed.saver_def.restore_op_name = ""
    assert WIRE_CAPTURES_TO_RESTORED.plan(changed, checkpoint) == []
    # A checkpoint key restored into two handles is ambiguous: left out.
    assert len(restored_handles(meta)) == 8


def test_a_model_without_the_fault_is_untouched() -> None:
    files = read_saved_model(fixture_dir("tf_module"))
    ckpt = read_checkpoint_graph(files)
    proto = saved_model_pb2.SavedModel()
    proto.CopyFrom(files.proto)
    assert WIRE_CAPTURES_TO_RESTORED.plan(proto.meta_graphs[0], ckpt.graph if ckpt else None) == []


def test_it_serves_bit_identical_in_tf23_both_loaders(source: Path, tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    result = run_cli(source, tmp_path / "out", "--to", "2.3", "--python-loader", "--report", report)
    assert result.code == 0, result.stderr
    data = json.loads(report.read_text())
    outputs = data["parity"]["outputs"]
    assert sorted(o["signature"] + "/" + o["output"] for o in outputs) == ["doubled/z", "serving_default/y"]
    assert all(o["max_abs_error"] == 0 for o in outputs), outputs
    assert data["parity"]["python_loader"]["ok"] is True
    assert f"object-graph rule {RULE}: 16 change(s) in saved_model.pb" in data["notes"]
    assert any(n.startswith(f"warning [{RULE}]") for n in data["notes"])


@pytest.mark.parametrize("target", [pytest.param("2.9", marks=pytest.mark.slow), pytest.param("2.7", marks=pytest.mark.slow),
                                    pytest.param("1.15", marks=pytest.mark.slow),
                                    pytest.param("2.21", marks=pytest.mark.slow)])
def test_it_serves_bit_identical_in_other_releases(source: Path, tmp_path: Path, target: str) -> None:
    report = tmp_path / "r.json"
    result = run_cli(source, tmp_path / "out", "--to", target, "--report", report, timeout=1800)
    assert result.code == 0, result.stderr
    outputs = json.loads(report.read_text())["parity"]["outputs"]
    assert len(outputs) == 2 and all(o["max_abs_error"] == 0 for o in outputs), outputs


def test_the_action_is_for_meta_graphs_only() -> None:
    from rewriter.errors import RuleFileError
    from rewriter.rules.object_graph_loader import parse_object_graph_rules_text

    text = ("id: x\ndescription: d\nsince: '2.22'\nexact: true\nhandles: {fields: []}\n"
            "match: {message: tensorflow.SavedObject}\nrewrite: {wire_captures_to_restored: true}\n")
    with pytest.raises(RuleFileError, match="wire_captures_to_restored applies to tensorflow.MetaGraphDef"):
        parse_object_graph_rules_text(text, "r.yaml")
    rule, = parse_object_graph_rules_text(text.replace("SavedObject", "MetaGraphDef"), "r.yaml")
    assert rule.wire_captures


_KERAS3_AS_ROOT = """
import sys
import keras, tensorflow as tf
keras.utils.set_random_seed(1)
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.LayerNormalization(),
                          keras.layers.Dense(2)])
tf.saved_model.save(model, sys.argv[1])
"""


@pytest.mark.slow
def test_a_keras3_model_saved_as_the_root_is_repaired_too(tmp_path: Path) -> None:
    """tf.saved_model.save(keras3_model) itself (no tf.Module around it) exports the same copies."""
    source = tmp_path / "source"
    made = subprocess.run([sys.executable, "-c", _KERAS3_AS_ROOT, str(source)], capture_output=True, text=True,
                          timeout=600)
    assert made.returncode == 0, made.stderr[-2000:]
    report = tmp_path / "r.json"
    result = run_cli(source, tmp_path / "out", "--to", "2.3", "--python-loader", "--report", report)
    assert result.code == 0, result.stderr
    data = json.loads(report.read_text())
    assert all(o["max_abs_error"] == 0 for o in data["parity"]["outputs"])
    assert f"object-graph rule {RULE}: 6 change(s) in saved_model.pb" in data["notes"]


def test_without_the_rule_the_source_is_named_as_the_cause(source: Path, tmp_path: Path) -> None:
    """Without this rule (a model with a fault no rule repairs) the output fails in TF 2.3's C++
    loader as the source fails in every C++ loader, and parity says the source fails that way too:
    in the installed TF as a C++ loader runs it, and in TF 2.21.0's own C API."""
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    (rules / "object-graph" / "restored-captures.yaml").unlink()
    report_path = tmp_path / "report.json"
    result = run_cli(source, tmp_path / "out", "--to", "2.3", "--report", report_path, "--rules-dir", rules)
    assert result.code == 3, result.stderr
    parity = json.loads(report_path.read_text())["parity"]
    assert [o["status"] for o in parity["outputs"]] == ["error", "error"]
    # Whichever copy the session reads first is named (not always the same one).
    assert "Could not find variable sequential/" in parity["source_session_errors"]["serving_default"]
    assert "the source fails on doubled, serving_default too" in result.stdout + result.stderr or \
        "the source fails on serving_default too" in result.stdout + result.stderr, result.stdout + result.stderr
    # With the source in TF 2.21's C API (a C++ loader itself), nothing is compared, and the
    # report says the source fails there (test_source_runtime.py has the rest of --source-runtime).
    assert not (tmp_path / "out").exists()
    kept = tmp_path / "out.unverified"  # exit 3 keeps the unproven output there
    result = run_cli("verify", kept, "--against", source, "--to", "2.3", "--source-runtime", "2.21", "--report",
                     report_path)
    assert result.code == 3, result.stderr
    parity = json.loads(report_path.read_text())["parity"]
    assert parity["outputs"] == [] and parity["source_runtime"]["version"] == "2.21.0"
    assert len(parity["skipped"]) == 2
    assert all("the source fails in TensorFlow 2.21.0's C++ loader" in s for s in parity["skipped"])
