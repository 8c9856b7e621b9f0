"""Signatures that read restore-only copies of variables: wire them to the variables restore fills.

A Keras 3 model held by a `tf.Module` and saved with `tf.saved_model.save` (TF 2.16+, Keras 3)
exports each Keras variable twice into the MetaGraph's graph (keras/src/backend/tensorflow/
core.py, `Variable._export_to_saved_model_graph`):

- the inner `tf.Variable` is copied to a VarHandleOp `V` (its shared_name, e.g.
  `sequential/dense/kernel`), which the traced functions captured, so the signature calls read V;
- then `object_map[keras_variable] = tf.Variable(object_map[inner])` makes a second VarHandleOp
  `Variable_N` initialized from V. The saver (SaverDef.restore_op_name, `_traced_restore_*`)
  and the object graph's variable object are that second variable.

TF's Python loader rebuilds each object of the object graph, restores it from the checkpoint by
the object graph, and binds the concrete functions' captured inputs to those objects
(SavedConcreteFunction.bound_inputs): the signatures read the checkpoint's values. A C++ loader
(TF Serving, the C API, TF 2.21's included) runs the restore op, which assigns `Variable_N`, and
then the signature call, which reads V, never initialized: "Resource ... does not exist" /
"uninitialized". So the model serves nowhere but in Python.

The files hold the whole correspondence, so the C++ graph can be made to compute what the
Python loader computes:

1. a signature call node (StatefulPartitionedCall/PartitionedCall at the top of the graph) calls
   a concrete function F; F's last len(bound_inputs) inputs are its captures, and capture j is
   bound to object `bound_inputs[j]` of the object graph (how the Python loader feeds it);
2. that object is a variable; the checkpoint's object graph names the checkpoint key of its
   value (TrackableObject.attributes, name VARIABLE_VALUE);
3. the restore op calls the restore function, whose AssignVariableOp writes
   `RestoreV2:tensors:t` (through Identity nodes only) into its argument i, and tensor_names[t]
   of that RestoreV2 (a Const) is the key: the restore call's input i is the handle the C++
   loader fills with that key's value.

When the handle a signature call feeds as capture j is not one the restore op fills, and the
handle the restore op fills with the bound object's key is a VarHandleOp of the same dtype and
shape, the capture is rewired to it. Exact: in the C++ loader the signature then reads the value
the checkpoint holds for the object the Python loader binds, which is what TF's own Python
loader (the only one that runs the source) computes. Nothing is rewired when any link is missing
or ambiguous (a key restored into two handles, a handle that something other than reads and
bound calls uses, or that the init op's inputs reach), and a handle the restore already fills is
left alone, so models without the fault are untouched.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from rewriter.protos import graph_pb2, meta_graph_pb2, node_def_pb2, saved_object_graph_pb2, trackable_object_graph_pb2
from rewriter.savedmodel.graph_model import node_of

CALL_OPS = frozenset({"StatefulPartitionedCall", "PartitionedCall"})
VALUE_ATTRIBUTE = "VARIABLE_VALUE"
INIT_OP_SIGNATURE = "__saved_model_init_op"
# Top-level ops that only read a handle (the copies' own initializers read V; a reader never
# changes what a later reader sees).
READERS = frozenset({"ReadVariableOp", "VarIsInitializedOp"})


def _data_inputs(inputs: Iterable[str]) -> list[str]:
    return [i for i in inputs if not i.startswith("^")]


@dataclass(frozen=True)
class Rewiring:
    """One capture of one signature call node moved from a never-restored handle to a restored one."""

    node: str          # the call node in the MetaGraph's graph_def
    position: int      # its input index
    old: str           # the handle it read (never restored)
    new: str           # the handle the restore op fills with the bound object's checkpoint value
    object_id: int     # the object graph node bound to that capture
    checkpoint_key: str

    def line(self) -> str:
        return (f"node {self.node!r} input {self.position}: {self.old!r} -> {self.new!r} (object {self.object_id}, "
                f"restored from {self.checkpoint_key!r})")


@dataclass(frozen=True)
class WireCapturesToRestored:
    """The object-graph rewrite action `wire_captures_to_restored: true` (on tensorflow.MetaGraphDef).

    See the module docstring for the proof; plan() finds the rewirings, apply() makes them."""

    def plan(self, meta_graph: meta_graph_pb2.MetaGraphDef,
             checkpoint: trackable_object_graph_pb2.TrackableObjectGraph | None) -> list[Rewiring]:
        return self._plan(meta_graph, checkpoint)[0]

    def apply(self, meta_graph: meta_graph_pb2.MetaGraphDef,
              checkpoint: trackable_object_graph_pb2.TrackableObjectGraph | None) -> list[Rewiring]:
        rewirings, nodes = self._plan(meta_graph, checkpoint)
        for r in rewirings:
            node = nodes[r.node]
            port = node.input[r.position][len(r.old):]  # ":0" or ""
            node.input[r.position] = r.new + port
        return rewirings

    def _plan(self, meta_graph: meta_graph_pb2.MetaGraphDef,
              checkpoint: trackable_object_graph_pb2.TrackableObjectGraph | None
              ) -> tuple[list[Rewiring], dict[str, node_def_pb2.NodeDef]]:
        """The rewirings, and the graph's nodes by name (read once for both plan and apply)."""
        if checkpoint is None or not meta_graph.HasField("object_graph_def"):
            return [], {}
        graph = meta_graph.graph_def
        nodes = {n.name: n for n in graph.node[:]}
        restored = restored_handles(meta_graph, nodes)
        if not restored:
            return [], nodes
        filled = set(restored.values())
        functions = {f.signature.name: f for f in graph.library.function}
        objects = meta_graph.object_graph_def
        keys = _checkpoint_keys(checkpoint)
        # Worked out on the first capture the restore op does not fill (a model without the fault
        # has none): what else uses each handle needs every top-level node's inputs.
        unsafe: set[str] | None = None
        found: list[Rewiring] = []
        for node in nodes.values():
            if node.op not in CALL_OPS or "f" not in node.attr:
                continue
            name = node.attr["f"].func.name
            concrete = objects.concrete_functions.get(name)
            function = functions.get(name)
            if concrete is None or function is None or not concrete.bound_inputs:
                continue
            data = [(i, t) for i, t in enumerate(node.input) if not t.startswith("^")]
            if len(data) != len(function.signature.input_arg):
                continue
            first_capture = len(data) - len(concrete.bound_inputs)
            if first_capture < 0:
                continue
            for j, object_id in enumerate(concrete.bound_inputs):
                position, tensor = data[first_capture + j]
                old = node_of(tensor)
                if old in filled:
                    continue
                if unsafe is None:
                    unsafe = _handles_used_otherwise(graph, objects, _init_op_reach(meta_graph, nodes))
                if old in unsafe:
                    continue
                if object_id >= len(objects.nodes) or objects.nodes[object_id].WhichOneof("kind") != "variable":
                    continue
                key = keys.get(object_id)
                new = restored.get(key) if key is not None else None
                if key is None or new is None or not _same_variable(nodes.get(old), nodes.get(new)):
                    continue
                found.append(Rewiring(node.name, position, old, new, object_id, key))
        return found, nodes


