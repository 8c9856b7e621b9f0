"""Each NodeDef of a scope read into Python once, for every check that walks the input.

Reading a NodeDef's fields through protobuf costs a Python call per field and per attr (about
1 us per attr); the structure checks (savedmodel.model.check_model) and the validator on the input
(verify.validator) used to read every node each. A NodeReading holds what both read: the node,
its name, op, input texts, and its NodeKind: each attr's name, value and kind (the AttrValue's
oneof), in the attr map's order. Readings are made per scope and dropped with it: held for a whole
300k-node model they would cost as much memory as the parsed model.

Most nodes of a model are alike but for their name and inputs (every ReadVariableOp of a dtype,
every Identity of a type, the Conv2Ds of a network: about four in five nodes in Keras models).
NodeKinds reads the attrs of the first of them only, and gives the others the same NodeKind, so
what the checks work out from the attrs can be worked out once per kind (validator._Verdict).
"""
from __future__ import annotations

from typing import Iterable

from rewriter.protos.attr_value_pb2 import AttrValue
from rewriter.protos.node_def_pb2 import NodeDef

# (name, value, kind): kind is value.WhichOneof("value") (None when the value holds nothing).
AttrReading = tuple[str, AttrValue, "str | None"]


def attr_functions(attrs: list[AttrReading]) -> list[str]:
    """The functions that attrs name (a func, or a list of them), in order."""
    names: list[str] = []
    for _, value, kind in attrs:
        if kind == "func":
            names.append(value.func.name)
        elif kind == "list" and value.list.func:
            names.extend(f.name for f in value.list.func)
    return names


class NodeKind:
    """The attrs of a node as (name, value, kind), in the map's order, and the functions they
    name. `shared`: NodeKinds gives this object to every node equal to the one read except for
    its name and inputs (so anything worked out from the op and the attrs holds for all of
    them); else it is this node's own."""

    __slots__ = ("attrs", "shared", "functions")

    def __init__(self, attrs: list[AttrReading], shared: bool) -> None:
        self.attrs, self.shared = attrs, shared
        self.functions = attr_functions(attrs)


# (the NodeDef, its name, its op, its input texts, its attrs as a NodeKind)
NodeReading = tuple[NodeDef, str, str, list[str], NodeKind]


def read_attrs(node: NodeDef) -> list[AttrReading]:
    """The node's attrs as (name, value, kind), in the map's order."""
    attrs = node.attr
    read = []
    for key in attrs:  # (the map's values() is a Python generator over the same lookups)
        value = attrs[key]
        read.append((key, value, value.WhichOneof("value")))
    return read


# A node whose serialization is longer than this is read on its own: its key would keep a copy
# of large attrs (a constant's tensor) alive.
MAX_KEY_BYTES = 4096
# The wire tags of NodeDef's fields after its inputs (device, attr, experimental_debug_info,
# experimental_type): the byte a key starts with, if the node has any of them.
_TAGS_AFTER_INPUTS = frozenset({0x22, 0x2a, 0x32, 0x3a})


class NodeKinds:
    """Reads nodes, one NodeKind per kind of node: nodes with the same op whose serializations
    are equal after their name, op and inputs (so with equal device, attrs and every other field)
    share one, read from the first of them. Two nodes share a NodeKind only if those bytes are
    equal; alike nodes whose attr maps serialize in another order just get a NodeKind each.

    Protobuf writes a message's known fields in field-number order and its unknown fields last
    (upb, C++ and pure Python alike; tests/test_node_reading.py checks it on every fixture), so a
    NodeDef's bytes start with its name (1), op (2) and inputs (3): their length is known from
    the strings read already, and the rest is the key. A node the key cannot be cut from as
    expected, a large one, and every node of an op one of whose nodes held a tensor (a constant:
    serializing it would copy it) get their own NodeKind."""

    def __init__(self) -> None:
        self._kinds: dict[tuple[str, bytes], NodeKind] = {}
        self._keyed: dict[str, bool] = {}  # per op: whether its nodes are keyed (unseen: read the first)

    def read_nodes(self, nodes: Iterable[NodeDef]) -> list[NodeReading]:
        """A NodeReading of each node, in order."""
        readings: list[NodeReading] = []
        kinds, keyed = self._kinds, self._keyed
        for node in nodes:
            # (a slice: iterating a upb repeated field ends in an IndexError that upb formats, a third of the cost)
            name, op, inputs = node.name, node.op, node.input[:]
            kind: NodeKind | None = None
            op_keyed = keyed.get(op)
            if op_keyed is None:  # the op's first node: its attrs tell whether its nodes may hold tensors
                attrs = read_attrs(node)
                keyed[op] = not any(held == "tensor" or (held == "list" and len(value.list.tensor))
                                    for _, value, held in attrs)
                key = self._key(node, name, op, inputs) if keyed[op] else None
                kind = NodeKind(attrs, key is not None)
                if key is not None:
                    kinds[key] = kind
            elif op_keyed:
                key = self._key(node, name, op, inputs)
                if key is not None:
                    kind = kinds.get(key)
                    if kind is None:
                        kind = kinds[key] = NodeKind(read_attrs(node), True)
            if kind is None:
                kind = NodeKind(read_attrs(node), False)
            readings.append((node, name, op, inputs, kind))
        return readings

    def _key(self, node: NodeDef, name: str, op: str, inputs: list[str]) -> tuple[str, bytes] | None:
        """(op, the node's serialization after its name, op and inputs), or None (the node is read on its own)."""
        serialized = node.SerializeToString()
        if len(serialized) > MAX_KEY_BYTES:
            self._keyed[op] = False
            return None
        joined = "".join(inputs)
        if (name and op and len(name) < 0x80 and len(op) < 0x80 and name.isascii() and op.isascii()
                and joined.isascii() and (len(joined) < 0x80 or max(map(len, inputs)) < 0x80)):
            # (the common case: each string is ASCII and shorter than 128 bytes, so tag and length take 2 bytes)
            start = 4 + len(name) + len(op) + 2 * len(inputs) + len(joined)
        else:
            start = _string_field_bytes(name) + _string_field_bytes(op) + sum(
                _string_field_bytes(text, repeated=True) for text in inputs)
        if serialized[:1] != b"\n" or (start < len(serialized) and serialized[start] not in _TAGS_AFTER_INPUTS):
            return None  # not laid out as expected: read on its own
        return op, serialized[start:]


def _string_field_bytes(text: str, repeated: bool = False) -> int:
    """The bytes a string field holding `text` takes on the wire: tag, length and UTF-8 (none for
    an empty singular string, which proto3 leaves out)."""
    if not text and not repeated:
        return 0
    size = len(text.encode("utf-8"))
    length_bytes = 1
    while size >= 0x80 << (7 * (length_bytes - 1)):
        length_bytes += 1
    return 1 + length_bytes + size

