"""GraphDefs and FunctionDefs as networkx graphs, and back, losslessly.

One `Scope` per graph: the GraphDef of a MetaGraphDef, or one FunctionDef of its library.
Nodes of the networkx MultiDiGraph:
  - a real node is keyed by its name (str) and carries its NodeDef (`def`) and `order`;
  - a function's input arg is keyed ("@arg", name); its return value ("@ret", name);
    a control return ("@control_ret", name).
Edges go producer -> consumer and carry:
  - `index`: the position in the consumer's input list (control inputs included), kept so the
    exact input order comes back;
  - `port`: the text after the producer's name as it was written (":0", ":y:0", "" ...);
    None marks a control edge. Keeping the text, not a parsed index, is what makes an
    untouched graph serialize to the same bytes.
The NodeDef's own `input` field is not trusted while the scope is live: edges are the truth,
and `to_proto` rebuilds it.
"""
from __future__ import annotations

import copy
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, NamedTuple

import networkx as nx
from rewriter.protos import function_pb2, graph_pb2, node_def_pb2
from rewriter.protos.node_def_pb2 import NodeDef
from rewriter.savedmodel.messages import copy_except, has_unknown_fields

if TYPE_CHECKING:
    from rewriter.savedmodel.op_signatures import OpSignatures

NodeKey = "str | tuple[str, str]"

ARG = "@arg"
RET = "@ret"
CONTROL_RET = "@control_ret"


class Edge(NamedTuple):
    """One edge as the graph model's users see it: `src` feeds input `position` of `dst` through
    `port` (the text after the producer's name, ":0", ":y:0", ""), or is a control edge (port None).
    A value, not the graph's own record: edit edges through Scope (rewire, remove_edge)."""

    src: object
    dst: object
    port: str | None
    position: float  # in dst's input list, control inputs included

    @property
    def is_control(self) -> bool:
        return self.port is None


class _ScopePlace:
    """What Scope and NodeDefView share: which graph they are, and how its ports are named."""

    kind: str
    name: str
    ops: "OpSignatures | None"

    @property
    def is_function(self) -> bool:
        return self.kind == "function"

    def where(self) -> str:
        return f"function {self.name}" if self.is_function else f"graph {self.name}"

    def output_index(self, node: NodeDef, port: str) -> int | None:
        """The flat output index a port text (":1", ":values:0") of `node` names; None if unknown."""
        assert self.ops is not None, "ops are set before ports are resolved"
        return self.ops.output_index(self.is_function, node, port)


class GraphModelError(ValueError):
    """A graph that cannot be represented: an input naming no node, a duplicate name, ..."""


