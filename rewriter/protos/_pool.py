"""The private DescriptorPool of rewriter.protos (see its docstring for why not the default pool)."""
from __future__ import annotations

from google.protobuf import any_pb2, descriptor, descriptor_pb2, descriptor_pool, wrappers_pb2

POOL = descriptor_pool.DescriptorPool()


def _add_well_known() -> None:
    # protobuf's own files that TensorFlow's import: the same in every protobuf release.
    for module in (any_pb2, wrappers_pb2):
        proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        POOL.Add(proto)


_add_well_known()


def add(serialized: bytes) -> descriptor.FileDescriptor:
    """Add one serialized FileDescriptorProto (its imports must be in the pool already)."""
    added: descriptor.FileDescriptor = POOL.AddSerializedFile(serialized)
    return added
