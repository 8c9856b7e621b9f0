"""Training-only code paths (rewriter/rules/training_paths.py): a function no signature, save or restore
function reaches, holding an op the target lacks, is stubbed with an error naming tfdowngrade;
the signatures stay exact in TF 2.3.4's C++ loader and its Python loader; --strict refuses."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli


@pytest.fixture(scope="module")
def augmenting_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A serving signature, plus a saved method (not a signature) drawing from a
    tf.random.Generator (RngReadAndSkip, TF 2.4), as Keras random layers' training calls do."""
    import tensorflow as tf

    class Augmenting(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = tf.Variable(2.0)
            self.generator = tf.random.Generator.from_seed(7)

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def serve(self, x: Any) -> Any:
            return {"y": x * self.scale}

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def augment(self, x: Any) -> Any:
            return x * self.scale + self.generator.uniform(tf.shape(x))

    module = Augmenting()
    path = tmp_path_factory.mktemp("augmenting") / "model"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


_JUDGE = textwrap.dedent(r'''
    import json, sys
    import numpy as np
    import tensorflow as tf
    loaded = tf.saved_model.load(sys.argv[1])
    x = np.array([[1.0, -2.0, 0.5]], np.float32)
    result = {"serve": loaded.signatures["serving_default"](x=tf.constant(x))["y"].numpy().tolist()}
    try:
        loaded.augment(x)
        result["augment"] = "ran"
    except Exception as error:
        result["augment"] = type(error).__name__ + ": " + str(error)
    print("@@JUDGE@@" + json.dumps(result))
''')


def test_training_only_function_is_stubbed_and_signatures_stay_exact(
        augmenting_model: Path, tmp_path: Path, py23_env: Any) -> None:
    out, report = tmp_path / "out", tmp_path / "report.json"
    result = run_cli(augmenting_model, out, "--to", "2.3", "--report", report)
    assert result.code == 0, result.stderr[-3000:]
    written = json.loads(report.read_text())
    assert written["parity"]["ok"], written["parity"]  # the C++ loader, and every function imported
    stubbed = [n for n in written["notes"] if n.startswith("warning: function ") and "RngReadAndSkip" in n]
    assert len(stubbed) == 1 and "augment" in stubbed[0], written["notes"]
    proc = py23_env.run(_JUDGE, str(out))
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("@@JUDGE@@")), None)
    assert line is not None, proc.stderr[-3000:]
    judged = json.loads(line[len("@@JUDGE@@"):])
    assert judged["serve"] == [[2.0, -4.0, 1.0]]
    # Calling the training-only path fails loudly, naming tfdowngrade and what TF 2.3 lacks.
    assert "InvalidArgumentError" in judged["augment"] and "tfdowngrade" in judged["augment"], judged
    assert "RngReadAndSkip" in judged["augment"], judged


def test_strict_refuses_the_training_only_function(augmenting_model: Path, tmp_path: Path) -> None:
    result = run_cli(augmenting_model, tmp_path / "out", "--to", "2.3", "--no-verify", "--strict")
    assert result.code == 1
    assert "RngReadAndSkip" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_function_a_signature_reaches_is_not_stubbed(tmp_path: Path) -> None:
    import tensorflow as tf

    from rewriter.api import check

    class Serving(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.generator = tf.random.Generator.from_seed(7)

        @tf.function(input_signature=[tf.TensorSpec([3], tf.float32, name="x")])
        def serve(self, x: Any) -> Any:
            return {"y": x + self.generator.uniform([3])}

    module = Serving()
    tf.saved_model.save(module, str(tmp_path / "model"), signatures={"serving_default": module.serve})
    plan = check(tmp_path / "model", "2.3")
    assert any(f.op == "RngReadAndSkip" and f.kind == "refused" for f in plan.refusals), plan.refusals
    assert not any(n.startswith("warning: function ") for n in plan.notes), plan.notes



def test_many_functions_lacking_the_same_attr_are_one_note_that_names_the_attr() -> None:
    """A Keras application holds hundreds of training-mode call functions with FusedBatchNormV3's
    exponential_avg_factor, which TF 1.15 lacks (it has the op): one note, naming the attr, not
    one line per function saying the op is missing (sweep-I F6: 384 lines for NASNetMobile)."""
    from rewriter.findings import Finding
    from rewriter.protos import saved_model_pb2, types_pb2
    from rewriter.rules.training_paths import stub_unreached
    from rewriter.targets.releases import parse_release

    proto = saved_model_pb2.SavedModel()
    library = proto.meta_graphs.add().graph_def.library
    findings = []
    for index in range(5):
        function = library.function.add()
        function.signature.name = f"__inference_bn_train_{index}"
        function.signature.output_arg.add(name="y", type=types_pb2.DT_FLOAT)
        function.node_def.add(name="bn", op="FusedBatchNormV3")
        findings.append(Finding("unknown-attr", f"function {function.signature.name}", "bn", "FusedBatchNormV3",
                                "attr 'exponential_avg_factor' is not in this release's FusedBatchNormV3",
                                attr="exponential_avg_factor"))
    lonely = library.function.add()
    lonely.signature.name = "__inference_rng_0"
    lonely.signature.output_arg.add(name="y", type=types_pb2.DT_INT64)
    findings.append(Finding("unknown-op", "function __inference_rng_0", "r", "RngReadAndSkip", "no such op"))
    stubbed = stub_unreached(proto, findings, parse_release("1.15"))
    assert len(stubbed.functions) == 6
    assert stubbed.notes[0].startswith("warning: 5 functions (__inference_bn_train_0, __inference_bn_train_1, "
                                       "__inference_bn_train_2 and 2 more) hold FusedBatchNormV3's attr "
                                       "exponential_avg_factor, which TensorFlow 1.15 lacks"), stubbed.notes
    assert stubbed.notes[1].startswith("warning: function __inference_rng_0 holds RngReadAndSkip, which"), stubbed.notes
    assert len(stubbed.notes) == 2
