"""The checkpoint's TrackableObjectGraph: read from its one index entry, and the plan for writing
a changed one (a new index, and the object graph appended to a copy of its data shard).

No variable is read or decoded: the shard is copied byte for byte.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from google.protobuf import message

from rewriter.errors import BadInput
from rewriter.protos import trackable_object_graph_pb2
from rewriter.savedmodel import bundle_index
from rewriter.savedmodel.files import SavedModelFiles

OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
INDEX = "variables/variables.index"


@dataclass
class CheckpointGraph:
    entries: list[tuple[bytes, bytes]]
    shard: str  # relative path of the shard holding the object graph
    graph: trackable_object_graph_pb2.TrackableObjectGraph


@dataclass
class CheckpointRewrite:
    """What write() must do for a changed checkpoint object graph."""

    index: bytes  # the new variables.index
    shard: str  # relative path of the shard that `finalize` writes (a copy plus the new graph)
    finalize: Callable[[Path], None]  # run on the complete temporary output folder


def read_checkpoint_graph(files: SavedModelFiles) -> CheckpointGraph | None:
    """The checkpoint's TrackableObjectGraph, read from its one index entry (no variable is read)."""
    if INDEX not in files.other_files:
        return None
    entries = bundle_index.read_index((files.root / INDEX).read_bytes())
    entry = bundle_index.find_entry(entries, OBJECT_GRAPH_KEY)
    if entry is None:
        return None
    shard = bundle_index.shard_name("variables/variables", entry.shard_id, bundle_index.num_shards(entries))
    with open(files.root / shard, "rb") as reader:
        reader.seek(entry.offset)
        data = reader.read(entry.size)
    value = bundle_index.decode_string_scalar(data, entry.crc32c)
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    try:
        graph.ParseFromString(value)
    except message.DecodeError as error:
        raise BadInput(f"variables/: the checkpoint's object graph does not parse ({error})") from None
    return CheckpointGraph(entries, shard, graph)


def plan_rewrite(files: SavedModelFiles, ckpt: CheckpointGraph) -> CheckpointRewrite:
    """The new index and the appended shard bytes for `ckpt.graph` as it is now."""
    value = ckpt.graph.SerializeToString(deterministic=True)
    shard_bytes, crc = bundle_index.encode_string_scalar(value)
    source_shard = files.root / ckpt.shard
    offset = source_shard.stat().st_size
    entries = []
    for key, raw in ckpt.entries:
        if key == OBJECT_GRAPH_KEY.encode():
            entry = bundle_index.find_entry([(key, raw)], OBJECT_GRAPH_KEY)
            assert entry is not None
            entry.offset, entry.size, entry.crc32c = offset, len(shard_bytes), crc
            raw = entry.SerializeToString(deterministic=True)
        entries.append((key, raw))

    def finalize(directory: Path) -> None:
        # The shard is copied (never linked: we append to it) with the new object graph at the end.
        target = directory / ckpt.shard
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(source_shard, "rb") as reader, open(target, "wb") as writer:
            shutil.copyfileobj(reader, writer, 1 << 20)
            if writer.tell() != offset:
                raise OSError(f"{source_shard} changed while it was copied")
            writer.write(shard_bytes)
        shutil.copymode(source_shard, target)
        os.utime(target)

    return CheckpointRewrite(bundle_index.write_index(entries), ckpt.shard, finalize)
