"""Read and rewrite a TF2 checkpoint's index (variables/variables.index) without loading tensors.

The object-graph rules change one entry of a checkpoint: the `_CHECKPOINTABLE_OBJECT_GRAPH` string
tensor (a serialized TrackableObjectGraph). Everything else must stay byte-identical, and variables
can be large, so we never decode a variable: the index is a small LevelDB-format table
(tensorflow/core/lib/io/table_builder.cc) of BundleEntryProto values keyed by tensor name, and the
new object graph is appended to the end of its data shard, where the rewritten entry points.
The bytes the old entry pointed at stay in the shard, unread.

Formats (from tensorflow/core/util/tensor_bundle/tensor_bundle.cc and core/lib/io/):
- table: data blocks of prefix-compressed entries with restart points, each followed by a
  1-byte compression type (0 = none) and the masked crc32c of block + type; a metaindex block;
  an index block mapping a separator key to each data block's handle; a 48-byte footer
  (two varint handles padded to 40 bytes, then the magic 0xdb4775248b80fb57).
- a string tensor in a data shard: varint64 length of each element, the masked crc32c of those
  lengths taken as little-endian uint32s (4 bytes), then the element bytes. The entry's crc32c is
  the masked crc32c of the uint32 lengths, the length checksum and the element bytes.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import google_crc32c

from rewriter.protos import tensor_bundle_pb2

from rewriter.errors import BadInput
from rewriter.runtimes.protowire import read_varint, write_varint

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
_MASK_DELTA = 0xA282EAD8


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC-32C (Castagnoli) of `data`, continuing from `crc`: Google's C library (google-crc32c),
    as TensorFlow's own crc32c. The Python byte loop this replaces took 0.1 s per MB, for an object
    graph read and written again and an index checked block by block."""
    return google_crc32c.extend(crc, data)


