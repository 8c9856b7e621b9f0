"""Objects checkpointed through saved save/restore functions, combined into one for TF 2.3's Python loader.

A SavedObject with `saveable_objects` (a MutableHashTable, a DenseHashTable, any object whose
checkpoint values come from traced functions) is revived by TF 2.3's `tf.saved_model.load` as a
RestoredSaveableObject (tensorflow/python/training/saving/saveable_object_util.py), whose `op` is
None. Its checkpoint restore gathers every object's saveables in one pass
(base.Trackable._restore_from_checkpoint_position) and checks them with `_add_saveable`, which
rejects a second saveable with the same `op`: with two such objects TF 2.3 fails, "The same
saveable will be restored with two names". Its C++ loader runs the graph's restore op and is fine.

TF 2.3 restores exactly one such object, whatever its functions do. So all of them are folded into
one: the first object (by node id) keeps one `saveable_objects` entry whose functions are new:

- the combined save function calls each object's own save function with that object's own
  checkpoint key (a Const; the key TF passes in is not used) and returns all their
  (name, slice_spec, tensor) triples, in object order: the specs are the same checkpoint tensor
  names the separate functions gave;
- the combined restore function takes those tensors in the same order and calls each object's own
  restore function with its share, returning after all of them ran.

The other objects lose their `saveable_objects` and their attribute in the checkpoint's object
graph (it is restored through the first one now). Every checkpoint tensor is read into the same
table by the same restore function as before, so what each table holds after loading is the same;
saving again writes the same tensor names. Only the object graph and the function library change;
the graphs the C++ loader runs do not.
"""
from __future__ import annotations

from dataclasses import dataclass

from rewriter.protos import (
    function_pb2,
    meta_graph_pb2,
    op_def_pb2,
    saved_object_graph_pb2,
    struct_pb2,
    trackable_object_graph_pb2,
    types_pb2,
)

SAVE_PREFIX = "__inference_tfdowngrade_combined_save_fn"
RESTORE_PREFIX = "__inference_tfdowngrade_combined_restore_fn"


@dataclass(frozen=True)
class _Saveable:
    node_id: int
    name: str          # the saveable_objects key (and the checkpoint attribute's name)
    key: str           # the checkpoint key of that attribute
    save: str          # concrete function names
    restore: str


@dataclass(frozen=True)
class Combined:
    carrier: int                    # the object that now holds the combined saveable
    folded: tuple[tuple[int, str], ...]  # (node id, saveable name) of every object folded in
    save: str
    restore: str

    def line(self) -> str:
        others = ", ".join(f"object {n} ({name})" for n, name in self.folded)
        return f"{len(self.folded)} saveable(s) ({others}) restored through object {self.carrier}: {self.save}, {self.restore}"


def _concrete_name(graph: saved_object_graph_pb2.SavedObjectGraph, node_id: int) -> str | None:
    if node_id >= len(graph.nodes):
        return None
    node = graph.nodes[node_id]
    kind = node.WhichOneof("kind")
    if kind == "bare_concrete_function":
        return node.bare_concrete_function.concrete_function_name
    if kind == "function" and len(node.function.concrete_functions) == 1:
        return node.function.concrete_functions[0]
    return None


def plan(meta_graph: meta_graph_pb2.MetaGraphDef,
         checkpoint: trackable_object_graph_pb2.TrackableObjectGraph | None) -> list[_Saveable] | None:
    """The saveables to combine, or None when there are fewer than two or a link is missing."""
    if checkpoint is None:
        return None
    graph = meta_graph.object_graph_def
    functions = {f.signature.name: f for f in meta_graph.graph_def.library.function}
    found: list[_Saveable] = []
    for node_id, node in enumerate(graph.nodes):
        for name in sorted(node.saveable_objects):
            entry = node.saveable_objects[name]
            save, restore = _concrete_name(graph, entry.save_function), _concrete_name(graph, entry.restore_function)
            if save is None or restore is None or save not in functions or restore not in functions:
                return None
            if save not in graph.concrete_functions or restore not in graph.concrete_functions:
                return None
            if node_id >= len(checkpoint.nodes):
                return None
            keys = [a.checkpoint_key for a in checkpoint.nodes[node_id].attributes if a.name == name]
            if len(keys) != 1:
                return None
            found.append(_Saveable(node_id, name, keys[0], save, restore))
    return found if len(found) >= 2 else None


