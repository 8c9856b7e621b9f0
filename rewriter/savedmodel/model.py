"""A whole SavedModel as scopes: each MetaGraphDef's graph plus every function of its library."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import networkx as nx

from rewriter.protos import function_pb2, op_def_pb2
from rewriter.protos.node_def_pb2 import NodeDef
from rewriter.protos.op_def_pb2 import OpDef
from rewriter.protos import meta_graph_pb2, saved_model_pb2
from rewriter.protos.saved_object_graph_pb2 import SavedObjectGraph

from rewriter.errors import BadInput
from rewriter.savedmodel.messages import copy_except, has_unknown_fields
from rewriter.savedmodel.node_reading import NodeKinds, NodeReading, attr_functions, read_attrs
from rewriter.savedmodel.graph_model import (
    node_of,
    resolve_return,
    GraphModelError,
    Scope,
    check_function,
    check_nodes,
    fill_nodes,
    function_from_scope,
    graph_def_from_scope,
    scope_from_function,
    scope_from_graph_def,
)



@dataclass
class MetaGraphScopes:
    index: int
    tags: list[str]
    graph: Scope
    functions: list[Scope]

    @property
    def scopes(self) -> list[Scope]:
        return [self.graph, *self.functions]

    def signatures(self) -> dict[str, OpDef]:
        """Function name -> its signature (an OpDef), as seen by call nodes."""
        return {scope.name: scope.proto.signature for scope in self.functions}


def meta_graph_label(meta_graph: meta_graph_pb2.MetaGraphDef, index: int) -> str:
    tags = ",".join(sorted(meta_graph.meta_info_def.tags)) or f"#{index}"
    return tags


def build_scopes(proto: saved_model_pb2.SavedModel) -> list[MetaGraphScopes]:
    result = []
    for index, meta_graph in enumerate(proto.meta_graphs):
        label = meta_graph_label(meta_graph, index)
        try:
            graph = scope_from_graph_def(label, meta_graph.graph_def)
            functions = [scope_from_function(f) for f in meta_graph.graph_def.library.function]
        except GraphModelError as error:
            raise BadInput(f"saved_model.pb: {error}") from None
        _check_library(label, meta_graph, graph, functions)
        result.append(MetaGraphScopes(index, list(meta_graph.meta_info_def.tags), graph, functions))
    return result


# Told of each scope's readings as check_model makes them: (MetaGraphDef index, the scope's
# where(), its NodeReadings). The pipeline runs the validator on the input there, so every node is
# read from protobuf once for both.
ScopeReader = Callable[[int, str, list[NodeReading]], None]


def check_model(proto: saved_model_pb2.SavedModel, on_scope: ScopeReader | None = None) -> None:
    """Raise the BadInput that build_scopes would raise, without building any graph model (plan()
    builds one only for a scope a rule can match, one scope at a time).

    One pass over each scope's NodeDefs (read once: node_reading.read_nodes) answers whether
    check_nodes would pass it and which functions it calls; only a scope that would not pass goes
    through check_nodes / check_function, which raise the error building it would raise (the first
    scope in order that has one). `on_scope` gets the readings of each scope that passes."""
    kinds = NodeKinds()  # (alike nodes of every scope share their attrs' reading)
    for index, meta_graph in enumerate(proto.meta_graphs):
        label = meta_graph_label(meta_graph, index)
        graph_def = meta_graph.graph_def
        library_protos = graph_def.library.function
        library = {function.signature.name for function in library_protos}
        calls: dict[str, set[str]] = {}
        try:
            readings = kinds.read_nodes(graph_def.node[:])
            graph_ok, graph_calls, _ = _scan_nodes(readings, set(), False, library)
            if not graph_ok:
                check_nodes("graph", label, graph_def.node, [])
            if on_scope is not None:
                on_scope(index, f"graph {label}", readings)
            for function in library_protos:
                signature = function.signature
                args = {arg.name for arg in signature.input_arg}
                readings = kinds.read_nodes(function.node_def[:])
                ok, calls[signature.name], names = _scan_nodes(readings, args, True, library)
                if not ok or not _returns_resolve(function, args, names):
                    check_function(function)
                if on_scope is not None:
                    on_scope(index, f"function {signature.name}", readings)
            del readings
        except GraphModelError as error:
            raise BadInput(f"saved_model.pb: {error}") from None
        # The node lists stay protobuf's (no wrapper per NodeDef): with `calls` known, _check_library
        # reads nodes only to word a missing function's error.
        graph = ProtoScope(f"graph {label}", graph_def.node, name=label)
        functions = [ProtoScope(f"function {f.signature.name}", f.node_def, name=f.signature.name, is_function=True)
                     for f in library_protos]
        _check_library(label, meta_graph, graph, functions, calls, graph_calls)


def _scan_nodes(readings: list[NodeReading], args: set[str], is_function: bool,
                library: set[str]) -> tuple[bool, set[str], set[str]]:
    """(whether check_nodes passes these nodes as far as their names and inputs go, the functions
    they call as functions_called_by finds them, their names), in one pass over their readings."""
    names: set[str] = set()
    unique = True
    texts: list[str] = []  # every input text, resolved below in bulk
    called: set[str] = set()
    for _, name, op, inputs, kind in readings:
        if name in names:
            unique = False
        names.add(name)
        texts.extend(inputs)
        if op in library:
            called.add(op)
        if kind.functions:
            called.update(kind.functions)
    return unique and names.issuperset(_node_sources(texts, args, is_function)), called, names


def _node_sources(texts: list[str], args: set[str], is_function: bool) -> set[str]:
    """The node names these input texts read, as graph_model.resolve_input resolves them one by
    one (two set comprehensions instead of a call per input): a control input (^x) or a bare name
    reads the whole rest, which in a function is the arg of that name if there is one; a text with
    a port (x:0, x:y:0) reads node x."""
    whole = {text[1:] if text[:1] == "^" else text for text in texts if text[:1] == "^" or ":" not in text}
    ported = {text.partition(":")[0] for text in texts if text[:1] != "^" and ":" in text}
    return ported | (whole - args if is_function else whole)


def _returns_resolve(function: function_pb2.FunctionDef, args: set[str], names: set[str]) -> bool:
    """Whether check_function passes the function's return values and control returns
    (`names`: the names of its nodes)."""
    returns = function.ret
    for out_name in returns:
        producer, _ = resolve_return(returns[out_name], args)
        if isinstance(producer, str) and producer not in names:
            return False
    control_returns = function.control_ret
    return all(control_returns[out_name] in names for out_name in control_returns)


def _check_library(label: str, meta_graph: meta_graph_pb2.MetaGraphDef, graph: "Scope | ProtoScope",
                   functions: "list[Scope] | list[ProtoScope]", calls: dict[str, set[str]] | None = None,
                   graph_calls: set[str] | None = None) -> None:
    """`calls` (each function's called functions) and `graph_calls` (the graph's), when known already."""
    names = [f.name for f in functions]
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise BadInput(f"saved_model.pb: function {duplicate!r} is defined twice in the library")
    _check_calls(label, graph, functions, calls, graph_calls)
    _check_object_graph(label, meta_graph, set(names))


def functions_called_by(nodes: Iterable[NodeDef], library: set[str]) -> set[str]:
    """The functions these nodes call: ops named in `library`, and every func attr's function
    (which may be missing from the library: _check_calls reports that)."""
    called: set[str] = set()
    for node in nodes:
        _add_calls(node, library, called)
    return called


def functions_reached(functions: dict[str, function_pb2.FunctionDef], start: Iterable[str]) -> set[str]:
    """The functions of `functions` that `start` names, and every one they reach through calls."""
    library = set(functions)
    frontier = set(start) & library
    reached: set[str] = set()
    while frontier:
        name = frontier.pop()
        reached.add(name)
        frontier |= (functions_called_by(functions[name].node_def, library) & library) - reached
    return reached


def _add_calls(node: NodeDef, library: set[str], called: set[str]) -> None:
    """Add the functions one node calls to `called` (functions_called_by, node by node)."""
    if node.op in library:
        called.add(node.op)
    called.update(attr_functions(read_attrs(node)))


def _called_functions(scope: "Scope | ProtoScope", library: set[str]) -> set[str]:
    return functions_called_by((node for _, node in scope.nodes()), library)


def _check_calls(label: str, graph: "Scope | ProtoScope", functions: "list[Scope] | list[ProtoScope]",
                 known_calls: dict[str, set[str]] | None = None, graph_calls: set[str] | None = None) -> None:
    """Every called function exists, and no function reaches itself (TF cannot instantiate that).
    `known_calls` / `graph_calls`: what _called_functions gives for the functions / the graph, if known."""
    library = {scope.name for scope in functions}
    if known_calls is not None:
        calls = {scope.name: known_calls[scope.name] for scope in functions}
    else:
        calls = {scope.name: _called_functions(scope, library) for scope in functions}
    for scope in [graph, *functions]:
        if scope.is_function:
            called = calls[scope.name]
        else:
            called = graph_calls if graph_calls is not None else _called_functions(scope, library)
        for name in sorted(called):
            if name not in library and _looks_like_function_call(scope, name):
                raise BadInput(f"saved_model.pb: {scope.where()} calls function {name!r}, which the library lacks")
    call_graph = nx.DiGraph([(caller, callee) for caller, callees in calls.items() for callee in callees if callee in calls])
    try:
        cycle = nx.find_cycle(call_graph)
    except nx.NetworkXNoCycle:
        return
    path = " -> ".join([edge[0] for edge in cycle] + [cycle[0][0]])
    raise BadInput(f"saved_model.pb (meta graph {label}): function call cycle {path}")


def _check_object_graph(label: str, meta_graph: meta_graph_pb2.MetaGraphDef, library: set[str]) -> None:
    """The object graph names concrete functions; TF's loader looks each up in the library.

    A name the library lacks makes the model unloadable (and made TF's fingerprinting raise
    an undocumented exception while writing, found by tools/fuzz_loader.py).
    """
    from rewriter.savedmodel.object_graph import used_concrete_functions

    object_graph = meta_graph.object_graph_def
    named = sorted(set(object_graph.concrete_functions) | used_concrete_functions(object_graph))
    for name in named:
        if name not in library:
            raise BadInput(
                f"saved_model.pb (meta graph {label}): the object graph names function {name!r}, which the library lacks"
            )
    # Objects refer to each other by index; TF's loader indexes with them unchecked.
    count = len(object_graph.nodes)
    for where, node_id in _object_references(object_graph):
        if not 0 <= node_id < count:
            raise BadInput(
                f"saved_model.pb (meta graph {label}): {where} refers to object {node_id}, "
                f"but the object graph has {count} objects"
            )
    for index, node in enumerate(object_graph.nodes):
        if node.WhichOneof("kind") == "asset" and not 0 <= node.asset.asset_file_def_index < len(meta_graph.asset_file_def):
            raise BadInput(
                f"saved_model.pb (meta graph {label}): asset object {index} refers to asset file "
                f"{node.asset.asset_file_def_index}, but the MetaGraphDef lists {len(meta_graph.asset_file_def)}"
            )


def _object_references(object_graph: SavedObjectGraph) -> Iterator[tuple[str, int]]:
    """(where, node id) of every reference from one object of the object graph to another."""
    for index, node in enumerate(object_graph.nodes):
        for reference in [*node.children, *node.dependencies]:
            yield f"object {index} (child {reference.local_name!r})", reference.node_id
        for slot in node.slot_variables:
            yield f"object {index} (slot {slot.slot_name!r})", slot.original_variable_node_id
            yield f"object {index} (slot {slot.slot_name!r})", slot.slot_variable_node_id
        for key, saveable in node.saveable_objects.items():
            yield f"object {index} (saveable {key!r})", saveable.save_function
            yield f"object {index} (saveable {key!r})", saveable.restore_function
    for name, function in object_graph.concrete_functions.items():
        for bound in function.bound_inputs:
            yield f"concrete function {name!r} (bound input)", bound


def _looks_like_function_call(scope: "Scope | ProtoScope", name: str) -> bool:
    # func attrs name functions; an op name in a func attr (rare) is not a missing function.
    for _, node in scope.nodes():
        for key, value in node.attr.items():
            if value.WhichOneof("value") == "func" and value.func.name == name:
                return True
            if value.WhichOneof("value") == "list" and any(f.name == name for f in value.list.func):
                return True
    return False


def external_names(meta_graph: meta_graph_pb2.MetaGraphDef) -> set[str]:
    """Node names of the graph that the MetaGraphDef refers to from outside it."""
    names: set[str] = set()

    def add_tensor(tensor_name: str) -> None:
        if tensor_name:
            names.add(node_of(tensor_name))

    def add_info(info: meta_graph_pb2.TensorInfo) -> None:
        add_tensor(info.name)
        add_tensor(info.coo_sparse.values_tensor_name)
        add_tensor(info.coo_sparse.indices_tensor_name)
        add_tensor(info.coo_sparse.dense_shape_tensor_name)
        for component in info.composite_tensor.components:
            add_info(component)

    for signature in meta_graph.signature_def.values():
        for info in list(signature.inputs.values()) + list(signature.outputs.values()):
            add_info(info)
    saver = meta_graph.saver_def
    for tensor_name in (saver.filename_tensor_name, saver.save_tensor_name, saver.restore_op_name):
        add_tensor(tensor_name)
    for asset in meta_graph.asset_file_def:
        add_info(asset.tensor_info)
    for collection in meta_graph.collection_def.values():
        for value in collection.node_list.value:
            add_tensor(value)
    return names


def skeleton_of(proto: saved_model_pb2.SavedModel) -> saved_model_pb2.SavedModel | None:
    """A copy of `proto` without the nodes and functions of its graphs: write_back puts them in.

    A deepcopy would copy every constant once more, only for write_back to replace the graphs
    (and protobuf's arenas keep what a message held until the whole message goes). None if a
    message on the way holds unknown fields, which a field-by-field copy would lose: deep-copy then.
    """
    containers = [proto] + [m for m in proto.meta_graphs] + [m.graph_def for m in proto.meta_graphs]
    containers += [m.graph_def.library for m in proto.meta_graphs]
    if any(has_unknown_fields(m) for m in containers):
        return None
    out = saved_model_pb2.SavedModel()
    copy_except(proto, out, ("meta_graphs",))
    for meta_graph in proto.meta_graphs:
        copied = out.meta_graphs.add()
        copy_except(meta_graph, copied, ("graph_def",))
        if meta_graph.HasField("graph_def"):
            copied.graph_def.SetInParent()
            copy_except(meta_graph.graph_def, copied.graph_def, ("node", "library"))
            if meta_graph.graph_def.HasField("library"):
                copied.graph_def.library.SetInParent()
                copy_except(meta_graph.graph_def.library, copied.graph_def.library, ("function",))
    return out


def fill_skeleton(skeleton: saved_model_pb2.SavedModel, original: saved_model_pb2.SavedModel,
                  models: list[MetaGraphScopes], touched: set[str]) -> None:
    """Put the graphs into a skeleton_of(original): the scopes in `touched` (their where()) from the
    graph model, the others copied from `original` as they were (an untouched scope serializes to
    the same bytes: rebuilding it would only be work)."""
    for model in models:
        graph_def, source = skeleton.meta_graphs[model.index].graph_def, original.meta_graphs[model.index].graph_def
        if model.graph.where() in touched:
            fill_nodes(graph_def.node, model.graph)
        else:
            graph_def.node.extend(source.node)
        functions = {f.signature.name: f for f in source.library.function}
        for scope in model.functions:
            if scope.where() in touched or scope.name not in functions:
                graph_def.library.function.add().CopyFrom(function_from_scope(scope))
            else:
                graph_def.library.function.add().CopyFrom(functions[scope.name])


def write_back(proto: saved_model_pb2.SavedModel, models: list[MetaGraphScopes], touched: set[str] | None = None) -> None:
    """Put the scopes back into their MetaGraphDefs (in place).

    `touched`: the where() of every scope a rewrite may have changed; the others are left as
    they are in `proto` (from which they were built: an untouched scope serializes to the same
    bytes, so rebuilding it is only work). None: every scope.
    """
    for model in models:
        meta_graph = proto.meta_graphs[model.index]
        library_protos = meta_graph.graph_def.library.function
        names_kept = [f.signature.name for f in library_protos] == [scope.name for scope in model.functions]
        if touched is not None and names_kept and model.graph.where() not in touched:
            for position, scope in enumerate(model.functions):
                if scope.where() in touched:
                    library_protos[position].CopyFrom(function_from_scope(scope))
            continue
        library = [function_from_scope(scope) for scope in model.functions]
        meta_graph.graph_def.CopyFrom(graph_def_from_scope(model.graph, library))


@dataclass
class ProtoScope:
    """A graph or function as validator.validate_scopes reads it (where(), nodes() in order, and
    data_inputs()), straight from the NodeDefs of a proto: no networkx graph to build."""

    label: str
    node_defs: Sequence[NodeDef]  # a list, or the repeated field itself
    _by_name: dict[str, NodeDef] | None = field(default=None, repr=False)
    name: str = ""  # the function's or the MetaGraphDef's name, as Scope.name
    is_function: bool = False

    def where(self) -> str:
        return self.label

    def nodes(self) -> Iterator[tuple[str, NodeDef]]:
        for node in self.node_defs:
            yield node.name, node

    def data_inputs(self, name: str) -> list[tuple[str, str]]:
        if self._by_name is None:
            self._by_name = {node.name: node for node in self.node_defs}
        return [(text, "") for text in self._by_name[name].input if not text.startswith("^")]


@dataclass
class ProtoModel:
    """A MetaGraphDef's scopes as ProtoScopes (as MetaGraphScopes holds them as graph models)."""

    index: int
    label: str
    graph: ProtoScope
    functions: list[ProtoScope]
    library: dict[str, OpDef]  # function name -> its signature

    @property
    def scopes(self) -> list[ProtoScope]:
        return [self.graph, *self.functions]

    def signatures(self) -> dict[str, OpDef]:
        return self.library


def proto_models(proto: saved_model_pb2.SavedModel) -> list[ProtoModel]:
    """Per MetaGraphDef: its graph and functions as ProtoScopes, labelled as Scope.where() labels them.
    They read the proto's node lists as they are: the proto must not change while they are used."""
    result = []
    for index, meta_graph in enumerate(proto.meta_graphs):
        label = meta_graph_label(meta_graph, index)
        library = meta_graph.graph_def.library.function
        # The node lists stay protobuf's repeated fields: a list of every NodeDef's wrapper, made for
        # every scope up front, cost as much as a pass of the validator and stayed in memory.
        graph = ProtoScope(f"graph {label}", meta_graph.graph_def.node, name=label)
        functions = [ProtoScope(f"function {f.signature.name}", f.node_def, name=f.signature.name, is_function=True)
                     for f in library]
        result.append(ProtoModel(index, label, graph, functions, {f.signature.name: f.signature for f in library}))
    return result


def proto_scopes(proto: saved_model_pb2.SavedModel) -> list[tuple[int, list[ProtoScope], dict[str, OpDef]]]:
    """Per MetaGraphDef: its index, its graph and functions as ProtoScopes (labelled as Scope.where()
    labels them), and the signatures of its library."""
    return [(model.index, model.scopes, model.library) for model in proto_models(proto)]
