"""Families and fragments: what a rule file may say once and use many times.

A rule file is a stream of YAML documents. Besides plain rules it may hold:

    fragments:                     # named pieces, usable by every rule of this file
      sniff: {zero: {const: ...}, head2: {op: Substr, ...}}    # new nodes (a mapping)
      shape_known: [{shape: "node:0", ends_with: [-1]}]       # conditions (a list)
      cast_text: "Cast the operands ... and re-export."        # a text

    family:                        # one rule per row of the table...
      columns: [suffix, op, v1]
      rows:
        - [uniform, StatelessRandomUniformV2, StatelessRandomUniform]
        - [normal, StatelessRandomNormalV2, StatelessRandomNormal]
    rule:                          # ...from this template
      id: stateless-random-${suffix}-v2
      match: {nodes: {node: {op: "${op}"}}}
      ...

`${name}` is replaced by the row's value: a string that is exactly `${name}` takes the value with its
type (a number, a list, true/false), inside a longer string its text. `${name|join}` writes a list as
"A, B", `${name|types}` a list of DT_ types as "int8, int16", `${name|lower}` in lower case, `${name|kebab}` CamelCase as kebab-case. A
`${name}` that is no parameter but a text fragment inserts that text. `family:` may also be a plain
list of mappings (one per rule).

`{use: NAME}` (or `{use: [A, B]}`, with optional `with: {param: value}`) stands for fragments:
- as a mapping's key (`nodes: {use: [sniff, bmp], image: {...}}`) it puts the fragments' entries
  where `use:` stands, in order (like YAML's `<<: *anchor`, but across `---` and with parameters);
  a key defined twice is an error;
- as an item of a list (`where: [{use: shape_known}, ...]`) a list fragment is spliced in;
- as a value (`refuse: {use: cast_text}`) it is replaced by the fragment.
Fragment names may hold `${...}` themselves (`use: "convert_c${channels}"`), so a row picks its parts.

Expansion happens before a rule is checked, so the rule checker sees, and reports with file:line,
the same rules as if each had been written out; `rules show ID` prints the expanded rule.
"""
from __future__ import annotations

import re
from typing import Any, Callable

from rewriter.errors import RuleFileError

PARAM_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:\|([a-z]+))?\}")
# ${name|filter}: a list parameter written as text
FILTERS = {
    "join": lambda values: ", ".join(str(v) for v in values),                        # [A, B] -> "A, B"
    "types": lambda values: ", ".join(str(v).removeprefix("DT_").lower() for v in values),  # DT_INT8 -> int8
    "lower": lambda values: str(values).lower(),
    "kebab": lambda values: re.sub(r"(?<!^)(?=[A-Z])", "-", str(values)).lower(),  # RandomUniform -> random-uniform
}
MAX_DEPTH = 20  # fragments using fragments: deeper than this is a cycle


def _line(value: Any) -> int:
    return int(getattr(value, "line", 0))


def _like(template: Any, value: dict) -> dict:
    """A new mapping that remembers the line `template` came from (errors keep file:line)."""
    result = type(template)() if isinstance(template, dict) else {}
    if hasattr(template, "line"):
        result.line = template.line  # type: ignore[attr-defined]
    result.update(value)
    return result


