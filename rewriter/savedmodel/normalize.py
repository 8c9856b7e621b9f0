"""Making the rewritten SavedModel look like one the target release wrote.

- `versions.producer` becomes the target's TF_GRAPH_DEF_VERSION (lowering it is deliberate:
  some kernels key behaviour on it, and parity is checked after);
- meta_info_def names the target and this tool;
- stripped_op_list is rebuilt from the target registry for the ops in use;
- attrs the node leaves out, whose default differs between source and target, are written out
  with the source default (otherwise the target would silently apply its own);
- attrs equal to the target default are stripped, as TF's own saving does;
- attrs the target's op lacks, holding the source op's default, are stripped: what TensorFlow's
  own RemoveNewDefaultAttrsFromGraphDef (core/framework/graph_def_util.cc) does for an older
  consumer, and what its Python importer does with a MetaGraphDef's stripped_op_list
  (`_RemoveDefaultAttrs`). Exact by TensorFlow's op-compatibility rule: an attr may be added to an
  op only with a default that keeps the op's old behaviour (VarHandleOp's allowed_devices=[], the
  FFT ops' Treal=float / Tcomplex=complex64, for TF 1.15);
- colocation entries (`_class: loc:@X`) naming no node of their function are removed.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterator

from rewriter.protos import node_def_pb2, op_def_pb2
from rewriter.protos.attr_value_pb2 import AttrValue
from rewriter.protos.function_pb2 import FunctionDef
from rewriter.protos.op_def_pb2 import OpDef
from rewriter.protos.node_def_pb2 import NodeDef
from rewriter.protos import saved_model_pb2

from rewriter.targets.registry import OpRegistry
from rewriter.targets.releases import Release, producer_version, release_info



def _defaults(op: OpDef | None) -> dict[str, op_def_pb2.OpDef.AttrDef]:
    return {} if op is None else {a.name: a for a in op.attr if a.HasField("default_value")}


# Per op: the attrs to write out when a node leaves them out (with the source default), and the
# attrs to strip when a node holds the target default, or holds the source default of an attr
# the target's op lacks, each in the order _reconcile_defaults visits them. Made once per op:
# building the default tables for every node was most of this.
Reconciliation = tuple[list[tuple[str, AttrValue]], list[tuple[str, AttrValue]], list[tuple[str, AttrValue]]]


def _reconciliation(op_name: str, source: OpRegistry, target: OpRegistry) -> Reconciliation:
    target_op = target.op(op_name)
    target_defaults = _defaults(target_op)
    source_defaults = _defaults(source.op(op_name))
    write_out = []
    required = {a.name for a in target_op.attr if not a.HasField("default_value")} if target_op is not None else set()
    for name, source_attr in source_defaults.items():
        target_attr = target_defaults.get(name)
        if target_attr is not None and target_attr.default_value != source_attr.default_value:
            write_out.append((name, source_attr.default_value))
        elif name in required:  # no default in the target (1.15's RaggedTensorToVariant.Tsplits): say the value
            write_out.append((name, source_attr.default_value))
    strip = [(name, target_attr.default_value) for name, target_attr in target_defaults.items()]
    new_at_default = []
    if target_op is not None:  # an op the target lacks is the rules' business, attrs and all
        target_attrs = {a.name for a in target_op.attr}
        new_at_default = [(name, source_attr.default_value) for name, source_attr in source_defaults.items()
                          if name not in target_attrs]
    return write_out, strip, new_at_default


def _reconcile_defaults(node: NodeDef, source: OpRegistry, target: OpRegistry, functions: set[str],
                        prepared: dict[str, Reconciliation] | None = None,
                        new_stripped: Counter[str] | None = None) -> int:
    """Returns how many attrs were written out or stripped; counts the stripped attrs the target's
    op lacks into `new_stripped` ("Op.attr"). `prepared`: each op's _reconciliation, made on first
    use (one table for every node of a model)."""
    op = node.op
    if op in functions:
        return 0
    prepared = {} if prepared is None else prepared
    found = prepared.get(op)
    if found is None:
        found = prepared[op] = _reconciliation(op, source, target)
    return _reconcile(op, node.attr, found, new_stripped)


def _reconcile(op: str, attrs: Any, reconciliation: Reconciliation, new_stripped: Counter[str] | None) -> int:
    """_reconcile_defaults on the attr map of a node of `op`, with that op's _reconciliation."""
    write_out, strip, new_at_default = reconciliation
    changed = 0
    for name, source_default in write_out:
        if name not in attrs:
            attrs[name].CopyFrom(source_default)
            changed += 1
    for name, target_default in strip:
        if name in attrs and attrs[name] == target_default:
            del attrs[name]
            changed += 1
    for name, source_default in new_at_default:
        if name in attrs and attrs[name] == source_default:
            del attrs[name]
            changed += 1
            if new_stripped is not None:
                new_stripped[f"{op}.{name}"] += 1
    return changed


