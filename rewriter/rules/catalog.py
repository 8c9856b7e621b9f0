"""Every rule under rules/, of every kind, behind one header: what `tfdowngrade rules list / show /
check` read.

Three kinds share the rule file format's header (id, description, since, exactness, handles,
fixture, refusal text): graph rules (rules/*.yaml, rewriter/rules/loader.py), object-graph rules and
Keras-config rules (rules/object-graph/*.yaml, rewriter/rules/object_graph_loader.py and keras_config.py).
`check` validates a file's documents against rules/rule.schema.json (the JSON Schema editors use
too) and then with its kind's parser; both report file:line.

Ordering: `rules list` shows every rule by since, then id. Rules of every kind apply in one order:
by file, then position in the file (a rewrite may rely on an earlier one).
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rewriter.errors import RuleFileError
from rewriter.targets.releases import Release
from rewriter.rules.loader import Rule, _LineLoader, builtin_rules_dir, load_rules, parse_rule_text

SCHEMA_FILE = "rule.schema.json"
OBJECT_GRAPH_DIR = "object-graph"


@dataclass(frozen=True)
class RuleHeader:
    kind: str  # "graph", "object-graph" or "keras-config"
    id: str
    description: str
    since: Release
    exactness: str  # "exact", "narrowing", "lossy"; "refusal" for a refusal
    handles: tuple[str, ...]
    fixture: str | None
    refuse: str | None
    source: str  # "rules/x.yaml:12"
    fails_on: str | None = None


def _graph_header(rule: Rule) -> RuleHeader:
    return RuleHeader("graph", rule.id, rule.description, rule.since,
                      "refusal" if rule.refuse else rule.exactness,
                      rule.handles_ops + rule.handles_attrs + rule.handles_types, rule.fixture, rule.refuse,
                      rule.source, rule.fails_on)


def _object_graph_header(rule: Any) -> RuleHeader:
    kind = "keras-config" if rule.keras_match is not None else "object-graph"
    exactness = "refusal" if rule.refuse else ("exact" if rule.exact else "lossy")
    return RuleHeader(kind, rule.id, " ".join(rule.description.split()), rule.since, exactness,
                      tuple(rule.handles_fields) + tuple(rule.handles_keras), rule.fixture,
                      " ".join(rule.refuse.split()) if rule.refuse else None, _shown_source(rule.source))


def _shown_source(source: str) -> str:
    """An object-graph rule's source relative to rules/'s parent, as graph rules show theirs."""
    path, _, line = source.rpartition(":")
    try:
        relative = Path(path).resolve().relative_to(builtin_rules_dir().resolve().parent)
    except ValueError:
        return source
    return f"{relative.as_posix()}:{line}"


def all_headers(rules_dir: Path | None = None) -> list[RuleHeader]:
    """Every rule of every kind, by since then id."""
    from rewriter.rules.object_graph_loader import load_object_graph_rules

    directory = rules_dir or builtin_rules_dir()
    headers = [_graph_header(rule) for rule in load_rules(rules_dir)]
    if (directory / OBJECT_GRAPH_DIR).is_dir():
        headers += [_object_graph_header(rule) for rule in load_object_graph_rules(directory / OBJECT_GRAPH_DIR)]
    return sorted(headers, key=lambda h: (h.since, h.id))


# --- check ---------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    path = builtin_rules_dir() / SCHEMA_FILE
    if not path.is_file():
        raise RuleFileError(f"{path}: the rule schema is missing")
    loaded: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return loaded


def _kind_of(document: Any) -> str:
    if isinstance(document, dict):
        if "fragments" in document:
            return "fragments"
        if "family" in document:
            return "family"
        match = document.get("match")
        if isinstance(match, dict) and ("message" in match or "keras_class" in match):
            return "object_graph_rule"
    return "graph_rule"


def _line_at(document: Any, path: list[Any]) -> int:
    """The line of the innermost mapping along a JSON Schema error's path."""
    line, node = int(getattr(document, "line", 0)), document
    for step in path:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            break
        line = int(getattr(node, "line", line))
    return line


