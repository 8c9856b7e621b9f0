#!/usr/bin/env python3
"""Generate docs/coverage.md: every op and attr TensorFlow added after 2.3, and what handles it.

The rows come from the project's own registries (rewriter/registries/ops-<minor>.pb.gz, dumped
from the real wheels), diffed release by release from 2.3 to the newest:

  op     an op the previous releases lack                          ("Conv")
  attr   an attr an existing op gained                             ("TopKV2.Tk")
  type   a type an existing type attr's allowed list gained        ("AddV2.T:DT_UINT32")
  args   an existing op's input/output args changed (typed by a new attr, or new args)

A row's entry is one of:
  rule      rules whose `handles` names it (a rewrite, or a refusal with guidance);
  excluded  not something an inference SavedModel holds: EXCLUSIONS below says which and why;
  MISSING   neither. KNOWN_GAPS lists the rows that are MISSING today, on purpose: a registry
            change that adds a row nobody handles fails tests/test_coverage.py, and so does a
            row that got handled but is still listed as a gap.

Usage:
    .venv/bin/python tools/gen_coverage.py            # write docs/coverage.md
    .venv/bin/python tools/gen_coverage.py --check    # exit 1 if docs/coverage.md is stale
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "docs" / "coverage.md"
BASE = (2, 3)


@dataclass(frozen=True)
class Row:
    kind: str  # op | attr | type | args
    key: str  # what a rule's `handles` names: "Conv", "TopKV2.Tk", "AddV2.T:DT_UINT32", "TopKV2"
    op: str
    since: str  # first release with it, "2.13"
    detail: str = ""


@dataclass(frozen=True)
class Exclusion:
    category: str
    pattern: str  # a regex over the op name (type rows: over "Op.attr:DT_X")
    reason: str
    kinds: tuple[str, ...] = ("op", "attr", "type", "args")


# Ops (and their attrs/types) that an inference or serving SavedModel does not hold. Each entry
# says why; an exclusion never hides a row a rule handles (rules win), and every exclusion must
# match at least one row (tests/test_coverage.py), so the list cannot rot silently.
EXCLUSIONS: tuple[Exclusion, ...] = (
    Exclusion("internal", r"^_",
              "Underscore ops are made by graph rewrites inside the runtime (grappler fusions, oneDNN "
              "_Mkl* layouts, XLA host transfer); tf.saved_model.save writes the unoptimized graph."),
    Exclusion("internal", r"^Risc[A-Z]",
              "The experimental RISC op set (2.5) is registered but no TensorFlow API writes it."),
    Exclusion("tpu", r"TPU|Tpu|^XlaSparse|^XlaRecvTPU|^XlaSendTPU|SparseCore|Minibatch|Dedup|CooTensor"
              r"|^FinalizeTPUEmbedding|^GetTpuTaskId$|^UpdateTaskIdAndGlobalCoreArray$|^ShutdownTPUSystem$"
              r"|^ConfigureAndInitializeGlobalTPU$|^LoadAllTPUEmbeddingParameters$|^RetrieveAllTPUEmbedding"
              r"|^XlaSharding$|^XlaSpmd|^XlaHostCompute$|^XlaRecvFromHost$|^XlaSendToHost$|^TopKUnique$"
              r"|^TopKWithUnique$|^MakeUnique$|^XlaAllReduce$|^XlaReduceScatter$|^XlaConcatND$|^XlaSplitND$"
              r"|^AssignVariableXlaConcatND$|^ReadVariableXlaSplitND$|^CrossReplicaSum$|^AllToAll$",
              "TPU programs, TPU embeddings and SPMD sharding run only on TPU systems, and the old CPU/GPU "
              "runtime has no TPU to run them on."),
    Exclusion("dataset", r"Dataset|Iterator|^DataService|^GetOptions$|^Window(Op)?$|^GetElementAtIndex$"
              r"|^DistributedSave$|^GlobalIterId$|^ComputeBatchSize$|^DatasetFingerprint$",
              "tf.data input pipelines: a serving signature takes tensors, not datasets."),
    Exclusion("collective", r"^Collective|^DTensor|^Relayout|^CopyToMesh|^NcclAllReduce$",
              "Multi-worker collectives and DTensor layouts need a distributed runtime; a serving graph "
              "runs on one host."),
    Exclusion("training", r"Grad(V\d)?$|GradEx$|GradWithBias$|^(Resource)?(Sparse)?Apply[A-Z]"
              r"|Accumulator|^AccumulateNV2$",
              "Gradient kernels, optimizer updates and gradient accumulators are written by training "
              "steps; inference signatures do not hold them (a signature with gradients uses the "
              "forward ops' *Grad kernels only, which 2.3 has for every op it has)."),
    Exclusion("training", r"^Cudnn",
              "cuDNN RNN kernels run only on NVIDIA GPUs and are chosen at run time for training-"
              "sized RNNs; SavedModels from tf.keras layers hold the portable CPU/GPU function too."),
    Exclusion("system", r"^Rpc|^DeleteRpcFutureResource$|^DebugIdentityV3$|^DumpTensor$|^CheckPinned$"
              r"|^Sleep(Identity)?Op$|^FileSystemSetConfiguration$|^IsTensorFloat32Enabled$|^GetDeadline$"
              r"|^SyncDevice$|^IsResourceHandleRefCounting$|^MakeWeakResourceHandle$|^TfLiteSubgraphExecute$"
              r"|^CalibrationStatisticsSaver$|^CustomAggregator$|^XlaLaunchV2$|^Write[A-Za-z]*Summary$",
              "Debugging, RPC, summaries, process configuration, the XLA launch op of auto-clustering "
              "(made by the runtime's compilation pass), a TFLite-interpreter hook, and quantization "
              "calibration ops (CustomAggregator, CalibrationStatisticsSaver), which exist only in the "
              "calibration model the quantizer runs, never in the model it exports."),
    Exclusion("no-kernel", r"^\w+\.\w+:DT_Q(U)?INT16$",
              "qint16/quint16 joined `numbertype` in 2.12, widening the OpDef of every numeric op, but "
              "no CPU kernel computes on them: AddN, Sum, Cumsum, BiasAdd, ArgMax, UnsortedSegmentSum "
              "on qint16 fail with 'Could not find device for node' in TF 2.21 (measured).",
              kinds=("type",)),
)

# Rows no rule handles yet, each knowingly. Keep sorted; remove a row when a rule handles it.
KNOWN_GAPS: frozenset[str] = frozenset()


# --------------------------------------------------------------------------------------- #
def _type_name(value: int) -> str:
    from rewriter.protos import types_pb2

    return str(types_pb2.DataType.Name(value))


def _allowed(op: object) -> dict[str, set[int] | None]:
    out: dict[str, set[int] | None] = {}
    for attr in op.attr:  # type: ignore[attr-defined]
        if attr.type in ("type", "list(type)"):
            out[attr.name] = set(attr.allowed_values.list.type) if attr.HasField("allowed_values") else None
    return out


def _args(op: object) -> tuple[list[tuple], list[tuple]]:
    def sig(args: object) -> list[tuple]:
        return [(a.name, a.type, a.type_attr, a.number_attr, a.type_list_attr, a.is_ref) for a in args]  # type: ignore[attr-defined]

    return sig(op.input_arg), sig(op.output_arg)  # type: ignore[attr-defined]


def registry_rows() -> list[Row]:
    """Every op, attr, allowed type and arg change after 2.3, with the first release that has it."""
    from rewriter.targets.registry import load_registry
    from rewriter.targets.releases import Release, known_releases

    releases = [r for r in known_releases() if (r.major, r.minor) >= BASE]
    rows: dict[str, Row] = {}
    seen_ops = set(load_registry(releases[0]).ops)
    for previous, current in zip(releases, releases[1:]):
        before, after = load_registry(previous), load_registry(current)
        since = f"{current.major}.{current.minor}"
        for name, op in sorted(after.ops.items()):
            if name not in seen_ops:
                seen_ops.add(name)
                rows.setdefault(name, Row("op", name, name, since))
                continue
            old = before.op(name)
            if old is None or rows.get(name, Row("", "", "", "")).kind == "op":
                continue  # an op added after 2.3: its own row covers every later change
            old_attrs = {a.name for a in old.attr}
            for attr in op.attr:
                if attr.name not in old_attrs:
                    rows.setdefault(f"{name}.{attr.name}", Row("attr", f"{name}.{attr.name}", name, since))
            old_allowed = _allowed(old)
            for attr_name, types in _allowed(op).items():
                was = old_allowed.get(attr_name)
                if attr_name not in old_allowed or was is None:
                    continue  # a new attr (its own row), or one that allowed every type already
                gained = sorted((types or set()) - was) if types is not None else []
                if types is None:
                    rows.setdefault(f"{name}.{attr_name}:ANY", Row("type", f"{name}.{attr_name}:ANY", name, since,
                                                                "the allowed list was lifted"))
                for value in gained:
                    key = f"{name}.{attr_name}:{_type_name(value)}"
                    rows.setdefault(key, Row("type", key, name, since))
            if _args(old) != _args(op):
                typed = sorted({a.type_attr for a in [*op.input_arg, *op.output_arg] if a.type_attr} - old_attrs)
                detail = f"args now typed by {', '.join(typed)}" if typed else "args changed"
                rows.setdefault(f"{name}#args@{since}", Row("args", name, name, since, detail))
    return sorted(rows.values(), key=lambda r: (tuple(int(p) for p in r.since.split(".")), r.op, r.kind, r.key))


@dataclass(frozen=True)
class Entry:
    row: Row
    status: str  # rule | refusal | excluded | MISSING
    rules: tuple[str, ...] = ()
    exclusion: Exclusion | None = None


def classify(rows: list[Row], rules: list) -> list[Entry]:
    by_op: dict[str, list] = {}
    by_attr: dict[str, list] = {}
    by_type: dict[str, list] = {}
    for rule in rules:
        for op in rule.handles_ops:
            by_op.setdefault(op, []).append(rule)
        for attr in rule.handles_attrs:
            by_attr.setdefault(attr, []).append(rule)
        for entry in rule.handles_types:
            by_type.setdefault(entry, []).append(rule)
    entries = []
    for row in rows:
        if row.kind == "op":
            found = by_op.get(row.key, [])
        elif row.kind == "attr":
            found = by_attr.get(row.key, [])
        elif row.kind == "type":
            found = by_type.get(row.key, [])
        else:  # args: handled by whatever handles the attrs that now type them
            typed = re.findall(r"\b(\w+)\b", row.detail.partition("typed by ")[2])
            found = [r for attr in typed for r in by_attr.get(f"{row.op}.{attr}", [])] if typed else []
        if found:
            unique = list({r.id: r for r in found}.values())
            status = "rule" if any(r.rewrite is not None for r in unique) else "refusal"
            entries.append(Entry(row, status, tuple(r.id for r in unique)))
            continue
        # Patterns name ops; a type row's key ("Op.attr:DT_X") is tried too, for type exclusions.
        subjects = (row.op, row.key) if row.kind == "type" else (row.op,)
        exclusion = next((e for e in EXCLUSIONS if row.kind in e.kinds
                          and any(re.search(e.pattern, s) for s in subjects)), None)
        if exclusion is not None:
            entries.append(Entry(row, "excluded", (), exclusion))
        else:
            entries.append(Entry(row, "MISSING"))
    return entries


def render(entries: list[Entry], rules: list) -> str:
    from collections import Counter

    counts = Counter(e.status for e in entries)
    by_id = {r.id: r for r in rules}
    lines = [
        "# Coverage: what TensorFlow added after 2.3, and what handles it",
        "",
        "Generated by `tools/gen_coverage.py` from the registries in `rewriter/registries/` (dumped from",
        "the real wheels); do not edit by hand. `tests/test_coverage.py` fails when this file is stale,",
        "when a registry row has no entry, or when a row is MISSING without being a listed known gap.",
        "",
        "Kinds: **op** (a new op), **attr** (an attr an existing op gained), **type** (a type an existing",
        "type attr's allowed list gained), **args** (an op's args changed, e.g. typed by a new attr).",
        "Status: **rule** (a rewrite rule; its refusal rules cover the cases it cannot do), **refusal**",
        "(only refusals, with guidance), **excluded** (not in inference SavedModels; see the exclusion",
        "list at the end), **MISSING** (nothing yet).",
        "",
        f"Rows: {len(entries)}; rule: {counts['rule']}; refusal: {counts['refusal']}; "
        f"excluded: {counts['excluded']}; MISSING: {counts['MISSING']}.",
        f"Type rows: {sum(e.row.kind == 'type' for e in entries)}; by a rewrite: "
        f"{sum(e.row.kind == 'type' and e.status == 'rule' for e in entries)}; refused: "
        f"{sum(e.row.kind == 'type' and e.status == 'refusal' for e in entries)}.",
        "",
        "## Rows handled or missing",
        "",
        "| since | kind | what | status | rules (exact / narrowing / lossy / refusal) |",
        "|---|---|---|---|---|",
    ]
    for entry in entries:
        if entry.status == "excluded":
            continue
        names = []
        for rule_id in entry.rules:
            rule = by_id[rule_id]
            flavour = "refusal" if rule.refuse is not None else rule.exactness
            names.append(f"`{rule_id}` ({flavour})")
        what = entry.row.key + (f" ({entry.row.detail})" if entry.row.detail else "")
        lines.append(f"| {entry.row.since} | {entry.row.kind} | {what} | {entry.status} | {', '.join(names) or '-'} |")
    lines += ["", "## Excluded rows", ""]
    for exclusion in EXCLUSIONS:
        matched = [e for e in entries if e.exclusion is exclusion]
        if not matched:
            continue
        lines.append(f"### {exclusion.category}: {len(matched)} rows")
        lines.append("")
        lines.append(exclusion.reason)
        lines.append("")
        lines.append(", ".join(f"{e.row.key}{'' if e.row.kind == 'op' else ' (' + e.row.kind + ')'} {e.row.since}"
                               for e in matched))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def generate() -> tuple[str, list[Entry]]:
    from rewriter.rules.loader import load_rules

    rules = load_rules()
    entries = classify(registry_rows(), rules)
    return render(entries, rules), entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/coverage.md is not up to date")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    text, entries = generate()
    missing = [e.row.key for e in entries if e.status == "MISSING"]
    if args.check:
        current = OUTPUT.read_text("utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT.relative_to(REPO)} is stale: run tools/gen_coverage.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, "utf-8")
    print(f"{OUTPUT.relative_to(REPO)}: {len(entries)} rows, {len(missing)} MISSING")
    return 0


if __name__ == "__main__":
    sys.exit(main())