class Expander:
    """Expands one file's documents into plain rule documents."""

    def __init__(self, path: str, fragments: dict[str, Any]) -> None:
        self.path = path
        self.fragments = fragments

    def fail(self, where: Any, message: str) -> RuleFileError:
        return RuleFileError(f"{self.path}:{_line(where)}: {message}")

    def text(self, where: Any, value: str, params: dict[str, Any], depth: int = 0) -> Any:
        """`${name}`: a parameter, or a fragment (a text inside a longer string). Innermost
        first, so `${about_${form}}` names the fragment the row's `form` picks."""
        for _ in range(MAX_DEPTH):
            whole = PARAM_RE.fullmatch(value)
            if whole:
                return self.lookup(where, whole.group(1), params, depth, whole.group(2))

            def one(match: re.Match[str]) -> str:
                found = self.lookup(where, match.group(1), params, depth, match.group(2))
                if isinstance(found, dict):
                    raise self.fail(where, f"${{{match.group(1)}}} is a mapping: it can only stand alone in a value")
                return _as_text(found)

            replaced = PARAM_RE.sub(one, value)
            if replaced == value:
                return value
            value = replaced
        raise self.fail(where, "${...} substitutions nest too deep (a cycle?)")

    def lookup(self, where: Any, name: str, params: dict[str, Any], depth: int, filter_name: str | None = None) -> Any:
        if filter_name is not None:
            if filter_name not in FILTERS:
                raise self.fail(where, f"${{{name}|{filter_name}}}: no filter {filter_name!r} (known: {', '.join(FILTERS)})")
            value = self.lookup(where, name, params, depth)
            return FILTERS[filter_name](value if isinstance(value, list) or filter_name in ("lower", "kebab") else [value])
        if name in params:
            # a row's value may itself hold ${...}: a fragment, or a parameter given by `with:`
            return self.expand(params[name], params, depth + 1, where)
        if name in self.fragments:
            return self.expand(self.fragments[name], params, depth + 1, where)
        raise self.fail(where, f"${{{name}}} is neither a parameter here ({', '.join(sorted(params)) or 'none'}) nor a fragment")

    def expand(self, value: Any, params: dict[str, Any], depth: int = 0, where: Any = None) -> Any:
        if depth > MAX_DEPTH:
            raise self.fail(where, "fragments use each other in a cycle")
        if isinstance(value, str):
            return self.text(where, value, params, depth)
        if isinstance(value, list):
            items: list[Any] = []
            for item in value:
                if _is_use(item):
                    used = self.use(item, params, depth)
                    if len(used) == 1 and not isinstance(used[0], list):
                        items.append(used[0])
                    else:
                        for part in used:
                            items.extend(part if isinstance(part, list) else [part])
                else:
                    items.append(self.expand(item, params, depth, where))
            return items
        if isinstance(value, dict):
            if _is_use(value):
                used = self.use(value, params, depth)
                if len(used) == 1 and not isinstance(used[0], dict):
                    return used[0]
            merged: dict[Any, Any] = {}
            for key, item in value.items():
                if key == "with" and "use" in value:
                    continue
                if key == "use":  # the fragments' entries go where `use:` stands
                    parts = self.use(value, params, depth)
                    if not all(isinstance(part, dict) for part in parts):
                        raise self.fail(value, "use: beside other keys needs mapping fragments")
                    entries = [entry for part in parts for entry in part.items()]
                else:
                    new_key = self.text(value, key, params, depth) if isinstance(key, str) else key
                    entries = [(new_key, self.expand(item, params, depth, value))]
                for new_key, new_item in entries:
                    if new_key in merged:
                        raise self.fail(value, f"{new_key!r} is defined twice (by a fragment and again, or by two fragments)")
                    merged[new_key] = new_item
            return _like(value, merged)
        return value

    def use(self, spec: dict, params: dict[str, Any], depth: int) -> list[Any]:
        """The expanded fragments a {use: ..., with: ...} names, in order."""
        names = spec["use"] if isinstance(spec["use"], list) else [spec["use"]]
        extra = spec.get("with") or {}
        if not isinstance(extra, dict):
            raise self.fail(spec, "with: must map parameters to values")
        inner = dict(params)
        inner.update({str(k): self.expand(v, params, depth, spec) for k, v in extra.items()})
        found = []
        for raw in names:
            if _is_use(raw):  # use: [{use: a, with: {...}}, {use: a, with: {...}}]: one fragment twice
                found.extend(self.use(raw, inner, depth + 1))
                continue
            name = self.text(spec, str(raw), params)
            if name not in self.fragments:
                raise self.fail(spec, f"use: no fragment {name!r} in this file (known: {sorted(self.fragments)})")
            found.append(self.expand(self.fragments[name], inner, depth + 1, spec))
        return found


def _as_text(value: Any) -> str:
    """A value inside a longer string, written as YAML writes it: true, [-2, -1]."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(_as_text(v) for v in value) + "]"
    return str(value)


def _is_use(value: Any) -> bool:
    return isinstance(value, dict) and "use" in value and set(value) <= {"use", "with"}


def _rows(expander: Expander, family: Any) -> list[dict[str, Any]]:
    if isinstance(family, list):
        if not all(isinstance(row, dict) for row in family):
            raise expander.fail(family, "family: a list of rows needs mappings (parameter: value)")
        return [dict(row) for row in family]
    if not isinstance(family, dict) or set(family) != {"columns", "rows"}:
        raise expander.fail(family, "family: write a list of mappings, or {columns: [...], rows: [[...], ...]}")
    columns, rows = family["columns"], family["rows"]
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns) or not isinstance(rows, list):
        raise expander.fail(family, "family: columns must be a list of names and rows a list of lists")
    table = []
    for row in rows:
        if not isinstance(row, list) or len(row) != len(columns):
            raise expander.fail(family, f"family: row {row!r} needs {len(columns)} values ({', '.join(columns)})")
        table.append(dict(zip(columns, row)))
    return table


def expand_documents(documents: list[Any], path: str, on_rule: Callable[[Any, dict[str, Any] | None], None]) -> None:
    """Call on_rule(rule_document, row) for every rule the documents hold, families expanded
    (row is None for a plain rule). Fragment documents define names for the whole file."""
    fragments: dict[str, Any] = {}
    for doc in documents:
        if isinstance(doc, dict) and "fragments" in doc:
            probe = Expander(path, fragments)
            if set(doc) != {"fragments"} or not isinstance(doc["fragments"], dict):
                raise probe.fail(doc, "a fragments document holds only `fragments:` (a mapping of names)")
            for name, value in doc["fragments"].items():
                if name in fragments:
                    raise probe.fail(doc["fragments"], f"fragment {name!r} is defined twice")
                fragments[str(name)] = value
    expander = Expander(path, fragments)
    for doc in documents:
        if isinstance(doc, dict) and "fragments" in doc:
            continue
        if isinstance(doc, dict) and "family" in doc:
            if set(doc) != {"family", "rule"}:
                raise expander.fail(doc, "a family document holds `family:` (the table) and `rule:` (the template)")
            table = doc["family"]
            if _is_use(table) and isinstance(table["use"], str) and table["use"] in fragments:
                table = fragments[table["use"]]  # a table shared by families; its ${...} wait for the rule
            for row in _rows(expander, table):
                on_rule(expander.expand(doc["rule"], row, where=doc["rule"]), row)
            continue
        on_rule(expander.expand(doc, {}, where=doc) if _mentions_use(doc) else doc, None)


def _mentions_use(value: Any) -> bool:
    if isinstance(value, dict):
        return "use" in value or any(_mentions_use(v) for v in value.values())
    if isinstance(value, list):
        return any(_mentions_use(v) for v in value)
    return False
