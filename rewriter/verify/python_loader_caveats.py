"""What a target's Python loader (tf.saved_model.load) is known to do differently from its C++
loader (TF Serving, the C/Java bindings), so the report can warn about an output the C++ loader
runs. Each caveat was measured in the real release it names; add a release to a caveat only when
it is measured to behave the same.
"""
from __future__ import annotations

from rewriter.protos import saved_model_pb2

from rewriter.targets.releases import Release

# TF 2.3's Python loader rebuilds each function without the FunctionDef's attrs, so a function
# marked _XlaMustCompile runs without XLA there (measured: Keras 3's grouped Conv2D then fails
# with "does not support grouped convolutions on the CPU", hence rules/grouped-conv.yaml).
DROPS_XLA_MARK = frozenset({Release(2, 3)})

# TF 2.3's Python loader restores an object checkpointed through saved save/restore functions
# (SavedObject.saveable_objects: mutable hash tables, for one) as a RestoredSaveableObject whose
# `op` is None; its restore then sees the second such object as the first one again and fails:
# "The same saveable will be restored with two names" (measured with three mutable tables).
# The object-graph rule saveables-restored-through-one-object folds such objects into one
# (rewriter/rules/combined_saveables.py), so this warning remains only where that rule found a
# link missing (a saveable whose functions or checkpoint attribute it cannot identify).
ONE_FUNCTIONAL_SAVEABLE = frozenset({Release(2, 3)})


def python_loader_caveats(proto: saved_model_pb2.SavedModel, target: Release) -> list[str]:
    return _xla_mark(proto, target) + _functional_saveables(proto, target)


def _xla_mark(proto: saved_model_pb2.SavedModel, target: Release) -> list[str]:
    if target not in DROPS_XLA_MARK:
        return []
    marked = sorted(
        f.signature.name
        for meta_graph in proto.meta_graphs
        for f in meta_graph.graph_def.library.function
        if f.attr.get("_XlaMustCompile") is not None and f.attr["_XlaMustCompile"].b
    )
    if not marked:
        return []
    return [
        f"warning: {len(marked)} function(s) are marked _XlaMustCompile (e.g. {marked[0]}). TensorFlow {target}'s "
        "C++ loader (TF Serving, C/Java bindings) compiles them with XLA as the source does; its Python loader "
        "(tf.saved_model.load) drops that mark, so an op only XLA runs on CPU fails there (a grouped Conv2D whose "
        "groups the saved shapes show is rewritten by grouped-conv2d-to-depthwise or grouped-conv2d-split; "
        "one without recorded shapes is not)"
    ]


def _functional_saveables(proto: saved_model_pb2.SavedModel, target: Release) -> list[str]:
    if target not in ONE_FUNCTIONAL_SAVEABLE:
        return []
    paths = []
    for meta_graph in proto.meta_graphs:
        nodes = meta_graph.object_graph_def.nodes
        names = {child.node_id: child.local_name for node in nodes for child in node.children}
        paths += [names.get(i, f"node {i}") for i, node in enumerate(nodes) if node.saveable_objects]
    if len(paths) < 2:
        return []
    return [
        f"warning: {len(paths)} objects ({', '.join(sorted(paths)[:4])}{', ...' if len(paths) > 4 else ''}) are "
        "checkpointed through saved save/restore functions, as mutable hash tables are. TensorFlow "
        f"{target}'s C++ loader restores them; its Python loader (tf.saved_model.load) restores at most one "
        "such object and fails on a second with \"The same saveable will be restored with two names\". Keep one "
        "such table per model, or serve with the C++ loader"
    ]
