"""`tfdowngrade inspect`: what a SavedModel holds, in the spirit of `saved_model_cli show --all`,
plus, with --to, the ops and attrs that release lacks."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from rewriter.savedmodel.attr_values import type_name
from rewriter.savedmodel.model import build_scopes
from rewriter.pipeline import source_release_of
from rewriter.targets.registry import load_registry
from rewriter.targets.releases import Release, parse_release
from rewriter.savedmodel.files import read_saved_model
from rewriter.verify.validator import validate_scopes


def _shape(info: Any) -> str:
    if info.tensor_shape.unknown_rank:
        return "unknown rank"
    return "(" + ", ".join(str(d.size) if d.size >= 0 else "?" for d in info.tensor_shape.dim) + ")"


def _schema_lines(proto: Any, target: Release) -> list[str]:
    """The fields, enum values and messages of saved_model.pb that the target's protobuf schema
    lacks (what the object-graph rules handle; `check` says what no rule does), each with the rules
    that handle it for the target."""
    from rewriter.rules.object_graph_loader import load_object_graph_rules
    from rewriter.savedmodel.files import SAVED_MODEL_PB
    from rewriter.verify.schema_check import check_message

    findings = check_message(proto, target, SAVED_MODEL_PB)
    if not findings:
        return [f"\nschema: TensorFlow {target}'s protobuf schema knows every field saved_model.pb holds"]
    rules = [rule for rule in load_object_graph_rules() if rule.applies_to(target)]
    lines = [f"\nschema: saved_model.pb holds {len({f.op for f in findings})} field(s) or value(s) TensorFlow "
             f"{target}'s protobuf schema lacks (object-graph rules; `tfdowngrade check` says what no rule handles)"]
    for name in sorted({f.op for f in findings}):
        handled = [rule.id for rule in rules if name in rule.handles_fields]
        lines.append(f"    {name}: " + (", ".join(f"rule {rule}" for rule in handled) if handled else "no rule"))
    return lines


def describe(input_dir: Path, to: str | None) -> str:
    files = read_saved_model(input_dir)
    release, version = source_release_of(files.proto)
    lines = [f"SavedModel {input_dir} (saved by TensorFlow {version})"]
    models = build_scopes(files.proto)
    for model in models:
        meta_graph = files.proto.meta_graphs[model.index]
        lines.append(f"\nMetaGraphDef tags: {', '.join(sorted(meta_graph.meta_info_def.tags))}; "
                     f"producer {meta_graph.graph_def.versions.producer}; {len(model.functions)} functions")
        for key in sorted(meta_graph.signature_def):
            signature = meta_graph.signature_def[key]
            lines.append(f"  signature {key!r} ({signature.method_name})")
            for kind, tensors in (("input", signature.inputs), ("output", signature.outputs)):
                for name in sorted(tensors):
                    info = tensors[name]
                    lines.append(f"    {kind} {name}: {type_name(info.dtype)} {_shape(info)} <- {info.name}")
        ops = Counter(node.op for scope in model.scopes for _, node in scope.nodes())
        lines.append(f"  ops ({len(ops)} kinds, {sum(ops.values())} nodes): " + ", ".join(f"{op}×{n}" for op, n in sorted(ops.items())))
        if to:
            target = parse_release(to)
            findings = validate_scopes(model.scopes, load_registry(target), {id(s): model.signatures() for s in model.scopes})
            missing = Counter((f.kind, f.op, f.message.split(" is not")[0]) for f in findings)
            lines.append(f"  against TensorFlow {target}: {len(findings)} problem(s)")
            for (kind, op, what), n in sorted(missing.items()):
                lines.append(f"    {kind}: {op}: {what} (×{n})")
    if to:
        lines += _schema_lines(files.proto, parse_release(to))
    files_list = ", ".join(files.other_files) or "none"
    lines.append(f"\nfiles: {files.pb_name}, {files_list}")
    return "\n".join(lines) + "\n"