def _jsonable(value: Any) -> Any:
    """YAML values as JSON Schema sees them (bytes from !!binary as text)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value


def validate_schema(documents: list[Any], shown: str) -> None:
    """Each document against its kind's definition in rules/rule.schema.json; file:line errors."""
    import jsonschema

    root = schema()
    for document in documents:
        definition = {"$ref": f"#/$defs/{_kind_of(document)}", "$defs": root["$defs"]}
        validator = jsonschema.Draft202012Validator(definition)
        errors = sorted(validator.iter_errors(_jsonable(document)), key=lambda e: list(e.absolute_path))
        if errors:
            error = jsonschema.exceptions.best_match(errors)
            path = list(error.absolute_path)
            where = "/".join(str(p) for p in path) or "the document"
            raise RuleFileError(f"{shown}:{_line_at(document, path)}: {where}: {error.message} "
                                f"(schema {SCHEMA_FILE}, {_kind_of(document).replace('_', ' ')})")


def _documents(text: str, shown: str) -> list[Any]:
    try:
        return [d for d in yaml.load_all(text, Loader=_LineLoader) if d is not None]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise RuleFileError(f"{shown}:{line}: not valid YAML: {problem}") from None


def check_file(path: Path) -> list[str]:
    """The ids of the rules one file holds, after checking it: schema, then its kind's parser."""
    from rewriter.rules.object_graph_loader import parse_object_graph_rules_text

    shown = str(path)
    try:
        text = path.read_text("utf-8")
    except OSError as error:
        raise RuleFileError(f"{shown}: {error.strerror}") from None
    documents = _documents(text, shown)
    if not documents:
        raise RuleFileError(f"{shown}:1: holds no rule")
    validate_schema(documents, shown)
    # A family is of its template's kind.
    kinds = {_kind_of(d["rule"] if _kind_of(d) == "family" else d) for d in documents} - {"fragments"}
    if "object_graph_rule" in kinds:
        if kinds != {"object_graph_rule"}:
            raise RuleFileError(f"{shown}:1: a file holds graph rules or object-graph rules, not both")
        return [rule.id for rule in parse_object_graph_rules_text(text, shown)]
    return [rule.id for rule in parse_rule_text(text, shown)]


def rule_files(paths: list[Path]) -> list[Path]:
    """FILE arguments, with a folder standing for every .yaml file under it."""
    found: list[Path] = []
    for path in paths:
        found.extend(sorted(path.rglob("*.yaml")) if path.is_dir() else [path])
    return found


def show(rule_id: str) -> str | None:
    """A rule's YAML: a family member expanded (with the row it came from), any other as written."""
    for rule in load_rules():
        if rule.id == rule_id:
            if "row" in rule.extra:
                return (f"# {rule.source}: expanded from a family, row {json.dumps(_jsonable(rule.extra['row']))}\n"
                        + yaml.safe_dump(_plain(rule.extra["document"]), sort_keys=False, width=100))
            return _source_text(rule.source)
    for header in all_headers():
        if header.id == rule_id:
            return _family_member(header.source, rule_id) or _source_text(header.source)
    return None


def _family_member(source: str, rule_id: str) -> str | None:
    """An object-graph rule from a family, expanded (None: the rule is written out as it is)."""
    from rewriter.rules.expand import expand_documents

    path = _rule_file(source)
    found: list[str] = []

    def one(document: Any, row: dict[str, Any] | None) -> None:
        if row is not None and isinstance(document, dict) and document.get("id") == rule_id:
            found.append(f"# {source}: expanded from a family, row {json.dumps(_jsonable(row))}\n"
                         + yaml.safe_dump(_plain(document), sort_keys=False, width=100))

    expand_documents(_documents(path.read_text("utf-8"), str(path)), str(path), one)
    return found[0] if found else None


def _rule_file(source: str) -> Path:
    name = source.rsplit(":", 1)[0]
    path = builtin_rules_dir().parent / name
    return path if path.is_file() else builtin_rules_dir() / Path(name).name


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _source_text(source: str) -> str:
    """The YAML document of one rule: from its first line (source is "rules/x.yaml:LINE") to the next `---`."""
    line = source.rsplit(":", 1)[1]
    lines = _rule_file(source).read_text("utf-8").splitlines(keepends=True)
    start = max(int(line) - 1, 0)
    while start > 0 and lines[start - 1].strip() not in ("---", "") and not lines[start - 1].startswith("#"):
        start -= 1
    end = next((i for i in range(start + 1, len(lines)) if lines[i].rstrip() == "---"), len(lines))
    return "".join(lines[start:end])