@dataclass
class Scope(_ScopePlace):
    """One graph of the model: `kind` is "graph" (a MetaGraphDef's GraphDef) or "function"."""

    kind: str
    name: str
    graph: nx.MultiDiGraph
    proto: graph_pb2.GraphDef | function_pb2.FunctionDef
    # Position counter for nodes added by rewrites: they sort right after their anchor.
    _added: int = field(default=0, repr=False)
    _order: list[str] | None = field(default=None, repr=False)
    # Set by the pipeline before rules run: the OpDefs for port arithmetic, and the names the
    # MetaGraphDef refers to from outside this graph (signatures, saver), which cannot be removed.
    ops: "OpSignatures | None" = field(default=None, repr=False)
    external_names: frozenset[str] = field(default=frozenset(), repr=False)
    # Nodes whose NodeDef this scope owns (a copy, or a node it added). The others are the input
    # proto's own NodeDefs, shared until a rule edits them (editable_node_def copies then): a
    # graph model copies no NodeDef, and no constant, that no rule changes.
    _owned: set[str] = field(default_factory=set, repr=False)
    # Nodes whose inputs an edit changed (an edge into them added or removed). A node neither here
    # nor owned still has IN's `input` list as the truth, so fill_nodes copies it as it is.
    _rewired: set[object] = field(default_factory=set, repr=False)
    # The names of the nodes of each op as built, while no node was added or edited (the rule
    # engine's OpIndex takes it over and keeps it current; an edit here empties it).
    names_by_op: dict[str, set[str]] = field(default_factory=dict, repr=False)

    # --- ports: naming a producer's outputs (needs `ops`) --------------------------------
    def output_port(self, node: NodeDef, flat: int, added: bool = False) -> str:
        """The port text for flat output `flat` of `node`; `added` for a node a rewrite just
        made (its op is the target's)."""
        assert self.ops is not None, "Scope.ops is set before ports are resolved"
        op = self.ops.target_op(node.op) if added else self.ops.op(node.op)
        return self.ops.output_port(self.is_function, node, flat, op)

    # --- reading -----------------------------------------------------------------------
    def nodes(self) -> Iterator[tuple[str, NodeDef]]:
        """Real nodes in their order. The order is cached; removed nodes are skipped."""
        # networkx's node dict read directly (its NodeView costs a call per lookup).
        node_data = self.graph._node
        if self._order is None:
            keyed = [(data["order"], key) for key, data in node_data.items() if isinstance(key, str)]
            self._order = [key for _, key in sorted(keyed)]
        for key in self._order:
            data = node_data.get(key)
            if data is not None:
                yield key, data["def"]

    def node_def(self, name: str) -> NodeDef:
        """The node's NodeDef, to read (its `input` is not the truth: the edges are)."""
        return self.graph._node[name]["def"]

    def editable_node_def(self, name: str) -> NodeDef:
        """The node's NodeDef, to change: the scope's own copy (the input proto stays as it was)."""
        data = self.graph.nodes[name]
        self.names_by_op = {}  # an edit may change an op: the index is made afresh
        if name not in self._owned:
            owned = NodeDef()
            owned.CopyFrom(data["def"])
            del owned.input[:]
            data["def"] = owned
            self._owned.add(name)
        return data["def"]

    def _in_records(self, name: object) -> list[tuple[object, dict]]:
        """(producer, networkx edge data) of a node's inputs, in input order (this module only)."""
        # networkx's raw adjacency dict (its documented fast path): views cost ~10x more on wide nodes.
        edges = [(src, data) for src, keyed in self.graph._pred[name].items() for data in keyed.values()]
        if len(edges) > 1:  # (sort calls its key even on one item)
            edges.sort(key=lambda item: item[1]["index"])
        return edges

    def input_sources(self, name: object) -> list[object]:
        """What feeds a node's inputs, data and control, in input order (in_edges' sources)."""
        return [src for src, _ in self._in_records(name)]

    def out_ports(self, name: object) -> list[tuple[object, str | None]]:
        """(reader, port) of every edge out of a node, as out_edges gives them (no Edge made)."""
        return [(dst, data["port"]) for dst, keyed in self.graph._succ[name].items() for data in keyed.values()]

    def in_edges(self, name: object) -> list[Edge]:
        """A node's inputs, data and control, in input order."""
        return [Edge(src, name, data["port"], data["index"]) for src, data in self._in_records(name)]

    def has_control_edge(self, src: object, dst: object) -> bool:
        keyed = self.graph._pred[dst].get(src)
        return bool(keyed) and any(edge["port"] is None for edge in keyed.values())

    def data_inputs(self, name: object) -> list[tuple[object, str]]:
        return [(src, data["port"]) for src, data in self._in_records(name) if data["port"] is not None]

    def control_inputs(self, name: object) -> list[object]:
        return [src for src, data in self._in_records(name) if data["port"] is None]

    def out_edges(self, name: object) -> list[Edge]:
        """Every edge out of a node (data and control), readers in the graph's order."""
        return [Edge(name, dst, data["port"], data["index"])
                for dst, keyed in self.graph._succ[name].items() for data in keyed.values()]

    # --- editing (used by the rule engine) ----------------------------------------------
    def add_node(self, node: NodeDef, after: str) -> None:
        """Add a node ordered right after `after` (the node a rewrite replaces)."""
        if node.name in self.graph:
            raise GraphModelError(f"{self.where()}: node {node.name!r} exists already")
        self._added += 1
        self.names_by_op = {}
        order = self.graph.nodes[after]["order"] + (self._added,)
        stored = NodeDef()
        stored.CopyFrom(node)
        del stored.input[:]
        self.graph.add_node(node.name, order=order)
        self.graph.nodes[node.name]["def"] = stored
        self._owned.add(node.name)
        self._order = None

    def add_edge(self, src: object, dst: object, port: str | None, index: float) -> None:
        graph = self.graph
        _add_endpoints(graph, src, dst)  # (a control return a rewrite points elsewhere is added again)
        _insert_edge(graph._succ, graph._pred, src, dst, port, index)
        self._rewired.add(dst)
        data = self.graph.nodes[dst]
        if "next_index" in data:
            data["next_index"] = max(data["next_index"], index + 1)

    def next_input_index(self, dst: object) -> float:
        """An input position after every existing one (kept per node: wide NoOps get many)."""
        data = self.graph.nodes[dst]
        if "next_index" not in data:
            indices = [edge["index"] for keyed in self.graph._pred[dst].values() for edge in keyed.values()]
            data["next_index"] = (max(indices) + 1) if indices else 0
        return float(data["next_index"])

    def has_node(self, name: object) -> bool:
        return name in self.graph._node

    def order_key(self, name: str) -> tuple:
        """Where a node sits in the scope's node order (nodes() visits them by this key)."""
        return (self.graph._node[name]["order"], name)

    def has_edge(self, src: object, dst: object) -> bool:
        """Any edge (data or control) from src to dst; O(1)."""
        return bool(self.graph.has_edge(src, dst))

    def readers(self, name: object) -> list[Edge]:
        """Every data edge out of a node: what reads its outputs."""
        return [edge for edge in self.out_edges(name) if edge.port is not None]

    def remove_edge(self, edge: Edge) -> None:
        """Remove this edge (src -> dst at its input index and port)."""
        for key, data in list(self.graph.get_edge_data(edge.src, edge.dst, default={}).items()):
            if data["index"] == edge.position and data["port"] == edge.port:
                self.graph.remove_edge(edge.src, edge.dst, key)
                self._rewired.add(edge.dst)
                return
        raise GraphModelError(f"{self.where()}: no edge {edge.src} -> {edge.dst} at input {edge.position}")

    def rewire(self, edge: Edge, new_src: object, new_port: str | None) -> None:
        """The input of edge.dst that read edge.src now reads new_src at new_port, same index."""
        self.remove_edge(edge)
        self.add_edge(new_src, edge.dst, new_port, edge.position)

    def remove_node(self, name: object) -> None:
        """Remove a node (or a return / control-return endpoint) with its edges. (nodes() skips
        removed names, so its cached order stays valid.)"""
        graph = self.graph
        succ, pred = graph._succ, graph._pred
        readers = succ[name]
        self._rewired.update(readers)  # its readers lose an input
        # networkx's DiGraph.remove_node on its dicts directly, as _insert_edge adds (without its
        # cache clearing: nothing reads networkx's cached conversions)
        del graph._node[name]
        for reader in readers:
            del pred[reader][name]
        for source in pred[name]:
            del succ[source][name]
        del succ[name], pred[name]

    def unique_name(self, base: str) -> str:
        name, n = base, 0
        while name in self.graph:
            n += 1
            name = f"{base}_{n}"
        return name


