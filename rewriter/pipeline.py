"""The conversion, in one direction: load -> graph -> rules -> validate -> write.

Verification in the real target runtime comes after writing (rewriter/verify/parity.py); the CLI and
the API chain the two.
"""
from __future__ import annotations

import copy
import gc
import hashlib
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from contextlib import contextmanager
from typing import Callable, Iterator

from rewriter.protos import function_pb2, graph_pb2, op_def_pb2
from rewriter.protos.node_def_pb2 import NodeDef
from rewriter.protos import saved_model_pb2

from rewriter import __version__
from rewriter.savedmodel import normalize
from rewriter.rules import object_graph
from rewriter.rules.object_graph_loader import load_object_graph_rules
from rewriter.verify import schema_check
from rewriter.rules import training_paths
from rewriter.errors import BadInput, Refused
from rewriter.findings import Finding
from rewriter.savedmodel.graph_model import (NodeDefView, fill_nodes, scope_from_function, scope_from_graph_def,
                                             write_function)
from rewriter.savedmodel.model import (
    ProtoModel,
    ProtoScope,
    check_model,
    external_names,
    meta_graph_label,
    proto_models,
    proto_scopes,
    skeleton_of,
)
from rewriter.verify.python_loader_caveats import python_loader_caveats
from rewriter.targets.registry import OpRegistry, load_registry, newest_registry
from rewriter.targets.releases import Release, known_releases, parse_release, release_of_producer
from rewriter.rules.engine import Application, RuleOutcome, RuleRun
from rewriter.savedmodel.node_reading import NodeReading
from rewriter.savedmodel.op_signatures import OpSignatures
from rewriter.rules.loader import Rule, load_rules
from rewriter.savedmodel.files import (
    FINGERPRINT_PB,
    SavedModelFiles,
    check_output_location,
    read_saved_model,
    serialize,
    StagedOutput,
    publish,
    stage_saved_model,
)
from rewriter.verify.validator import MalformedCheck, ValidationCache, validate_readings, validate_scopes

Progress = Callable[[str], None]
# fingerprint.pb appeared with TF 2.12; older releases neither read nor write it.
FINGERPRINT_SINCE = Release(2, 12)


@dataclass
class Options:
    target: Release
    allow_lossy: frozenset[str] = frozenset()
    rules_dir: Path | None = None
    force: bool = False
    # Refuse what is otherwise written with a warning: narrowing rules (exact wherever they run,
    # failing loudly on some inputs), Keras metadata the target's Keras cannot read (left out by
    # default) and training-only functions holding ops the target lacks (stubbed by default).
    strict: bool = False
    # Keep each rewrite's before/after subgraph for the HTML report (the CLI asks for them with
    # --report-html); taking them costs as much as the rewrites.
    graph_pictures: bool = False


@dataclass
class Plan:
    """What a conversion does (or would do): the result of everything before writing."""

    input_dir: Path
    source_release: Release
    source_version: str
    target: Release
    rules: list[Rule]
    applications: list[Application]
    before: list[Finding]  # the validator on the input, against the target
    refusals: list[Finding]  # what stops the conversion
    notes: list[str] = field(default_factory=list)
    output_proto: saved_model_pb2.SavedModel | None = None
    files: SavedModelFiles | None = None
    object_graph: object_graph.Outcome | None = None  # object-graph rules: what they changed, what write() writes

    @property
    def ok(self) -> bool:
        return not self.refusals


def source_release_of(proto: saved_model_pb2.SavedModel) -> tuple[Release, str]:
    """The release that wrote the model: meta_info_def.tensorflow_version, else the producer."""
    meta = proto.meta_graphs[0].meta_info_def
    version = meta.tensorflow_version
    parts = version.split(".")
    if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
        return Release(int(parts[0]), int(parts[1])), version
    producer = proto.meta_graphs[0].graph_def.versions.producer
    release = release_of_producer(producer)
    if release is None:
        raise BadInput(f"saved_model.pb: producer version {producer} is older than every release this tool knows")
    return release, f"producer {producer}"


