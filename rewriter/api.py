"""The Python API: check, convert, verify. The CLI is a thin layer over these.

    import rewriter
    from rewriter.verify.parity import ParityOptions
    report = rewriter.convert("in/", "out/", to="2.3")      # raises Refused / ParityFailed / ...
    report = rewriter.convert("in/", "out/", to="2.3", parity=ParityOptions(rtol=1e-4, seed=1))
    plan = rewriter.check("in/", to="2.3")                  # what would happen; nothing written
    parity = rewriter.verify("out/", against="in/", to="2.3")
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable

from rewriter.errors import BadInput, ParityFailed, RuntimeUnavailable
from rewriter.verify.parity import ParityOptions, ParityReport, check_input_keys, load_inputs_file, select_meta_graph
from rewriter.verify.parity import verify as _verify
from rewriter.pipeline import Options, Plan, plan, stage
from rewriter.targets.releases import Release, parse_release
from rewriter.report.conversion import Report
from rewriter.savedmodel.files import StagedOutput, check_output_location, discard, publish, set_aside

Progress = Callable[[str], None]

# Test-only hook (tests/test_faults.py): an internal error injected at a named point of convert(),
# to prove that no internal error leaves anything at OUT. Points: "after-writing" (the output is
# staged, parity not run yet) and "after-parity" (parity passed, OUT not renamed into place yet).
TEST_FAULT_ENV = "TFDOWNGRADE_TEST_FAULT"


def _test_fault(point: str) -> None:
    if os.environ.get(TEST_FAULT_ENV) == point:
        raise RuntimeError(f"fault injected by {TEST_FAULT_ENV}={point} (a test-only hook)")


def _release(to: str | Release) -> Release:
    return to if isinstance(to, Release) else parse_release(to)


PYTHON_LOADER_RELEASE = Release(2, 3)  # the one TF Python environment we build (rewriter/runtimes/py23env)


def _check_parity_options(options: ParityOptions, target: Release) -> None:
    from rewriter.runtimes.source_runtime import check_choice

    check_choice(options.source_runtime)  # a bad --source-runtime is bad input, before anything is written
    if options.python_loader and target != PYTHON_LOADER_RELEASE:
        raise BadInput(f"--python-loader judges with TensorFlow {PYTHON_LOADER_RELEASE}'s Python API only; "
                       f"the target is {target}")


def check(
    input_dir: str | Path,
    to: str | Release,
    *,
    allow_lossy: Iterable[str] = (),
    rules_dir: str | Path | None = None,
    progress: Progress | None = None,
    strict: bool = False,
    graph_pictures: bool = False,
) -> Plan:
    """Plan a conversion without writing: rewrites by rule, and what has no rule (plan.refusals).
    `strict` refuses what is otherwise written with a warning: narrowing rules, unreadable Keras
    metadata (left out by default) and training-only functions (stubbed by default).
    `graph_pictures` keeps each rewrite's before/after subgraph, which the HTML report draws."""
    options = Options(
        target=_release(to),
        allow_lossy=frozenset(allow_lossy),
        rules_dir=Path(rules_dir) if rules_dir else None,
        strict=strict,
        graph_pictures=graph_pictures,
    )
    return plan(Path(input_dir), options, progress)


def verify(
    output_dir: str | Path,
    against: str | Path,
    to: str | Release,
    options: ParityOptions = ParityOptions(),
    progress: Progress | None = None,
) -> ParityReport:
    """Run OUT in the real target runtime and IN in the source runtime (options.source_runtime); compare
    every output."""
    _check_parity_options(options, _release(to))
    return _verify(Path(output_dir), Path(against), _release(to), options, progress)


def convert(
    input_dir: str | Path,
    output_dir: str | Path,
    to: str | Release,
    *,
    force: bool = False,
    verify_parity: bool = True,
    allow_lossy: Iterable[str] = (),
    rules_dir: str | Path | None = None,
    parity: ParityOptions = ParityOptions(),
    progress: Progress | None = None,
    report: Report | None = None,
    strict: bool = False,
    graph_pictures: bool = False,
) -> Report:
    """Convert IN to OUT for release `to`, then prove parity in the real target runtime.

    OUT appears only when every check has passed: the output is built in a temporary folder
    beside OUT, parity runs on that folder, and only then is it renamed to OUT. Raises Refused
    (nothing written), ParityFailed (nothing at OUT; the unproven output is kept at
    OUT.unverified, see report.unverified_output), RuntimeUnavailable (parity could not run:
    nothing at OUT, the unproven output kept at OUT.unverified), BadInput. Any other error or
    interruption leaves nothing at OUT and removes the temporary folder. With `force`, an old
    OUT is replaced only on success. `verify_parity=False` writes OUT unverified, as the report
    says. `report`, if given, is filled in as the work goes, so a caller can write it even when
    an error is raised. `graph_pictures` keeps each rewrite's before/after subgraph for
    report.html.write_html (the CLI sets it with --report-html).
    """
    result = report or Report("convert", Path(input_dir), Path(output_dir))
    result.lossy_allowed = sorted(allow_lossy)
    # Where OUT may not go (IN or inside it; not empty without --force) is bad input before any
    # work (stage() checks again, as the folders are then). Anything wrong with IN itself is
    # worded by reading it.
    if Path(input_dir).is_dir():
        check_output_location(Path(input_dir), Path(output_dir), force)
    # A --inputs file that is not a .npz of named arrays is bad input before any work.
    given = load_inputs_file(parity.inputs_file) if verify_parity and parity.inputs_file else None
    planned = check(input_dir, to, allow_lossy=allow_lossy, rules_dir=rules_dir, progress=progress, strict=strict,
                    graph_pictures=graph_pictures)
    result.plan = planned
    assert planned.files is not None
    # An unknown --tags or a --python-loader the target cannot have is bad input, before writing.
    select_meta_graph(planned.files.proto, list(parity.tags))
    if verify_parity:
        _check_parity_options(parity, planned.target)
        if given is not None:  # keys naming no signature input are bad input, before writing
            check_input_keys(given, planned.files.proto.meta_graphs)
    staged = stage(planned, Path(output_dir), force, progress)
    result.written = staged.actions
    if not verify_parity:
        publish(staged)
        result.parity_skipped = "--no-verify"
        result.output_state = "unverified (--no-verify)"
        return result
    try:
        _verify_then_publish(staged, input_dir, output_dir, planned.target, parity, progress, result)
    except BaseException:
        # exit 2 or 5, Ctrl-C, SIGTERM (the CLI turns it into an exception), at any point: nothing
        # at OUT, and no temporary folder left, unless it is where the unverified output was kept.
        if result.unverified_output != staged.path:
            discard(staged)
        if result.output_state is None:
            result.output_state = "not written"
        raise
    return result


