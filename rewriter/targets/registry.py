"""Op registries of real TensorFlow releases, as dumped from their wheels (tools/gen_registries.py).

An OpRegistry answers what the release's importer will check: does the op exist, which attrs
it declares, and how its input and output args expand into flat tensor positions.
"""
from __future__ import annotations

import functools
from typing import Any
import gzip
from importlib import resources

from rewriter.protos import attr_value_pb2, node_def_pb2, op_def_pb2
from rewriter.protos.attr_value_pb2 import AttrValue
from rewriter.protos.op_def_pb2 import OpDef
from rewriter.protos.node_def_pb2 import NodeDef

from rewriter.targets.releases import Release, known_releases, release_info



class OpRegistry:
    """The ops of one release, by name."""

    def __init__(self, release: Release, op_list: op_def_pb2.OpList) -> None:
        self.release = release
        self.ops: dict[str, OpDef] = {op.name: op for op in op_list.op}

    def __contains__(self, op_name: str) -> bool:
        return op_name in self.ops

    def op(self, name: str) -> OpDef | None:
        return self.ops.get(name)

    def attr_def(self, op_name: str, attr_name: str) -> op_def_pb2.OpDef.AttrDef | None:
        op = self.ops.get(op_name)
        if op is None:
            return None
        for attr in op.attr:
            if attr.name == attr_name:
                return attr
        return None

    def input_ranges(self, node: NodeDef) -> dict[str, tuple[int, int]] | None:
        """Input arg name -> (first flat input index, count); None if the op is unknown here."""
        op = self.ops.get(node.op)
        return None if op is None else _arg_ranges(op, op.input_arg, node)

    def output_ranges(self, node: NodeDef) -> dict[str, tuple[int, int]] | None:
        """Output arg name -> (first flat output index, count); None if the op is unknown here."""
        op = self.ops.get(node.op)
        return None if op is None else _arg_ranges(op, op.output_arg, node)


def attr_or_default(op: OpDef, node: NodeDef, name: str) -> AttrValue | None:
    """The node's value of attr `name`, or the OpDef's default when the node leaves it out."""
    if name in node.attr:
        return node.attr[name]
    for attr in op.attr:
        if attr.name == name and attr.HasField("default_value"):
            return attr.default_value
    return None


def arg_count(op: OpDef, arg: op_def_pb2.OpDef.ArgDef, node: NodeDef) -> int:
    """How many flat tensors one arg stands for on this node (number_attr / type_list_attr)."""
    if arg.number_attr:
        value = attr_or_default(op, node, arg.number_attr)
        return int(value.i) if value is not None else 0
    if arg.type_list_attr:
        value = attr_or_default(op, node, arg.type_list_attr)
        return len(value.list.type) if value is not None else 0
    return 1


def _arg_ranges(
    op: OpDef, args: Any, node: NodeDef
) -> dict[str, tuple[int, int]]:
    ranges: dict[str, tuple[int, int]] = {}
    start = 0
    for arg in args:
        count = arg_count(op, arg, node)
        ranges[arg.name] = (start, count)
        start += count
    return ranges


def read_op_list(data: bytes) -> op_def_pb2.OpList:
    op_list = op_def_pb2.OpList()
    op_list.ParseFromString(data)
    return op_list


@functools.cache
def load_registry(release: Release) -> OpRegistry:
    """The shipped registry of a release (BadInput if we have none for it)."""
    info = release_info(release)
    blob = resources.files("rewriter.registries").joinpath(info["ops_file"]).read_bytes()
    return OpRegistry(release, read_op_list(gzip.decompress(blob)))


@functools.cache
def first_release_with_op(op_name: str) -> Release | None:
    """The oldest shipped release that has the op (None: none has it)."""
    for release in known_releases():
        if op_name in load_registry(release):
            return release
    return None


@functools.cache
def first_release_with_attr(op_name: str, attr_name: str) -> Release | None:
    for release in known_releases():
        if load_registry(release).attr_def(op_name, attr_name) is not None:
            return release
    return None


def newest_registry() -> OpRegistry:
    """The newest shipped release: the reference for ops a source model may contain."""
    return load_registry(known_releases()[-1])