def _registry_for(release: Release) -> OpRegistry:
    known = known_releases()
    if release > known[-1]:
        return newest_registry()
    return load_registry(max(r for r in known if r <= release))


def _apply_rules_by_scope(original: saved_model_pb2.SavedModel, output: saved_model_pb2.SavedModel, skeleton: bool,
                          models: list[ProtoModel], rules: list[Rule], target: Release, source: OpRegistry,
                          target_registry: OpRegistry, options: Options) -> RuleOutcome:
    """The rules, one scope at a time (rules.engine.RuleRun), each scope then put into `output`.

    A scope in which no rule matches (RuleRun.may_match, which matches on the NodeDefs as they
    are) gets no graph model and is copied from `original` as it is (in C). Any other scope gets its graph model, the rules,
    and, if a rule applied or found something there, is serialized from it (else copied: an
    untouched scope serializes to the same bytes); its graph model then goes, so at most one
    scope's graph model is in memory. `skeleton`: `output` is skeleton_of(original), which the
    scopes fill; else a deep copy of it, whose touched scopes are replaced.
    """
    run = RuleRun(rules, target, options.allow_lossy, options.strict, options.graph_pictures)
    position = 0
    for model in models:
        meta_graph, graph_def = original.meta_graphs[model.index], output.meta_graphs[model.index].graph_def
        ops = OpSignatures(source, target_registry, model.library)
        externals = frozenset(external_names(output.meta_graphs[model.index]))
        source_nodes = meta_graph.graph_def.node
        if run.may_match(NodeDefView.of_graph_def(model.label, meta_graph.graph_def, ops)):
            scope = scope_from_graph_def(model.label, meta_graph.graph_def)
            scope.ops, scope.external_names = ops, externals
            if run.apply(position, scope):
                del graph_def.node[:]
                fill_nodes(graph_def.node, scope)
            elif skeleton:
                graph_def.node.extend(source_nodes)
            del scope
        elif skeleton:
            graph_def.node.extend(source_nodes)
        position += 1
        if skeleton and meta_graph.graph_def.HasField("library"):
            # Every function copied into the skeleton in one C call (faster than one by one); a
            # rewritten one is then edited where it is.
            graph_def.library.CopyFrom(meta_graph.graph_def.library)
        for function_index, function in enumerate(meta_graph.graph_def.library.function):
            if run.may_match(NodeDefView.of_function(function, ops)):
                scope = scope_from_function(function)
                scope.ops = ops
                if run.apply(position, scope):
                    write_function(graph_def.library.function[function_index], scope, holds_input=True)
                del scope
            position += 1
    return run.outcome()


@contextmanager
def _collector_spared() -> Iterator[Callable[[], None]]:
    """A `settle()` that tells Python's cyclic collector that what is alive now lives as long as
    the plan (gc.freeze: it stops scanning it), undone when the plan ends (gc.unfreeze).

    A plan keeps what it finds (findings, the report's applications: 400k objects on a 300k-node
    model), and each full collection scanned all of it again: 0.81 s of gen-300k's 10.7 s
    (measured with gc.callbacks), 0.40 s with this. Only the cyclic collector is told; reference
    counting frees everything as before. If the caller froze objects itself (a server preloading
    before fork), the freeze is left alone: unfreezing would undo the caller's freeze.

    The youngest generation is collected after _YOUNG_COLLECTION allocations instead of Python's
    700 (the thresholds are put back after): most of what a plan allocates dies young (readings,
    edges, one scope's graph model), and 250 collections with their 22 older-generation ones took
    18 ms of gen-30k's 700; 2 took 5 ms."""
    thresholds = gc.get_threshold()
    if thresholds[0]:  # (0: the caller turned automatic collection off; it stays off)
        gc.set_threshold(max(thresholds[0], _YOUNG_COLLECTION), *thresholds[1:])
    try:
        if gc.get_freeze_count():
            yield lambda: None
            return
        try:
            yield gc.freeze
        finally:
            gc.unfreeze()
    finally:
        gc.set_threshold(*thresholds)


_YOUNG_COLLECTION = 20_000


