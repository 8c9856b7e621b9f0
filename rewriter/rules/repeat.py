"""Repeated nodes in a rewrite: a number of new nodes known only when the rule matches.

Some rewrites need one node per part of a tensor, and how many parts there are is a property of
the model (a grouped Conv2D becomes one Conv2D per group). A rule names such numbers under
`match.counts`, each computed from what the saving TF recorded, and the rewrite repeats nodes that
many times:

    match:
      nodes: {node: {op: Conv2D}}
      counts:                       # whole numbers; the rule matches only when each is known
        groups:                     # and within its range (at most MAX_COUNT)
          quotient: [{shape: "node.input[0]", dim: 3}, {shape: "node.input[1]", dim: 2}]
          range: [2, 1024]
    rewrite:
      nodes:
        split: {op: Split, inputs: [...], attrs: {num_split: {count: groups}}}   # the number itself
        conv: {op: Conv2D, repeat: groups, inputs: ["split:{i}", ...]}   # conv_0 ... conv_{groups-1};
                                    # "{i}" in its inputs is the copy's index
        concat: {op: ConcatV2, inputs: [{each: groups, ref: "conv_{i}:0"}, "axis:0"]}   # one input per copy

A count term is `{shape: REF, dim: D}` (a recorded size, unknown -1 does not count), `{attr: n.attr}`
(an int attr) or a literal int; `quotient: [a, b]` holds only when b divides a, `value: a` is a,
`sum: [a, b, ...]` is their sum.

An op with a list of outputs replaced by another with the same outputs (ParseExampleV2 by
ParseExample, rules/tf1-parse-example.yaml) rewires each of them:

    outputs: {"node:{i}": {each: outputs, ref: "v1:{i}"}}    # node:0 -> v1:0, node:1 -> v1:1, ...

Where an index is shifted, `{i+K}` is i plus K, and K may be a sum of whole numbers and count
names: `{each: dense, ref: "node.input[{i+5}]"}` lists a list input that starts at input 5, and
`"node:{i+sparse+sparse}": {each: sparse, ref: "shape_{i}:0"}` rewires the third group of outputs.

The template is expanded into a plain rewrite before anything else reads it, so the rule loader
checks it as any rewrite (with every count 2 at load time), and the engine applies the expansion
for the counts of each match: nothing else in the engine knows about repetition.
"""
from __future__ import annotations

import copy
import re
from typing import TYPE_CHECKING, Any, Callable

from rewriter.errors import RuleFileError

if TYPE_CHECKING:
    from rewriter.rules.loader import Rewrite, Rule

MAX_COUNT = 4096  # one node per copy: a bound on how much a single match may add
COUNT_NAME_RE = re.compile(r"^[A-Za-z_]\w*$")
INDEX_FIELD = "{i}"
INDEX_RE = re.compile(r"\{i((?:\+\w+)*)\}")  # {i}, {i+5}, {i+sparse+sparse}


def _has_index(text: Any) -> bool:
    return isinstance(text, str) and INDEX_RE.search(text) is not None


def _at(text: str, index: int, counts: dict[str, int], fail: Callable[[Any, str], RuleFileError], where: Any) -> str:
    """TEXT with every {i} / {i+K+...} replaced by the index plus its terms (numbers or counts)."""
    def value(match: re.Match[str]) -> str:
        total = index
        for term in match.group(1).split("+")[1:]:
            if term.isdigit():
                total += int(term)
            elif term in counts:
                total += counts[term]
            else:
                raise fail(where, f"{text!r}: {term!r} in {{i+...}} is neither a whole number nor one of {sorted(counts)}")
        return str(total)
    return INDEX_RE.sub(value, text)
COUNT_KEYS = {"quotient", "value", "sum", "range"}
COUNT_FORMS = ("quotient", "value", "sum")


