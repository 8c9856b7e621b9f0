"""The SavedObjectGraph as a structure: which objects the signatures need, which concrete
functions objects use, and removing objects with every reference to them."""
from __future__ import annotations

import copy

from rewriter.protos import saved_object_graph_pb2


def needed_objects(graph: saved_object_graph_pb2.SavedObjectGraph) -> set[int]:
    """Objects reached from the root's `signatures` child, and everything bound into the concrete
    functions that any function object uses (their captures must exist for them to load)."""
    nodes = graph.nodes
    needed: set[int] = set()
    if len(nodes):
        todo = [c.node_id for c in nodes[0].children if c.local_name == "signatures"]
        while todo:
            node_id = todo.pop()
            if node_id in needed:
                continue
            needed.add(node_id)
            todo.extend(c.node_id for c in nodes[node_id].children)
    for name in used_concrete_functions(graph):
        if name in graph.concrete_functions:
            needed.update(graph.concrete_functions[name].bound_inputs)
    return needed


def used_concrete_functions(graph: saved_object_graph_pb2.SavedObjectGraph) -> set[str]:
    used: set[str] = set()
    for node in graph.nodes:
        kind = node.WhichOneof("kind")
        if kind == "function":
            used.update(node.function.concrete_functions)
        elif kind == "bare_concrete_function":
            used.add(node.bare_concrete_function.concrete_function_name)
    return used


def drop_objects(graph: saved_object_graph_pb2.SavedObjectGraph, drop: set[int]) -> tuple[dict[int, int], list[str]]:
    """Remove objects, the references to them and the concrete functions binding them; renumber.

    Returns (old id -> new id of every kept object, notes). The caller has checked that nothing
    needed is dropped.
    """
    notes: list[str] = []
    used = used_concrete_functions(graph)
    for name in sorted(graph.concrete_functions):
        bound = set(graph.concrete_functions[name].bound_inputs)
        if bound & drop:
            if name in used:
                raise AssertionError(f"concrete function {name} is used by an object and binds a dropped one")
            del graph.concrete_functions[name]
            notes.append(f"concrete function {name} left out of the object graph (it binds a dropped object)")
    kept = [i for i in range(len(graph.nodes)) if i not in drop]
    new_id = {old: new for new, old in enumerate(kept)}
    old_nodes = [copy.deepcopy(graph.nodes[i]) for i in kept]
    del graph.nodes[:]
    for node in old_nodes:
        for field_name in ("children", "dependencies"):
            refs = getattr(node, field_name)
            keep = [r for r in refs if r.node_id not in drop]
            for ref in refs:
                if ref.node_id in drop and field_name == "children":
                    notes.append(f"reference {ref.local_name!r} to a dropped object removed")
            del refs[:]
            for ref in keep:
                ref.node_id = new_id[ref.node_id]
                refs.add().CopyFrom(ref)
        for slot in node.slot_variables:
            slot.original_variable_node_id = new_id[slot.original_variable_node_id]
            slot.slot_variable_node_id = new_id[slot.slot_variable_node_id]
        for saveable in node.saveable_objects.values():
            if saveable.save_function:
                saveable.save_function = new_id[saveable.save_function]
            if saveable.restore_function:
                saveable.restore_function = new_id[saveable.restore_function]
        graph.nodes.add().CopyFrom(node)
    for function in graph.concrete_functions.values():
        renumbered = [new_id[b] for b in function.bound_inputs]
        del function.bound_inputs[:]
        function.bound_inputs.extend(renumbered)
    return new_id, notes