class NodeDefView(_ScopePlace):
    """A scope read straight from its GraphDef or FunctionDef, with the reading API of Scope that
    matching uses (node_def, data_inputs, readers, output_index, ...), but no graph model and no
    copies: what a rule's match and conditions read, on the proto as it is. RuleRun.may_match
    matches on it to tell whether a scope needs a graph model at all. Read-only; the NodeDefs
    are IN's own (their `input` field is the truth here, as the edges are in a Scope)."""

    def __init__(self, kind: str, name: str, proto: graph_pb2.GraphDef | function_pb2.FunctionDef,
                 nodes: Any, ops: "OpSignatures | None") -> None:
        self.kind, self.name, self.proto, self.ops = kind, name, proto, ops
        self.external_names: frozenset[str] = frozenset()
        self.node_defs = nodes  # in order; the lookups below are built on first use
        self._by_name: dict[str, NodeDef] | None = None
        self._noted: dict[object, NodeDef] = {}  # (a name is unique: check_model has seen to it)
        self._positions: dict[str, int] | None = None
        self._arg_names: set[str] | None = None  # a function's args, read on first use (most views only screen ops)
        self._readers: dict[object, list[Edge]] | None = None

    @property
    def _nodes(self) -> dict[str, NodeDef]:
        if self._by_name is None:
            self._by_name = {node.name: node for node in self.node_defs}
        return self._by_name

    @property
    def _args(self) -> set[str]:
        if self._arg_names is None:
            proto = self.proto
            self._arg_names = ({arg.name for arg in proto.signature.input_arg}
                               if isinstance(proto, function_pb2.FunctionDef) else set())
        return self._arg_names

    @classmethod
    def of_graph_def(cls, name: str, graph_def: graph_pb2.GraphDef, ops: "OpSignatures | None") -> "NodeDefView":
        return cls("graph", name, graph_def, graph_def.node, ops)

    @classmethod
    def of_function(cls, function: function_pb2.FunctionDef, ops: "OpSignatures | None") -> "NodeDefView":
        return cls("function", function.signature.name, function, function.node_def, ops)

    def nodes(self) -> Iterator[tuple[str, NodeDef]]:
        return iter(self._nodes.items())

    def note(self, node: NodeDef, name: str) -> None:
        """Tell the view of a node already read (a rule's root while screening): a match on it
        alone reads it without building the name lookup of every node."""
        self._noted[name] = node

    def node_def(self, name: str) -> NodeDef:
        noted = self._noted.get(name)
        return noted if noted is not None else self._nodes[name]

    def has_node(self, name: object) -> bool:
        return name in self._noted or name in self._nodes

    def order_key(self, name: str) -> tuple:
        if self._positions is None:
            self._positions = {node_name: position for position, node_name in enumerate(self._nodes)}
        return ((self._positions[name],), name)

    def _producer(self, text: str) -> tuple[object, str | None]:
        return resolve_input(text, self._args, self.is_function)

    def data_inputs(self, name: object) -> list[tuple[object, str]]:
        result = []
        for text in self._nodes[str(name)].input:
            src, port = self._producer(text)
            if port is not None:
                result.append((src, port))
        return result

    def readers(self, name: object) -> list[Edge]:
        """Every data edge out of a node, as Scope.readers gives them."""
        if self._readers is None:
            readers: dict[object, list[Edge]] = {}
            for dst, node in self._nodes.items():
                for index, text in enumerate(node.input):
                    src, port = self._producer(text)
                    if port is not None:
                        readers.setdefault(src, []).append(Edge(src, dst, port, index))
            if isinstance(self.proto, function_pb2.FunctionDef):
                for out_name, text in self.proto.ret.items():
                    src, port = resolve_return(text, self._args)
                    readers.setdefault(src, []).append(Edge(src, (RET, out_name), port, 0))
            self._readers = readers
        return self._readers.get(name, [])


