"""normalize: colocation entries naming no node of their function are dropped, on nodes and args."""
from __future__ import annotations

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
