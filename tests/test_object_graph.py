"""Object-graph rules: the loader, the engine on synthetic graphs, coverage of the 2.3<->2.21 schema
diff, and the rewritten checkpoint read back by TensorFlow itself."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from rewriter.protos import saved_model_pb2, saved_object_graph_pb2, trackable_object_graph_pb2

from conftest import fixture_dir
from rewriter.savedmodel import bundle_index
from rewriter.errors import RuleFileError
from rewriter.rules.object_graph_loader import load_object_graph_rules, parse_object_graph_rules_text
from rewriter.savedmodel.object_graph import drop_objects, needed_objects
from rewriter.pipeline import Options, plan, write
from rewriter.targets.releases import Release
from rewriter.verify.schema_check import diff, first_release_with

R23, R221 = Release(2, 3), Release(2, 21)
# Left to the schema check's refusal (no rule): new dtypes have no older form at all.
NO_RULE = {"tensorflow.TensorProto.float8_val"}


def test_rule_errors_name_file_and_line() -> None:
    text = "id: x\ndescription: d\nsince: '2.8'\nexact: true\nhandles: {fields: []}\nmatch: {message: M, bogus: 1}\nrewrite: {drop_fields: [a]}\n"
    with pytest.raises(RuleFileError, match=r"r.yaml:6: match: unknown key"):
        parse_object_graph_rules_text(text, "r.yaml")
    with pytest.raises(RuleFileError, match="exactly one of rewrite: and refuse:"):
        parse_object_graph_rules_text(text.replace(", bogus: 1", "") + "refuse: no\n", "r.yaml")
    with pytest.raises(RuleFileError, match="drop_object applies to tensorflow.SavedObject only"):
        parse_object_graph_rules_text(text.replace(", bogus: 1", "").replace("drop_fields: [a]", "drop_object: true"), "r.yaml")


def test_every_new_field_of_the_schema_diff_has_a_rule() -> None:
    handled = {f for rule in load_object_graph_rules() for f in rule.handles_fields}
    fields = [line.split()[1] for line in diff(R23, R221) if line.startswith("field ")]
    missing = [f for f in fields if f not in handled and f not in NO_RULE]
    assert not missing, missing


def test_rule_since_is_the_first_release_with_the_field() -> None:
    for rule in load_object_graph_rules():
        # A rule about what TF 2.0-2.3 added is for TF 1.15 (the schema release before 2.3).
        base = Release(1, 15) if rule.since <= R23 else R23
        firsts = {first_release_with("schema-field", f, base) for f in rule.handles_fields
                  if f.count(".") >= 2 and not f.split(".")[-1][0].isupper()}
        firsts.discard(None)
        if firsts:
            assert rule.since.key in firsts, (rule.id, firsts)


def _graph() -> saved_object_graph_pb2.SavedObjectGraph:
    """root(0) -> signatures(1) -> fn(2) binds var(3); a grad fn binds captured(4); constant(5)."""
    graph = saved_object_graph_pb2.SavedObjectGraph()
    root = graph.nodes.add()
    root.user_object.identifier = "_generic_user_object"
    root.children.add(node_id=1, local_name="signatures")
    root.children.add(node_id=5, local_name="c")
    signatures = graph.nodes.add()
    signatures.user_object.identifier = "signature_map"
    signatures.children.add(node_id=2, local_name="serving_default")
    fn = graph.nodes.add()
    fn.function.concrete_functions.append("f")
    graph.nodes.add().variable.name = "v"
    captured = graph.nodes.add()
    captured.captured_tensor.name = "x:0"
    graph.nodes.add().constant.operation = "Const"
    graph.concrete_functions["f"].bound_inputs.extend([3, 5])
    graph.concrete_functions["grad"].bound_inputs.extend([4, 5])
    return graph


def test_needed_objects_follow_signatures_and_bound_inputs() -> None:
    assert needed_objects(_graph()) == {1, 2, 3, 5}


def test_drop_objects_renumbers_and_removes_binding_functions() -> None:
    graph = _graph()
    graph.nodes[0].children.add(node_id=4, local_name="cap")
    new_id, notes = drop_objects(graph, {4})
    assert new_id == {0: 0, 1: 1, 2: 2, 3: 3, 5: 4}
    assert "grad" not in graph.concrete_functions
    assert list(graph.concrete_functions["f"].bound_inputs) == [3, 4]
    assert [(c.node_id, c.local_name) for c in graph.nodes[0].children] == [(1, "signatures"), (4, "c")]
    assert graph.nodes[4].WhichOneof("kind") == "constant"
    assert any("grad" in n for n in notes)


def test_rewritten_checkpoint_reads_back_in_tensorflow(tmp_path: Path) -> None:
    """Our index and appended object graph are read by TF's own checkpoint reader, every variable
    equal to the source's, and the new object graph has no has_checkpoint_values."""
    source = fixture_dir("keras3_lstm")
    result = plan(source, Options(target=R23))
    assert result.ok, [f.line() for f in result.refusals]
    assert result.object_graph is not None
    assert any(a.rule == "trackable-object-has-checkpoint-values" for a in result.object_graph.applications)
    out = tmp_path / "out"
    actions = write(result, out, force=False)
    assert actions["variables/variables.index"] == "written"
    assert actions["variables/variables.data-00000-of-00001"] == "written"
    old = tf.train.load_checkpoint(str(source / "variables" / "variables"))
    new = tf.train.load_checkpoint(str(out / "variables" / "variables"))
    names = old.get_variable_to_shape_map()
    assert names == new.get_variable_to_shape_map()
    for name in names:
        if name == "_CHECKPOINTABLE_OBJECT_GRAPH":
            continue
        np.testing.assert_array_equal(new.get_tensor(name), old.get_tensor(name), err_msg=name)
    graph_bytes = new.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH")
    graph = trackable_object_graph_pb2.TrackableObjectGraph.FromString(graph_bytes)
    assert not any(n.HasField("has_checkpoint_values") for n in graph.nodes)
    # The source shard is a prefix of ours: nothing in it changed.
    src = (source / "variables/variables.data-00000-of-00001").read_bytes()
    assert (out / "variables/variables.data-00000-of-00001").read_bytes()[: len(src)] == src
    # The index round-trips through our reader.
    entries = bundle_index.read_index((out / "variables/variables.index").read_bytes())
    assert [k for k, _ in entries] == sorted(k for k, _ in entries)


