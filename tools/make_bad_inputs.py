#!/usr/bin/env python3
"""Generate the binary part of the bad-input corpus (tests/bad_inputs/).

Every file here is a `saved_model.pb` derived from the smallest golden fixture,
golden/fixtures/int_output, by a protobuf-level edit that makes it wrong in one
precise way. tests/test_bad_inputs.py drops each one into a copy of that fixture's
folder (variables and all) and checks that tfdowngrade answers with one clear line
and the documented exit code, without touching IN or leaving a half-written OUT.

Cases that are about folder layout (missing folder, both .pb and .pbtxt, a symlink
leaving IN, ...) need no binary and are built by the test itself.

The output is deterministic (protobuf's deterministic serialization, a seeded RNG),
so `python tools/make_bad_inputs.py --check` can prove the committed corpus is what
this script writes (tests/test_bad_inputs.py runs that check).

Usage:
    .venv/bin/python tools/make_bad_inputs.py            # (re)write tests/bad_inputs/
    .venv/bin/python tools/make_bad_inputs.py --out DIR  # write elsewhere
    .venv/bin/python tools/make_bad_inputs.py --check    # exit 1 if tests/bad_inputs/ is stale
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from rewriter.protos.function_pb2 import FunctionDef  # noqa: E402
from rewriter.protos.op_def_pb2 import OpList  # noqa: E402
from rewriter.protos.saved_model_pb2 import SavedModel  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BASE_FIXTURE = REPO / "golden" / "fixtures" / "int_output" / "saved_model"
DEFAULT_OUT = REPO / "tests" / "bad_inputs"
MANIFEST = "cases.json"

# Functions of int_output that the edits below aim at (checked when the edit runs, so a
# regenerated fixture that renamed them fails loudly instead of yielding a harmless case).
SERVE_FN_PREFIX = "__inference_serve_"
WRAPPER_FN_PREFIX = "__inference_signature_wrapper_serve_"

def _base() -> SavedModel:
    proto = SavedModel()
    proto.ParseFromString((BASE_FIXTURE / "saved_model.pb").read_bytes())
    return proto


def _function(proto: SavedModel, prefix: str) -> FunctionDef:
    matches = [f for f in proto.meta_graphs[0].graph_def.library.function if f.signature.name.startswith(prefix)]
    if len(matches) != 1:
        raise SystemExit(f"make_bad_inputs: expected one function named {prefix}*, found {len(matches)}")
    return matches[0]


def _serialize(proto: SavedModel) -> bytes:
    return proto.SerializeToString(deterministic=True)


# --- the edits ---------------------------------------------------------------------------
def truncated() -> bytes:
    # Cut inside the first MetaGraphDef: a length prefix then promises more than there is.
    data = (BASE_FIXTURE / "saved_model.pb").read_bytes()
    return data[: len(data) // 2]


def empty() -> bytes:
    return b""


def random_bytes() -> bytes:
    # Seeded, so the corpus is reproducible; 0x00 first byte makes it an invalid tag (field 0).
    rng = random.Random(20240505)
    return b"\x00" + bytes(rng.getrandbits(8) for _ in range(4095))


def wrong_message() -> bytes:
    # A perfectly valid protobuf, but an OpList (as in ops.pbtxt dumps), not a SavedModel:
    # protobuf parses it happily into unknown fields, and no MetaGraphDef results.
    ops = OpList()
    ops.op.extend(_base().meta_graphs[0].meta_info_def.stripped_op_list.op)
    return ops.SerializeToString(deterministic=True)


def call_cycle() -> bytes:
    # serve -> signature_wrapper -> serve: TF cannot instantiate a recursive function.
    proto = _base()
    serve, wrapper = _function(proto, SERVE_FN_PREFIX), _function(proto, WRAPPER_FN_PREFIX)
    call = serve.node_def.add()
    call.name = "cycle_call"
    call.op = "StatefulPartitionedCall"
    call.attr["f"].func.name = wrapper.signature.name
    call.attr["Tin"].list.SetInParent()
    call.attr["Tout"].list.SetInParent()
    return _serialize(proto)


def missing_function() -> bytes:
    # The wrapper's call names a function the library does not hold.
    proto = _base()
    wrapper = _function(proto, WRAPPER_FN_PREFIX)
    (call,) = [n for n in wrapper.node_def if n.op == "StatefulPartitionedCall"]
    call.attr["f"].func.name = "__inference_deleted_function_999"
    return _serialize(proto)


def dangling_input_graph() -> bytes:
    proto = _base()
    (node,) = [n for n in proto.meta_graphs[0].graph_def.node if n.name == "b/Read/ReadVariableOp"]
    node.input[0] = "no_such_node"
    return _serialize(proto)


def dangling_input_function() -> bytes:
    proto = _base()
    serve = _function(proto, SERVE_FN_PREFIX)
    (node,) = [n for n in serve.node_def if n.name == "Floor"]
    node.input[0] = "no_such_node:z:0"
    return _serialize(proto)


def duplicate_node() -> bytes:
    proto = _base()
    graph = proto.meta_graphs[0].graph_def
    copy = graph.node.add()
    copy.CopyFrom(graph.node[0])
    return _serialize(proto)


def custom_op() -> bytes:
    # What a model using a custom op looks like: a node whose op no release registers,
    # with its OpDef in stripped_op_list (TF writes the OpDefs of every op it used there).
    proto = _base()
    serve = _function(proto, SERVE_FN_PREFIX)
    (node,) = [n for n in serve.node_def if n.op == "Floor"]
    node.op = "Addons>FancyFloor"
    op_list = proto.meta_graphs[0].meta_info_def.stripped_op_list
    (floor,) = [op for op in op_list.op if op.name == "Floor"]
    custom = op_list.op.add()
    custom.CopyFrom(floor)
    custom.name = "Addons>FancyFloor"
    return _serialize(proto)


def _with_asset(filename: str) -> bytes:
    proto = _base()
    meta_graph = proto.meta_graphs[0]
    asset = meta_graph.asset_file_def.add()
    asset.filename = filename
    asset.tensor_info.name = "serving_default_x:0"
    return _serialize(proto)


def asset_escape() -> bytes:
    # Climbs from IN/assets/ to a sibling of IN: tests put a secret file exactly there.
    return _with_asset("../../outside/secret.txt")


def asset_absolute() -> bytes:
    return _with_asset("/etc/hostname")


def asset_nul_byte() -> bytes:
    # Found by tools/fuzz_loader.py: a NUL byte in an asset filename made path resolution raise
    # ValueError (exit 5).
    return _with_asset("vocab\x00.txt")


def old_source() -> bytes:
    # Claims TF 2.5 wrote it, so `--to 2.9` asks for a newer release than the source.
    proto = _base()
    proto.meta_graphs[0].meta_info_def.tensorflow_version = "2.5.0"
    return _serialize(proto)


def object_graph_unknown_function() -> bytes:
    # Found by tools/fuzz_loader.py: a concrete_functions map entry that lost its key. The
    # object graph then names a function ("") the library lacks; TF cannot load that, and
    # TF's fingerprinting raised an undocumented exception while writing OUT.
    proto = _base()
    functions = proto.meta_graphs[0].object_graph_def.concrete_functions
    name = _function(proto, SERVE_FN_PREFIX).signature.name
    functions[""].CopyFrom(functions[name])
    del functions[name]
    return _serialize(proto)


def object_graph_dangling_child() -> bytes:
    # Found by tools/fuzz_loader.py: an object's child refers to an object index past the end
    # (IndexError deep in the object-graph rules, exit 5, before model.py checked references).
    proto = _base()
    proto.meta_graphs[0].object_graph_def.nodes[0].children[0].node_id = 999
    return _serialize(proto)


def attr_wrong_kind() -> bytes:
    # A string where Floor's OpDef wants a type: TF's importer rejects it in every release, so it
    # is a malformed model (exit 2), not something newer than the target (exit 1).
    proto = _base()
    serve = _function(proto, SERVE_FN_PREFIX)
    (node,) = [n for n in serve.node_def if n.op == "Floor"]
    node.attr["T"].s = b"DT_FLOAT"
    return _serialize(proto)


def no_meta_graph_tags() -> bytes:
    proto = _base()
    proto.meta_graphs[0].meta_info_def.ClearField("tags")
    return _serialize(proto)


# name -> (edit, what is wrong). The expected exit code and message live in the test.
CASES: dict[str, tuple[Callable[[], bytes], str]] = {
    "truncated": (truncated, "saved_model.pb cut in half"),
    "empty": (empty, "saved_model.pb of zero bytes"),
    "random_bytes": (random_bytes, "4 KiB of seeded random bytes"),
    "wrong_message": (wrong_message, "a valid OpList protobuf, not a SavedModel"),
    "call_cycle": (call_cycle, "serve calls the signature wrapper, which calls serve"),
    "missing_function": (missing_function, "a call attr names a function the library lacks"),
    "dangling_input_graph": (dangling_input_graph, "a graph node input names no node"),
    "dangling_input_function": (dangling_input_function, "a function node input names no node"),
    "duplicate_node": (duplicate_node, "two graph nodes share a name"),
    "custom_op": (custom_op, "a node of an op no TensorFlow release registers (a custom op)"),
    "asset_escape": (asset_escape, "an asset filename climbing out of IN with ../"),
    "asset_absolute": (asset_absolute, "an asset filename that is an absolute path"),
    "asset_nul_byte": (asset_nul_byte, "an asset filename holding a NUL byte"),
    "old_source": (old_source, "tensorflow_version 2.5.0, for --to newer than the source"),
    "no_meta_graph_tags": (no_meta_graph_tags, "a MetaGraphDef without tags"),
    "attr_wrong_kind": (attr_wrong_kind, "Floor's type attr T holds a string"),
    "object_graph_unknown_function": (object_graph_unknown_function, "the object graph names a function ('') the library lacks"),
    "object_graph_dangling_child": (object_graph_dangling_child, "an object's child is object 999, past the end"),
}


def generate(out: Path) -> dict[str, bytes]:
    """Every corpus file name -> its bytes (the .pb files and the manifest)."""
    files = {f"{name}.pb": edit() for name, (edit, _) in CASES.items()}
    manifest = {
        "generator": "tools/make_bad_inputs.py",
        "base": BASE_FIXTURE.relative_to(REPO).as_posix(),
        "cases": {name: {"file": f"{name}.pb", "what": what} for name, (_, what) in CASES.items()},
    }
    files[MANIFEST] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    return files


def write(out: Path, files: dict[str, bytes]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, data in sorted(files.items()):
        # Write-then-rename so an interrupted run never leaves a half corpus file.
        fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{name}.")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out / name)


def stale(out: Path, files: dict[str, bytes]) -> list[str]:
    """Names that differ between `files` and the folder (missing, changed or extra)."""
    present = {p.name for p in out.glob("*") if p.is_file()} if out.is_dir() else set()
    problems = [name for name, data in files.items() if not (out / name).is_file() or (out / name).read_bytes() != data]
    problems += sorted(present - set(files) - {"README.md"})
    return sorted(problems)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 if stale")
    args = parser.parse_args(argv)
    files = generate(args.out)
    if args.check:
        problems = stale(args.out, files)
        for name in problems:
            print(f"stale: {args.out / name}", file=sys.stderr)
        return 1 if problems else 0
    write(args.out, files)
    print(f"wrote {len(files)} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