# --- parsing ---------------------------------------------------------------------------
def node_of(text: str) -> str:
    """The node an input or tensor name refers to: '^a', 'a:0', 'a:y:0' and 'a' all name 'a'."""
    return _split_input(text)[0]


def _split_input(text: str) -> tuple[str, str | None]:
    """'^a' -> ('a', None); 'a:y:0' -> ('a', ':y:0'); 'a' -> ('a', '')."""
    if text.startswith("^"):
        return text[1:], None
    name, sep, rest = text.partition(":")
    return name, (sep + rest)


def resolve_input(text: str, args: set[str] | frozenset[str], is_function: bool) -> tuple[object, str | None]:
    """(producer, port) of an input text: in a function, a bare name (or ^name, a control input)
    that is an arg means the arg, ("@arg", name); anything else names a node."""
    src, port = _split_input(text)
    if is_function and port in ("", None) and src in args:
        return (ARG, src), port
    return src, port


def resolve_return(text: str, args: set[str] | frozenset[str] | list[str]) -> tuple[object, str | None]:
    """(producer, port) of a function's return value text: a bare arg name means the arg."""
    src, port = _split_input(text)
    return ((ARG, src) if port == "" and src in args else src), port


def _scope_from_nodes(kind: str, name: str, proto, nodes, arg_names: list[str]) -> Scope:
    scope = Scope(kind, name, nx.MultiDiGraph(), proto)
    graph = scope.graph
    # Nodes and edges go into networkx's dicts directly, as add_nodes_from and MultiDiGraph.add_edge
    # put them (per node an attr dict and two adjacency dicts; per node pair one key dict shared by
    # _succ and _pred, keys 0, 1, ...): their checks, and add_nodes_from's TypeError per (node,
    # attrs) pair, were most of building the graph model. The graph is new, so no cached view
    # needs clearing. tests/test_graph_model.py round-trips every fixture through it.
    succ, pred, attrs = graph._succ, graph._pred, graph._node
    for arg in arg_names:
        arg_key = (ARG, arg)
        succ[arg_key], pred[arg_key], attrs[arg_key] = {}, {}, {}
    by_op = scope.names_by_op
    # (name, input texts) of each node with inputs, read once here for the edges below.
    wired: list[tuple[str, list[str]]] = []
    for position, node in enumerate(nodes):
        node_name = node.name
        if node_name in attrs:  # (an arg's key is a tuple: only a node's name is a str key)
            raise GraphModelError(f"{scope.where()}: two nodes are named {node_name!r}")
        succ[node_name], pred[node_name] = {}, {}
        attrs[node_name] = {"order": (position,), "def": node}  # shared with IN: Scope._owned
        op = node.op
        found = by_op.get(op)
        if found is None:
            found = by_op[op] = set()
        found.add(node_name)
        inputs = node.input
        if inputs:
            # As a list: a slice of a repeated field is made in C, while iterating the field ends
            # in an IndexError, which upb formats (about half the cost of reading the inputs).
            wired.append((node_name, inputs[:]))
    args = set(arg_names)  # (empty for a graph: only a function's inputs can name an arg)
    for dst, inputs in wired:
        for index, text in enumerate(inputs):
            # resolve_input, inline (one call per input was a fifth of the build)
            if text[:1] == "^":
                producer, port = text[1:], None
            else:
                producer, colon, rest = text.partition(":")
                port = colon + rest
            if not port and producer in args:
                _insert_edge(succ, pred, (ARG, producer), dst, port, index)
                continue
            if producer not in attrs:
                raise GraphModelError(
                    f"{scope.where()}: node {dst!r} ({attrs[dst]['def'].op}) has input {text!r} that names no node"
                )
            _insert_edge(succ, pred, producer, dst, port, index)
    return scope


