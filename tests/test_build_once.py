"""plan() builds the graph model once: the post-condition validates the output by reusing the
input's findings for unchanged nodes. It must say exactly what a full pass over the output says."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from conftest import FIXTURES, fixture_dir
from rewriter import pipeline
from rewriter.savedmodel.model import build_scopes
from rewriter.protos import saved_model_pb2
from rewriter.targets.registry import load_registry
from rewriter.targets.releases import Release
from rewriter.verify.validator import validate_scopes

R23 = Release(2, 3)


def _full_pass(proto: saved_model_pb2.SavedModel) -> list:
    """What the post-condition did before: rebuild every scope and validate every node."""
    registry = load_registry(R23)
    models = build_scopes(proto)
    return validate_scopes([s for m in models for s in m.scopes], registry,
                           {id(s): m.signatures() for m in models for s in m.scopes})


def _incremental(original: saved_model_pb2.SavedModel, output: saved_model_pb2.SavedModel) -> list:
    registry = load_registry(R23)
    models = build_scopes(copy.deepcopy(original))
    # The input's findings by node, as plan() keeps them (InputValidation), from the graph models.
    validation = pipeline.InputValidation(registry, {})
    for model in models:
        for scope in model.scopes:
            validation.record(model.index, scope.where(),
                              validate_scopes([scope], registry, {id(scope): model.signatures()}, validation.cache))
            # The op names, as InputValidation.add keeps them: which changed signatures matter.
            validation.grouped.ops.setdefault(model.index, set()).update(node.op for _, node in scope.nodes())
    return pipeline._validate_output(original, output, validation.grouped, registry)


def _lines(findings: list) -> list[str]:
    return [f.line() for f in findings]


@pytest.mark.parametrize("name", FIXTURES)
def test_same_findings_as_a_full_pass_after_the_rules(name: str, tmp_path: Path) -> None:
    """With the rules, and with no rules at all (every input finding stays)."""
    empty = tmp_path / "rules"
    (empty / "object-graph").mkdir(parents=True)
    for rules_dir in (None, empty):
        result = pipeline.plan(fixture_dir(name), pipeline.Options(target=R23, rules_dir=rules_dir))
        assert result.files is not None and result.output_proto is not None
        expected = _lines(_full_pass(result.output_proto))
        assert _lines(_incremental(result.files.proto, result.output_proto)) == expected
        if rules_dir is not None:
            assert expected  # the unrewritten input has findings: they must all come through


def test_changed_nodes_and_signatures_are_validated_again() -> None:
    """Edits no rule made: an attr turned invalid, a node of an unknown op, a function whose
    signature changed (its callers are validated again), a function removed from the library."""
    original = saved_model_pb2.SavedModel.FromString((fixture_dir("keras3_cnn") / "saved_model.pb").read_bytes())
    library = original.meta_graphs[0].graph_def.library.function
    callee = next(f for f in library if f.signature.input_arg)
    # A node that calls the function by op name (its arity is checked against the signature).
    graph = original.meta_graphs[0].graph_def
    graph.node.add(name="direct_call", op=callee.signature.name).input.extend(
        [graph.node[0].name] * len(callee.signature.input_arg))
    output = copy.deepcopy(original)
    graph_def = output.meta_graphs[0].graph_def
    graph_def.node[0].attr["dtype"].s = b"not a type"
    graph_def.node.add(name="new", op="NoSuchOp")
    changed = next(f for f in graph_def.library.function if f.signature.name == callee.signature.name)
    changed.signature.input_arg.add(name="extra", type=1)
    edits = [output]
    # The callee's interface changed by an attr alone (a required one): its callers are validated again.
    attr_added = copy.deepcopy(original)
    next(f for f in attr_added.meta_graphs[0].graph_def.library.function
         if f.signature.name == callee.signature.name).signature.attr.add(name="N", type="int")
    got = _lines(_incremental(original, attr_added))
    assert got == _lines(_full_pass(attr_added)) and any("direct_call" in line and "'N'" in line for line in got)
    # Only a field the validator does not read (every ArgDef's handle_data, as an object-graph rule
    # drops it): the same findings as the input's, taken at once.
    handle_data = copy.deepcopy(original)
    for function in handle_data.meta_graphs[0].graph_def.library.function:
        for arg in function.signature.input_arg:
            arg.handle_data.add().dtype = 1
    assert _lines(_incremental(original, handle_data)) == _lines(_full_pass(handle_data)) == _lines(_full_pass(original))
    removed = copy.deepcopy(original)
    del removed.meta_graphs[0].graph_def.library.function[-1]
    edits.append(removed)
    for edited in edits:
        expected = _lines(_full_pass(edited)) if edited is output else None
        got = _lines(_incremental(original, edited))
        if expected is not None:
            assert got == expected
            assert any("NoSuchOp" in line for line in got)
            assert any("direct_call" in line and "data inputs" in line for line in got)
            assert not any("direct_call" in line for line in _lines(_incremental(original, original)))
        else:
            # A library without a called function cannot be rebuilt (build_scopes refuses it);
            # the incremental pass still validates every node: nothing is taken from the input.
            registry = load_registry(R23)
            from rewriter.savedmodel.model import proto_scopes

            full = []
            for _, scopes, signatures in proto_scopes(edited):
                for scope in scopes:
                    full += validate_scopes([scope], registry, {id(scope): signatures})
            assert got == _lines(full)


def test_plan_leaves_the_collector_as_it_found_it() -> None:
    """plan() freezes what it keeps (gc.freeze) so full collections stop rescanning it, and
    unfreezes at the end, also when it fails; a caller's own freeze is left alone. It collects
    the young generation less often, and puts the thresholds back."""
    import gc

    from rewriter.errors import BadInput

    assert gc.get_freeze_count() == 0
    thresholds = gc.get_threshold()
    seen: list[int] = []
    young: list[int] = []
    original = pipeline._validate_output

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(gc.get_freeze_count())
        young.append(gc.get_threshold()[0])
        return original(*args, **kwargs)

    pipeline._validate_output = spy  # type: ignore[assignment]
    try:
        pipeline.plan(fixture_dir("keras3_cnn"), pipeline.Options(target=R23))
        assert seen and seen[0] > 0  # what the plan keeps was frozen while it ran
        assert young[0] > thresholds[0]  # the young generation collected less often meanwhile
        assert gc.get_freeze_count() == 0 and gc.get_threshold() == thresholds
        with pytest.raises(BadInput):
            pipeline.plan(Path("/nonexistent/model"), pipeline.Options(target=R23))
        assert gc.get_freeze_count() == 0 and gc.get_threshold() == thresholds
        keep = [object() for _ in range(10)]
        gc.freeze()
        frozen = gc.get_freeze_count()
        seen.clear()
        pipeline.plan(fixture_dir("keras3_cnn"), pipeline.Options(target=R23))
        assert seen == [frozen] and gc.get_freeze_count() == frozen  # the caller's freeze, untouched
    finally:
        pipeline._validate_output = original  # type: ignore[assignment]
        gc.unfreeze()
    del keep
