"""OpDefs for a scope's port arithmetic: which flat output a port text names, and back.

A GraphDef names outputs by flat index (`x:2`); a FunctionDef by output arg and position
(`x:values:0`). Converting needs the producer's OpDef: the scope's own function library first
(a call to a function of the model), then the source release's registry, then the target's
(ops a rule adds). A Scope holds one of these (`Scope.ops`), so its users never carry OpDefs.
"""
from __future__ import annotations

from typing import Any

from rewriter.protos.node_def_pb2 import NodeDef
from rewriter.protos.op_def_pb2 import OpDef
from rewriter.targets.registry import OpRegistry, arg_count


class PortError(ValueError):
    """An output that cannot be named: the op is unknown or has no such output."""


class OpSignatures:
    """The scope's function library, then the source release's registry, then the target's."""

    def __init__(self, source: OpRegistry, target: OpRegistry, library: dict[str, OpDef]) -> None:
        self.source, self.target, self.library = source, target, library

    def op(self, name: str) -> OpDef | None:
        return self.library.get(name) or self.source.op(name) or self.target.op(name)

    def target_op(self, name: str) -> OpDef | None:
        return self.library.get(name) or self.target.op(name)

    def output_index(self, in_function: bool, node: NodeDef, port: str) -> int | None:
        """The flat output index a port text names (None if it cannot be resolved)."""
        if not in_function:
            return int(port[1:]) if port else 0
        parts = port.split(":")
        if len(parts) != 3:
            return 0 if port == "" else None
        op = self.op(node.op)
        if op is None:
            return None
        ranges = arg_ranges(op, op.output_arg, node)
        if parts[1] not in ranges:
            return None
        return ranges[parts[1]][0] + int(parts[2])

    def output_port(self, in_function: bool, node: NodeDef, flat: int, op: OpDef | None) -> str:
        """The port text of flat output `flat` of `node`, whose OpDef is `op`."""
        if not in_function:
            return f":{flat}"
        if op is None:
            raise PortError(f"op {node.op} is unknown, its outputs cannot be named")
        for name, (start, count) in arg_ranges(op, op.output_arg, node).items():
            if start <= flat < start + count:
                return f":{name}:{flat - start}"
        raise PortError(f"{node.op} has no output {flat}")


def arg_ranges(op: OpDef, args: Any, node: NodeDef) -> dict[str, tuple[int, int]]:
    """arg name -> (first flat index, count) of the op's input or output args for this node."""
    ranges, start = {}, 0
    for arg in args:
        count = arg_count(op, arg, node)
        ranges[arg.name] = (start, count)
        start += count
    return ranges
