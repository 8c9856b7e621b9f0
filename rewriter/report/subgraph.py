"""A small picture-sized copy of the part of a graph a rewrite touched, taken before and after it,
for the HTML report: the matched nodes, their direct producers and consumers, and the edges
among them (data edges with their port, control edges as None)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from rewriter.savedmodel.graph_model import Scope

MAX_NEIGHBOURS = 12  # a NoOp with hundreds of control inputs would drown the picture


@dataclass
class Subgraph:
    nodes: dict[str, str] = field(default_factory=dict)  # name -> op ("arg" for a function argument)
    edges: list[tuple[str, str, str | None]] = field(default_factory=list)  # (src, dst, port; None = control)
    focus: list[str] = field(default_factory=list)  # the nodes the rule matched or added
    hidden: int = 0  # neighbours left out beyond MAX_NEIGHBOURS
    members: list[object] = field(default_factory=list, repr=False)  # the graph's own keys of `nodes`


def _label(key: object) -> str:
    """A node's name; a function's argument or return value (tuple keys) as kind:name."""
    if isinstance(key, tuple) and len(key) == 2:
        return f"{key[0]}:{key[1]}"
    return str(key)


def snapshot(scope: "Scope", focus: Iterable[object], keep: Iterable[object] = ()) -> Subgraph:
    """focus nodes with their neighbours; `keep` nodes (if still there) without theirs."""
    graph = scope.graph
    centre = [name for name in dict.fromkeys(focus) if name in graph]
    around: dict[object, None] = {key: None for key in keep if key in graph and key not in centre}
    hidden = 0
    for name in centre:
        neighbours = list(dict.fromkeys([*graph.predecessors(name), *graph.successors(name)]))
        for key in neighbours:
            if key in centre or key in around:
                continue
            if len(around) >= MAX_NEIGHBOURS * max(1, len(centre)) or sum(
                    1 for k in neighbours if k in around) >= MAX_NEIGHBOURS:
                hidden += 1
                continue
            around[key] = None
    keys = [*centre, *around]
    shown = set(keys)
    result = Subgraph(focus=[_label(k) for k in centre], hidden=hidden, members=keys)
    for key in keys:
        data = graph.nodes[key]
        result.nodes[_label(key)] = data["def"].op if "def" in data else (
            str(key[0]) if isinstance(key, tuple) else "?")
    for src, dst, data in graph.edges(keys, data=True):
        if src in shown and dst in shown:
            result.edges.append((_label(src), _label(dst), data.get("port")))
    return result
