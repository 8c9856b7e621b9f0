"""normalize: colocation entries naming no node of their function are dropped, on nodes and args."""
from __future__ import annotations

from typing import Any

from rewriter.protos import function_pb2, node_def_pb2

from rewriter.savedmodel.normalize import _drop_dangling_colocation


def _restore_function() -> function_pb2.FunctionDef:
    """What TF 2.21 writes for a lookup table's restore: the table-handle arg and the import node
    are colocated with the caller's table node, which the function does not have."""
    function = function_pb2.FunctionDef()
    function.signature.name = "restore"
    function.signature.input_arg.add(name="handle")
    function.arg_attr[0].attr["_class"].list.s.append(b"loc:@MutableHashTable")
    function.arg_attr[0].attr["_user_specified_name"].s = b"MutableHashTable"
    kept = node_def_pb2.NodeDef(name="import", op="LookupTableImportV2", input=["handle"])
    kept.attr["_class"].list.s.extend([b"loc:@MutableHashTable", b"loc:@other"])
    function.node_def.extend([kept, node_def_pb2.NodeDef(name="other", op="NoOp")])
    return function


def test_dangling_colocations_go_from_nodes_and_args_and_others_stay() -> None:
    function = _restore_function()
    assert _drop_dangling_colocation(function) == 2
    assert "_class" not in function.arg_attr[0].attr
    assert function.arg_attr[0].attr["_user_specified_name"].s == b"MutableHashTable"
    assert list(function.node_def[0].attr["_class"].list.s) == [b"loc:@other"]
    assert _drop_dangling_colocation(function) == 0


def _saved_model_with(*nodes: node_def_pb2.NodeDef) -> Any:
    from rewriter.protos import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.meta_graphs.add().graph_def.node.extend(nodes)
    return proto


def test_attrs_the_target_lacks_at_their_default_are_left_out_and_named() -> None:
    """TensorFlow's RemoveNewDefaultAttrsFromGraphDef: VarHandleOp's allowed_devices and RFFT's
    Treal / Tcomplex (TF 2.3) at their default go for TF 1.15 and the notes name them; a value
    other than the default stays (the validator then refuses it); TF 2.3 has them: nothing goes."""
    from rewriter.protos import types_pb2
    from rewriter.savedmodel.normalize import for_target
    from rewriter.targets.registry import load_registry, newest_registry
    from rewriter.targets.releases import Release

    def nodes() -> list[node_def_pb2.NodeDef]:
        at_default = node_def_pb2.NodeDef(name="v", op="VarHandleOp")
        at_default.attr["dtype"].type = types_pb2.DT_FLOAT
        at_default.attr["allowed_devices"].list.SetInParent()  # [] written out, as TF 1-style graphs do
        placed = node_def_pb2.NodeDef(name="w", op="VarHandleOp")
        placed.attr["dtype"].type = types_pb2.DT_FLOAT
        placed.attr["allowed_devices"].list.s.append(b"/device:CPU:0")
        fft = node_def_pb2.NodeDef(name="f", op="RFFT", input=["x", "n"])
        fft.attr["Treal"].type = types_pb2.DT_FLOAT
        fft.attr["Tcomplex"].type = types_pb2.DT_COMPLEX64
        wide = node_def_pb2.NodeDef(name="g", op="RFFT", input=["x", "n"])
        wide.attr["Treal"].type = types_pb2.DT_DOUBLE
        wide.attr["Tcomplex"].type = types_pb2.DT_COMPLEX128
        return [at_default, placed, fft, wide]

    proto = _saved_model_with(*nodes())
    notes = for_target(proto, newest_registry(), load_registry(Release(1, 15)), Release(1, 15), "2.21.0", "t")
    kept = {node.name: sorted(node.attr) for node in proto.meta_graphs[0].graph_def.node}
    assert kept == {"v": ["dtype"], "w": ["allowed_devices", "dtype"], "f": [], "g": ["Tcomplex", "Treal"]}
    assert any("RemoveNewDefaultAttrsFromGraphDef" in note and "RFFT.Tcomplex x1, RFFT.Treal x1, "
               "VarHandleOp.allowed_devices x1" in note for note in notes), notes

    proto = _saved_model_with(*nodes())
    notes = for_target(proto, newest_registry(), load_registry(Release(2, 3)), Release(2, 3), "2.21.0", "t")
    assert not any("RemoveNewDefaultAttrsFromGraphDef" in note for note in notes)
    assert sorted(proto.meta_graphs[0].graph_def.node[3].attr) == ["Tcomplex", "Treal"]


def test_a_stripped_default_the_target_requires_is_written_out() -> None:
    """RaggedTensorToVariant.Tsplits has the default int64 from TF 2.x on, and none in TF 1.15: a
    saved model leaves it out (defaults are stripped), and TF 1.15 refused the node ("required attr
    'Tsplits' is missing"; a helper's tf_keras model). The source default is written out for 1.15."""
    from rewriter.protos import types_pb2
    from rewriter.savedmodel.normalize import for_target
    from rewriter.targets.registry import load_registry, newest_registry
    from rewriter.targets.releases import Release

    def model() -> Any:
        node = node_def_pb2.NodeDef(name="v", op="RaggedTensorToVariant", input=["splits", "values"])
        node.attr["RAGGED_RANK"].i = 1
        node.attr["Tvalues"].type = types_pb2.DT_FLOAT
        node.attr["batched_input"].b = True
        return _saved_model_with(node)

    for release, written in ((Release(1, 15), True), (Release(2, 3), False)):
        proto = model()
        for_target(proto, newest_registry(), load_registry(release), release, "2.21.0", "t")
        attrs = proto.meta_graphs[0].graph_def.node[0].attr
        assert ("Tsplits" in attrs) == written
        if written:
            assert attrs["Tsplits"].type == types_pb2.DT_INT64


def test_for_target_drops_them_in_every_function_that_has_them() -> None:
    """for_target screens each function for `_class` in the same walk as the defaults: a function
    whose `_class` is on a later node, one whose `_class` is on an arg only, and one without any."""
    from rewriter.protos import saved_model_pb2
    from rewriter.savedmodel.normalize import for_target
    from rewriter.targets.registry import load_registry
    from rewriter.targets.releases import Release

    proto = saved_model_pb2.SavedModel()
    library = proto.meta_graphs.add().graph_def.library
    on_node = library.function.add()
    on_node.CopyFrom(_restore_function())
    on_node.arg_attr[0].attr.pop("_class")
    on_node.node_def.reverse()  # the colocated node last
    on_arg = library.function.add()
    on_arg.CopyFrom(_restore_function())
    on_arg.signature.name = "restore_arg_only"
    on_arg.node_def[0].attr.pop("_class")
    plain = library.function.add(signature=function_pb2.FunctionDef().signature)
    plain.signature.name = "plain"
    plain.node_def.add(name="n", op="NoOp")
    before_plain = plain.SerializeToString()
    notes = for_target(proto, load_registry(Release(2, 21)), load_registry(Release(2, 3)), Release(2, 3), "2.21.0", "x")
    assert list(on_node.node_def[1].attr["_class"].list.s) == [b"loc:@other"]
    assert "_class" not in on_arg.arg_attr[0].attr
    assert plain.SerializeToString() == before_plain
    assert any("2 colocation entr(ies)" in note for note in notes), notes
