"""The shipped schemas, the schema check, and the post-condition: an output with a field unknown to
the target is never written."""
from __future__ import annotations

from pathlib import Path

import pytest
from rewriter.protos import types_pb2
from rewriter.protos import saved_model_pb2, trackable_object_graph_pb2

from conftest import fixture_dir
from rewriter.savedmodel import bundle_index
from rewriter.errors import Refused
from rewriter.pipeline import Options, plan, write
from rewriter.targets.releases import Release, known_releases
from rewriter.verify.schema_check import (
    check_message,
    diff,
    first_release_with,
    may_have_problems,
    keras_metadata_known,
    load_schema,
    schema_releases,
)

R23, R221 = Release(2, 3), Release(2, 21)


def test_every_known_release_has_a_schema() -> None:
    assert schema_releases() == known_releases()
    for release in schema_releases():
        schema = load_schema(release)  # checks the sha256 of schemas.json
        assert schema.message("tensorflow.SavedObjectGraph") is not None, release
        assert schema.message("tensorflow.TrackableObjectGraph") is not None, release


def test_schema_diff_shows_what_2_3_lacks() -> None:
    lines = diff(R23, R221)
    for expected in (
        "field tensorflow.SavedObject.captured_tensor = 12 (oneof kind)",
        "field tensorflow.SavedObject.registered_name = 13",
        "field tensorflow.SavedObject.serialized_user_proto = 14",
        "field tensorflow.TrackableObjectGraph.TrackableObject.has_checkpoint_values = 5",
        "enum value tensorflow.DataType.DT_INT4 = 29",
    ):
        assert expected in lines
    assert diff(R221, R221) == []
    assert first_release_with("schema-field", "tensorflow.SavedObject.registered_name", R23) == "2.7"
    assert not keras_metadata_known(R23) and keras_metadata_known(R221)


def _model_with_captured_tensor() -> saved_model_pb2.SavedModel:
    proto = saved_model_pb2.SavedModel()
    graph = proto.meta_graphs.add().object_graph_def
    graph.nodes.add().user_object.identifier = "_generic_user_object"
    node = graph.nodes.add()
    node.captured_tensor.name = "x:0"
    node.captured_tensor.concrete_function = "f"
    return proto


def test_unknown_oneof_case_is_found_with_its_path() -> None:
    findings = check_message(_model_with_captured_tensor(), R23, "saved_model.pb")
    assert [(f.kind, f.node, f.op, f.since) for f in findings] == [
        ("schema-field", "meta_graphs[0].object_graph_def.nodes[1].captured_tensor",
         "tensorflow.SavedObject.captured_tensor", "2.6")
    ]
    assert "unknown to TensorFlow 2.3" in findings[0].message
    assert check_message(_model_with_captured_tensor(), R221, "saved_model.pb") == []


def test_unknown_enum_value_is_found_and_counted() -> None:
    proto = saved_model_pb2.SavedModel()
    graph_def = proto.meta_graphs.add().graph_def
    for name in ("a", "b"):
        node = graph_def.node.add(name=name, op="Placeholder")
        node.attr["dtype"].type = types_pb2.DT_INT4
    findings = check_message(proto, R23, "saved_model.pb")
    assert len(findings) == 1
    assert findings[0].kind == "schema-enum" and findings[0].op == "tensorflow.DataType.DT_INT4"
    assert "(2 places)" in findings[0].message and findings[0].since == "2.15"
    assert check_message(proto, Release(2, 15), "saved_model.pb") == []


def test_field_unknown_even_to_installed_tf_is_found() -> None:
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    # field 99 with a varint: what a TF newer than the installed one might write
    graph.nodes.add().ParseFromString(b"\x98\x06\x01")
    findings = check_message(graph, R221, "variables/")
    assert [f.op for f in findings] == ["tensorflow.TrackableObjectGraph.TrackableObject#99"]


def test_post_condition_refuses_and_writes_nothing(tmp_path: Path) -> None:
    """Without the object-graph rules (an empty rules dir), the checkpoint's has_checkpoint_values
    remains: the schema check refuses and OUT is not created."""
    rules = tmp_path / "rules"
    (rules / "object-graph").mkdir(parents=True)
    for path in Path(__file__).resolve().parents[1].joinpath("rules").glob("*.yaml"):
        (rules / path.name).write_text(path.read_text())
    result = plan(fixture_dir("tf_module"), Options(target=R23, rules_dir=rules))
    kinds = {(f.kind, f.op) for f in result.refusals}
    assert ("schema-field", "tensorflow.TrackableObjectGraph.TrackableObject.has_checkpoint_values") in kinds
    # Each refusal says what the user can do: the first release that reads it, or a rule to write.
    finding = next(f for f in result.refusals if f.op.endswith(".has_checkpoint_values"))
    assert f"target TensorFlow {finding.since} or newer" in finding.message
    assert "docs/writing-object-graph-rules.md" in finding.message
    out = tmp_path / "out"
    with pytest.raises(Refused):
        write(result, out, force=False)
    assert not out.exists()


