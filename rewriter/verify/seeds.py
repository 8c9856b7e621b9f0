"""Unseeded random ops, pinned for parity.

A stateful random op (RandomUniform, RandomStandardNormal, TruncatedNormal, Multinomial, ...) whose
`seed` and `seed2` are both 0 draws new numbers on every run: `tf.random.uniform(shape)` without a
seed in a signature. Its outputs differ between any two runs, the source's own included, so
comparing the source with the output proves nothing and called a right conversion a mismatch
(exit 3; a helper's sweep of unseen models). The seeded form is deterministic and computes the same
numbers in TF 1.15.5, 2.3.4 and 2.21 (measured). So parity runs copies of both models in which each
such op has the same seeds, derived from its node name; OUT itself is written as converted, unseeded.
"""
from __future__ import annotations

import functools
import os
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

from rewriter.protos import saved_model_pb2
from rewriter.savedmodel.files import SAVED_MODEL_PB, SAVED_MODEL_PBTXT, read_saved_model

PINNED_SEED = 87654321  # the graph-level seed of a pinned op; its op-level seed comes from its name


@dataclass(frozen=True)
class PinnedOp:
    where: str  # "graph serve" or "function __inference_f_12"
    node: str
    op: str

    def describe(self) -> str:
        return f"{self.op} '{self.node}' in {self.where}"


def _op_seed(node_name: str) -> int:
    return zlib.crc32(node_name.encode()) % 0x7FFFFFFF + 1


@functools.cache
def _random_ops() -> frozenset[str]:
    """The stateful ops with int attrs seed and seed2 (the newest registry): random draws whose
    numbers come from those seeds, or from the clock when both are 0."""
    from rewriter.targets.registry import newest_registry

    found = set()
    for op in newest_registry().ops.values():
        names = {attr.name: attr for attr in op.attr}
        if op.is_stateful and all(key in names and names[key].type == "int" for key in ("seed", "seed2")):
            found.add(op.name)
    return frozenset(found)


def pin(proto: saved_model_pb2.SavedModel) -> list[PinnedOp]:
    """Give every unseeded stateful random op of `proto` seeds (in place); what was pinned. A saved
    model leaves attrs at their default out of its NodeDefs, so an absent seed is 0."""
    random_ops = _random_ops()
    pinned: list[PinnedOp] = []
    for meta_graph in proto.meta_graphs:
        graph_def = meta_graph.graph_def
        scopes = [(f"graph {','.join(meta_graph.meta_info_def.tags)}", graph_def.node)]
        scopes += [(f"function {f.signature.name}", f.node_def) for f in graph_def.library.function]
        for where, nodes in scopes:
            for node in nodes:
                if node.op not in random_ops:
                    continue
                attrs = node.attr
                if ("seed" not in attrs or attrs["seed"].i == 0) and ("seed2" not in attrs or attrs["seed2"].i == 0):
                    attrs["seed"].i, attrs["seed2"].i = PINNED_SEED, _op_seed(node.name)
                    pinned.append(PinnedOp(where, node.name, node.op))
    return pinned


def pinned_copy(model_dir: Path, into: Path) -> list[PinnedOp]:
    """If MODEL_DIR holds unseeded random ops, a copy of it in INTO with them pinned (saved_model.pb
    rewritten, every other file hard-linked or copied, fingerprint.pb left out); what was pinned.
    Nothing is written when there is nothing to pin."""
    proto = read_saved_model(model_dir).proto
    pinned = pin(proto)
    if not pinned:
        return []
    # Hard links where the file system allows (the reader refuses symbolic links out of a model),
    # else copies: variables are read, never written, by a run.
    shutil.copytree(model_dir, into, copy_function=_link_or_copy,
                    ignore=lambda folder, names: [n for n in names if Path(folder) == model_dir and n in _REPLACED])
    (into / SAVED_MODEL_PB).write_bytes(proto.SerializeToString(deterministic=True))
    return pinned


_REPLACED = (SAVED_MODEL_PB, SAVED_MODEL_PBTXT, "fingerprint.pb")  # fingerprint.pb hashes the old bytes


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)
