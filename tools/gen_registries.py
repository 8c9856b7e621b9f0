#!/usr/bin/env python3
"""Generate rewriter/registries/{releases.json, ops-<minor>.pb.gz} from the real TF wheels.

For each minor release: find its newest patch on PyPI, download the wheel, unpack the C-API
libraries (rewriter.runtimes), dump TF_GetAllOpList() in a worker process (one TF per process),
and record everything releases.json needs (format documented in rewriter/targets/releases.py).

    .venv/bin/python tools/gen_registries.py                  # every release not yet done
    .venv/bin/python tools/gen_registries.py --releases 2.3,2.10 --force
    .venv/bin/python tools/gen_registries.py --download-dir /tmp/wheels --keep-wheels

Resumable: releases already in releases.json whose ops file exists are skipped unless --force.
Needs the venv's TensorFlow (for op_def_pb2) and network access to PyPI.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rewriter.targets.releases import Release, parse_release  # noqa: E402
from rewriter.runtimes import elf, fetch, unpack  # noqa: E402
from rewriter.runtimes.client import TargetRuntime  # noqa: E402

REGISTRY_DIR = ROOT / "rewriter" / "registries"
FIRST, LAST = (2, 3), (2, 21)
PROJECTS = ["tensorflow-cpu", "tensorflow"]  # preferred first: the CPU build is smaller
CAPI_LIB = "tensorflow/python/_pywrap_tensorflow_internal.so"
VERSION_H = "tensorflow/include/tensorflow/core/public/version.h"
# TF 1.15 (NOTES §8): only `tensorflow` (no -cpu), cp37, and the package lives in tensorflow_core/.
TF1_RELEASES = [Release(1, 15)]


def wheel_layout(release: Release) -> tuple[str, str]:
    """(the C API library, version.h) inside the release's wheel."""
    if release.major == 1:
        return CAPI_LIB.replace("tensorflow/", "tensorflow_core/", 1), VERSION_H.replace("tensorflow/", "tensorflow_core/", 1)
    return CAPI_LIB, VERSION_H


def wheel_target(release: Release) -> tuple[str, list[str]]:
    """(python version, platforms) of the wheels we use for a release (NOTES §2, §8)."""
    if release.major == 1:
        return "3.7", ["manylinux2010_x86_64"]
    if release.minor <= 11:  # the cp38 builds; 2.9+ are manylinux2014
        return "3.8", ["manylinux2010_x86_64", "manylinux2014_x86_64"]
    return "3.11", ["manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_27_x86_64"]


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", *args, "--disable-pip-version-check"],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)


def _target_args(python_version: str, platforms: list[str]) -> list[str]:
    args = ["--only-binary=:all:", "--implementation", "cp", "--python-version", python_version]
    for platform in platforms:
        args += ["--platform", platform]
    return args


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text))


def newest_patch(release: Release) -> tuple[str, str]:
    """(project, version) of the newest patch of a minor on PyPI, preferring tensorflow-cpu."""
    python_version, platforms = wheel_target(release)
    # tensorflow-cpu 1.15 stops at 1.15.0; the 1.15.5 fixes are in `tensorflow` only (NOTES §8).
    for project in (["tensorflow"] if release.major == 1 else PROJECTS):
        proc = _pip("index", "versions", project, *_target_args(python_version, platforms))
        match = re.search(r"Available versions: (.*)", proc.stdout)
        if not match:
            continue
        versions = [v.strip() for v in match.group(1).split(",")]
        # final releases only: a patch like 2.15.0.post1 is a rebuild, 2.15.1 a real patch
        ours = [v for v in versions if re.fullmatch(rf"{release.major}\.{release.minor}\.\d+", v)]
        if ours:
            return project, max(ours, key=_version_key)
    raise SystemExit(f"no wheel of TensorFlow {release} found on PyPI for cp{python_version}")


def download(project: str, version: str, release: Release, dest: Path) -> Path:
    python_version, platforms = wheel_target(release)
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.whl"):
        if old.name.startswith(project.replace("-", "_") + f"-{version}-"):
            return old
    proc = _pip("download", f"{project}=={version}", "--no-deps", "-d", str(dest),
                *_target_args(python_version, platforms))
    wheels = [w for w in dest.glob("*.whl") if f"-{version}-" in w.name]
    if proc.returncode != 0 or not wheels:
        raise SystemExit(f"pip download {project}=={version} failed:\n{proc.stderr}")
    return wheels[0]


def graph_def_versions(wheel: Path, version_h: str = VERSION_H) -> dict[str, int]:
    with zipfile.ZipFile(wheel) as zf:
        # 1.15's headers are data files: <name>-<version>.data/purelib/tensorflow_core/include/...
        member = next((n for n in zf.namelist() if n == version_h or n.endswith(f".data/purelib/{version_h}")), version_h)
        text = zf.read(member).decode()
    out = {}
    for key, macro in (("producer", "TF_GRAPH_DEF_VERSION"),
                       ("min_consumer", "TF_GRAPH_DEF_VERSION_MIN_CONSUMER"),
                       ("min_producer", "TF_GRAPH_DEF_VERSION_MIN_PRODUCER")):
        match = re.search(rf"^#define {macro} (\d+)", text, re.M)
        if not match:
            raise SystemExit(f"{wheel.name}: {macro} not found in {version_h}")
        out[key] = int(match.group(1))
    return out


