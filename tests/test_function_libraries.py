"""Large function libraries (issue 16): many small functions, and deep chains of function calls,
generated at test time by tools/make_function_library.py, convert to 2.3 and verify in the real
TF 2.3.4 (C++ loader, and every function imported as its Python loader does). Sizes in the main
suite are small real versions; the issue's sizes (20,000 functions, 2,000 deep) are `slow`.
Times are printed by tools/bench_functions.py, never asserted here."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import load_tool, run_cli


def _convert(shape: str, count: int, tmp_path: Path) -> tuple[dict, str]:
    source = load_tool("make_function_library").make(shape, count, tmp_path / "in")
    report = tmp_path / "r.json"
    result = run_cli(source, tmp_path / "out", "--to", "2.3", "--report", report, timeout=3600)
    assert result.code == 0, result.stderr[-3000:]
    data = json.loads(report.read_text())
    assert data["output_state"] == "verified"
    parity = data["parity"]
    assert parity["ok"] and parity["python_loader_function_errors"] == {}
    assert [(o["output"], o["status"]) for o in parity["outputs"]] == [("y", "match")]
    return data, result.stderr


def _check_many(count: int, tmp_path: Path) -> None:
    data, stderr = _convert("many", count, tmp_path)
    assert data["rule_counts"] == {"disable-copy-on-read": 1, "var-handle-op-debug-name": 1}
    progress = [line for line in stderr.splitlines() if "imported" in line and "functions" in line]
    total = count + 4  # the generated ones, the traced body, its signature wrapper, save and restore
    assert progress == [f"tfdowngrade: imported {n} of {total} functions" for n in range(1000, total + 1, 1000)]


def _check_chain(depth: int, tmp_path: Path) -> None:
    _convert("chain", depth, tmp_path)


def test_two_thousand_functions_convert_and_verify(tmp_path: Path) -> None:
    _check_many(2000, tmp_path)


def test_a_chain_500_calls_deep_converts_and_verifies(tmp_path: Path) -> None:
    _check_chain(500, tmp_path)


@pytest.mark.slow
def test_twenty_thousand_functions_convert_and_verify(tmp_path: Path) -> None:
    _check_many(20_000, tmp_path)


@pytest.mark.slow
def test_a_chain_2000_calls_deep_converts_and_verifies(tmp_path: Path) -> None:
    _check_chain(2000, tmp_path)


def test_call_chains_are_walked_without_recursion() -> None:
    """5,000 functions calling each other in a line, through func attrs and as op types: far past
    Python's recursion limit of 1000."""
    from rewriter.protos import function_pb2

    from rewriter.targets.releases import Release
    from rewriter.targets.registry import load_registry
    from rewriter.runtimes.function_import import LibraryIndex, deepest_call_chain, function_to_graph_def

    library = function_pb2.FunctionDefLibrary()
    depth = 5000
    for i in range(depth):
        fdef = library.function.add()
        fdef.signature.name = f"f{i}"
        fdef.signature.input_arg.add(name="x", type=1)
        fdef.signature.output_arg.add(name="y", type=1)
        if i + 1 < depth:
            if i % 2:
                call = fdef.node_def.add(name="call", op=f"f{i + 1}", input=["x"])
                fdef.ret["y"] = "call:y:0"
            else:
                call = fdef.node_def.add(name="call", op="PartitionedCall", input=["x"])
                call.attr["Tin"].list.type.append(1)
                call.attr["Tout"].list.type.append(1)
                call.attr["f"].func.name = f"f{i + 1}"
                fdef.ret["y"] = "call:output:0"
        else:
            fdef.ret["y"] = "x"
    assert deepest_call_chain(library) == depth
    index = LibraryIndex.of(library)
    registry = load_registry(Release(2, 3))
    graph = function_to_graph_def(library.function[1], library, registry, 440, 0, index)
    # Only the direct callee travels with a function (as TF's function_def_to_graph_def copies it).
    assert [f.signature.name for f in graph.library.function] == ["f2"]
    assert list(graph.node[1].input) == ["x:0"] and graph.node[1].op == "f2"
