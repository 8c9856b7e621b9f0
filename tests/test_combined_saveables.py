"""saveables-restored-through-one-object (rewriter/rules/combined_saveables.py): several objects
checkpointed through saved save/restore functions (three mutable hash tables) fail in TF 2.3's
tf.saved_model.load ("The same saveable will be restored with two names",
tests/test_convert_parity.py shows it without the rule); folded into one saveable, the output loads
there, every table holds the checkpoint's entries, and both loaders match bit for bit."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from conftest import ROOT, run_cli
from rewriter.rules.combined_saveables import combine, plan
from rewriter.savedmodel.checkpoint import read_checkpoint_graph
from rewriter.savedmodel.files import read_saved_model

RULE = "saveables-restored-through-one-object"
TABLES = ROOT / "golden" / "rules" / "anonymous_tables_all" / "saved_model"


def _meta_and_checkpoint() -> tuple[Any, Any]:
    files = read_saved_model(TABLES)
    ckpt = read_checkpoint_graph(files)
    assert ckpt is not None
    return copy.deepcopy(files.proto.meta_graphs[0]), copy.deepcopy(ckpt.graph)


def test_every_saveable_is_folded_into_the_first() -> None:
    meta, checkpoint = _meta_and_checkpoint()
    before = {i: dict(n.saveable_objects) for i, n in enumerate(meta.object_graph_def.nodes) if n.saveable_objects}
    keys = {i: [a.checkpoint_key for a in checkpoint.nodes[i].attributes] for i in before}
    combined = combine(meta, checkpoint)
    assert combined is not None and combined.carrier == min(before)
    assert [n for n, _ in combined.folded] == sorted(before)
    graph = meta.object_graph_def
    assert [i for i, n in enumerate(graph.nodes) if n.saveable_objects] == [combined.carrier]
    # The carrier keeps its checkpoint attribute; the others are restored through it.
    assert [a.checkpoint_key for a in checkpoint.nodes[combined.carrier].attributes] == keys[combined.carrier]
    assert all(not checkpoint.nodes[i].attributes for i in before if i != combined.carrier)
    # The combined functions bind every table, and call each object's own functions once.
    save = graph.concrete_functions[combined.save]
    assert list(save.bound_inputs) == sorted(before)
    library = {f.signature.name: f for f in meta.graph_def.library.function}
    def own(function_node: int) -> str:
        return str(graph.nodes[function_node].bare_concrete_function.concrete_function_name)

    for combined_name, role in ((combined.save, "save_function"), (combined.restore, "restore_function")):
        called = sorted(n.attr["f"].func.name for n in library[combined_name].node_def
                        if n.op == "StatefulPartitionedCall")
        assert called == sorted(own(getattr(entry, role)) for entries in before.values() for entry in entries.values())
    # Each object's own checkpoint key is what its save function is given.
    consts = sorted(n.attr["value"].tensor.string_val[0].decode() for n in library[combined.save].node_def
                    if n.op == "Const")
    assert consts == sorted(k for ks in keys.values() for k in ks)


def test_nothing_is_folded_without_two_saveables_or_their_keys() -> None:
    meta, checkpoint = _meta_and_checkpoint()
    assert plan(meta, None) is None
    missing = copy.deepcopy(checkpoint)
    first = min(i for i, n in enumerate(meta.object_graph_def.nodes) if n.saveable_objects)
    del missing.nodes[first].attributes[:]
    assert plan(meta, missing) is None
    single = copy.deepcopy(meta)
    for node in list(single.object_graph_def.nodes)[first + 1:]:
        node.saveable_objects.clear()
    assert plan(single, checkpoint) is None
    files = read_saved_model(ROOT / "golden" / "fixtures" / "tf_module" / "saved_model")
    ckpt = read_checkpoint_graph(files)
    assert plan(files.proto.meta_graphs[0], ckpt.graph if ckpt else None) is None


_RESAVE = """
import sys, numpy as np, tensorflow as tf
keys = tf.constant([1, 2, 3, 7, 100], tf.int64)
loaded = tf.saved_model.load(sys.argv[1])
before = {k: v.numpy().tolist() for k, v in loaded.signatures["lookup"](keys=keys).items()}
tf.saved_model.save(loaded, sys.argv[2], signatures={"lookup": loaded.signatures["lookup"]})
again = tf.saved_model.load(sys.argv[2])
after = {k: v.numpy().tolist() for k, v in again.signatures["lookup"](keys=keys).items()}
print("@@SAME@@", before == after, before["mutable_size"])
"""


def test_three_tables_load_and_match_in_tf23_python_loader(tmp_path: Path, py23_env: Any) -> None:
    report = tmp_path / "r.json"
    result = run_cli(TABLES, tmp_path / "out", "--to", "2.3", "--python-loader", "--report", report)
    assert result.code == 0, result.stderr
    data = json.loads(report.read_text())
    parity = data["parity"]
    assert parity["python_loader"]["ok"] is True and len(parity["python_loader"]["outputs"]) == 10
    assert all(o["grade"] == "bit-identical" for o in parity["outputs"]), parity["outputs"]
    assert f"object-graph rule {RULE}: 1 change(s) in checkpoint" in data["notes"]
    assert not any("restored with two names" in n for n in data["notes"])  # the caveat no longer applies
    # Saved again by TF 2.3 itself (through the combined functions) and loaded again: the same tables.
    resaved = py23_env.run(_RESAVE, str(tmp_path / "out"), str(tmp_path / "resaved"))
    assert "@@SAME@@ True 2" in resaved.stdout, resaved.stdout[-2000:] + resaved.stderr[-2000:]


def test_not_applied_where_the_python_loader_has_no_such_limit(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    result = run_cli(TABLES, tmp_path / "out", "--to", "2.9", "--no-verify", "--report", report)
    assert result.code == 0, result.stderr
    assert not any(RULE in n for n in json.loads(report.read_text())["notes"])