def restored_handles(meta_graph: meta_graph_pb2.MetaGraphDef,
                     nodes: dict[str, node_def_pb2.NodeDef] | None = None) -> dict[str, str]:
    """checkpoint key -> the top-level VarHandleOp the restore op assigns it to (`nodes`: the
    graph's nodes by name, if read already).

    Only what the restore function proves: AssignVariableOp(arg, Identity*(RestoreV2:tensors:t))
    with tensor_names[t] a Const. A key assigned into two different handles is left out."""
    graph = meta_graph.graph_def
    restore = node_of(meta_graph.saver_def.restore_op_name) if meta_graph.saver_def.restore_op_name else ""
    if nodes is None:
        nodes = {n.name: n for n in graph.node[:]}
    call = nodes.get(restore)
    if call is None or call.op not in CALL_OPS or "f" not in call.attr:
        return {}
    function = next((f for f in graph.library.function if f.signature.name == call.attr["f"].func.name), None)
    if function is None:
        return {}
    call_inputs = _data_inputs(call.input)
    args = {a.name: i for i, a in enumerate(function.signature.input_arg)}
    if len(call_inputs) != len(args):
        return {}
    body_nodes = function.node_def[:]
    body = {n.name: n for n in body_nodes}
    key_lists: dict[str, list[bytes] | None] = {}  # (each RestoreV2's tensor_names, read once)
    found: dict[str, str] = {}
    ambiguous: set[str] = set()
    for assign in body_nodes:
        if assign.op != "AssignVariableOp":
            continue
        data = _data_inputs(assign.input)
        if len(data) < 2:
            continue
        resource, value = data[:2]
        if resource not in args:
            continue
        key = _restored_key(value, body, key_lists)
        if key is None:
            continue
        handle = node_of(call_inputs[args[resource]])
        if nodes.get(handle) is None or nodes[handle].op != "VarHandleOp":
            continue
        if found.get(key, handle) != handle:
            ambiguous.add(key)
        found[key] = handle
    return {k: v for k, v in found.items() if k not in ambiguous}