def parse_counts(counts: Any, names: set[str], fail: Callable[[Any, str], RuleFileError]) -> dict[str, dict]:
    """Check `match.counts`; returns it as plain dicts."""
    if not isinstance(counts, dict) or not counts:
        raise fail(counts, "match.counts must map names to {quotient: [a, b]} or {value: a}, with a range")
    checked: dict[str, dict] = {}
    for name, spec in counts.items():
        if not COUNT_NAME_RE.match(str(name)):
            raise fail(counts, f"count name {name!r} must be an identifier")
        if not isinstance(spec, dict) or set(spec) - COUNT_KEYS or "range" not in spec \
                or len(set(COUNT_FORMS) & set(spec)) != 1:
            raise fail(spec, f"match.counts.{name}: write {{quotient: [a, b], range: [lo, hi]}}, "
                             "{value: a, range: [lo, hi]} or {sum: [a, b, ...], range: [lo, hi]}")
        bounds = spec["range"]
        if (not isinstance(bounds, list) or len(bounds) != 2 or not all(_is_int(b) for b in bounds)
                or not 0 <= bounds[0] <= bounds[1] <= MAX_COUNT):
            raise fail(spec, f"match.counts.{name}.range: needs [lo, hi], whole numbers with 0 <= lo <= hi <= {MAX_COUNT}")
        terms = _terms(spec)
        if "quotient" in spec and (not isinstance(terms, list) or len(terms) != 2):
            raise fail(spec, f"match.counts.{name}.quotient: needs [dividend, divisor]")
        if "sum" in spec and (not isinstance(terms, list) or not terms):
            raise fail(spec, f"match.counts.{name}.sum: needs a list of terms")
        for term in terms:
            _check_term(term, names, fail, f"match.counts.{name}")
        checked[str(name)] = dict(spec)
    return checked


def _terms(spec: dict) -> Any:
    return spec["quotient"] if "quotient" in spec else spec["sum"] if "sum" in spec else [spec["value"]]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_term(term: Any, names: set[str], fail: Callable[[Any, str], RuleFileError], what: str) -> None:
    from rewriter.rules.loader import ATTR_REF_RE, INPUT_REF_RE, OUTPUT_REF_RE

    if _is_int(term):
        return
    if isinstance(term, dict) and set(term) == {"shape", "dim"} and _is_int(term["dim"]):
        match = INPUT_REF_RE.match(str(term["shape"])) or OUTPUT_REF_RE.match(str(term["shape"]))
        if match and match.group("node") in names:
            return
    if isinstance(term, dict) and set(term) == {"attr"}:
        match = ATTR_REF_RE.match(str(term["attr"]))
        if match and match.group("node") in names:
            return
    raise fail(term, f"{what}: a term is a whole number, {{shape: n.input[I] or n:O, dim: D}} or {{attr: n.attr}}, got {term!r}")


def evaluate(counts: dict[str, dict], static_shape: Callable[[str], list[int] | None],
             attr: Callable[[str], Any]) -> dict[str, int] | None:
    """Each count's value for one match, or None when one is unknown, not whole or out of range."""
    values: dict[str, int] = {}
    for name, spec in counts.items():
        terms = [_term_value(t, static_shape, attr) for t in _terms(spec)]
        if any(t is None for t in terms):
            return None
        if "sum" in spec:
            value = sum(int(t) for t in terms if t is not None)
        elif len(terms) == 2:
            dividend, divisor = terms
            assert dividend is not None and divisor is not None
            if divisor <= 0 or dividend % divisor:
                return None
            value = dividend // divisor
        else:
            value = int(terms[0])  # type: ignore[arg-type]
        low, high = spec["range"]
        if not low <= value <= high:
            return None
        values[name] = value
    return values


def _term_value(term: Any, static_shape: Callable[[str], list[int] | None], attr: Callable[[str], Any]) -> int | None:
    if _is_int(term):
        return int(term)
    if "attr" in term:
        value = attr(term["attr"])
        return int(value) if _is_int(value) else None
    shape = static_shape(term["shape"])
    if shape is None or not -len(shape) <= term["dim"] < len(shape):
        return None
    size = shape[term["dim"]]
    return size if size >= 0 else None


def uses_repetition(rewrite: Any) -> bool:
    """Whether a rewrite's YAML repeats a node, lists copies ({each: ...}) or names a count as an
    attr value ({count: ...}); an attr that happens to be called `count` is not one of these."""
    outputs = rewrite.get("outputs") if isinstance(rewrite, dict) else None
    if isinstance(outputs, dict) and any(isinstance(v, dict) and "each" in v for v in outputs.values()):
        return True
    nodes = rewrite.get("nodes") if isinstance(rewrite, dict) else None
    if not isinstance(nodes, dict):
        return False
    for spec in nodes.values():
        if not isinstance(spec, dict):
            continue
        if "repeat" in spec:
            return True
        inputs = spec.get("inputs")
        if isinstance(inputs, list) and any(isinstance(ref, dict) and "each" in ref for ref in inputs):
            return True
        attrs = spec.get("attrs")
        if isinstance(attrs, dict) and any(isinstance(v, dict) and set(v) == {"count"} for v in attrs.values()):
            return True
    return False


