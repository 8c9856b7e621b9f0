"""Static shapes the saving TensorFlow recorded, for rule conditions (`{shape: "n.input[1]", ...}`).

We infer nothing ourselves: a shape is known only where TF wrote it down at save time, after its
own shape inference:
  - a node's `_output_shapes` attr (one shape per output; tf.saved_model.save writes it on
    function bodies);
  - a function argument's `_output_shapes` in the FunctionDef's arg_attr, or else the function's
    `_input_shapes` attr;
  - a Const node's value.
Nodes a rewrite adds carry none of these, so a condition on their shape does not hold.
Dims are ints, -1 where unknown; None means the rank is unknown or nothing was recorded.
"""
from __future__ import annotations

from rewriter.protos import function_pb2
from rewriter.protos.node_def_pb2 import NodeDef

from rewriter.savedmodel.attr_values import shape_to_plain
from rewriter.savedmodel.graph_model import NodeDefView, Scope


def output_shape(node: NodeDef, flat_index: int | None) -> list[int] | None:
    """The recorded shape of one output (its flat index among all outputs) of a node."""
    if flat_index is None:
        return None
    if node.op == "Const" and flat_index == 0 and "value" in node.attr:
        return shape_to_plain(node.attr["value"].tensor.tensor_shape)
    recorded = node.attr.get("_output_shapes")
    if recorded is None or flat_index >= len(recorded.list.shape):
        return None
    return shape_to_plain(recorded.list.shape[flat_index])


def arg_shape(scope: Scope | NodeDefView, arg_name: str) -> list[int] | None:
    """The recorded shape of a function argument."""
    function = scope.proto
    if not isinstance(function, function_pb2.FunctionDef):
        return None
    names = [arg.name for arg in function.signature.input_arg]
    if arg_name not in names:
        return None
    position = names.index(arg_name)
    if position in function.arg_attr:
        recorded = function.arg_attr[position].attr.get("_output_shapes")
        if recorded is not None and len(recorded.list.shape) == 1:
            return shape_to_plain(recorded.list.shape[0])
    # _input_shapes lists one shape per argument, in order.
    listed = function.attr.get("_input_shapes")
    if listed is not None and len(listed.list.shape) == len(names):
        return shape_to_plain(listed.list.shape[position])
    return None
