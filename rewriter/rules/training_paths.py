"""Functions nothing that serves or restores the model runs: their ops need no older form.

A Keras layer saves a call function per mode; a training-mode one (RandomZoom drawing from a
tf.random.Generator: RngReadAndSkip) may hold ops the target release lacks, although no signature
ever runs it. TF's Python loader still imports every function of the library, so such a function
cannot simply stay. When a call-graph proof shows that nothing the target runs reaches it (no
node of a MetaGraph's GraphDef, which holds the signatures' and the saver's calls, and no function
the object graph has the loader run at load time: resource creators/initializers and the
save/restore functions of saveable objects), its body is replaced by one that fails with an error
naming tfdowngrade and the reason. Every signature stays exact; calling that function in the
target fails loudly instead of computing something else. Each such function is reported; under
--strict the model is refused instead.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from rewriter.protos import function_pb2, node_def_pb2, types_pb2
from rewriter.protos import meta_graph_pb2, saved_model_pb2

from rewriter.savedmodel import attr_values
from rewriter.savedmodel.model import functions_called_by, functions_reached
from rewriter.findings import Finding
from rewriter.targets.releases import Release

STUB_PREFIX = "tfdowngrade_unavailable"
# Outputs a stub cannot make up a value for (a Const cannot hold them): such functions stay refused.
NO_CONST = frozenset({types_pb2.DT_RESOURCE, types_pb2.DT_VARIANT})


@dataclass
class Stubbed:
    # function -> what of it the target lacked: ops, and attrs as "Op's attr name"
    functions: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

# A note names at most this many functions (a Keras application holds hundreds of training-mode
# call functions, each with the same lack: one note, not 384 lines).
NAMED_FUNCTIONS = 3


def _calls(function_nodes: Iterable[node_def_pb2.NodeDef], library: set[str]) -> set[str]:
    return functions_called_by(function_nodes, library) & library


def _loaded_at_load_time(meta_graph: meta_graph_pb2.MetaGraphDef) -> set[str]:
    """Concrete functions the Python loader runs while loading: a resource's own functions
    (_create_resource, _initialize, _destroy_resource) and saveable objects' save/restore."""
    graph = meta_graph.object_graph_def
    run: set[str] = set()

    def functions_of(node_id: int) -> list[str]:
        if not 0 <= node_id < len(graph.nodes):
            return []
        obj = graph.nodes[node_id]
        kind = obj.WhichOneof("kind")
        if kind == "function":
            return list(obj.function.concrete_functions)
        if kind == "bare_concrete_function":
            return [obj.bare_concrete_function.concrete_function_name]
        return []

    for obj in graph.nodes:
        if obj.WhichOneof("kind") == "resource":
            for child in obj.children:
                run.update(functions_of(child.node_id))
        for saveable in obj.saveable_objects.values():
            run.update(functions_of(saveable.save_function))
            run.update(functions_of(saveable.restore_function))
    return run


def reached_functions(meta_graph: meta_graph_pb2.MetaGraphDef) -> set[str]:
    """Every function the GraphDef's nodes or the load-time functions reach, through calls."""
    by_name = {f.signature.name: f for f in meta_graph.graph_def.library.function}
    return functions_reached(by_name, _calls(meta_graph.graph_def.node, set(by_name)) | _loaded_at_load_time(meta_graph))


def _stub(function: function_pb2.FunctionDef, message: str) -> None:
    """Replace the body: an Assert on false carrying the message, then for each output a
    ParseTensor of that type that waits for it (so nothing is returned: the Assert fails first).
    ParseTensor's shape function leaves the shape unknown, so every shape a caller recorded for
    the function's outputs stays consistent at import."""
    del function.node_def[:]
    function.ret.clear()
    function.control_ret.clear()
    condition = function.node_def.add(name=f"{STUB_PREFIX}/condition", op="Const")
    condition.attr["dtype"].type = types_pb2.DT_BOOL
    condition.attr["value"].tensor.CopyFrom(attr_values.tensor_from_plain({"dtype": "DT_BOOL", "value": False}))
    text = function.node_def.add(name=f"{STUB_PREFIX}/message", op="Const")
    text.attr["dtype"].type = types_pb2.DT_STRING
    text.attr["value"].tensor.dtype = types_pb2.DT_STRING
    text.attr["value"].tensor.string_val.append(message.encode())
    check = function.node_def.add(name=f"{STUB_PREFIX}/assert", op="Assert",
                                  input=[f"{condition.name}:output:0", f"{text.name}:output:0"])
    check.attr["T"].list.type.append(types_pb2.DT_STRING)
    check.attr["summarize"].i = 3
    for index, arg in enumerate(function.signature.output_arg):
        never = function.node_def.add(name=f"{STUB_PREFIX}/output_{index}", op="ParseTensor",
                                      input=[f"{text.name}:output:0", f"^{check.name}"])
        never.attr["out_type"].type = arg.type
        function.ret[arg.name] = f"{never.name}:output:0"
    for index, name in enumerate(function.signature.control_output):
        # Control outputs must name distinct nodes.
        done = function.node_def.add(name=f"{STUB_PREFIX}/control_{index}", op="NoOp", input=[f"^{check.name}"])
        function.control_ret[name] = done.name


def stub_unreached(proto: saved_model_pb2.SavedModel, findings: list[Finding], target: Release) -> Stubbed:
    """Stub every function holding a finding that nothing run at serving or load time reaches,
    and whose outputs a Const can stand in for. Returns what was stubbed (the caller drops the
    findings of those functions)."""
    result = Stubbed()
    problems: dict[str, list[Finding]] = {}
    for finding in findings:
        if finding.where.startswith("function "):
            problems.setdefault(finding.where[len("function "):], []).append(finding)
    if not problems:
        return result
    # Findings name functions, not MetaGraphs: a function any MetaGraph reaches is reached.
    reached = set().union(*(reached_functions(mg) for mg in proto.meta_graphs))
    for meta_graph in proto.meta_graphs:
        for function in meta_graph.graph_def.library.function:
            name = function.signature.name
            if name not in problems or name in reached:
                continue
            if any(arg.type in NO_CONST or not arg.type for arg in function.signature.output_arg):
                continue
            lacks = sorted({f.lacking() for f in problems[name]})
            message = (f"tfdowngrade: {name} is not available in TensorFlow {target}: it runs {', '.join(lacks)}, "
                       f"which TensorFlow {target} lacks. No signature, save or restore function calls it (a "
                       "training-mode path), so the conversion replaced it with this error; the model's "
                       "signatures are exact.")
            _stub(function, message)
            result.functions[name] = lacks
    by_lack: dict[tuple[str, ...], list[str]] = {}
    for name, lacks in sorted(result.functions.items()):
        by_lack.setdefault(tuple(lacks), []).append(name)
    for lacked, names in by_lack.items():
        shown = ", ".join(names[:NAMED_FUNCTIONS]) + (f" and {len(names) - NAMED_FUNCTIONS} more" if len(names) > NAMED_FUNCTIONS else "")
        which = f"function {shown} holds" if len(names) == 1 else f"{len(names)} functions ({shown}) hold"
        result.notes.append(
            f"warning: {which} {', '.join(lacked)}, which TensorFlow {target} lacks; nothing a "
            "signature, the saver or the loader runs reaches it (a training-mode path), so its body now fails with "
            "an error naming tfdowngrade. --strict refuses such a model instead")
    return result