def plan(input_dir: Path, options: Options, progress: Progress | None = None) -> Plan:
    """Load IN and run the rules and the validator on it, in memory. Nothing is written."""
    with _collector_spared() as settle:
        return _plan(input_dir, options, progress, settle)


def _plan(input_dir: Path, options: Options, progress: Progress | None, settle: Callable[[], None]) -> Plan:
    say = progress or (lambda _: None)
    say(f"reading {input_dir}")
    files = read_saved_model(input_dir)
    source_release, source_version = source_release_of(files.proto)
    target = options.target
    if target not in known_releases():
        load_registry(target)  # raises BadInput naming the known releases
    if target > source_release:
        raise BadInput(f"--to {target} is newer than the release that wrote the model ({source_version}); nothing to downgrade")
    rules = load_rules(options.rules_dir)
    models = proto_models(files.proto)
    source_registry, target_registry = _registry_for(source_release), load_registry(target)
    say(f"checking {sum(len(model.functions) + 1 for model in models)} graphs against TensorFlow {target}'s registry")
    # What building the graph model would reject, before any work (check_model), and in the same
    # reading of every node the validator on IN, with the malformed-attr check against the
    # source's own registry (malformed_attrs), which a model has to pass before anything else.
    malformed = MalformedCheck(source_registry)
    validation = InputValidation(target_registry, {model.index: model.library for model in models}, malformed)
    check_model(files.proto, on_scope=validation.add)
    before, before_by_node = validation.findings, validation.grouped
    # The output starts as IN's proto without its graphs, which are filled in scope by scope after
    # the rules (so each constant is copied only once).
    skeleton = skeleton_of(files.proto)
    proto = skeleton if skeleton is not None else copy.deepcopy(files.proto)
    if malformed.found:
        first = malformed.found[0]
        more = f" (and {len(malformed.found) - 1} more)" if len(malformed.found) > 1 else ""
        raise BadInput(f"saved_model.pb: {first.where}, node {first.node!r} ({first.op}): {first.message}{more}: "
                       "a malformed model, which no TensorFlow release loads")
    settle()  # (no graph model is alive here or at the next settle: each scope's goes in the loop)
    say("applying rules")
    outcome = _apply_rules_by_scope(files.proto, proto, skeleton is not None, models, rules, target,
                                    source_registry, target_registry, options)
    del models
    say("applying object-graph rules")
    og_rules = load_object_graph_rules(_object_graph_rules_dir(options.rules_dir))
    og = object_graph.downgrade(proto, files, target, og_rules, options.allow_lossy, strict=options.strict)
    notes = normalize.for_target(proto, source_registry, target_registry, target, source_version, __version__)
    notes.extend(og.notes)
    notes.extend(narrowing_warnings(outcome.applications, rules))
    settle()
    # The post-condition: the validator on what we write (see _validate_output).
    after = _validate_output(files.proto, proto, before_by_node, target_registry)
    rule_findings = outcome.findings
    if not options.strict:
        # Functions only a training-mode path runs: stubbed with an error naming tfdowngrade
        # (rewriter/rules/training_paths.py), so their problems no longer stop the model.
        candidates = [f for f in outcome.findings if f.kind in ("refused", "lossy")] + after
        stubbed = training_paths.stub_unreached(proto, candidates, target)
        if stubbed.functions:
            rule_findings = [f for f in outcome.findings
                             if not (f.where.startswith("function ") and f.where[len("function "):] in stubbed.functions)]
            notes.extend(stubbed.notes)
            after = _validate_output(files.proto, proto, before_by_node, target_registry)
    refusals = _refusals(rule_findings, after, rules, target, proto)
    if files.has_fingerprint and target < FINGERPRINT_SINCE:
        notes.append(f"{FINGERPRINT_PB} dropped: TensorFlow {target} does not read it")
    notes.extend(python_loader_caveats(proto, target))
    # The second post-condition: every field, enum value and oneof case we would write is known to
    # the target's protobuf schema; anything else is a refusal, so such an output is never written.
    refusals += og.refusals + _schema_refusals(schema_check.check_output(proto, og, target), target)
    return Plan(
        input_dir=input_dir,
        source_release=source_release,
        source_version=source_version,
        target=target,
        rules=rules,
        applications=outcome.applications,
        before=before,
        refusals=refusals,
        notes=notes,
        output_proto=proto,
        files=files,
        object_graph=og,
    )