def _drop_dangling_colocation(function: FunctionDef) -> int:
    """Remove `_class: loc:@X` entries (of nodes and of args) naming no node of the function.

    tf_keras writes them for Embedding's ResourceGather; TF 2.3 refuses the function ("expects to be
    colocated with unknown node"). A colocation with a node the function does not have constrains
    nothing, so dropping the entry is exact. Other `_` attrs are left alone (NOTES §6).
    """
    # Argument attrs carry them too: a restore function's table-handle args are colocated with the
    # caller's table node (TF 2.21 writes these for lookup tables).
    attr_maps = [node.attr for node in function.node_def] + [arg.attr for arg in function.arg_attr.values()]
    attr_maps = [attrs for attrs in attr_maps if "_class" in attrs]
    if not attr_maps:
        return 0
    names = {node.name for node in function.node_def}
    dropped = 0
    for attrs in attr_maps:
        entries = list(attrs["_class"].list.s)
        kept = [e for e in entries if not (e.startswith(b"loc:@") and e[5:].decode("utf-8", "replace") not in names)]
        if len(kept) == len(entries):
            continue
        dropped += len(entries) - len(kept)
        if kept:
            del attrs["_class"].list.s[:]
            attrs["_class"].list.s.extend(kept)
        else:
            del attrs["_class"]
    return dropped


def _stripped_op_def(op: OpDef) -> OpDef:
    stripped = OpDef()
    stripped.CopyFrom(op)
    # TF strips documentation from stripped_op_list; our registries hold none already.
    stripped.ClearField("summary")
    stripped.ClearField("description")
    return stripped


def _args_colocated(arg_attr: Any) -> bool:
    """Whether an arg of a function carries a `_class` (colocation) attr."""
    return any("_class" in arg_attr[index].attr for index in arg_attr)


def for_target(
    proto: saved_model_pb2.SavedModel,
    source: OpRegistry,
    target: OpRegistry,
    release: Release,
    source_version: str,
    tool_version: str,
) -> list[str]:
    """Rewrite version fields and attrs in place; return notes for the report."""
    notes = []
    target_version = release_info(release)["version"]
    producer = producer_version(release)
    for index, meta_graph in enumerate(proto.meta_graphs):
        graph_def = meta_graph.graph_def
        old_producer = graph_def.versions.producer
        if old_producer != producer:
            graph_def.versions.producer = producer
            notes.append(f"meta graph {index}: versions.producer {old_producer} -> {producer} (TensorFlow {target_version})")
        functions = {f.signature.name for f in graph_def.library.function}
        prepared: dict[str, Reconciliation] = {}
        ops: set[str] = set()
        changed = dangling = 0
        new_stripped: Counter[str] = Counter()
        settled = set(functions)  # ops with nothing to reconcile (and calls): their nodes are not read further
        # One walk over the nodes for both edits (they touch different attrs: defaults, `_class`).
        for function in [None, *graph_def.library.function]:
            colocated = function is None  # (a graph's nodes are not looked at for `_class`)
            for node in graph_def.node if function is None else function.node_def:
                op = node.op
                ops.add(op)
                if op in settled:
                    if not colocated:
                        colocated = "_class" in node.attr
                    continue
                # The attr map read once for both (reading it makes a Python object each time).
                attrs = node.attr
                if not colocated:
                    colocated = "_class" in attrs
                found = prepared.get(op)
                if found is None:
                    found = prepared[op] = _reconciliation(op, source, target)
                    if not any(found):
                        settled.add(op)
                        continue
                changed += _reconcile(op, attrs, found, new_stripped)
            # (the map read by key: its values() is a Python-level view, a generator step per arg)
            if function is not None and (colocated or _args_colocated(function.arg_attr)):
                dangling += _drop_dangling_colocation(function)
        if dangling:
            notes.append(f"meta graph {index}: {dangling} colocation entr(ies) naming no node of their function removed")
        if changed:
            notes.append(f"meta graph {index}: {changed} default-valued attr(s) reconciled with TensorFlow {release}")
        if new_stripped:
            listed = ", ".join(f"{what} x{count}" for what, count in sorted(new_stripped.items()))
            notes.append(f"meta graph {index}: attrs TensorFlow {release}'s ops lack, at their default, left out as "
                         f"TensorFlow's RemoveNewDefaultAttrsFromGraphDef does (an attr is added to an op only with "
                         f"a default that keeps its old behaviour): {listed}")
        meta = meta_graph.meta_info_def
        if meta.tensorflow_version != target_version:
            meta.tensorflow_version = target_version
            meta.tensorflow_git_version = f"tfdowngrade {tool_version}: rewritten for TensorFlow {target_version} from a model saved by TensorFlow {source_version}"
        used = sorted(ops - functions)  # (reconciling changes no op)
        meta.stripped_op_list.Clear()
        for op_name in used:
            op = target.op(op_name)
            if op is not None:
                meta.stripped_op_list.op.append(_stripped_op_def(op))
    return notes