def _verify_then_publish(staged: StagedOutput, input_dir: str | Path, output_dir: str | Path, target: Release,
                         parity: ParityOptions, progress: Progress | None, result: Report) -> None:
    _test_fault("after-writing")
    try:
        result.parity = verify(staged.path, input_dir, target, parity, progress)
    except RuntimeUnavailable as error:
        kept = _keep_unverified(staged, result)
        raise RuntimeUnavailable(
            f"{error} (nothing was written to {output_dir}; the unverified output is in {kept}: convert again "
            "once that is fixed, or with --no-verify)"
        ) from None
    if not result.parity.ok:
        kept = _keep_unverified(staged, result)
        message = _parity_failure(result.parity).replace(str(staged.path), str(kept))
        differ = any(o.status == "mismatch" for o in result.parity.outputs)
        if differ and result.plan is not None and not result.plan.applications:
            # Nothing was rewritten: the target's own kernels compute it otherwise (an op whose result
            # is not unique, as the order of eigenvalues, or a kernel that changed).
            message += (f"; no rule rewrote any node (0 rewrites), so TensorFlow {target}'s own kernels compute "
                        "these outputs otherwise than the source's")
        raise ParityFailed(f"{message} (nothing was written to {output_dir}; the unverified output is in {kept})")
    _test_fault("after-parity")
    publish(staged)
    result.output_state = "verified"


def _keep_unverified(staged: StagedOutput, result: Report) -> Path:
    kept = set_aside(staged)
    result.output_state = "not written"
    result.unverified_output = kept
    return kept


def _parity_failure(parity: ParityReport) -> str:
    if parity.load_error:
        cannot = f"TensorFlow {parity.target_version} cannot load the output: {parity.load_error.strip().rstrip('.')}"
        note = parity.source_load_note()
        return f"{cannot}; {note}" if note else cannot
    if parity.function_errors:
        name, error = sorted(parity.function_errors.items())[0]
        return f"TensorFlow {parity.target_version} refuses function {name} (its Python loader would fail): {error}"
    bad = [o for o in parity.outputs if o.status != "match"]
    loader = parity.python_loader
    if not bad and loader is not None and not loader.ok:
        if loader.load_error:
            return f"TensorFlow {loader.version}'s Python loader (tf.saved_model.load) fails: {loader.load_error}"
        first = next(o for o in loader.outputs if o.status != "match")
        return (f"TensorFlow {loader.version}'s Python loader: {first.signature}/{first.output} {first.status}: "
                f"{first.message}")
    if not bad:  # every compared output matched, but something could not be compared
        if len(parity.skipped) == 1:
            return f"parity not proven in TensorFlow {parity.target_version}: {parity.skipped[0]}"
        return (f"parity not proven in TensorFlow {parity.target_version}: {len(parity.skipped)} signature(s) not "
                f"compared, first {parity.skipped[0]}")
    errors = [o for o in bad if o.status == "error"]
    if errors:  # the target could not compute them: not a difference of values
        first = errors[0]
        return (f"parity failed in TensorFlow {parity.target_version}: it fails to compute {len(errors)} output(s), "
                f"first {first.signature}/{first.output}: {first.message}")
    differ = [o for o in bad if o.grade != "unprovable"]
    if not differ:  # nothing seen to differ, but the model's own noise hides what would
        first = bad[0]
        return (f"parity not proven in TensorFlow {parity.target_version}: {len(bad)} output(s) unprovable on these "
                f"inputs, first {first.signature}/{first.output}: {first.message}")
    first = differ[0]
    return (f"parity failed in TensorFlow {parity.target_version}: {len(differ)} output(s) differ, first "
            f"{first.signature}/{first.output}: {first.message}")