def _add_endpoints(graph: nx.MultiDiGraph, *keys: object) -> None:
    """Add each key not in the graph yet as a bare node, as MultiDiGraph.add_edge adds an edge's
    missing ends (a return value, a control return)."""
    succ, pred, attrs = graph._succ, graph._pred, graph._node
    for key in keys:
        if key not in succ:
            succ[key], pred[key], attrs[key] = {}, {}, {}


def _insert_edge(succ: dict, pred: dict, src: object, dst: object, port: str | None, index: float) -> None:
    """MultiDiGraph.add_edge(src, dst, port=port, index=index) between two nodes of the graph, into
    networkx's dicts (`succ`, `pred`: its _succ and _pred) directly: the same key (0, 1, ... per
    node pair) and records, without add_edge's checks and cache clearing (nothing reads
    networkx's cached conversions)."""
    keydict = succ[src].get(dst)
    if keydict is None:
        keydict = succ[src][dst] = pred[dst][src] = {}
        edge_key = 0
    else:
        edge_key = len(keydict)
        while edge_key in keydict:
            edge_key += 1
    keydict[edge_key] = {"port": port, "index": index}


def check_nodes(kind: str, name: str, nodes: Any, arg_names: list[str],
                ret: Any = None, control_ret: Any = None) -> None:
    """Raise the GraphModelError that building the scope would raise, without building it: the
    same checks in the same order, on the NodeDefs (a set of names instead of a networkx graph)."""
    where = f"function {name}" if kind == "function" else f"graph {name}"
    names: set[str] = set()
    for node in nodes:
        if node.name in names:
            raise GraphModelError(f"{where}: two nodes are named {node.name!r}")
        names.add(node.name)
    args = set(arg_names)
    is_function = kind == "function"
    for node in nodes:
        for text in node.input:
            producer, _ = resolve_input(text, args, is_function)
            if isinstance(producer, str) and producer not in names:
                raise GraphModelError(f"{where}: node {node.name!r} ({node.op}) has input {text!r} that names no node")
    for out_name, text in (ret or {}).items():
        producer, _ = resolve_return(text, args)
        if isinstance(producer, str) and producer not in names:
            raise GraphModelError(f"{where}: return value {out_name!r} names no node ({text!r})")
    for out_name, node_name in (control_ret or {}).items():
        if node_name not in names:
            raise GraphModelError(f"{where}: control return {out_name!r} names no node ({node_name!r})")