def test_converted_output_is_clean_for_the_target(tmp_path: Path) -> None:
    result = plan(fixture_dir("keras3_cnn"), Options(target=R23))
    assert result.ok, [f.line() for f in result.refusals]
    out = tmp_path / "out"
    write(result, out, force=False)
    proto = saved_model_pb2.SavedModel.FromString((out / "saved_model.pb").read_bytes())
    assert check_message(proto, R23, "saved_model.pb") == []
    assert not may_have_problems(proto, R23)  # the screen lets a clean output through without the walk
    entries = bundle_index.read_index((out / "variables/variables.index").read_bytes())
    entry = bundle_index.find_entry(entries, "_CHECKPOINTABLE_OBJECT_GRAPH")
    assert entry is not None
    with open(out / "variables/variables.data-00000-of-00001", "rb") as fh:
        fh.seek(entry.offset)
        value = bundle_index.decode_string_scalar(fh.read(entry.size), entry.crc32c)
    graph = trackable_object_graph_pb2.TrackableObjectGraph.FromString(value)
    assert check_message(graph, R23, "variables/") == []


def _set_somehow(msg, field) -> None:  # type: ignore[no-untyped-def]
    """Give `field` of `msg` a non-default value, whatever its type."""
    from google.protobuf.descriptor import FieldDescriptor as F

    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key_field = field.message_type.fields_by_name["key"]
        key = "k" if key_field.type == F.TYPE_STRING else 1
        container = getattr(msg, field.name)
        value_field = field.message_type.fields_by_name["value"]
        if value_field.message_type is not None:
            container[key].SetInParent()
        else:
            container[key] = _scalar(value_field)
        return
    repeated = field.label == F.LABEL_REPEATED if not hasattr(field, "is_repeated") else field.is_repeated
    if field.message_type is not None:
        (getattr(msg, field.name).add() if repeated else getattr(msg, field.name)).SetInParent()
    elif repeated:
        getattr(msg, field.name).append(_scalar(field))
    else:
        setattr(msg, field.name, _scalar(field))


def _scalar(field):  # type: ignore[no-untyped-def]
    from google.protobuf.descriptor import FieldDescriptor as F

    if field.type == F.TYPE_ENUM:
        return field.enum_type.values[-1].number
    return {F.TYPE_STRING: "x", F.TYPE_BYTES: b"x", F.TYPE_BOOL: True, F.TYPE_FLOAT: 1.0,
            F.TYPE_DOUBLE: 1.0}.get(field.type, 1)


@pytest.mark.parametrize("target", [R23, Release(2, 9), Release(2, 15)])
def test_the_screen_never_misses_what_the_walk_finds(target: Release) -> None:
    """Every field the target lacks, set alone in its message, and every enum value it lacks: the
    walk finds it, so the C-speed screen must say so too; the same message without it is clean."""
    from google.protobuf import message_factory

    from rewriter.protos import _pool, fingerprint_pb2, tensor_bundle_pb2, tensor_pb2

    assert fingerprint_pb2.DESCRIPTOR and tensor_bundle_pb2.DESCRIPTOR  # in the pool

    checked = 0
    for line in diff(target, R221):
        if line.startswith("field "):
            what = line.split()[1]
            message_name, _, field_name = what.rpartition(".")
            if not message_name.startswith("tensorflow."):
                continue  # Keras' SavedMetadata: not among the shipped modules
            descriptor = _pool.POOL.FindMessageTypeByName(message_name)
            msg = message_factory.GetMessageClass(descriptor)()
            assert not may_have_problems(msg, target)
            _set_somehow(msg, descriptor.fields_by_name[field_name])
        elif line.startswith("enum value tensorflow.DataType."):
            msg = tensor_pb2.TensorProto(dtype=types_pb2.DataType.Value(line.split()[2].rpartition(".")[2]))
        else:
            continue
        assert check_message(msg, target, "x") != [], line
        assert may_have_problems(msg, target), line
        checked += 1
    assert checked > 5


def _with_big_constant(edit: str) -> saved_model_pb2.SavedModel:
    """A SavedModel whose one Const holds 9 MiB (more than a screen piece): `edit` puts a problem
    inside that node ("" for none)."""
    from rewriter.protos import full_type_pb2

    proto = saved_model_pb2.SavedModel()
    node = proto.meta_graphs.add().graph_def.node.add(name="weights", op="Const")
    node.attr["dtype"].type = types_pb2.DT_FLOAT
    tensor = node.attr["value"].tensor
    tensor.dtype = types_pb2.DT_FLOAT
    tensor.tensor_shape.dim.add().size = 9 << 18
    tensor.tensor_content = bytes(range(256)) * (9 << 12)
    tensor.string_val.extend([b"a" * 100] * 3)
    node.attr["_class"].list.s.extend([b"loc:@weights"])
    if edit == "field":
        node.experimental_type.type_id = full_type_pb2.TFT_PRODUCT  # NodeDef.experimental_type: not in 2.3
    elif edit == "enum":
        tensor.dtype = types_pb2.DT_INT4  # DataType value 2.3 lacks, beside the big content
    return proto