NodeKey = tuple[int, str, str]  # (MetaGraphDef index, scope where(), node name)
ScopeKey = tuple[int, str]  # (MetaGraphDef index, scope where())


@dataclass
class InputFindings:
    """The validator's findings on the input, by node and by scope (each in the input's order)."""

    by_node: dict[NodeKey, list[Finding]] = field(default_factory=dict)
    by_scope: dict[ScopeKey, list[Finding]] = field(default_factory=dict)
    # Per MetaGraphDef index, every op name its nodes use (so the functions some node calls as an
    # op); an index missing here: not known.
    ops: dict[int, set[str]] = field(default_factory=dict)


class InputValidation:
    """The validator on the input, scope by scope as check_model reads them (`add` is its on_scope):
    the findings in the input's order, and grouped by node and by scope (InputFindings).
    `libraries`: each MetaGraphDef's function signatures, by its index."""

    def __init__(self, registry: OpRegistry, libraries: dict[int, dict[str, op_def_pb2.OpDef]],
                 malformed: MalformedCheck | None = None) -> None:
        self.registry, self.libraries, self.malformed = registry, libraries, malformed
        self.cache = ValidationCache()  # what is prepared per OpDef and library, shared by every scope
        self.findings: list[Finding] = []
        self.grouped = InputFindings()

    def add(self, index: int, where: str, readings: list[NodeReading]) -> None:
        self.grouped.ops.setdefault(index, set()).update({reading[2] for reading in readings})
        self.record(index, where, validate_readings(where, readings, self.libraries.get(index, {}), self.registry,
                                                    self.cache, self.malformed))

    def record(self, index: int, where: str, found: list[Finding]) -> None:
        """Keep one scope's findings."""
        self.grouped.by_scope[(index, where)] = found
        self.findings.extend(found)
        by_node = self.grouped.by_node
        for finding in found:
            by_node.setdefault((index, where, finding.node), []).append(finding)