def string_layout(lib_dir: Path, members: list[str]) -> str:
    """legacy while the C API still exports TF_StringEncode (2.3), else tstring (TF_TString
    elements, which rewriter.runtimes.capi reads and writes itself: 2.4 exports no helpers)."""
    exported: set[str] = set()
    for member in members:
        exported |= elf.read_dynamic(lib_dir / member).defined
    return "legacy" if "TF_StringEncode" in exported else "tstring"


def strip_docs(op_list_bytes: bytes) -> bytes:
    """Sorted, documentation-free, deterministically serialized OpList."""
    from rewriter.protos import op_def_pb2

    ops = op_def_pb2.OpList.FromString(op_list_bytes)
    for op in ops.op:
        op.ClearField("summary")
        op.ClearField("description")
        for arg in list(op.input_arg) + list(op.output_arg):
            arg.ClearField("description")
        for attr in op.attr:
            attr.ClearField("description")
    out = op_def_pb2.OpList()
    out.op.extend(sorted(ops.op, key=lambda o: o.name))
    return out.SerializeToString(deterministic=True)


def gzip_bytes(data: bytes) -> bytes:
    """gzip with mtime 0 and no file name, so the same data always gives the same file."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return buf.getvalue()


def load_table(out_dir: Path) -> dict[str, Any]:
    path = out_dir / "releases.json"
    if path.exists():
        table: dict[str, Any] = json.loads(path.read_text())
        return table
    return {"format": 1, "releases": {}}


def save_table(out_dir: Path, table: dict[str, Any]) -> None:
    table["releases"] = dict(sorted(table["releases"].items(),
                                    key=lambda kv: parse_release(kv[0])))
    tmp = out_dir / "releases.json.tmp"
    tmp.write_text(json.dumps(table, indent=2) + "\n")
    tmp.replace(out_dir / "releases.json")


def generate(release: Release, download_dir: Path, out_dir: Path, keep: bool) -> dict[str, Any]:
    started = time.time()
    project, version = newest_patch(release)
    print(f"[{release}] {project}=={version}: downloading", flush=True)
    wheel = download(project, version, release, download_dir / release.key)
    sha = fetch.sha256_of(wheel)
    python_version = wheel_target(release)[0]
    platform = wheel.name[:-4].split("-")[-1].split(".")[0]
    capi_lib, version_h = wheel_layout(release)
    with tempfile.TemporaryDirectory(prefix=f"gen-{release}-") as tmp:
        lib_dir = Path(tmp)
        members = unpack.dependency_closure(wheel, capi_lib, lib_dir)
        layout = string_layout(lib_dir, members)
        fetch.build_runtime_dir(wheel, release, version, sha, members, capi_lib, layout, lib_dir)
        handle = fetch.RuntimeHandle(release, version, sha, lib_dir)
        runtime = TargetRuntime(handle)
        loaded = runtime.version()
        if loaded != version:
            raise SystemExit(f"[{release}] the library says TF_Version() = {loaded}, not {version}")
        ops = strip_docs(runtime.op_list())
    from rewriter.protos import op_def_pb2

    op_count = len(op_def_pb2.OpList.FromString(ops).op)
    ops_file = f"ops-{release}.pb.gz"
    (out_dir / ops_file).write_bytes(gzip_bytes(ops))
    entry: dict[str, Any] = {
        "version": version,
        **graph_def_versions(wheel, version_h),
        "op_count": op_count,
        "ops_file": ops_file,
        "ops_sha256": hashlib.sha256(ops).hexdigest(),
        "wheel": {
            "project": project,
            "filename": wheel.name,
            "sha256": sha,
            "size": wheel.stat().st_size,
            "python_version": python_version,
            "platform": platform,
        },
        "capi_libs": members,
        "capi_lib": capi_lib,
        "string_layout": layout,
    }
    if not keep:
        wheel.unlink()
    print(f"[{release}] {version}: {op_count} ops, producer {entry['producer']}, "
          f"{entry['wheel']['size'] / 1e6:.0f} MB wheel, libs {members}, {layout} strings, "
          f"{time.time() - started:.0f} s", flush=True)
    return entry


def all_releases() -> list[Release]:
    return [*TF1_RELEASES, *(Release(2, m) for m in range(FIRST[1], LAST[1] + 1))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", help="comma-separated minors, e.g. 2.3,2.10 (default: all)")
    parser.add_argument("--force", action="store_true", help="regenerate releases already done")
    parser.add_argument("--download-dir", type=Path, help="where wheels go (default: a temp dir)")
    parser.add_argument("--keep-wheels", action="store_true", help="do not delete wheels after use")
    parser.add_argument("--out", type=Path, default=REGISTRY_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    releases = ([parse_release(r) for r in args.releases.split(",")] if args.releases
                else all_releases())
    args.out.mkdir(parents=True, exist_ok=True)
    download_dir = args.download_dir or Path(tempfile.mkdtemp(prefix="tf-wheels-"))
    table = load_table(args.out)
    for release in releases:
        done = table["releases"].get(release.key)
        if done and (args.out / done["ops_file"]).exists() and not args.force:
            print(f"[{release}] done already ({done['version']}, {done['op_count']} ops)")
            continue
        table["releases"][release.key] = generate(release, download_dir, args.out,
                                                  args.keep_wheels)
        save_table(args.out, table)  # after each release, so an interrupted run resumes
    if not args.download_dir and not args.keep_wheels:
        shutil.rmtree(download_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