def expand(rewrite: Any, counts: dict[str, int], fail: Callable[[Any, str], RuleFileError]) -> Any:
    """The rewrite's YAML with every repeated node copied, `{each}` inputs listed and `{count}`
    attrs filled in, for these counts. Mappings keep their line numbers (errors point there)."""
    if not isinstance(rewrite, dict):
        return rewrite
    expanded = copy.copy(rewrite)
    outputs = rewrite.get("outputs")
    if isinstance(outputs, dict) and any(isinstance(v, dict) for v in outputs.values()):
        listed_outputs = copy.copy(outputs)
        listed_outputs.clear()
        for source, target in outputs.items():
            if not isinstance(target, dict):
                listed_outputs[source] = target
                continue
            if set(target) != {"each", "ref"} or not _is_count(target["each"], counts) or not _has_index(target["ref"]) \
                    or not _has_index(str(source)):
                raise fail(outputs, f"outputs: write {{\"node:{INDEX_FIELD}\": {{each: COUNT, ref: \"new:{INDEX_FIELD}\"}}}} "
                                    f"with COUNT one of {sorted(counts)}")
            for i in range(counts[target["each"]]):
                listed_outputs[_at(str(source), i, counts, fail, outputs)] = _at(target["ref"], i, counts, fail, outputs)
        expanded["outputs"] = listed_outputs
    nodes = rewrite.get("nodes")
    if not isinstance(nodes, dict):
        return expanded
    new_nodes = copy.copy(nodes)
    new_nodes.clear()
    for key, spec in nodes.items():
        if not isinstance(spec, dict) or "repeat" not in spec:
            new_nodes[key] = _fill(spec, counts, None, fail)
            continue
        name = spec["repeat"]
        if not _is_count(name, counts):
            raise fail(spec, f"rewrite.nodes.{key}.repeat: {name!r} is not one of match.counts {sorted(counts)}")
        for index in range(counts[name]):
            copied = copy.copy(spec)
            del copied["repeat"]
            new_nodes[f"{key}_{index}"] = _fill(copied, counts, index, fail)
    expanded["nodes"] = new_nodes
    return expanded


def _is_count(name: Any, counts: dict[str, int]) -> bool:
    """Whether a rule's YAML value names one of match.counts (a list or mapping names none)."""
    return isinstance(name, str) and name in counts


def _fill(spec: Any, counts: dict[str, int], index: int | None, fail: Callable[[Any, str], RuleFileError]) -> Any:
    if not isinstance(spec, dict):
        return spec
    filled = copy.copy(spec)
    inputs = spec.get("inputs")
    if isinstance(inputs, list):
        listed: list[Any] = []
        for ref in inputs:
            if isinstance(ref, dict) and "each" in ref:
                if set(ref) != {"each", "ref"} or not _is_count(ref["each"], counts) or not isinstance(ref["ref"], str):
                    raise fail(spec, f"inputs: write {{each: COUNT, ref: \"node_{INDEX_FIELD}:0\"}} with COUNT one of {sorted(counts)}")
                listed.extend(_at(ref["ref"], i, counts, fail, spec) for i in range(counts[ref["each"]]))
            elif _has_index(ref):
                if index is None:
                    raise fail(spec, f"inputs: {ref!r}: {INDEX_FIELD} is only known in a node with `repeat:`")
                listed.append(_at(ref, index, counts, fail, spec))
            else:
                listed.append(ref)
        filled["inputs"] = listed
    attrs = spec.get("attrs")
    if isinstance(attrs, dict):
        new_attrs = copy.copy(attrs)
        for attr, value in attrs.items():
            if isinstance(value, dict) and _has_index(value.get("copy")):  # {copy: "n.list_attr[{i}]"}
                if index is None:
                    raise fail(attrs, f"attrs.{attr}: {INDEX_FIELD} is only known in a node with `repeat:`")
                new_attrs[attr] = {**value, "copy": _at(value["copy"], index, counts, fail, attrs)}
            elif isinstance(value, dict) and "count" in value:
                if set(value) != {"count"} or not _is_count(value["count"], counts):
                    raise fail(attrs, f"attrs.{attr}: write {{count: COUNT}} with COUNT one of {sorted(counts)}")
                new_attrs[attr] = counts[value["count"]]
        filled["attrs"] = new_attrs
    return filled


def for_counts(rule: Rule, counts: dict[str, int] | None) -> Rule:
    """The rule with its rewrite expanded for these counts (the rule itself if it repeats nothing)."""
    if not counts or "rewrite_template" not in rule.extra:
        return rule  # (before the imports: this runs once per rewrite)
    import dataclasses

    from rewriter.rules.loader import parse_expanded_rewrite

    # Rules hold dicts, so they are not hashable: each rule keeps its own expansions.
    cache: dict[tuple[tuple[str, int], ...], Rewrite] = rule.extra.setdefault("expanded", {})
    key = tuple(sorted(counts.items()))
    if key not in cache:
        cache[key] = parse_expanded_rewrite(rule, counts)
    return dataclasses.replace(rule, rewrite=cache[key])