def test_crc32c_is_castagnoli_and_continues() -> None:
    """The checksum of the index blocks and string tensors: RFC 3720's check value, and a
    checksum continued over two parts equals the one over the whole."""
    assert bundle_index.crc32c(b"123456789") == 0xE3069283
    assert bundle_index.crc32c(b"56789", bundle_index.crc32c(b"1234")) == 0xE3069283
    assert bundle_index.crc32c(b"") == 0


def test_message_conditions_say_why_they_do_not_hold() -> None:
    """Object-graph conditions are typed objects, parsed once, that give a reason when they fail."""
    from rewriter.rules.message_conditions import AnyOf, Field, NeededBySignatures, Not

    text = ("id: x\ndescription: d\nsince: '2.6'\nexact: true\nhandles: {fields: []}\n"
            "match:\n  message: tensorflow.SavedObject\n  where:\n"
            "    - {field: kind, equals: captured_tensor}\n"
            "    - {needed_by_signatures: false}\n"
            "    - {not: {field: registered_name, present: true}}\n"
            "    - {any: [{field: kind, in: [function]}, {field: registered_name, present: true}]}\n"
            "rewrite: {drop_object: true}\n")
    (rule,) = parse_object_graph_rules_text(text, "r.yaml")
    equals, needed, negated, either = rule.where
    assert isinstance(equals, Field) and isinstance(needed, NeededBySignatures)
    assert isinstance(negated, Not) and isinstance(either, AnyOf)
    obj = saved_object_graph_pb2.SavedObject()
    obj.user_object.identifier = "x"
    assert equals.failure(obj, None, None) == "kind is 'user_object', not 'captured_tensor'"
    assert needed.failure(obj, None, 3) is None

    class Needed:
        needed = {3}

    assert needed.failure(obj, Needed(), 3) == "the signatures need this object"
    obj.registered_name = "custom"
    assert negated.failure(obj, None, None) == "it holds, but must not"
    assert either.holds(obj)
    obj.ClearField("registered_name")
    assert either.failure(obj, None, None) == (
        "none of these holds: kind is 'user_object', not one of ['function']; registered_name is not set")


def test_object_graph_rules_apply_by_file_then_position() -> None:
    """One ordering rule for every kind: as graph rules, by file, then position in the file."""
    rules = load_object_graph_rules()
    keys = [(r.source.rsplit(":", 1)[0], int(r.source.rsplit(":", 1)[1])) for r in rules]
    assert keys == sorted(keys)


def test_a_distributed_variable_saved_with_its_components_converts_with_parity(tmp_path: Path) -> None:
    """SavedVariable.experimental_distributed_variable_components lists each replica's name and
    device; it was refused for 2.3 ('older releases cannot restore'), but the variable is the
    SavedVariable holding the list, and no loader reads the list (a helper's sweep: a MirroredStrategy
    model saved by TF 2.15). Dropped, the output matches bit for bit in TF 2.3.4's C++ loader."""
    from rewriter import api
    from rewriter.report.conversion import Report

    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        class Model(tf.Module):
            def __init__(self) -> None:
                self.w = tf.Variable([[1.5, -2.0], [0.25, 3.0]])

            @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)])
            def f(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
                return {"y": tf.matmul(x, self.w)}

        model = Model()
    options = tf.saved_model.SaveOptions(
        experimental_variable_policy=tf.saved_model.experimental.VariablePolicy.EXPAND_DISTRIBUTED_VARIABLES)
    tf.saved_model.save(model, str(tmp_path / "in"), signatures={"serving_default": model.f}, options=options)
    proto = saved_model_pb2.SavedModel.FromString((tmp_path / "in" / "saved_model.pb").read_bytes())
    assert any(n.variable.experimental_distributed_variable_components for n in proto.meta_graphs[0].object_graph_def.nodes)
    report = Report("convert", tmp_path / "in", tmp_path / "out")
    api.convert(tmp_path / "in", tmp_path / "out", "2.3", report=report)
    assert report.parity is not None and report.parity.ok
    assert report.plan is not None and report.plan.object_graph is not None
    assert any(a.rule == "saved-variable-distributed-components" for a in report.plan.object_graph.applications)
    out = saved_model_pb2.SavedModel.FromString((tmp_path / "out" / "saved_model.pb").read_bytes())
    assert not any(n.variable.experimental_distributed_variable_components for n in out.meta_graphs[0].object_graph_def.nodes)
