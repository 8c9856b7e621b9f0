"""The fast paths of the object-graph rule step (rewriter/rules/object_graph.py) say what the
plain ones say: compiled conditions give failure()'s verdicts, the walk for several types finds
what a walk per type finds, and objects are dropped or refused where the signatures need them.
No TensorFlow import: a second or two."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest
from google.protobuf import message

from conftest import fixture_dir
from rewriter.protos import full_type_pb2, node_def_pb2, saved_model_pb2, saved_object_graph_pb2
from rewriter.rules import object_graph
from rewriter.rules.message_conditions import AllOf, AnyOf, Field, MessageCondition, NeededBySignatures, Not
from rewriter.rules.object_graph_loader import load_object_graph_rules
from rewriter.savedmodel.files import read_saved_model
from rewriter.savedmodel.messages import find_messages, is_repeated, path_of, presence_test, reachable_types
from rewriter.targets.releases import Release

KINDS = ("user_object", "variable", "function", "bare_concrete_function", "constant", "resource",
         "captured_tensor", "asset")


def _saved_objects() -> list[saved_object_graph_pb2.SavedObject]:
    """SavedObjects with every kind unset or set, and the fields the conditions below read."""
    objects = [saved_object_graph_pb2.SavedObject()]
    for index, kind in enumerate(KINDS):
        obj = saved_object_graph_pb2.SavedObject()
        getattr(obj, kind).SetInParent()
        if kind == "variable":
            obj.variable.dtype = 1 if index % 2 else 3
            obj.variable.trainable = True
            obj.variable.name = "v"
        if kind == "user_object":
            obj.user_object.identifier = "x"
        if index % 2:
            obj.registered_name = "custom"
        if index % 3 == 0:
            obj.serialized_user_proto.type_url = "t"
        obj.children.add(node_id=1, local_name="a")
        if index % 4 == 1:
            obj.dependencies.add(node_id=1, local_name="a")
        if index % 4 == 2:
            obj.dependencies.add(node_id=2, local_name="b")
        objects.append(obj)
    return objects


def _node(type_ids: list[int]) -> node_def_pb2.NodeDef:
    node = node_def_pb2.NodeDef(name="n")
    inner = node.experimental_type
    for i, type_id in enumerate(type_ids):
        if i:
            inner = inner.args.add()
        inner.type_id = type_id
    return node


ON_OBJECTS: list[MessageCondition] = [
    Field("kind", "equals", "captured_tensor"), Field("kind", "equals", None), Field("kind", "in", ("variable", "function")),
    Field("kind", "not_in", ("variable",)), Field("kind", "present", True), Field("kind", "present", False),
    Field("registered_name", "present", True), Field("registered_name", "present", False),
    Field("registered_name", "equals", "custom"), Field("registered_name", "in", ("custom", "")),
    Field("children", "present", True), Field("dependencies", "present", True),
    Field("serialized_user_proto", "present", True), Field("serialized_user_proto", "present", False),
    Field("user_object.identifier", "equals", "x"), Field("variable.dtype", "equals", "DT_FLOAT"),
    Field("variable.dtype", "in", ("DT_INT32", "DT_FLOAT")), Field("variable.trainable", "equals", True),
    Field("variable.name", "present", True), Field("dependencies", "subset_of", "children"),
    NeededBySignatures(True), NeededBySignatures(False),
]
ON_OBJECTS += [Not(c) for c in ON_OBJECTS[:6]] + [
    AnyOf((Field("serialized_user_proto", "present", True), Not(Field("kind", "in", ("constant", "variable"))))),
    AllOf((Field("registered_name", "present", True), NeededBySignatures(False))),
    AllOf((Field("dependencies", "present", True), Not(Field("dependencies", "subset_of", "children")))),
    AnyOf((NeededBySignatures(True), Field("kind", "equals", "asset"))),
]
ON_NODES: list[MessageCondition] = [
    Field("experimental_type", "mentions", frozenset({"TFT_SHAPE_TENSOR"})),
    Field("experimental_type", "mentions", frozenset({"TFT_RAGGED", "TFT_ENCODED"})),
    Field("experimental_type", "present", True), Field("experimental_type", "present", False),
    Field("experimental_type.type_id", "equals", "TFT_ARRAY"), Field("name", "equals", "n"), Field("op", "present", True),
    AllOf((Field("experimental_type", "mentions", frozenset({"TFT_INT32"})), Field("name", "in", ("n",)))),
]
NODES = [node_def_pb2.NodeDef(name="bare"), _node([full_type_pb2.TFT_ARRAY, full_type_pb2.TFT_SHAPE_TENSOR]),
         _node([full_type_pb2.TFT_ARRAY, full_type_pb2.TFT_INT32]), _node([full_type_pb2.TFT_RAGGED]),
         _node([full_type_pb2.TFT_PRODUCT, full_type_pb2.TFT_ENCODED, full_type_pb2.TFT_STRING])]


class _Needed:
    needed = {2, 5}


@pytest.mark.parametrize("conditions, messages", [(ON_OBJECTS, _saved_objects()), (ON_NODES, NODES)])
def test_compiled_conditions_give_the_verdicts_of_failure(conditions: list[MessageCondition],
                                                          messages: list[message.Message]) -> None:
    """holds_on / predicate (what the rule step runs) hold exactly where failure() is None, and
    the field required_field names is set wherever the condition holds."""
    desc = messages[0].DESCRIPTOR
    held = 0
    for cond in conditions:
        predicate = cond.predicate(desc)
        required = cond.required_field(desc)
        for msg in messages:
            for ctx, node_id in ((None, None), (_Needed(), 2), (_Needed(), 3), (_Needed(), None)):
                verdict = cond.failure(msg, ctx, node_id) is None
                held += verdict
                assert predicate(msg, ctx, node_id) == verdict, (cond, msg, node_id)
                if verdict and required is not None:
                    assert presence_test(desc, required)(msg), (cond, msg)
            if not cond.reads_object():
                assert cond.holds_on(desc)(msg) == (cond.failure(msg, None, None) is None), (cond, msg)
    assert 0 < held < len(conditions) * len(messages) * 4  # the cases go both ways


def test_a_condition_on_a_field_the_type_lacks_fails_as_before() -> None:
    """A rule naming a field its message does not have: the same KeyError as failure() raises."""
    cond = Field("no_such_field", "present", True)
    desc = saved_object_graph_pb2.SavedObject.DESCRIPTOR
    assert cond.required_field(desc) is None
    with pytest.raises(KeyError):
        cond.holds_on(desc)(saved_object_graph_pb2.SavedObject())


def _walk_per_type(msg: message.Message, name: str, path: str) -> Iterator[tuple[str, message.Message]]:
    """The walk the rule step made for one type before: every field, recursively, stopping at
    each message of the type."""
    if msg.DESCRIPTOR.full_name == name:
        yield path, msg
        return
    for fd, value in msg.ListFields():
        if fd.message_type is None:
            continue
        here = f"{path}.{fd.name}" if path else fd.name
        if fd.message_type.GetOptions().map_entry:
            for key in sorted(value):
                if isinstance(value[key], message.Message):
                    yield from _walk_per_type(value[key], name, f"{here}[{key!r}]")
        elif is_repeated(fd):
            for index, item in enumerate(value):
                yield from _walk_per_type(item, name, f"{here}[{index}]")
        else:
            yield from _walk_per_type(value, name, here)


@pytest.mark.parametrize("fixture", ["keras3_cnn", "string_input"])
def test_one_walk_for_several_types_finds_what_a_walk_per_type_finds(fixture: str) -> None:
    proto = read_saved_model(fixture_dir(fixture)).proto
    names = sorted({t.full_name for t in reachable_types(proto.DESCRIPTOR)})
    # Types within types (AttrValue in NodeDef, StructuredValue in itself), map entries by key.
    groups = [names, ["tensorflow.NodeDef", "tensorflow.AttrValue", "tensorflow.TensorShapeProto"],
              ["tensorflow.StructuredValue", "tensorflow.TensorSpecProto"], ["tensorflow.SignatureDef", "tensorflow.TensorInfo"]]
    for group in groups:
        found = find_messages(proto, group)
        for name in group:
            expected = list(_walk_per_type(proto, name, ""))
            assert [path_of(f) for f in found[name]] == [path for path, _ in expected], name
            assert all(f[0] == msg for f, (_, msg) in zip(found[name], expected))
            even = found[name].where(lambda msg: msg.ByteSize() % 2 == 0)  # the screen rules use
            assert [path_of(f) for f in even] == [path for path, msg in expected if msg.ByteSize() % 2 == 0], name
    counts = {name: len(list(found)) for name, found in find_messages(proto, names).items()}
    assert counts["tensorflow.NodeDef"] > 10 and counts["tensorflow.SignatureDef"] > 0 and counts["tensorflow.StructuredValue"] > 0


def _with_captured_tensors(tmp_path: Path) -> Path:
    """tf_module with two captured-tensor objects appended: 11 needed by the signatures (a child
    of their `signatures` object), 12 needed by nothing."""
    model = tmp_path / "in"
    shutil.copytree(fixture_dir("tf_module"), model)
    proto = saved_model_pb2.SavedModel.FromString((model / "saved_model.pb").read_bytes())
    graph = proto.meta_graphs[0].object_graph_def
    assert len(graph.nodes) == 11 and graph.nodes[0].children[5].local_name == "signatures"
    for name in ("needed:0", "unused:0"):
        graph.nodes.add().captured_tensor.name = name
    graph.nodes[6].children.add(node_id=11, local_name="captured")
    (model / "saved_model.pb").write_bytes(proto.SerializeToString(deterministic=True))
    return model


def test_objects_no_signature_needs_are_dropped_and_needed_ones_refused(tmp_path: Path) -> None:
    model = _with_captured_tensors(tmp_path)
    files = read_saved_model(model)
    proto: Any = files.proto
    outcome = object_graph.downgrade(proto, files, Release(2, 3), load_object_graph_rules())
    where = "meta_graphs[0].object_graph_def.nodes"
    assert [a.line() for a in outcome.applications if a.rule.startswith("saved-object-captured")] == [
        f"saved_model.pb: {where}[12]: dropped object 12 [rule saved-object-captured-tensor]"]
    assert [(f.where, f.node, f.rule) for f in outcome.refusals] == [
        ("saved_model.pb", f"{where}[11]", "saved-object-captured-tensor-needed")]
    assert len(proto.meta_graphs[0].object_graph_def.nodes) == 12
    verdicts = object_graph.explain_messages(  # on IN as it is (downgrade changed `proto` in place)
        next(r for r in load_object_graph_rules() if r.id == "saved-object-captured-tensor"), read_saved_model(model))
    assert [(path, reason) for _, path, reason in verdicts if not (reason or "").startswith("kind is")] == [
        (f"{where}[11]", "the signatures need this object"), (f"{where}[12]", None)]


def test_presence_screens_in_c_let_through_what_the_tests_do() -> None:
    """FoundMessages.where runs a presence test over a repeated field in C (messages._TESTS_IN_C),
    or per element once most elements passed: both give the test's own verdicts, in order, for
    every kind of field (message, repeated, scalar, oneof)."""
    from rewriter.protos import function_pb2, op_def_pb2

    library = function_pb2.FunctionDefLibrary()
    for f in range(6):
        function = library.function.add()
        function.signature.name = f"f{f}"
        for a in range(5):
            arg = function.signature.input_arg.add(name=f"a{a}")
            if (a + f) % 3 == 0 or f >= 3:  # sparse in the first functions, dense after
                arg.handle_data.add().dtype = 1
            if a % 2:
                arg.type = 1
            if a == f:
                arg.experimental_full_type.type_id = 1
                arg.is_ref = True
        for n in range(4):
            node = function.node_def.add(name=f"n{n}", op="Identity" if n % 2 else "")
            if (n + f) % 5 == 0:
                node.experimental_type.type_id = 2
    attr_value = library.function[0].attr["a"]
    found = find_messages(library, ["tensorflow.OpDef.ArgDef", "tensorflow.NodeDef", "tensorflow.AttrValue"])
    for type_name, names in [("tensorflow.OpDef.ArgDef", ["handle_data", "experimental_full_type", "type", "is_ref", "name",
                                                          "type_attr"]),
                             ("tensorflow.NodeDef", ["experimental_type", "op", "name", "input", "attr"]),
                             ("tensorflow.AttrValue", ["value", "s"])]:
        desc = (op_def_pb2.OpDef.ArgDef if type_name.endswith("ArgDef") else
                node_def_pb2.NodeDef if type_name.endswith("NodeDef") else type(attr_value)).DESCRIPTOR
        for name in names:
            test = presence_test(desc, name)
            expected = [path_of(f) for f in found[type_name] if test(f[0])]
            assert [path_of(f) for f in found[type_name].where(test)] == expected, (type_name, name)
            assert all(f[0] == g[0] for f, g in zip(found[type_name].where(test),
                                                     (f for f in found[type_name] if test(f[0]))))
