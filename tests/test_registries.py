"""The shipped op registries (rewriter/registries) are complete, canonical and true to the wheels."""
from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from types import ModuleType

import pytest
from rewriter.protos import op_def_pb2

from rewriter.targets.releases import Release, known_releases, release_info
from rewriter.runtimes import TargetRuntime, obtain_runtime
from conftest import load_tool

REGISTRY_DIR = Path(__file__).resolve().parents[1] / "rewriter" / "registries"
TOOL = Path(__file__).resolve().parents[1] / "tools" / "gen_registries.py"

# NOTES §3: TF_GRAPH_DEF_VERSION of each release, read from the wheels' version.h
PRODUCERS = {
    "2.3": 440, "2.4": 561, "2.5": 716, "2.6": 808, "2.7": 898, "2.8": 987, "2.9": 1087,
    "2.10": 1205, "2.11": 1286, "2.12": 1395, "2.13": 1482, "2.14": 1575, "2.15": 1645,
    "2.16": 1766, "2.17": 1882, "2.18": 1994, "2.19": 2129, "2.20": 2288, "2.21": 2474,
    "1.15": 134,  # tensorflow==1.15.5's version.h (NOTES §8)
}
ALL = sorted(PRODUCERS, key=lambda k: tuple(int(p) for p in k.split(".")))


def _tool() -> ModuleType:
    return load_tool("gen_registries")


def _table() -> dict:
    return json.loads((REGISTRY_DIR / "releases.json").read_text())


def _ops_bytes(key: str) -> bytes:
    return gzip.decompress((REGISTRY_DIR / _table()["releases"][key]["ops_file"]).read_bytes())


def test_every_release_1_15_and_2_3_to_2_21_is_shipped() -> None:
    assert [r.key for r in known_releases()] == ALL
    assert _table()["format"] == 1


@pytest.mark.parametrize("key", ALL)
def test_registry_is_sorted_canonical_and_counted(key: str) -> None:
    info = _table()["releases"][key]
    raw_gz = (REGISTRY_DIR / info["ops_file"]).read_bytes()
    assert raw_gz[:2] == b"\x1f\x8b" and raw_gz[4:8] == b"\0\0\0\0", "gzip mtime must be 0"
    data = gzip.decompress(raw_gz)
    ops = op_def_pb2.OpList.FromString(data)
    names = [op.name for op in ops.op]
    assert names == sorted(set(names)), "ops must be unique and sorted by name"
    assert len(names) == info["op_count"]
    assert hashlib.sha256(data).hexdigest() == info["ops_sha256"]
    # canonical: rebuilding from the parsed content reproduces the exact bytes
    assert ops.SerializeToString(deterministic=True) == data
    assert _tool().strip_docs(data) == data
    for op in ops.op:
        assert not op.summary and not op.description
        assert not any(a.description for a in list(op.input_arg) + list(op.output_arg))
        assert not any(a.description for a in op.attr)


@pytest.mark.parametrize("key", ALL)
def test_release_entry_matches_notes_and_wheel_rules(key: str) -> None:
    major, minor = (int(p) for p in key.split("."))
    info = release_info(Release(major, minor))
    assert info["producer"] == PRODUCERS[key]
    assert info["min_consumer"] == 0 and info["min_producer"] == 0
    assert info["version"].startswith(key + ".")
    wheel = info["wheel"]
    assert len(wheel["sha256"]) == 64 and wheel["size"] > 50_000_000
    assert wheel["filename"].startswith(wheel["project"].replace("-", "_") + "-" + info["version"])
    assert wheel["platform"] in wheel["filename"]
    assert info["capi_lib"] == info["capi_libs"][0]
    if major == 1:  # tensorflow==1.15.5, cp37, the package in tensorflow_core/ (NOTES §8)
        assert wheel["python_version"] == "3.7" and wheel["project"] == "tensorflow"
        assert "tensorflow_core/libtensorflow_framework.so.1" in info["capi_libs"]
        assert info["string_layout"] == "legacy"
        return
    assert wheel["python_version"] == ("3.8" if minor <= 11 else "3.11")
    assert "tensorflow/libtensorflow_framework.so.2" in info["capi_libs"]
    assert info["string_layout"] == ("legacy" if key == "2.3" else "tstring")


def test_op_counts_of_the_ends_match_the_notes() -> None:
    assert _table()["releases"]["2.3"]["op_count"] == 1504
    assert _table()["releases"]["2.21"]["op_count"] == 1907


def _ops(key: str) -> dict[str, op_def_pb2.OpDef]:
    return {op.name: op for op in op_def_pb2.OpList.FromString(_ops_bytes(key)).op}


def test_registries_know_the_additions_listed_in_the_notes() -> None:
    # NOTES §5, each with the first release that has it
    for op, first in [("DisableCopyOnRead", 10), ("StatelessRandomGetKeyCounter", 5),
                      ("BatchMatMulV3", 6), ("XlaCallModule", 10), ("FFTND", 15)]:
        assert op not in _ops(f"2.{first - 1}"), op
        assert op in _ops(f"2.{first}"), op
    for op, attr, first in [("VarHandleOp", "debug_name", 15),
                            ("AssignVariableOp", "validate_shape", 8),
                            ("TensorListGetItem", "Tshape", 21)]:
        before = {a.name for a in _ops(f"2.{first - 1}")[op].attr}
        after = {a.name for a in _ops(f"2.{first}")[op].attr}
        assert attr not in before and attr in after, (op, attr)


@pytest.fixture(scope="module")
def runtime23() -> TargetRuntime:
    # the user cache by default ($TFDOWNGRADE_RUNTIME_DIR overrides): downloads once
    return TargetRuntime(obtain_runtime(Release(2, 3)), timeout=600)


def test_2_3_registry_equals_the_real_2_3_4_runtime(runtime23: TargetRuntime) -> None:
    real = op_def_pb2.OpList.FromString(_tool().strip_docs(runtime23.op_list()))
    shipped = op_def_pb2.OpList.FromString(_ops_bytes("2.3"))
    as_set = lambda ops: {op.SerializeToString(deterministic=True) for op in ops.op}  # noqa: E731
    assert len(real.op) == 1504
    assert as_set(real) == as_set(shipped)
