"""Each NodeDef of a scope read into Python once, for every check that walks the input.

Reading a NodeDef's fields through protobuf costs a Python call per field and per attr (about
1 us per node); the structure checks (savedmodel.model.check_model) and the validator on the input
(verify.validator) used to read every node each. A NodeReading holds what both read: the node,
its name, op, input texts, and each attr's name, value and kind (the AttrValue's oneof), in the
attr map's order. Readings are made per scope and dropped with it: held for a whole 300k-node
model they would cost as much memory as the parsed model.
"""
from __future__ import annotations

from typing import Iterable

from rewriter.protos.attr_value_pb2 import AttrValue
from rewriter.protos.node_def_pb2 import NodeDef

# (name, value, kind): kind is value.WhichOneof("value") (None when the value holds nothing).
AttrReading = tuple[str, AttrValue, "str | None"]
# (the NodeDef, its name, its op, its input texts, its attrs in the map's order)
NodeReading = tuple[NodeDef, str, str, list[str], list[AttrReading]]


def read_attrs(node: NodeDef) -> list[AttrReading]:
    """The node's attrs as (name, value, kind), in the map's order."""
    attrs = node.attr
    read = []
    for key in attrs:  # (the map's values() is a Python generator over the same lookups)
        value = attrs[key]
        read.append((key, value, value.WhichOneof("value")))
    return read


def read_nodes(nodes: Iterable[NodeDef]) -> list[NodeReading]:
    """A NodeReading of each node, in order."""
    return [(node, node.name, node.op, list(node.input), read_attrs(node)) for node in nodes]