def check_function(function: function_pb2.FunctionDef) -> None:
    """check_nodes for a FunctionDef (what scope_from_function would raise)."""
    signature = function.signature
    check_nodes("function", signature.name, function.node_def, [arg.name for arg in signature.input_arg],
                function.ret, function.control_ret)


def scope_from_graph_def(name: str, graph_def: graph_pb2.GraphDef) -> Scope:
    """The GraphDef's nodes (its function library becomes separate scopes)."""
    return _scope_from_nodes("graph", name, graph_def, graph_def.node, [])


def scope_from_function(function: function_pb2.FunctionDef) -> Scope:
    signature = function.signature
    args = [arg.name for arg in signature.input_arg]
    scope = _scope_from_nodes("function", signature.name, function, function.node_def, args)
    graph = scope.graph
    succ, pred, keys = graph._succ, graph._pred, graph._node
    # Each endpoint is new (a map's keys are unique), so it goes straight into networkx's dicts,
    # as _add_endpoints would put it; a map is read by key (its items() is a Python generator).
    returns, arg_names = function.ret, set(args)
    for out_name in returns:
        text = returns[out_name]
        producer, port = resolve_return(text, arg_names)
        if producer not in keys:
            raise GraphModelError(f"{scope.where()}: return value {out_name!r} names no node ({text!r})")
        endpoint = (RET, out_name)
        succ[endpoint], pred[endpoint], keys[endpoint] = {}, {}, {}
        _insert_edge(succ, pred, producer, endpoint, port, 0)
    control_returns = function.control_ret
    for out_name in control_returns:
        node_name = control_returns[out_name]
        if node_name not in keys:
            raise GraphModelError(f"{scope.where()}: control return {out_name!r} names no node ({node_name!r})")
        endpoint = (CONTROL_RET, out_name)
        succ[endpoint], pred[endpoint], keys[endpoint] = {}, {}, {}
        _insert_edge(succ, pred, node_name, endpoint, None, 0)
    return scope


# --- serializing -----------------------------------------------------------------------
def _input_text(src: object, port: str | None) -> str:
    name = src[1] if isinstance(src, tuple) else src
    return f"^{name}" if port is None else f"{name}{port}"


def graph_def_from_scope(scope: Scope, library: list[function_pb2.FunctionDef]) -> graph_pb2.GraphDef:
    graph_def = copy.deepcopy(scope.proto)
    assert isinstance(graph_def, graph_pb2.GraphDef)
    del graph_def.node[:]
    fill_nodes(graph_def.node, scope)
    # Touch `library` only if there is one: an empty one would change the bytes.
    if graph_def.HasField("library") or library:
        del graph_def.library.function[:]
        graph_def.library.function.extend(library)
    return graph_def


def function_from_scope(scope: Scope) -> function_pb2.FunctionDef:
    function = function_pb2.FunctionDef()
    write_function(function, scope)
    return function


