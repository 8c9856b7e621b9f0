"""check_model (plan's structure check, one pass over the NodeDefs, no graph model) accepts what
build_scopes accepts and raises the very BadInput it raises, on fixtures broken in every way
building a model can fail: dangling inputs, duplicate names, returns naming no node, calls of a
missing function, call cycles."""
from __future__ import annotations

import copy
import random

import pytest

from conftest import FIXTURES, fixture_dir
from rewriter.errors import BadInput
from rewriter.protos import saved_model_pb2
from rewriter.savedmodel.model import build_scopes, check_model


def _break(proto: saved_model_pb2.SavedModel, rng: random.Random) -> None:
    graph_def = proto.meta_graphs[0].graph_def
    functions = list(graph_def.library.function)
    names = [f.signature.name for f in functions]
    function = rng.choice(functions)
    nodes = list(function.node_def) or list(graph_def.node)
    node = rng.choice(nodes if rng.random() < 0.8 else list(graph_def.node))
    args = [arg.name for arg in function.signature.input_arg] or ["x"]
    edits = [
        lambda: node.input.append(rng.choice(["gone", "gone:0", "^gone", f"{args[0]}:0", f"^{args[0]}", args[0],
                                              f"{nodes[0].name}:y:0", f"^{nodes[0].name}:0"])),
        lambda: setattr(node, "name", rng.choice(nodes).name),
        lambda: function.ret.__setitem__(rng.choice(list(function.ret) or ["r"]),
                                         rng.choice(["gone:0", args[0], f"{args[0]}:0", f"^{nodes[0].name}"])),
        lambda: function.control_ret.__setitem__("c", rng.choice(["gone", nodes[0].name])),
        lambda: node.attr["f"].func.SetInParent() or setattr(node.attr["f"].func, "name", rng.choice(names + ["gone"])),
        lambda: node.attr["fs"].list.func.add(name=rng.choice(names + ["gone"])),
        lambda: setattr(node, "op", rng.choice(names)),
    ]
    rng.choice(edits)()


def _outcome(check, proto: saved_model_pb2.SavedModel) -> str:
    try:
        check(proto)
    except BadInput as error:
        return str(error)
    return "accepted"


@pytest.mark.parametrize("name", FIXTURES)
def test_check_model_says_what_building_says(name: str) -> None:
    rng = random.Random(name)
    original = saved_model_pb2.SavedModel.FromString((fixture_dir(name) / "saved_model.pb").read_bytes())
    outcomes = set()
    for _ in range(40):
        proto = copy.deepcopy(original)
        for _ in range(rng.randrange(1, 3)):
            _break(proto, rng)
        expected = _outcome(build_scopes, copy.deepcopy(proto))
        assert _outcome(check_model, proto) == expected
        outcomes.add(expected.split(" ")[0] if expected == "accepted" else expected.split(":")[1].split("'")[0])
    assert len(outcomes) > 2  # accepted and several kinds of error: the mutations reach the checks


def test_bulk_resolution_reads_the_nodes_resolve_input_reads() -> None:
    """_scan_nodes resolves a scope's input texts in bulk (_node_sources); it must name exactly the
    node sources graph_model.resolve_input names one by one, in a graph and in a function."""
    from hypothesis import given, settings, strategies as st

    from rewriter.savedmodel.graph_model import resolve_input
    from rewriter.savedmodel.model import _node_sources

    part = st.sampled_from(["a", "x", "", "b_1", "^a", "^x", ":0", ":y:0", "^", ":"])
    text = st.lists(part, min_size=1, max_size=3).map("".join)

    @settings(max_examples=300, deadline=None)
    @given(st.lists(text, max_size=8), st.booleans())
    def check(texts: list[str], is_function: bool) -> None:
        args = {"x", "a:0"}
        one_by_one = {src for src, _ in (resolve_input(t, args, is_function) for t in texts) if isinstance(src, str)}
        assert _node_sources(texts, args, is_function) == one_by_one

    check()