def combine(meta_graph: meta_graph_pb2.MetaGraphDef,
            checkpoint: trackable_object_graph_pb2.TrackableObjectGraph | None) -> Combined | None:
    """Fold every saveable into the first one (in place, in both object graphs); None if not applicable."""
    saveables = plan(meta_graph, checkpoint)
    if saveables is None or checkpoint is None:
        return None
    library = meta_graph.graph_def.library
    graph = meta_graph.object_graph_def
    functions = {f.signature.name: f for f in library.function}
    taken = set(functions)
    save_name = _unique(SAVE_PREFIX, taken)
    restore_name = _unique(RESTORE_PREFIX, taken)
    save_fn, save_bound, save_outputs = _combined_save(save_name, saveables, functions, graph)
    restore_fn, restore_bound, restore_inputs = _combined_restore(restore_name, saveables, functions, graph)
    library.function.extend([save_fn, restore_fn])
    first = graph.concrete_functions[saveables[0].save]
    save_concrete = graph.concrete_functions[save_name]
    save_concrete.canonicalized_input_signature.CopyFrom(first.canonicalized_input_signature)
    save_concrete.output_signature.list_value.values.extend(save_outputs)
    save_concrete.bound_inputs.extend(save_bound)
    restore_concrete = graph.concrete_functions[restore_name]
    args = restore_concrete.canonicalized_input_signature.tuple_value.values.add().tuple_value
    args.values.extend(restore_inputs)
    restore_concrete.canonicalized_input_signature.tuple_value.values.add().dict_value.SetInParent()
    restore_concrete.output_signature.CopyFrom(graph.concrete_functions[saveables[0].restore].output_signature)
    restore_concrete.bound_inputs.extend(restore_bound)
    save_node, restore_node = len(graph.nodes), len(graph.nodes) + 1
    for name, positional, keywords in ((save_name, 1, ["checkpoint_key"]),
                                       (restore_name, len(restore_inputs), [s.name for s in
                                                                            _spec_names(restore_inputs)])):
        bare = graph.nodes.add().bare_concrete_function
        bare.concrete_function_name = name
        bare.argument_keywords.extend(keywords)
        bare.allowed_positional_arguments = positional
    carrier = saveables[0]
    for s in saveables:
        del graph.nodes[s.node_id].saveable_objects[s.name]
        attributes = checkpoint.nodes[s.node_id].attributes
        if s is not carrier:
            keep = [a for a in attributes if a.name != s.name]
            del attributes[:]
            attributes.extend(keep)
    entry = graph.nodes[carrier.node_id].saveable_objects[carrier.name]
    entry.save_function, entry.restore_function = save_node, restore_node
    return Combined(carrier.node_id, tuple((s.node_id, s.name) for s in saveables), save_name, restore_name)


def _spec_names(values: list[struct_pb2.StructuredValue]) -> list[struct_pb2.TensorSpecProto]:
    return [v.tensor_spec_value for v in values]


def _unique(prefix: str, taken: set[str]) -> str:
    index = 0
    while f"{prefix}_{index}" in taken:
        index += 1
    name = f"{prefix}_{index}"
    taken.add(name)
    return name


def _captures(function: function_pb2.FunctionDef, bound: int) -> list[op_def_pb2.OpDef.ArgDef]:
    args = list(function.signature.input_arg)
    return args[len(args) - bound:] if bound else []


def _call(fn: function_pb2.FunctionDef, node_name: str, callee: function_pb2.FunctionDef, inputs: list[str]) -> None:
    call = fn.node_def.add(name=node_name, op="StatefulPartitionedCall")
    call.input.extend(inputs)
    call.attr["f"].func.name = callee.signature.name
    call.attr["Tin"].list.type.extend(a.type for a in callee.signature.input_arg)
    call.attr["Tout"].list.type.extend(a.type for a in callee.signature.output_arg)
    for attr in ("config", "config_proto", "executor_type"):
        call.attr[attr].s = b""