def write_function(function: function_pb2.FunctionDef, scope: Scope, holds_input: bool = False) -> None:
    """Make `function` (a new message, or one in place in the output) the scope's FunctionDef: each
    node copied once, where it stays. `holds_input`: `function` is a copy of the scope's input
    FunctionDef already (the output's library was copied whole)."""
    if not scope._added:
        # No node was added, so the nodes kept are IN's in IN's order: the whole FunctionDef is
        # copied in one C call (about a third of the cost of copying node by node), then edited.
        if not holds_input:
            function.CopyFrom(scope.proto)
        if not edit_nodes_in_place(function.node_def, scope):
            del function.node_def[:]
            fill_nodes(function.node_def, scope)
        function.ret.clear()
        function.control_ret.clear()
    elif has_unknown_fields(scope.proto):  # (a field-by-field copy would lose them)
        function.CopyFrom(scope.proto)
        del function.node_def[:]
        function.ret.clear()
        function.control_ret.clear()
        fill_nodes(function.node_def, scope)
    else:  # every field but the nodes and returns, which come from the scope (no copy of each node to delete)
        function.Clear()
        copy_except(scope.proto, function, ("node_def", "ret", "control_ret"))
        fill_nodes(function.node_def, scope)
    # The return values and control returns, in the graph's order (networkx's dicts read directly;
    # each has exactly one input edge: the unpacking says so).
    returns, control_returns = function.ret, function.control_ret
    pred = scope.graph._pred
    control_outputs: set[str] = set()
    for key in scope.graph._node:
        if isinstance(key, tuple):
            kind = key[0]
            if kind == RET:
                (src, keyed), = pred[key].items()
                (edge,) = keyed.values()
                returns[key[1]] = _input_text(src, edge["port"])
            elif kind == CONTROL_RET:
                (src, keyed), = pred[key].items()
                (_,) = keyed
                control_returns[key[1]] = str(src)
                control_outputs.add(key[1])
    # Keep the signature's control_output order, minus entries a rewrite removed (the field holds
    # the input's list already: it is written again only if one went).
    listed = scope.proto.signature.control_output[:]
    kept = [name for name in listed if name in control_outputs]
    if len(kept) != len(listed):
        del function.signature.control_output[:]
        function.signature.control_output.extend(kept)


def edit_nodes_in_place(nodes: Any, scope: Scope) -> bool:
    """Make a repeated NodeDef field that holds a copy of the scope's input nodes, in their order,
    the scope's nodes, when no rewrite added one (Scope._added is 0): the removed nodes are
    deleted, and the nodes whose NodeDef or inputs changed are written again where they are.
    False, with `nodes` untouched, where the deletes would cost more than filling the field anew
    (each moves the pointers after it: many removals from a long list are quadratic)."""
    assert not scope._added, "nodes were added: fill_nodes puts them in their place"
    node_data = scope.graph._node
    kept = sorted(data["order"][0] for key, data in node_data.items() if isinstance(key, str))
    if (len(nodes) - len(kept)) * len(nodes) > IN_PLACE_POINTER_MOVES:
        return False
    if len(kept) != len(nodes):
        kept_positions = set(kept)
        for position in range(len(nodes) - 1, -1, -1):  # (each delete moves only the pointers after it)
            if position not in kept_positions:
                del nodes[position]
    for name in scope._owned | scope._rewired:
        data = node_data.get(name)
        if data is None or not isinstance(name, str):
            continue  # removed, or a return value (its text is written with the returns)
        node = nodes[bisect_left(kept, data["order"][0])]
        if name in scope._owned:
            node.CopyFrom(data["def"])
        del node.input[:]
        node.input.extend(_input_text(src, edge["port"]) for src, edge in scope._in_records(name))
    return True


# At most this many pointers moved by edit_nodes_in_place's deletes (about 0.1 ns each measured:
# a few ms), else the field is filled anew in linear time.
IN_PLACE_POINTER_MOVES = 1 << 26


def fill_nodes(nodes: Any, scope: Scope) -> None:
    """Append the scope's nodes to a repeated NodeDef field in place (one copy of each NodeDef,
    made where it stays: protobuf's arenas keep a temporary copy's memory until its root goes)."""
    rebuilt = scope._owned | scope._rewired  # every other node's `input` is IN's, and still the truth
    unchanged: list[NodeDef] = []  # a run of them, copied by one extend (in C)
    for name, stored in scope.nodes():
        if name not in rebuilt:
            unchanged.append(stored)
            continue
        if unchanged:
            nodes.extend(unchanged)
            unchanged = []
        node = nodes.add()
        node.CopyFrom(stored)
        del node.input[:]  # a shared NodeDef still lists IN's inputs; the edges are the truth
        node.input.extend(_input_text(src, data["port"]) for src, data in scope._in_records(name))
    if unchanged:
        nodes.extend(unchanged)


def function_library(graph_def: graph_pb2.GraphDef) -> list[function_pb2.FunctionDef]:
    return list(graph_def.library.function)