def _validate_output(original: saved_model_pb2.SavedModel, output: saved_model_pb2.SavedModel,
                     before: InputFindings, registry: OpRegistry) -> list[Finding]:
    """The validator's findings on `output`, as a full pass over it would give them, in its order.

    What the validator says of a node depends only on the node (with its inputs), the registry,
    the names of the functions of its MetaGraphDef's library and, if the node calls one, that
    function's signature. So a node equal to the same node in the input,
    in a MetaGraphDef whose library has the same function names, and whose op is not a function
    whose signature changed, gets its findings from the pass over the input; every other node
    (what the rules, the normalization or anything else changed or added) is validated again. A
    scope whose node list equals the input's takes its findings from the input at once, one
    comparison in C, if no function that the input's nodes call as an op changed its signature
    (every signature changes once an object-graph rule drops ArgDef.handle_data, but functions are
    called through func attrs, which read only the names).
    The whole model is compared, not only what the rules report they touched, so no change can
    slip through unvalidated. Comparing nodes is done by protobuf in C; the validator runs in
    Python on the changed nodes only. tests/test_build_once.py compares it with a full pass.
    """
    old_scopes: dict[ScopeKey, graph_pb2.GraphDef | function_pb2.FunctionDef] = {}
    old_signatures: dict[int, dict[str, op_def_pb2.OpDef]] = {}
    for index, meta_graph in enumerate(original.meta_graphs):
        graph_def = meta_graph.graph_def
        old_signatures[index] = {f.signature.name: f.signature for f in graph_def.library.function}
        old_scopes[(index, f"graph {meta_graph_label(meta_graph, index)}")] = graph_def
        for function in graph_def.library.function:
            old_scopes[(index, f"function {function.signature.name}")] = function
    findings: list[Finding] = []
    cache = ValidationCache()  # the OpDefs it prepares live as long as `output`
    for index, meta_graph in enumerate(output.meta_graphs):
        graph_def = meta_graph.graph_def
        library = graph_def.library.function
        signatures = {f.signature.name: f.signature for f in library}
        old_library = old_signatures.get(index, {})
        same_names = old_library.keys() == signatures.keys()
        # Compared as messages, in C (equal messages give the validator the same OpDef to read).
        resigned = {name for name, signature in signatures.items() if old_library.get(name) != signature}
        ops_used = before.ops.get(index)
        resigned_ops_used = bool(resigned) if ops_used is None else not resigned.isdisjoint(ops_used)
        scopes: list[tuple[str, graph_pb2.GraphDef | function_pb2.FunctionDef]] = [
            (f"graph {meta_graph_label(meta_graph, index)}", graph_def)]
        scopes += [(f"function {function.signature.name}", function) for function in library]
        for where, scope in scopes:
            old = old_scopes.get((index, where))
            nodes = scope.node if isinstance(scope, graph_pb2.GraphDef) else scope.node_def
            old_list = None if old is None else old.node if isinstance(old, graph_pb2.GraphDef) else old.node_def
            if same_names and not resigned_ops_used and old_list is not None and old_list == nodes:
                findings.extend(before.by_scope.get((index, where), ()))
                continue
            node_defs = nodes[:]  # (a slice: iterating a upb repeated field ends in an IndexError upb formats)
            old_nodes: dict[str, NodeDef] = {}
            if old_list is not None and same_names:
                old_nodes = {node.name: node for node in old_list[:]}
            old_node = old_nodes.get
            if not same_names:
                unchanged = [False] * len(node_defs)
            elif resigned:
                unchanged = [node.op not in resigned and old_node(node.name) == node for node in node_defs]
            else:
                unchanged = [old_node(node.name) == node for node in node_defs]
            changed = ProtoScope(where, [node for node, same in zip(node_defs, unchanged) if not same])
            fresh: dict[str, list[Finding]] = {}
            if changed.node_defs:
                for finding in validate_scopes([changed], registry, {id(changed): signatures}, cache):
                    fresh.setdefault(finding.node, []).append(finding)
            if not fresh and not before.by_scope.get((index, where)):
                continue  # no node of this scope has a finding, old or new
            for node, same in zip(node_defs, unchanged):
                findings.extend(before.by_node.get((index, where, node.name), ()) if same else fresh.get(node.name, ()))
    return findings


def narrowing_warnings(applications: list[Application], rules: list[Rule]) -> list[str]:
    """One warning per narrowing rule applied: which inputs the output fails on."""
    by_id = {rule.id: rule for rule in rules}
    counts: dict[str, int] = {}
    for app in applications:
        if by_id[app.rule].exactness == "narrowing":
            counts[app.rule] = counts.get(app.rule, 0) + 1
    return [f"warning: narrowing rule {rule_id} applied {n} time(s): the output computes the same values wherever it "
            f"runs, but fails on {by_id[rule_id].fails_on} (--strict refuses it)" for rule_id, n in sorted(counts.items())]


def _object_graph_rules_dir(rules_dir: Path | None) -> Path | None:
    """--rules DIR may hold object-graph rules in DIR/object-graph; otherwise the built-in ones."""
    if rules_dir is not None and (rules_dir / "object-graph").is_dir():
        return rules_dir / "object-graph"
    return None


Located = tuple[str, str]  # (scope.where(), node name)


def _data_readers(proto: saved_model_pb2.SavedModel) -> dict[Located, list[Located | None]]:
    """Each node's data readers in what we write; None for a function's return value (anything
    read from outside the node list: a signature reads graph nodes by name, so a graph node is
    never only read by refused nodes as far as this knows)."""
    readers: dict[Located, list[Located | None]] = {}
    for _, scopes, _ in proto_scopes(proto):
        for scope in scopes:
            where = scope.where()
            for node in scope.node_defs:
                readers.setdefault((where, node.name), [])
                for text in node.input:
                    if not text.startswith("^"):
                        readers.setdefault((where, text.split(":")[0]), []).append((where, node.name))
            if where.startswith("graph "):
                for node in scope.node_defs:
                    readers[(where, node.name)].append(None)
    for meta_graph in proto.meta_graphs:
        for function in meta_graph.graph_def.library.function:
            where = f"function {function.signature.name}"
            for value in function.ret.values():
                readers.setdefault((where, value.split(":")[0]), []).append(None)
    return readers


