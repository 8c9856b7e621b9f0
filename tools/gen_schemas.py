#!/usr/bin/env python3
"""Generate rewriter/schemas/{schemas.json, schema-<minor>.pb.gz} from the real TF wheels.

Every `*_pb2.py` in a TensorFlow wheel embeds its `.proto` file as a serialized
FileDescriptorProto (`AddSerializedFile(b'...')` in newer protoc output, `serialized_pb=_b('...')`
in older). We read those bytes from the wheel without importing anything, keep the files that the
SavedModel files need (saved_model.proto, trackable_object_graph.proto, fingerprint.proto, Keras'
saved_metadata.proto, and their imports, transitively), and ship them per release as one gzip'd
FileDescriptorSet (files sorted by name, gzip mtime 0: the output is byte-for-byte deterministic).

Wheels come through rewriter.runtimes.fetch exactly as the runtimes do: the filename and sha256
recorded in rewriter/registries/releases.json, from $TFDOWNGRADE_WHEELHOUSE if it holds them, else
pip download; a wheel whose sha256 differs is refused.

    .venv/bin/python tools/gen_schemas.py                      # every release not yet done
    .venv/bin/python tools/gen_schemas.py --releases 2.3,2.21 --force
    TFDOWNGRADE_WHEELHOUSE=/tmp/wheels .venv/bin/python tools/gen_schemas.py

The format is documented in rewriter/verify/schema_check.py.
"""
from __future__ import annotations

import argparse
import ast
import gzip
import hashlib
import io
import json
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from google.protobuf import descriptor_pb2  # noqa: E402

from rewriter.targets.releases import Release, known_releases, parse_release, release_info  # noqa: E402
from rewriter.runtimes import fetch  # noqa: E402

SCHEMA_DIR = ROOT / "rewriter" / "schemas"
FORMAT = 1
# The files whose messages a SavedModel folder holds; everything they import comes along.
ROOT_SUFFIXES = (
    "tensorflow/core/protobuf/saved_model.proto",
    "tensorflow/core/protobuf/saved_object_graph.proto",
    "tensorflow/core/protobuf/trackable_object_graph.proto",
    "tensorflow/core/protobuf/fingerprint.proto",
    "tensorflow/core/protobuf/tensor_bundle.proto",
    "/protobuf/saved_metadata.proto",  # Keras' keras_metadata.pb (tensorflow/python/keras/...)
)


def serialized_descriptor(source: str) -> bytes | None:
    """The FileDescriptorProto bytes embedded in a generated *_pb2.py, without running it."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "AddSerializedFile" and node.args:
            return _bytes_of(node.args[0])
        for keyword in node.keywords:
            if keyword.arg == "serialized_pb":
                return _bytes_of(keyword.value)
    return None


def _bytes_of(node: ast.expr) -> bytes | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, bytes):
        return node.value
    # Old protoc: _b('...') with _b = lambda x: x.encode('latin1') on Python 3.
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
        value = node.args[0].value
        if isinstance(value, str):
            return value.encode("latin1")
        if isinstance(value, bytes):
            return value
    return None


def descriptors_of_wheel(wheel: Path) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    """Every FileDescriptorProto embedded in the wheel's *_pb2.py files, by proto file name."""
    found: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    with zipfile.ZipFile(wheel) as archive:
        for member in sorted(archive.namelist()):
            if not member.endswith("_pb2.py"):
                continue
            data = serialized_descriptor(archive.read(member).decode("utf-8"))
            if data is None:
                continue
            proto = descriptor_pb2.FileDescriptorProto.FromString(data)
            found.setdefault(proto.name, proto)
    return found


def closure(found: dict[str, descriptor_pb2.FileDescriptorProto]) -> list[descriptor_pb2.FileDescriptorProto]:
    """The root files and their imports, transitively; google/protobuf/* is protobuf's own, left out."""
    todo = [name for name in found if name.endswith(ROOT_SUFFIXES)]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name.startswith("google/protobuf/"):
            continue
        if name not in found:
            raise SystemExit(f"{name} is imported but no *_pb2.py of the wheel defines it")
        seen.add(name)
        todo.extend(found[name].dependency)
    files = []
    for name in sorted(seen):
        proto = descriptor_pb2.FileDescriptorProto()
        proto.CopyFrom(found[name])
        proto.ClearField("source_code_info")  # comments: never embedded, but never shipped either
        files.append(proto)
    return files


def gzip_bytes(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=9, filename="") as fh:
        fh.write(data)
    return buffer.getvalue()


def load_table(out_dir: Path) -> dict[str, Any]:
    path = out_dir / "schemas.json"
    if path.exists():
        table: dict[str, Any] = json.loads(path.read_text("utf-8"))
        return table
    return {"format": FORMAT, "releases": {}}


def save_table(out_dir: Path, table: dict[str, Any]) -> None:
    table["releases"] = dict(sorted(table["releases"].items(), key=lambda kv: parse_release(kv[0])))
    (out_dir / "schemas.json").write_text(json.dumps(table, indent=2, sort_keys=False) + "\n", "utf-8")


def generate(release: Release, out_dir: Path) -> dict[str, Any]:
    info = release_info(release)
    tmp = Path(tempfile.mkdtemp(prefix="gen-schemas-"))
    try:
        wheel = fetch._get_wheel(info, tmp, lambda msg: print(f"  {msg}", flush=True))
        sha = fetch.sha256_of(wheel)
        if sha != info["wheel"]["sha256"]:
            raise SystemExit(f"{wheel.name}: sha256 {sha}, releases.json expects {info['wheel']['sha256']}")
        files = closure(descriptors_of_wheel(wheel))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    fds = descriptor_pb2.FileDescriptorSet()
    fds.file.extend(files)
    data = fds.SerializeToString(deterministic=True)
    name = f"schema-{release.key}.pb.gz"
    (out_dir / name).write_bytes(gzip_bytes(data))
    return {
        "version": info["version"],
        "wheel_sha256": info["wheel"]["sha256"],
        "file": name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "protos": [f.name for f in files],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--releases", help="comma-separated minors (default: every known release)")
    parser.add_argument("--force", action="store_true", help="regenerate releases already done")
    parser.add_argument("--out", type=Path, default=SCHEMA_DIR)
    args = parser.parse_args(argv)
    releases = [parse_release(r) for r in args.releases.split(",")] if args.releases else known_releases()
    args.out.mkdir(parents=True, exist_ok=True)
    table = load_table(args.out)
    for release in releases:
        entry = table["releases"].get(release.key)
        if entry and (args.out / entry["file"]).exists() and not args.force:
            print(f"{release}: done already")
            continue
        print(f"{release}: reading the wheel", flush=True)
        table["releases"][release.key] = generate(release, args.out)
        save_table(args.out, table)
        print(f"{release}: {len(table['releases'][release.key]['protos'])} proto files", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
