"""fingerprint.pb as TensorFlow (2.12 and newer) computes it, without importing TensorFlow.

TensorFlow's CreateFingerprintDef (tensorflow/cc/saved_model/fingerprinting.cc, with
tensorflow/core/graph/regularization/simple_delete.cc and util.cc) hashes, with FarmHash's
Fingerprint64 (the `pyfarmhash` package binds Google's FarmHash, whose fingerprints are the same
on every platform) and FingerprintCat64 (tensorflow/core/platform/fingerprint.h):

  1. saved_model_checksum: the deterministic serialization of saved_model.pb as parsed;
  2. graph_def_program_hash: the first MetaGraphDef's GraphDef, regularized: function calls
     ((Stateful)PartitionedCall) with the numeric suffix of `f` stripped and `config_proto`
     emptied, string Consts without their value, the library and versions cleared (but present);
  3. signature_def_hash: key and SignatureDef of every signature, in key order, chained;
  4. saved_object_graph_hash: every concrete function's name without its numeric suffix and its
     SavedConcreteFunction, in suffix order, chained (a name without a numeric suffix is an
     error, as in TensorFlow);
  5. checkpoint_hash: variables/variables.index (0 if there is none);
  version.producer = 4 (TF 2.21's). TensorFlow draws `uuid` at random; the caller sets it.

tests/test_fingerprint.py compares every field with TensorFlow's own CreateFingerprintDef.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import farmhash

from rewriter.savedmodel import cpp_bytes
from rewriter.protos import fingerprint_pb2, meta_graph_pb2, saved_model_pb2, types_pb2

_MASK = (1 << 64) - 1
_MUL = 0xC6A4A7935BD1E995
# kFingerprintProducer, "the version of the code that produced the fingerprint": what TF 2.21
# writes (every fixture's fingerprint.pb says 4), whose hashes these are.
FINGERPRINT_PRODUCER = 4
# strings::safe_strto64 / absl::SimpleAtoi: optional surrounding whitespace and sign, decimal digits.
_INTEGER = re.compile(r"[ \t\n\v\f\r]*([+-]?[0-9]+)[ \t\n\v\f\r]*")


class FingerprintError(ValueError):
    """What makes TensorFlow's fingerprinting fail (it then writes no fingerprint.pb)."""


def fingerprint64(data: bytes) -> int:
    return int(farmhash.fingerprint64(data))


def _shift_mix(value: int) -> int:
    return value ^ (value >> 47)


def fingerprint_cat64(first: int, second: int) -> int:
    """tensorflow::FingerprintCat64: combines two fingerprints (order matters)."""
    result = first ^ _MUL
    result ^= (_shift_mix((second * _MUL) & _MASK) * _MUL) & _MASK
    result = (result * _MUL) & _MASK
    result = (_shift_mix(result) * _MUL) & _MASK
    return _shift_mix(result)


def suffix_uid(function_name: str) -> int | None:
    """graph_regularization::GetSuffixUID: the integer after the last '_' (None if it is not one)."""
    match = _INTEGER.fullmatch(function_name.split("_")[-1])
    if match is None:
        return None
    uid = int(match.group(1))
    return uid if -(1 << 63) <= uid < (1 << 63) else None


def _strip_uid(name: str, uid: int) -> str:
    suffix = str(uid)  # std::to_string(uid), stripped only if the name ends with exactly that
    return name[: -len(suffix)] if name.endswith(suffix) else name


def _serialized(msg: Any) -> bytes:
    """C++ protobuf's deterministic serialization, which TensorFlow hashes (cpp_bytes.py: Python's
    orders map keys differently)."""
    return cpp_bytes.serialize(msg)


def graph_def_program_hash(meta_graph: meta_graph_pb2.MetaGraphDef) -> int:
    graph_def = type(meta_graph.graph_def)()
    graph_def.CopyFrom(meta_graph.graph_def)
    for node in graph_def.node:
        if node.op in ("PartitionedCall", "StatefulPartitionedCall"):
            if "f" in node.attr:
                name = node.attr["f"].func.name
                uid = suffix_uid(name)
                if uid is not None:
                    node.attr["f"].func.name = _strip_uid(name, uid)
            if "config_proto" in node.attr:
                node.attr["config_proto"].s = b""
        if node.op == "Const" and "dtype" in node.attr and node.attr["dtype"].type == types_pb2.DT_STRING and "value" in node.attr:
            node.attr["value"].ClearField("value")
    # mutable_library()->Clear() and mutable_versions()->Clear(): empty, but present.
    graph_def.ClearField("library")
    graph_def.library.SetInParent()
    graph_def.ClearField("versions")
    graph_def.versions.SetInParent()
    return fingerprint64(_serialized(graph_def))


def signature_def_hash(meta_graph: meta_graph_pb2.MetaGraphDef) -> int:
    result = 0
    for key in sorted(meta_graph.signature_def, key=lambda k: k.encode("utf-8")):
        result = fingerprint_cat64(result, fingerprint64(key.encode("utf-8")))
        result = fingerprint_cat64(result, fingerprint64(_serialized(meta_graph.signature_def[key])))
    return result


def saved_object_graph_hash(meta_graph: meta_graph_pb2.MetaGraphDef) -> int:
    functions = meta_graph.object_graph_def.concrete_functions
    by_uid: dict[int, str] = {}
    for name in functions:
        uid = suffix_uid(name)
        if uid is None:
            raise FingerprintError(f"Function name: `{name}` does not end in an integer.")
        by_uid.setdefault(uid, name)  # btree_map::insert keeps the first of equal keys
    result = 0
    for uid in sorted(by_uid):
        name = by_uid[uid]
        result = fingerprint_cat64(result, fingerprint64(_strip_uid(name, uid).encode("utf-8")))
        result = fingerprint_cat64(result, fingerprint64(_serialized(functions[name])))
    return result


def create_fingerprint(directory: Path, saved_model: saved_model_pb2.SavedModel | None = None) -> fingerprint_pb2.FingerprintDef:
    """The FingerprintDef TensorFlow's CreateFingerprintDef makes for the SavedModel in `directory`
    (saved_model.pb, not a chunked .cpb), without `uuid`. `saved_model`: the message that
    directory's saved_model.pb was serialized from, when the caller holds it (not parsed again)."""
    if saved_model is None:
        saved_model = saved_model_pb2.SavedModel.FromString((directory / "saved_model.pb").read_bytes())
    fingerprint = fingerprint_pb2.FingerprintDef()
    fingerprint.saved_model_checksum = fingerprint64(_serialized(saved_model))
    if not saved_model.meta_graphs:
        raise FingerprintError("saved_model.pb has no MetaGraphDef")
    meta_graph = saved_model.meta_graphs[0]
    fingerprint.graph_def_program_hash = graph_def_program_hash(meta_graph)
    fingerprint.signature_def_hash = signature_def_hash(meta_graph)
    fingerprint.saved_object_graph_hash = saved_object_graph_hash(meta_graph)
    index = directory / "variables" / "variables.index"
    fingerprint.checkpoint_hash = fingerprint64(index.read_bytes()) if index.is_file() else 0
    fingerprint.version.producer = FINGERPRINT_PRODUCER
    return fingerprint