def mask(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    try:
        return read_varint(data, pos)
    except ValueError:
        raise BadInput("variables/variables.index: truncated varint") from None


def _block(data: bytes, offset: int, size: int) -> bytes:
    block = data[offset:offset + size]
    trailer = data[offset + size:offset + size + 5]
    if len(block) != size or len(trailer) != 5:
        raise BadInput("variables/variables.index: a block runs past the end of the file")
    if trailer[0] != 0:
        raise BadInput("variables/variables.index: compressed blocks are not supported")
    if mask(crc32c(block + trailer[:1])) != struct.unpack("<I", trailer[1:])[0]:
        raise BadInput("variables/variables.index: block checksum mismatch")
    return block


def _entries(block: bytes) -> list[tuple[bytes, bytes]]:
    if len(block) < 4:
        raise BadInput("variables/variables.index: block too short")
    restarts = struct.unpack("<I", block[-4:])[0]
    end = len(block) - 4 - 4 * restarts
    pos, key, out = 0, b"", []
    while pos < end:
        shared, pos = _read_varint(block, pos)
        unshared, pos = _read_varint(block, pos)
        length, pos = _read_varint(block, pos)
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        out.append((key, block[pos:pos + length]))
        pos += length
    return out


def read_index(data: bytes) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of a table file, in order."""
    if len(data) < FOOTER_SIZE or struct.unpack("<Q", data[-8:])[0] != TABLE_MAGIC:
        raise BadInput("variables/variables.index: not a TensorFlow table (bad magic)")
    footer = data[-FOOTER_SIZE:]
    _, pos = _read_varint(footer, 0)
    _, pos = _read_varint(footer, pos)
    index_offset, pos = _read_varint(footer, pos)
    index_size, pos = _read_varint(footer, pos)
    out = []
    for _, handle in _entries(_block(data, index_offset, index_size)):
        offset, pos = _read_varint(handle, 0)
        size, _ = _read_varint(handle, pos)
        out.extend(_entries(_block(data, offset, size)))
    return out


def _write_block(entries: list[tuple[bytes, bytes]]) -> bytes:
    # Every entry a restart point (no prefix sharing): simple, and valid for every reader.
    body = bytearray()
    restarts = []
    for key, value in entries:
        restarts.append(len(body))
        body += write_varint(0) + write_varint(len(key)) + write_varint(len(value)) + key + value
    if not restarts:
        restarts = [0]
    for restart in restarts:
        body += struct.pack("<I", restart)
    body += struct.pack("<I", len(restarts))
    return bytes(body)


def _with_trailer(block: bytes) -> bytes:
    return block + b"\x00" + struct.pack("<I", mask(crc32c(block + b"\x00")))


def write_index(entries: list[tuple[bytes, bytes]]) -> bytes:
    """A table file holding `entries` (sorted by key, as read) in one data block."""
    keys = [k for k, _ in entries]
    if keys != sorted(keys):
        raise ValueError("table entries must be sorted by key")
    out = bytearray()
    data_block = _write_block(entries)
    data_handle = write_varint(0) + write_varint(len(data_block))
    out += _with_trailer(data_block)
    meta_block = _write_block([])
    meta_handle = write_varint(len(out)) + write_varint(len(meta_block))
    out += _with_trailer(meta_block)
    last_key = keys[-1] if keys else b""
    index_block = _write_block([(last_key, data_handle)])
    index_handle = write_varint(len(out)) + write_varint(len(index_block))
    out += _with_trailer(index_block)
    footer = meta_handle + index_handle
    footer += b"\x00" * (40 - len(footer)) + struct.pack("<Q", TABLE_MAGIC)
    out += footer
    return bytes(out)


def encode_string_scalar(value: bytes) -> tuple[bytes, int]:
    """(bytes in the data shard, entry crc32c) of a scalar string tensor, as BundleWriter writes it."""
    lengths = write_varint(len(value))
    # The checksum covers the length as a little-endian uint32 (uint64 past 4 GiB), not its varint.
    size_format = "<I" if len(value) <= 0xFFFFFFFF else "<Q"
    crc = crc32c(struct.pack(size_format, len(value)))
    length_checksum = struct.pack("<I", mask(crc))
    crc = crc32c(length_checksum, crc)
    crc = crc32c(value, crc)
    return lengths + length_checksum + value, mask(crc)


@dataclass
class StringEntry:
    key: bytes
    entry: tensor_bundle_pb2.BundleEntryProto


def find_entry(entries: list[tuple[bytes, bytes]], key: str) -> tensor_bundle_pb2.BundleEntryProto | None:
    for k, value in entries:
        if k == key.encode():
            return tensor_bundle_pb2.BundleEntryProto.FromString(value)
    return None


def shard_name(prefix: str, shard_id: int, num_shards: int) -> str:
    return f"{prefix}.data-{shard_id:05d}-of-{num_shards:05d}"


def num_shards(entries: list[tuple[bytes, bytes]]) -> int:
    header = tensor_bundle_pb2.BundleHeaderProto.FromString(dict(entries)[b""])
    return int(header.num_shards)


def decode_string_scalar(data: bytes, expected_crc: int) -> bytes:
    """The value of a scalar string tensor's shard bytes; BadInput if its checksum is wrong."""
    length, pos = _read_varint(data, 0)
    value = data[pos + 4:pos + 4 + length]
    if len(value) != length or encode_string_scalar(value) != (data, expected_crc):
        raise BadInput("variables/: the checkpoint's object graph entry fails its checksum")
    return value


def decode_strings(data: bytes, count: int) -> list[bytes] | None:
    """The elements of a string tensor of `count` elements from its shard bytes (BundleWriter's
    layout: each length as a varint, a checksum of the lengths, then the bytes); None when the
    bytes do not hold that many (read to learn keys, not to restore: the checksum is not checked)."""
    lengths, pos = [], 0
    try:
        for _ in range(count):
            length, pos = _read_varint(data, pos)
            lengths.append(length)
    except (IndexError, ValueError):
        return None
    pos += 4 if count else 0
    values = []
    for length in lengths:
        values.append(data[pos:pos + length])
        pos += length
    return values if pos == len(data) else None