def _only_feeds_refused(node: Located, refused: set[Located], readers: dict[Located, list[Located | None]],
                        memo: dict[Located, bool]) -> bool:
    """Whether every data reader of the node is refused, or itself only feeds refused nodes: then
    the refusal of its readers already says what stops the conversion, and the node needs no
    finding of its own (StatelessRandomGetKeyCounter feeding a refused StatelessRandomGammaV3: one
    problem, one finding)."""
    if node in refused:
        return True
    if node in memo:
        return memo[node]
    memo[node] = False  # a cycle (a loop's back edge) proves nothing
    read_by = readers.get(node, [])
    memo[node] = bool(read_by) and all(r is not None and _only_feeds_refused(r, refused, readers, memo) for r in read_by)
    return memo[node]


def _refusals(rule_findings: list[Finding], after: list[Finding], rules: list[Rule], target: Release,
              proto: saved_model_pb2.SavedModel | None = None) -> list[Finding]:
    """Rule refusals first; then what the validator still rejects, explained as 'no rule', unless
    it only feeds what a rule refused (proto: the output, to know who reads what)."""
    refusals = list(rule_findings)
    covered = {(f.where, f.node) for f in refusals}
    refused = {(f.where, f.node) for f in refusals if f.kind == "refused"}
    readers = _data_readers(proto) if proto is not None and refused and after else {}
    memo: dict[Located, bool] = {}
    for finding in after:
        if (finding.where, finding.node) in covered:
            continue
        if readers and _only_feeds_refused((finding.where, finding.node), refused, readers, memo):
            continue
        what = "op" if finding.kind == "unknown-op" else "attr"
        since = _since_words(finding) if finding.since else ""
        message = f"{finding.message}{since}; no rule brings it to {target}"
        if finding.since:
            message += f": target TensorFlow {finding.since} or newer"
        if finding.kind in ("unknown-op", "unknown-attr"):
            message += f". Rules handle {what}s by name: see `tfdowngrade rules list`"
        refusals.append(Finding("no-rule", finding.where, finding.node, finding.op, message, since=finding.since,
                                attr=finding.attr))
    return refusals


def _since_words(finding: Finding) -> str:
    """' (added in TensorFlow 2.10)', or for a value an older OpDef rejected ' (allowed from
    TensorFlow 2.6)'; where the shipped registries skip releases before it (1.15, then 2.3), what
    is known: ' (added after TensorFlow 1.15, by 2.3)'."""
    assert finding.since is not None
    verb = "allowed" if finding.kind == "bad-attr" else "added"
    release = parse_release(finding.since)
    older = [known for known in known_releases() if known < release]
    if older and (older[-1].major, older[-1].minor + 1) != (release.major, release.minor):
        return f" ({verb} after TensorFlow {older[-1]}, by {release})"
    return f" ({verb} {'from' if verb == 'allowed' else 'in'} TensorFlow {release})"


def _schema_refusals(findings: list[Finding], target: Release) -> list[Finding]:
    """The schema post-condition's findings, each with what the user can do about it: a field,
    enum value or message the target's protobuf schema lacks is in the output because no
    object-graph rule removes or replaces it exactly."""
    explained = []
    for finding in findings:
        if finding.kind == "schema-enum":
            what = "enum value"
        elif finding.kind == "schema-message":
            what = "message"
        else:
            what = "field"
        newer = f"target TensorFlow {finding.since} or newer, which reads it, or " if finding.since else ""
        remedy = (f"; no object-graph rule removes this {what} exactly for {target}: {newer}write an object-graph "
                  "rule that does (docs/writing-object-graph-rules.md)")
        if finding.kind == "schema-enum" and finding.op.startswith("tensorflow.DataType."):
            remedy = (f"; TensorFlow {target} has no such dtype, so no rule can carry these tensors exactly: "
                      + (f"target TensorFlow {finding.since} or newer, or " if finding.since else "")
                      + "re-export the model with a dtype the target has")
        explained.append(replace(finding, message=finding.message + remedy))
    return explained


