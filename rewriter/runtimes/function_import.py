"""Turn every FunctionDef of a SavedModel into the GraphDef TF's Python loader would import.

TF's Python loader (`tf.saved_model.load`) imports EVERY function of the library, including
save/restore functions that serving never runs, through function_def_to_graph.py:
  - each input arg becomes a Placeholder (dtype from the arg; shape from the function's
    `_input_shapes` attr, else the arg's `_output_shapes`; `_`-prefixed arg attrs copied),
  - the body nodes are copied, and inputs 'node:out_arg:i' are renamed to 'node:flat_index'
    using the op's output args as the RUNNING release defines them (so we use the target
    release's registry, rewriter.targets.registry), or the callee's signature for function calls,
  - func-valued attrs must name a function of the library,
  - the graph's library holds the functions the body calls as ops (with their gradient
    entries), as TF's function_def_to_graph_def copies them ("copied_functions"); func-valued
    attrs are checked against the whole library here.
The GraphDefs are then imported with TF_GraphImportGraphDef in the target (client.py).
This runs in the parent process (it needs protobuf); the worker only sees bytes.

Scale: a library is indexed once (LibraryIndex), so converting n functions costs the size of
their bodies and direct callees, not n times the library (20,000 functions copied the whole
library into each GraphDef before: hours, and gigabytes).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rewriter.protos import function_pb2, graph_pb2, node_def_pb2, op_def_pb2
from rewriter.protos import saved_model_pb2

from rewriter.targets.releases import Release, release_info
from rewriter.targets.registry import OpRegistry, load_registry


class ConversionError(Exception):
    """The function cannot even be turned into a GraphDef (the Python loader fails too)."""


def _signature_output_ranges(sig: op_def_pb2.OpDef,
                             node: node_def_pb2.NodeDef) -> dict[str, tuple[int, int]]:
    """Output arg ranges of a call to a library function (as _get_num_args does)."""
    ranges: dict[str, tuple[int, int]] = {}
    start = 0
    for arg in sig.output_arg:
        if arg.number_attr:
            count = node.attr[arg.number_attr].i
        elif arg.type_list_attr:
            count = len(node.attr[arg.type_list_attr].list.type)
        else:
            count = 1
        ranges[arg.name] = (start, count)
        start += count
    return ranges


def _check_func_attrs(op_def: op_def_pb2.OpDef, node: node_def_pb2.NodeDef,
                      functions: frozenset[str]) -> None:
    for attr in op_def.attr:
        if attr.name not in node.attr:
            continue
        value = node.attr[attr.name]
        names = ([value.func.name] if attr.type == "func"
                 else [f.name for f in value.list.func] if attr.type == "list(func)" else [])
        for name in names:
            if name not in functions:
                raise ConversionError(
                    f"node {node.name!r} ({node.op}) refers to function {name!r}, "
                    "which is not in the library")


@dataclass
class LibraryIndex:
    """A FunctionDefLibrary indexed once: functions by name, their gradient entries."""

    functions: dict[str, function_pb2.FunctionDef]
    names: frozenset[str]
    gradients: dict[str, function_pb2.GradientDef] = field(default_factory=dict)

    @classmethod
    def of(cls, library: function_pb2.FunctionDefLibrary) -> "LibraryIndex":
        functions = {f.signature.name: f for f in library.function}
        return cls(functions, frozenset(functions), {g.function_name: g for g in library.gradient})


def function_to_graph_def(fdef: function_pb2.FunctionDef,
                          library: function_pb2.FunctionDefLibrary,
                          registry: OpRegistry, producer: int,
                          min_consumer: int, index: LibraryIndex | None = None) -> graph_pb2.GraphDef:
    """The GraphDef TF's function_def_to_graph builds for fdef, in the registry's release.
    `index` (of `library`) saves re-indexing the library for every function."""
    index = index or LibraryIndex.of(library)
    functions = index.functions
    graph = graph_pb2.GraphDef()
    graph.versions.producer = producer
    graph.versions.min_consumer = min_consumer
    called = []
    for node in fdef.node_def:
        if node.op in functions and node.op not in called:
            called.append(node.op)
    for name in called:
        graph.library.function.add().CopyFrom(functions[name])
        if name in index.gradients:
            graph.library.gradient.add().CopyFrom(index.gradients[name])

    shapes = None
    if "_input_shapes" in fdef.attr:
        shapes = list(fdef.attr["_input_shapes"].list.shape)
        if shapes and len(shapes) != len(fdef.signature.input_arg):
            raise ConversionError(
                f"_input_shapes has {len(shapes)} shapes for "
                f"{len(fdef.signature.input_arg)} input args")
    flat: dict[str, str] = {}
    for i, arg in enumerate(fdef.signature.input_arg):
        node = graph.node.add(name=arg.name, op="Placeholder")
        node.attr["dtype"].type = arg.type
        arg_attrs = fdef.arg_attr[i].attr if i in fdef.arg_attr else {}
        if shapes:
            node.attr["shape"].shape.CopyFrom(shapes[i])
        elif "_output_shapes" in arg_attrs:
            out_shapes = arg_attrs["_output_shapes"]
            if out_shapes.WhichOneof("value") == "list" and out_shapes.list.shape:
                node.attr["shape"].shape.CopyFrom(out_shapes.list.shape[0])
            elif out_shapes.WhichOneof("value") == "shape":
                node.attr["shape"].shape.CopyFrom(out_shapes.shape)
        for key in arg_attrs:
            if key.startswith("_") and key != "_output_shapes":
                node.attr[key].CopyFrom(arg_attrs[key])
        flat[arg.name] = f"{arg.name}:0"
        flat["^" + arg.name] = "^" + arg.name

    unknown: set[str] = set()  # nodes of ops the target lacks: its importer will say so
    for node in fdef.node_def:
        if node.op in functions:
            op_def = functions[node.op].signature
            ranges = _signature_output_ranges(op_def, node)
        else:
            found = registry.op(node.op)
            if found is None:
                unknown.add(node.name)
                flat["^" + node.name] = "^" + node.name
                continue
            op_def = found
            ranges = registry.output_ranges(node) or {}
        _check_func_attrs(op_def, node, index.names)
        for arg_name, (start, count) in ranges.items():
            for i in range(count):
                flat[f"{node.name}:{arg_name}:{i}"] = f"{node.name}:{start + i}"
        flat["^" + node.name] = "^" + node.name

    graph.node.extend(fdef.node_def)
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in flat:
                node.input[i] = flat[name]
                continue
            parts = name.split(":")
            if parts[0] in unknown and len(parts) == 3 and parts[2].isdigit():
                node.input[i] = f"{parts[0]}:{parts[2]}"  # a guess; the import fails anyway
                continue
            raise ConversionError(f"node {node.name!r} has input {name!r}, which names no "
                                  f"output in TensorFlow {registry.release}")
    # the loader then looks up the function's outputs and control outputs in the graph
    for arg in fdef.signature.output_arg:
        ret = fdef.ret.get(arg.name)
        if ret is None:
            raise ConversionError(f"output {arg.name!r} has no entry in ret")
        if ret not in flat and ret.split(":")[0] not in unknown:
            raise ConversionError(f"output {arg.name!r} is {ret!r}, which names no output "
                                  f"in TensorFlow {registry.release}")
    names = {n.name for n in graph.node}
    for ret_name in fdef.signature.control_output:
        if fdef.control_ret.get(ret_name) not in names:
            raise ConversionError(f"control output {ret_name!r} names no node")
    return graph


def callees(fdef: function_pb2.FunctionDef, names: frozenset[str]) -> set[str]:
    """The library functions fdef's nodes call: as op types, or through func-valued attrs
    (PartitionedCall's f, If's branches, While's cond and body, ...)."""
    found: set[str] = set()
    for node in fdef.node_def:
        if node.op in names:
            found.add(node.op)
        for value in node.attr.values():
            kind = value.WhichOneof("value")
            if kind == "func" and value.func.name in names:
                found.add(value.func.name)
            elif kind == "list":
                found.update(f.name for f in value.list.func if f.name in names)
    return found


def deepest_call_chain(library: function_pb2.FunctionDefLibrary) -> int:
    """The number of functions on the longest chain of calls in the library (0 if empty).

    Walked with an explicit stack, not recursion: chains thousands deep are real (generated
    code), and Python's recursion limit is 1000. A cycle (TF forbids them) is not followed twice."""
    index = LibraryIndex.of(library)
    calls = {name: callees(fdef, index.names) for name, fdef in index.functions.items()}
    depth: dict[str, int] = {}
    on_stack: set[str] = set()
    for root in calls:
        if root in depth:
            continue
        stack: list[tuple[str, bool]] = [(root, False)]
        while stack:
            name, expanded = stack.pop()
            if expanded:
                on_stack.discard(name)
                depth[name] = 1 + max((depth.get(c, 0) for c in calls[name] if c not in on_stack), default=0)
                continue
            if name in depth or name in on_stack:
                continue
            on_stack.add(name)
            stack.append((name, True))
            stack.extend((c, False) for c in calls[name] if c not in depth and c not in on_stack)
    return max(depth.values(), default=0)


def function_names(saved_model_pb: Path) -> list[str]:
    """The keys function_graph_defs reports, in library order."""
    return list(_functions(saved_model_pb))


def _functions(saved_model_pb: Path
               ) -> dict[str, tuple[function_pb2.FunctionDef, function_pb2.FunctionDefLibrary]]:
    """Every distinct FunctionDef of every MetaGraph, keyed as function_graph_defs reports."""
    saved_model = saved_model_pb2.SavedModel.FromString(Path(saved_model_pb).read_bytes())
    out: dict[str, tuple[function_pb2.FunctionDef, function_pb2.FunctionDefLibrary]] = {}
    seen: dict[str, bytes] = {}
    for mi, meta in enumerate(saved_model.meta_graphs):
        library = meta.graph_def.library
        for fdef in library.function:
            name = fdef.signature.name
            blob = fdef.SerializeToString(deterministic=True)
            if seen.get(name) == blob:
                continue
            key = name if name not in seen else f"{name}@meta_graph{mi}"
            seen.setdefault(name, blob)
            out[key] = (fdef, library)
    return out


def function_graph_defs(saved_model_pb: Path, release: Release
                        ) -> tuple[dict[str, bytes], dict[str, str]]:
    """(function name -> serialized GraphDef, function name -> conversion error) for every
    FunctionDef of every MetaGraph. A name defined differently in two MetaGraphs is reported
    as 'name@meta_graph<i>' for the later ones."""
    registry = load_registry(release)
    info = release_info(release)
    graphs: dict[str, bytes] = {}
    errors: dict[str, str] = {}
    indexes: dict[int, LibraryIndex] = {}  # one per MetaGraph's library
    for key, (fdef, library) in _functions(saved_model_pb).items():
        index = indexes.get(id(library))
        if index is None:
            index = indexes[id(library)] = LibraryIndex.of(library)
        try:
            graph = function_to_graph_def(fdef, library, registry, int(info["producer"]),
                                          int(info["min_consumer"]), index)
            graphs[key] = graph.SerializeToString()
        except ConversionError as err:
            errors[key] = f"cannot convert function {fdef.signature.name!r} to a graph: {err}"
    return graphs, errors
