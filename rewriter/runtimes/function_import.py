"""Turn every FunctionDef of a SavedModel into the GraphDef TF's Python loader would import.

TF's Python loader (`tf.saved_model.load`) imports EVERY function of the library, including
save/restore functions that serving never runs, through function_def_to_graph.py:
  - each input arg becomes a Placeholder (dtype from the arg; shape from the function's
    `_input_shapes` attr, else the arg's `_output_shapes`; `_`-prefixed arg attrs copied),
  - the body nodes are copied, and inputs 'node:out_arg:i' are renamed to 'node:flat_index'
    using the op's output args as the RUNNING release defines them (so we use the target
    release's registry, rewriter.registry), or the callee's signature for function calls,
  - func-valued attrs must name a function of the library,
  - the graph's library is the whole library, so call ops and func attrs resolve.
The GraphDefs are then imported with TF_GraphImportGraphDef in the target (client.py).
This runs in the parent process (it needs protobuf); the worker only sees bytes.
"""
from __future__ import annotations

from pathlib import Path

from rewriter.protos import function_pb2, graph_pb2, node_def_pb2, op_def_pb2
from rewriter.protos import saved_model_pb2

from rewriter.releases import Release, release_info
from rewriter.registry import OpRegistry, load_registry


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
                      functions: set[str]) -> None:
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


def function_to_graph_def(fdef: function_pb2.FunctionDef,
                          library: function_pb2.FunctionDefLibrary,
                          registry: OpRegistry, producer: int,
                          min_consumer: int) -> graph_pb2.GraphDef:
    """The GraphDef TF's function_def_to_graph builds for fdef, in the registry's release."""
    functions = {f.signature.name: f for f in library.function}
    graph = graph_pb2.GraphDef()
    graph.versions.producer = producer
    graph.versions.min_consumer = min_consumer
    graph.library.CopyFrom(library)

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
        _check_func_attrs(op_def, node, set(functions))
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
    for key, (fdef, library) in _functions(saved_model_pb).items():
        try:
            graph = function_to_graph_def(fdef, library, registry, int(info["producer"]),
                                          int(info["min_consumer"]))
            graphs[key] = graph.SerializeToString()
        except ConversionError as err:
            errors[key] = f"cannot convert function {fdef.signature.name!r} to a graph: {err}"
    return graphs, errors