def write(plan_result: Plan, output_dir: Path, force: bool, progress: Progress | None = None) -> dict[str, str]:
    """Write the planned output atomically to OUT, unverified; refuse if the plan has refusals.
    (Conversion with parity uses stage(), proves the staged folder, then publishes it.)"""
    staged = stage(plan_result, output_dir, force, progress)
    publish(staged)
    return staged.actions


def stage(plan_result: Plan, output_dir: Path, force: bool, progress: Progress | None = None) -> StagedOutput:
    """Build the planned output in a temporary folder beside OUT (see savedmodel_io.StagedOutput);
    refuse if the plan has refusals."""
    if not plan_result.ok:
        raise Refused(
            f"{len(plan_result.refusals)} problem(s) have no exact older form; nothing was written",
            plan_result.refusals,
        )
    files, proto = plan_result.files, plan_result.output_proto
    assert files is not None and proto is not None
    check_output_location(files.root, output_dir, force)
    (progress or (lambda _: None))(f"writing {output_dir}")
    replaced: dict[str, bytes | None] = {}
    finalize: Callable[[Path], None] | None = None
    omitted: list[str] = []  # why TF's fingerprinting failed, if it did
    og = plan_result.object_graph
    if og is not None:
        # A changed checkpoint object graph (new index, shard copied with the graph appended) and
        # keras_metadata.pb folded into the object graph or rewritten.
        replaced.update(og.replaced)
        finalize = og.finalize
    if files.has_fingerprint:
        if plan_result.target < FINGERPRINT_SINCE:
            replaced[FINGERPRINT_PB] = None
        else:
            # The old fingerprint hashes the old bytes: make a new one over what we write.
            replaced[FINGERPRINT_PB] = None

            def fingerprint(directory: Path) -> None:
                reason = _write_fingerprint(directory, plan_result.target, proto)
                if reason:
                    omitted.append(reason)

            finalize = _chain(finalize, fingerprint)
    staged = stage_saved_model(files, output_dir, serialize(proto), replaced, force, finalize)
    actions = staged.actions
    if omitted:
        actions[FINGERPRINT_PB] = f"omitted: TensorFlow's fingerprinting failed ({omitted[0]}); TensorFlow loads a model without it"
    for name in og.rewritten if og is not None else []:
        actions[name] = "written"
    return staged


def _chain(first: Callable[[Path], None] | None, then: Callable[[Path], None]) -> Callable[[Path], None]:
    if first is None:
        return then

    def both(directory: Path) -> None:
        first(directory)
        then(directory)

    return both


def _write_fingerprint(directory: Path, target: Release, written: saved_model_pb2.SavedModel) -> str | None:
    """A fingerprint of the new bytes, with the fields the target's FingerprintDef has; checked
    against the target's schema before OUT is renamed into place. Returns why it was omitted, if it was.

    The hashes are TensorFlow's own (rewriter/savedmodel/fingerprint.py, equal field for field to
    TF 2.21's CreateFingerprintDef: tests/test_fingerprint.py), computed without importing it."""
    from rewriter.savedmodel.fingerprint import FingerprintError, create_fingerprint

    try:
        fingerprint = create_fingerprint(directory, written)  # `written` is what saved_model.pb holds
    except FingerprintError as error:  # as TF's FingerprintException: TF loads a model without fingerprint.pb
        return str(error)
    # TF fills uuid at random; ours is derived from the content hashes, so the same output
    # always gets the same fingerprint.pb (conversion is deterministic, byte for byte).
    digest = hashlib.sha256(fingerprint.SerializeToString(deterministic=True)).digest()
    fingerprint.uuid = str(uuid.UUID(bytes=digest[:16], version=4))
    schema_check.drop_unknown_fields(fingerprint, target)
    problems = schema_check.check_message(fingerprint, target, FINGERPRINT_PB)
    if problems:
        raise Refused(f"the new {FINGERPRINT_PB} does not fit TensorFlow {target}'s schema", problems)
    (directory / FINGERPRINT_PB).write_bytes(fingerprint.SerializeToString(deterministic=True))
    return None