def _restored_key(tensor: str, body: dict[str, node_def_pb2.NodeDef],
                  key_lists: dict[str, list[bytes] | None] | None = None) -> str | None:
    """The checkpoint key a function-body tensor holds, if it is RestoreV2's output through Identity
    nodes. `key_lists`: each RestoreV2 node's tensor_names (None: not a Const), as read so far."""
    key_lists = {} if key_lists is None else key_lists
    for _ in range(len(body) + 1):
        parts = tensor.split(":")
        node = body.get(parts[0])
        if node is None:
            return None
        if node.op == "Identity":
            tensor = _data_inputs(node.input)[0]
            continue
        if node.op != "RestoreV2" or len(parts) != 3 or parts[1] != "tensors":
            return None
        index = int(parts[2])
        if parts[0] in key_lists:
            values = key_lists[parts[0]]
        else:
            names = body.get(node_of(_data_inputs(node.input)[1]))
            values = key_lists[parts[0]] = (None if names is None or names.op != "Const" or "value" not in names.attr
                                            else names.attr["value"].tensor.string_val[:])
        if values is None:
            return None
        return values[index].decode("utf-8", "replace") if index < len(values) else None
    return None


def _checkpoint_keys(checkpoint: trackable_object_graph_pb2.TrackableObjectGraph) -> dict[int, str]:
    """object id -> checkpoint key of its value (object ids are the object graph's node ids)."""
    keys: dict[int, str] = {}
    for object_id, obj in enumerate(checkpoint.nodes):
        for attribute in obj.attributes:
            if attribute.name == VALUE_ATTRIBUTE:
                keys[object_id] = attribute.checkpoint_key
    return keys


def _same_variable(old: node_def_pb2.NodeDef | None, new: node_def_pb2.NodeDef | None) -> bool:
    """Both VarHandleOps of the same dtype and shape (what the restore writes fits what the call reads)."""
    if old is None or new is None or old.op != "VarHandleOp" or new.op != "VarHandleOp":
        return False
    return all(old.attr[a].SerializeToString(deterministic=True) == new.attr[a].SerializeToString(deterministic=True)
               for a in ("dtype", "shape"))


def _handles_used_otherwise(graph: graph_pb2.GraphDef, objects: saved_object_graph_pb2.SavedObjectGraph,
                            init_reach: set[str]) -> set[str]:
    """Handles that a top-level node other than a reader or a call of a bound concrete function
    uses, or that a node the init op runs uses: something the C++ loader may run could write
    them, so they are never rewired away from."""
    bound = set(objects.concrete_functions)
    unsafe: set[str] = set()
    for node in graph.node:
        if node.name in init_reach:
            unsafe.update(node_of(t) for t in node.input)
            continue
        if node.op in READERS:
            continue
        if node.op in CALL_OPS and "f" in node.attr and node.attr["f"].func.name in bound:
            continue
        unsafe.update(node_of(t) for t in node.input)
    return unsafe


def _init_op_reach(meta_graph: meta_graph_pb2.MetaGraphDef, nodes: dict[str, node_def_pb2.NodeDef]) -> set[str]:
    """Every top-level node the C++ loader's init op (`__saved_model_init_op`) runs."""
    signature = meta_graph.signature_def.get(INIT_OP_SIGNATURE)
    if signature is None:
        return set()
    todo = [node_of(t.name) for t in signature.outputs.values()]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name not in nodes:
            continue
        seen.add(name)
        todo.extend(node_of(t) for t in nodes[name].input)
    return seen


WIRE_CAPTURES_TO_RESTORED = WireCapturesToRestored()