def _combined_save(name: str, saveables: list[_Saveable], functions: dict[str, function_pb2.FunctionDef],
                   graph: saved_object_graph_pb2.SavedObjectGraph) -> tuple[
                       function_pb2.FunctionDef, list[int], list[struct_pb2.StructuredValue]]:
    fn = function_pb2.FunctionDef()
    fn.signature.name = name
    fn.signature.is_stateful = True
    fn.signature.input_arg.add(name="checkpoint_key", type=types_pb2.DT_STRING)
    bound: list[int] = []
    outputs: list[struct_pb2.StructuredValue] = []
    for i, s in enumerate(saveables):
        callee, concrete = functions[s.save], graph.concrete_functions[s.save]
        captures = []
        for j, arg in enumerate(_captures(callee, len(concrete.bound_inputs))):
            captures.append(f"capture_{i}_{j}")
            fn.signature.input_arg.add(name=captures[-1], type=arg.type)
        bound.extend(concrete.bound_inputs)
        key = fn.node_def.add(name=f"key_{i}", op="Const")
        key.attr["dtype"].type = types_pb2.DT_STRING
        key.attr["value"].tensor.dtype = types_pb2.DT_STRING
        key.attr["value"].tensor.tensor_shape.SetInParent()
        key.attr["value"].tensor.string_val.append(s.key.encode("utf-8"))
        _call(fn, f"save_{i}", callee, [f"key_{i}:output:0", *captures])
        for k, out in enumerate(callee.signature.output_arg):
            ret = f"save_{i}_{k}"
            fn.signature.output_arg.add(name=ret, type=out.type)
            fn.ret[ret] = f"save_{i}:output:{k}"
        for value in concrete.output_signature.list_value.values:
            renamed = struct_pb2.StructuredValue()
            renamed.CopyFrom(value)
            for field_name, field in renamed.dict_value.fields.items():
                field.tensor_spec_value.name = f"tensor_{len(outputs)}_{field_name}"
            outputs.append(renamed)
        fn.signature.control_output.append(f"save_{i}")
        fn.control_ret[f"save_{i}"] = f"save_{i}"
    return fn, bound, outputs


def _combined_restore(name: str, saveables: list[_Saveable], functions: dict[str, function_pb2.FunctionDef],
                      graph: saved_object_graph_pb2.SavedObjectGraph) -> tuple[
                          function_pb2.FunctionDef, list[int], list[struct_pb2.StructuredValue]]:
    fn = function_pb2.FunctionDef()
    fn.signature.name = name
    fn.signature.is_stateful = True
    bound: list[int] = []
    inputs: list[struct_pb2.StructuredValue] = []
    calls: list[tuple[function_pb2.FunctionDef, list[str]]] = []
    capture_args: list[tuple[str, int]] = []
    for i, s in enumerate(saveables):
        callee, concrete = functions[s.restore], graph.concrete_functions[s.restore]
        args = list(callee.signature.input_arg)
        n_tensors = len(args) - len(concrete.bound_inputs)
        own = []
        for j, arg in enumerate(args[:n_tensors]):
            arg_name = f"restored_tensors_{len(inputs)}"
            fn.signature.input_arg.add(name=arg_name, type=arg.type)
            spec = struct_pb2.StructuredValue()
            spec.tensor_spec_value.name = arg_name
            spec.tensor_spec_value.shape.unknown_rank = True
            spec.tensor_spec_value.dtype = arg.type
            inputs.append(spec)
            own.append(arg_name)
        captures = []
        for j, arg in enumerate(args[n_tensors:]):
            captures.append(f"capture_{i}_{j}")
            capture_args.append((captures[-1], arg.type))
        bound.extend(concrete.bound_inputs)
        calls.append((callee, own + captures))
    for arg_name, dtype in capture_args:  # captures come after every explicit argument
        fn.signature.input_arg.add(name=arg_name, type=dtype)
    for i, (callee, call_inputs) in enumerate(calls):
        _call(fn, f"restore_{i}", callee, call_inputs)
        fn.signature.control_output.append(f"restore_{i}")
        fn.control_ret[f"restore_{i}"] = f"restore_{i}"
    done = fn.node_def.add(name="done", op="Const")
    done.attr["dtype"].type = types_pb2.DT_INT32
    done.attr["value"].tensor.dtype = types_pb2.DT_INT32
    done.attr["value"].tensor.tensor_shape.SetInParent()
    done.attr["value"].tensor.int_val.append(1)
    identity = fn.node_def.add(name="identity", op="Identity")
    identity.input.extend(["done:output:0", *[f"^restore_{i}" for i in range(len(calls))]])
    identity.attr["T"].type = types_pb2.DT_INT32
    fn.signature.output_arg.add(name="identity", type=types_pb2.DT_INT32)
    fn.ret["identity"] = "identity:output:0"
    return fn, bound, inputs