@pytest.mark.parametrize("edit", ["", "field", "enum"])
def test_a_big_constant_is_screened_lean_and_nothing_is_missed(edit: str) -> None:
    """A node bigger than a screen piece is screened as lean wire bytes (its tensor_content and
    other bytes emptied, every tag kept): the screen still says what the walk says."""
    from rewriter.verify.schema_check import _lean

    proto = _with_big_constant(edit)
    assert may_have_problems(proto, R23) == (check_message(proto, R23, "x") != []) == bool(edit)
    node = proto.meta_graphs[0].graph_def.node[0]
    lean = _lean(memoryview(node.SerializeToString()), node.DESCRIPTOR)
    assert len(lean) < 200  # from 9 MiB
    parsed = type(node).FromString(lean)
    assert sorted(parsed.attr) == sorted(node.attr) and parsed.HasField("experimental_type") == (edit == "field")
    assert parsed.attr["value"].tensor.dtype == node.attr["value"].tensor.dtype
    assert len(parsed.attr["value"].tensor.string_val) == 1  # kept once, empty


@pytest.mark.parametrize("target", [Release(1, 15), R23, Release(2, 9), Release(2, 15)])
def test_the_strict_schema_re_encodes_every_piece_to_its_own_length(target: Release) -> None:
    """may_have_problems compares a piece's length with its strict parse's ByteSize after
    DiscardUnknownFields: sound only if what the strict schema keeps (and the unknown fields, kept
    as they came) re-encodes to exactly the bytes it came from. Held here on every fixture (models
    from several releases, full of fields and values the target lacks) and packed numbers of every
    kind; and a field the target lacks makes the lengths differ."""
    from google.protobuf import message_factory

    from conftest import FIXTURES
    from rewriter.verify.schema_check import _pieces, _strict_schema

    strict = _strict_schema(target, saved_model_pb2.SavedModel.DESCRIPTOR.file.pool)
    from rewriter.protos import tensor_pb2

    packed = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32, int_val=[-1, 2, 300], float_val=[1.5], int64_val=[-5],
                                    bool_val=[True, False], half_val=[7], double_val=[2.0], uint64_val=[1 << 60])
    messages: list = [packed]
    for name in FIXTURES:
        messages.append(saved_model_pb2.SavedModel.FromString((fixture_dir(name) / "saved_model.pb").read_bytes()))
    pieces = 0
    for msg in messages:
        for type_name, data, lean in _pieces(msg):
            assert not lean
            parsed = message_factory.GetMessageClass(strict.pool.FindMessageTypeByName(type_name))()
            parsed.ParseFromString(data)
            assert parsed.ByteSize() == len(data), (type_name, len(data))
            pieces += 1
    assert pieces > len(FIXTURES)
    lacking = saved_model_pb2.SavedModel()
    lacking.meta_graphs.add().graph_def.node.add(name="n", op="NoOp").experimental_type.type_id = 10
    if target < Release(2, 5):  # NodeDef.experimental_type: since 2.5
        assert may_have_problems(lacking, target)


def test_a_model_cut_after_every_node_and_function_is_screened_as_a_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """The screen cuts nodes and functions into pieces of about _BATCH_BYTES (so that each piece's
    memory is reused, not mapped afresh); wherever the cuts fall, a value the target lacks in the
    last function is found, and nothing where there is nothing."""
    from rewriter.verify import schema_check

    monkeypatch.setattr(schema_check, "_BATCH_BYTES", 0)  # a piece per node and per function
    proto = saved_model_pb2.SavedModel.FromString((fixture_dir("keras3_cnn") / "saved_model.pb").read_bytes())
    graph = proto.meta_graphs[0].graph_def
    assert len(list(schema_check._pieces(proto))) == 1 + len(graph.node) + len(graph.library.function)
    assert not may_have_problems(proto, R221) and check_message(proto, R221, "x") == []
    graph.library.function[-1].node_def[-2].attr["T"].type = 999  # a DataType no release has
    assert may_have_problems(proto, R221) and [f.kind for f in check_message(proto, R221, "x")] == ["schema-enum"]


def test_a_dtype_the_target_lacks_is_refused_with_what_to_do() -> None:
    from rewriter.pipeline import _schema_refusals

    proto = saved_model_pb2.SavedModel()
    node = proto.meta_graphs.add().graph_def.node.add(name="a", op="Placeholder")
    node.attr["dtype"].type = types_pb2.DT_INT4
    [finding] = _schema_refusals(check_message(proto, R23, "saved_model.pb"), R23)
    assert "TensorFlow 2.3 has no such dtype" in finding.message
    assert "target TensorFlow 2.15 or newer" in finding.message and "re-export" in finding.message
