"""The typed rule IR: references and conditions, parsed once when a rule loads.

A reference (`node.input[2]`, `node:0`, `node.attr`, `node.attr[1]`) becomes a frozen object; a
condition becomes an instance of one class per kind. Each class checks its own YAML at load
(`parse`, raising file:line errors) and evaluates itself at match (`failure`, which returns None
when it holds and otherwise a reason a person can read; `tfdowngrade rules explain` prints it).

A new condition kind is one class here, registered in CONDITION_KINDS, plus a line in
docs/writing-rules.md: the loader dispatches on the class's `key`, the engine calls `failure`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Protocol

from rewriter.savedmodel import attr_values

if TYPE_CHECKING:
    from rewriter.protos.node_def_pb2 import NodeDef

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
INPUT_REF_RE = re.compile(r"^(?P<node>[A-Za-z_]\w*)\.input\[(?P<index>\d+)\]$")
OUTPUT_REF_RE = re.compile(r"^(?P<node>[A-Za-z_]\w*):(?P<index>\d+)$")
ATTR_REF_RE = re.compile(r"^(?P<node>[A-Za-z_]\w*)\.(?P<attr>[A-Za-z_]\w*)$")
ATTR_ELEMENT_REF_RE = re.compile(r"^(?P<node>[A-Za-z_]\w*)\.(?P<attr>[A-Za-z_]\w*)(?:\[(?P<index>\d+)\])?$")
PRODUCER_RE = re.compile(r"^(?P<op>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<index>\d+))?$")
COMPARISONS = ("<", "<=", "==", "!=", ">", ">=")
VALUE_TESTS = ("equals", "in", "not_in", "range", "length", "distinct")
SCOPE_KINDS = ("graph", "function")


class Fail(Protocol):
    """What a parser needs from the loader: an error that names the file and line."""

    def fail(self, where: Any, message: str) -> Exception: ...

    def keys(self, mapping: Any, allowed: set[str], required: set[str], what: str) -> None: ...


class MatchContext(Protocol):
    """What a condition reads from the graph (rule_engine.Matcher provides it)."""

    scope: Any

    def attr_value(self, binding: dict[str, str], ref: AttrRef) -> tuple[bool, Any]: ...

    def attr_present(self, binding: dict[str, str], ref: AttrRef) -> bool:
        """attr_value(...)[0] without reading the value: whether the node's attr map holds the attr."""
        ...

    def producer_of(self, binding: dict[str, str], ref: InputRef) -> tuple[NodeDef, int | None] | None: ...

    def const_value(self, binding: dict[str, str], ref: InputRef) -> Any: ...

    def static_shape(self, binding: dict[str, str], ref: InputRef | OutputRef) -> list[int] | None: ...

    def only_returned(self, name: str) -> bool: ...

    def reader_ops(self, name: str) -> list[str]: ...


# --- references ---------------------------------------------------------------------------
@dataclass(frozen=True)
class InputRef:
    """`n.input[i]`: the tensor data input i of matched node n reads."""

    node: str
    index: int

    def __str__(self) -> str:
        return f"{self.node}.input[{self.index}]"


@dataclass(frozen=True)
class OutputRef:
    """`n:i`: flat output i of node n."""

    node: str
    index: int

    def __str__(self) -> str:
        return f"{self.node}:{self.index}"


@dataclass(frozen=True)
class AttrRef:
    """`n.attr`, or `n.attr[i]` (element i of a list attr; missing past its end)."""

    node: str
    attr: str
    element: int | None = None

    def __str__(self) -> str:
        return f"{self.node}.{self.attr}" + (f"[{self.element}]" if self.element is not None else "")


def input_ref(checker: Fail, where: Any, ref: Any, names: set[str], what: str) -> InputRef:
    match = INPUT_REF_RE.match(str(ref))
    if not match or match.group("node") not in names:
        raise checker.fail(where, f"{what}: {ref!r} must name a matched node's input, like n.input[2]")
    return InputRef(match.group("node"), int(match.group("index")))


def attr_ref(checker: Fail, where: Any, ref: Any, names: set[str], elements: bool = True) -> AttrRef:
    match = (ATTR_ELEMENT_REF_RE if elements else ATTR_REF_RE).match(str(ref))
    if not match or match.group("node") not in names:
        shape = "<matched node>.<attr> or <matched node>.<attr>[i]" if elements else "<matched node>.<attr>"
        raise checker.fail(where, f"{ref!r} must be {shape}, with a node named in match.nodes")
    element = match.groupdict().get("index")
    return AttrRef(match.group("node"), match.group("attr"), int(element) if element is not None else None)


def matched_node(checker: Fail, where: Any, key: str, value: Any, names: set[str]) -> str:
    if not isinstance(value, str) or value not in names:
        raise checker.fail(where, f"{key}: {value!r} is not a matched node")
    return str(value)


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --- value tests (equals / in / not_in / range / length) ----------------------------------
@dataclass(frozen=True)
class ValueTest:
    kind: str  # one of VALUE_TESTS
    operand: Any
    # The operand as plain lists, made once: holds() runs on every candidate node.
    plain_operand: Any = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "plain_operand", _thawed(self.operand))

    @staticmethod
    def parse(checker: Fail, spec: Any, extra: tuple[str, ...] = ()) -> ValueTest | None:
        """The one value test of a condition (None if it uses one of `extra` instead)."""
        tests = [k for k in (*extra, *VALUE_TESTS) if k in spec]
        if len(tests) != 1:
            raise checker.fail(spec, f"needs exactly one of {'/'.join((*extra, *VALUE_TESTS))}")
        kind = tests[0]
        if kind in extra:
            return None
        operand = spec[kind]
        if kind in ("in", "not_in") and not isinstance(operand, list):
            raise checker.fail(spec, f"{kind}: needs a list")
        if kind == "range" and (not isinstance(operand, list) or len(operand) != 2
                                or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in operand)
                                or operand[0] > operand[1]):
            raise checker.fail(spec, "range: needs [low, high] numbers with low <= high")
        if kind == "length" and not (isinstance(operand, int) and not isinstance(operand, bool) and operand >= 0):
            raise checker.fail(spec, "length: needs a whole number >= 0 (how many elements the list holds)")
        if kind == "distinct" and not (isinstance(operand, int) and not isinstance(operand, bool) and operand >= 1):
            raise checker.fail(spec, "distinct: needs a whole number >= 1 (how many different numbers the value holds)")
        return ValueTest(kind, _frozen(operand))

    def holds(self, value: Any) -> bool:
        """failure(...) is None, without wording the failure (matching tries most candidates in
        vain: may_match screens every node of a root op)."""
        operand = self.plain_operand
        if self.kind == "equals":
            return attr_values.plain_equal(value, operand)
        if self.kind == "in":
            return any(attr_values.plain_equal(value, v) for v in operand)
        if self.kind == "not_in":
            return not any(attr_values.plain_equal(value, v) for v in operand)
        if self.kind == "range":
            return _within(value, operand[0], operand[1])
        if self.kind == "distinct":
            numbers = _numbers(value)
            return numbers is not None and len(set(numbers)) == operand
        return isinstance(value, (list, tuple)) and len(value) == operand

    def failure(self, what: str, value: Any) -> str | None:
        if self.holds(value):
            return None
        operand = _thawed(self.operand)
        if self.kind == "equals":
            wants = f"wants {_show(operand)}"
        elif self.kind == "in":
            wants = f"wants one of {_show(operand)}"
        elif self.kind == "not_in":
            wants = f"wants none of {_show(operand)}"
        elif self.kind == "range":
            wants = f"wants every number within [{operand[0]}, {operand[1]}]"
        elif self.kind == "distinct":
            wants = f"wants {operand} different number(s)"
        else:
            wants = f"wants a list of {operand} elements"
        return f"{what} is {_show(value)}, {wants}"


def _frozen(value: Any) -> Any:
    """Lists as tuples, so conditions can be frozen and hashed; _thawed undoes it."""
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def _thawed(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_thawed(v) for v in value]
    return value


def _numbers(value: Any) -> list[float] | None:
    """Every number of a scalar or (nested) list, flattened; None if anything else is in it.
    `distinct: 1` holds for a scalar and for a list of equal numbers (MatrixDiagV3's k naming one
    diagonal as 0, [0] or [2, 2])."""
    if isinstance(value, (list, tuple)):
        flat: list[float] = []
        for item in value:
            inner = _numbers(item)
            if inner is None:
                return None
            flat.extend(inner)
        return flat
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return [value]


def _within(value: Any, low: float, high: float) -> bool:
    """Every number of a (nested) plain value lies in [low, high]; anything else is not."""
    if isinstance(value, (list, tuple)):
        return all(_within(v, low, high) for v in value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return bool(low <= value <= high)


# --- conditions ----------------------------------------------------------------------------
class Condition:
    """One kind of `where:` condition. Subclasses set `key` (the YAML key that selects them) and
    `keys` (every key they accept), and implement parse and failure."""

    key: ClassVar[str]
    keys: ClassVar[frozenset[str]]

    @classmethod
    def parse(cls, checker: Fail, spec: Any, names: set[str]) -> Condition:
        raise NotImplementedError

    def failure(self, ctx: MatchContext, binding: dict[str, str]) -> str | None:
        """None when the condition holds on this match; otherwise why not."""
        raise NotImplementedError

    def holds(self, ctx: MatchContext, binding: dict[str, str]) -> bool:
        """failure(...) is None; a kind may answer it without wording a failure."""
        return self.failure(ctx, binding) is None

    def reads_only_attrs_of(self, node: str) -> bool:
        """Whether the condition reads nothing but the attrs of matched node `node` (then it can be
        judged on that NodeDef alone, before any graph model is built: RuleRun.may_match)."""
        return False

    def attr_refs(self) -> tuple[AttrRef, ...] | None:
        """Every attr the condition may read, if it reads nothing else (None: it reads more, or
        its kind does not say). Its verdict then depends on those attrs' values alone."""
        return None

    def presence_refs(self) -> tuple[AttrRef, ...]:
        """The refs of attr_refs() that the condition reads only for whether they are set (its
        verdict depends on their presence, not their values)."""
        return ()

    def describe(self) -> str:
        return f"a {self.key} condition"


def _refs_of(conditions: Iterable[Condition]) -> tuple[AttrRef, ...] | None:
    """The attr_refs of every one of `conditions` (None if one of them reads more)."""
    refs: list[AttrRef] = []
    for condition in conditions:
        found = condition.attr_refs()
        if found is None:
            return None
        refs += found
    return tuple(refs)


@dataclass(frozen=True)
class AnyOf(Condition):
    key: ClassVar[str] = "any"
    keys: ClassVar[frozenset[str]] = frozenset({"any"})
    conditions: tuple[Condition, ...]

    def reads_only_attrs_of(self, node: str) -> bool:
        return all(cond.reads_only_attrs_of(node) for cond in self.conditions)

    def attr_refs(self) -> tuple[AttrRef, ...] | None:
        return _refs_of(self.conditions)

    def presence_refs(self) -> tuple[AttrRef, ...]:
        return tuple(ref for cond in self.conditions for ref in cond.presence_refs())

    @classmethod
    def parse(cls, checker: Fail, spec: Any, names: set[str]) -> Condition:
        if not isinstance(spec[cls.key], list):
            raise checker.fail(spec, f"{cls.key}: needs a list of conditions")
        return cls(tuple(parse_condition(checker, c, names) for c in spec[cls.key]))

    def holds(self, ctx: MatchContext, binding: dict[str, str]) -> bool:
        return any(cond.holds(ctx, binding) for cond in self.conditions)

    def failure(self, ctx: MatchContext, binding: dict[str, str]) -> str | None:
        reasons = []
        for cond in self.conditions:
            reason = cond.failure(ctx, binding)
            if reason is None:
                return None
            reasons.append(reason)
        return "none of these holds: " + "; ".join(reasons)


@dataclass(frozen=True)
class AllOf(Condition):
    key: ClassVar[str] = "all"
    keys: ClassVar[frozenset[str]] = frozenset({"all"})
    conditions: tuple[Condition, ...]

    def reads_only_attrs_of(self, node: str) -> bool:
        return all(cond.reads_only_attrs_of(node) for cond in self.conditions)

    def attr_refs(self) -> tuple[AttrRef, ...] | None:
        return _refs_of(self.conditions)

    def presence_refs(self) -> tuple[AttrRef, ...]:
        return tuple(ref for cond in self.conditions for ref in cond.presence_refs())

    @classmethod
    def parse(cls, checker: Fail, spec: Any, names: set[str]) -> Condition:
        if not isinstance(spec[cls.key], list):
            raise checker.fail(spec, f"{cls.key}: needs a list of conditions")
        return cls(tuple(parse_condition(checker, c, names) for c in spec[cls.key]))

    def holds(self, ctx: MatchContext, binding: dict[str, str]) -> bool:
        return all(cond.holds(ctx, binding) for cond in self.conditions)

    def failure(self, ctx: MatchContext, binding: dict[str, str]) -> str | None:
        for cond in self.conditions:
            reason = cond.failure(ctx, binding)
            if reason is not None:
                return reason
        return None


@dataclass(frozen=True)
class Not(Condition):
    key: ClassVar[str] = "not"
    keys: ClassVar[frozenset[str]] = frozenset({"not"})
    condition: Condition

    def reads_only_attrs_of(self, node: str) -> bool:
        return self.condition.reads_only_attrs_of(node)

    def attr_refs(self) -> tuple[AttrRef, ...] | None:
        return self.condition.attr_refs()

    def presence_refs(self) -> tuple[AttrRef, ...]:
        return self.condition.presence_refs()

    @classmethod
    def parse(cls, checker: Fail, spec: Any, names: set[str]) -> Condition:
        return cls(parse_condition(checker, spec["not"], names))

    def holds(self, ctx: MatchContext, binding: dict[str, str]) -> bool:
        return not self.condition.holds(ctx, binding)

    def failure(self, ctx: MatchContext, binding: dict[str, str]) -> str | None:
        if self.condition.holds(ctx, binding):
            return f"it holds, but must not: {self.condition.describe()}"
        return None


@dataclass(frozen=True)
class Same(Condition):
    """{same: [a.T, b.Tseed]}: the attrs have equal values."""

    key: ClassVar[str] = "same"
    keys: ClassVar[frozenset[str]] = frozenset({"same"})
    refs: tuple[AttrRef, ...]

    def reads_only_attrs_of(self, node: str) -> bool:
        return all(ref.node == node for ref in self.refs)

    def attr_refs(self) -> tuple[AttrRef, ...] | None:
        return self.refs

    @classmethod
    def parse(cls, checker: Fail, spec: Any, names: set[str]) -> Condition:
        refs = spec["same"]
        if not isinstance(refs, list) or len(refs) < 2:
            raise checker.fail(spec, "same: needs a list of two or more attr references (n.attr)")
        return cls(tuple(attr_ref(checker, spec, ref, names, elements=False) for ref in refs))

    def failure(self, ctx: MatchContext, binding: dict[str, str]) -> str | None:
        values = [ctx.attr_value(binding, ref)[1] for ref in self.refs]
        if all(attr_values.plain_equal(values[0], v) for v in values[1:]):
            return None
        return "attrs differ: " + ", ".join(f"{ref} = {_show(v)}" for ref, v in zip(self.refs, values))


@dataclass(frozen=True)
class Compare(Condition):
    """{compare: [left, OP, right]}: two numbers (literals, attrs or list attr elements)."""

    key: ClassVar[str] = "compare"
    keys: ClassVar[frozenset[str]] = frozenset({"compare"})
    left: AttrRef | int | float
    op: str
    right: AttrRef | int | float

    def reads_only_attrs_of(self, node: str) -> bool:
        return all(not isinstance(t, AttrRef) or t.node == node for t in (self.left, self.right))

    def attr_refs(self) -> tuple[AttrRef, ...] | None:
        return tuple(t for t in (self.left, self.right) if isinstance(t, AttrRef))

    @classmethod
    def parse(cls, checker: Fail, spec: Any, names: set[str]) -> Condition:
        terms = spec["compare"]
        if not isinstance(terms, list) or len(terms) != 3 or terms[1] not in COMPARISONS:
            raise checker.fail(spec, f"compare: write [left, OP, right] with OP one of {' '.join(COMPARISONS)}")
        parsed: list[AttrRef | int | float] = []
        for term in (terms[0], terms[2]):
            if isinstance(term, bool) or not isinstance(term, (int, float, str)):
                raise checker.fail(spec, f"compare: {term!r} must be a number or an attr reference (n.attr, n.attr[i])")
            parsed.append(attr_ref(checker, spec, term, names) if isinstance(term, str) else term)
        return cls(parsed[0], terms[1], parsed[1])

    def failure(self, ctx: MatchContext, binding: dict[str, str]) -> str | None:
        left, right = (ctx.attr_value(binding, t)[1] if isinstance(t, AttrRef) else t for t in (self.left, self.right))
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right))
        ok = numbers and {"<": left < right, "<=": left <= right, "==": left == right, "!=": left != right,
                          ">": left > right, ">=": left >= right}[self.op]
        return None if ok else f"{self.left} {self.op} {self.right} does not hold ({_show(left)} {self.op} {_show(right)})"


@dataclass(frozen=True)
class Attr(Condition):
    """{attr: n.attr, present|equals|in|not_in|range|length: ...}; an absent attr takes its OpDef default."""

    key: ClassVar[str] = "attr"
    keys: ClassVar[frozenset[str]] = frozenset({"attr", "present", *VALUE_TESTS})
    ref: AttrRef
    present: bool | None
    test: ValueTest | None

    def reads_only_attrs_of(self, node: str) -> bool:
        return self.ref.node == node

    def attr_refs(self) -> tuple[AttrRef, ...] | None:
        return (self.ref,)

    def presence_refs(self) -> tuple[AttrRef, ...]:
        return (self.ref,) if self.test is None else ()

    @classmethod
    def parse(cls, checker: Fail, spec: Any, names: set[str]) -> Condition:
        ref = attr_ref(checker, spec, spec["attr"], names)
        test = ValueTest.parse(checker, spec, ("present",))
        if test is None and not isinstance(spec["present"], bool):
            raise checker.fail(spec, "present: must be true or false")
        return cls(ref, spec.get("present") if test is None else None, test)

    def holds(self, ctx: MatchContext, binding: dict[str, str]) -> bool:
        if self.test is None:  # (a presence test reads no value: most attr rules ask only this)
            return ctx.attr_present(binding, self.ref) == self.present
        return self.test.holds(ctx.attr_value(binding, self.ref)[1])

    def failure(self, ctx: MatchContext, binding: dict[str, str]) -> str | None:
        if self.test is None:
            present = ctx.attr_present(binding, self.ref)
            return None if present == self.present else f"attr {self.ref} is {'set' if present else 'not set'}"
        return self.test.failure(f"attr {self.ref}", ctx.attr_value(binding, self.ref)[1])

    def describe(self) -> str:
        return f"attr {self.ref} " + (f"present={self.present}" if self.test is None else f"{self.test.kind} {_show(_thawed(self.test.operand))}")


@dataclass(frozen=True)
class Const(Condition):
    """{const: n.input[i], <value test>}: the input is a Const node whose value passes the test."""

    key: ClassVar[str] = "const"
    keys: ClassVar[frozenset[str]] = frozenset({"const", *VALUE_TESTS})
    ref: InputRef
    test: ValueTest

    @classmethod
    def parse(cls, checker: Fail, spec: Any, names: set[str]) -> Condition:
        ref = input_ref(checker, spec, spec["const"], names, "const")
        test = ValueTest.parse(checker, spec)
        assert test is not None
        return cls(ref, test)

    def failure(self, ctx: MatchContext, binding: dict[str, str]) -> str | None:
        value = ctx.const_value(binding, self.ref)
        if value is None:
            return f"{self.ref} is not read from a Const node"
        return self.test.failure(f"the Const {self.ref}", value)

    def describe(self) -> str:
        return f"const {self.ref} {self.test.kind} {_show(_thawed(self.test.operand))}"


@dataclass(frozen=True)
class Unused(Condition):
    """{unused: n}: no node or return value reads any output of n."""

    key: ClassVar[str] = "unused"
    keys: ClassVar[frozenset[str]] = frozenset({"unused"})
    node: str

    @classmethod
    def parse(cls, checker: Fail, spec: Any, names: set[str]) -> Condition:
        return cls(matched_node(checker, spec, "unused", spec["unused"], names))

    def failure(self, ctx: MatchContext, binding: dict[str, str]) -> str | None:
        readers = ctx.reader_ops(binding[self.node])
        return None if not readers else f"{self.node} ({binding[self.node]}) is read by {', '.join(sorted(set(readers)))}"


@dataclass(frozen=True)
class Shape(Condition):
    """{shape: n.input[i] | n:o, [dim: d], <value test> | ends_with: [...] | n.input[j]}: the static
    shape TF recorded (unknown sizes -1; no record: does not hold)."""

    key: ClassVar[str] = "shape"
    keys: ClassVar[frozenset[str]] = frozenset({"shape", "dim", "ends_with", *VALUE_TESTS})
    ref: InputRef | OutputRef
    dim: int | None
    test: ValueTest | None
    ends_with: tuple[int, ...] | InputRef | None

    @classmethod
    def parse(cls, checker: Fail, spec: Any, names: set[str]) -> Condition:
        text = str(spec["shape"])
        out = OUTPUT_REF_RE.match(text)
        ref: InputRef | OutputRef
        if out:
            if out.group("node") not in names:
                raise checker.fail(spec, f"shape: {text!r} must name a matched node's output (n:0) or input (n.input[1])")
            ref = OutputRef(out.group("node"), int(out.group("index")))
        else:
            ref = input_ref(checker, spec, text, names, "shape")
        dim = spec.get("dim")
        if dim is not None and (not isinstance(dim, int) or isinstance(dim, bool)):
            raise checker.fail(spec, "dim: needs an integer (negative counts from the last size)")
        test = ValueTest.parse(checker, spec, ("ends_with",))
        ends: tuple[int, ...] | InputRef | None = None
        if test is None:
            if dim is not None:
                raise checker.fail(spec, "ends_with: tests the whole shape, so it takes no dim")
            raw = spec["ends_with"]
            if isinstance(raw, list):
                if not all(isinstance(v, int) and not isinstance(v, bool) and v >= -1 for v in raw):
                    raise checker.fail(spec, "ends_with: needs a list of sizes (integers, -1: unknown) or a Const input n.input[I]")
                ends = tuple(raw)
            else:
                ends = input_ref(checker, spec, raw, names, "ends_with")
        return cls(ref, dim, test, ends)

    def failure(self, ctx: MatchContext, binding: dict[str, str]) -> str | None:
        shape = ctx.static_shape(binding, self.ref)
        if shape is None:
            return f"no static shape was recorded for {self.ref}"
        if self.test is None:
            sizes = ctx.const_value(binding, self.ends_with) if isinstance(self.ends_with, InputRef) else list(self.ends_with or ())
            if _shape_ends_with(shape, sizes):
                return None
            return f"the shape of {self.ref}, {shape}, does not end with {_show(sizes)}"
        if self.dim is None:
            return self.test.failure(f"the shape of {self.ref}", shape)
        if not -len(shape) <= self.dim < len(shape):
            return f"the shape of {self.ref}, {shape}, has no dimension {self.dim}"
        return self.test.failure(f"dimension {self.dim} of {self.ref}'s shape", shape[self.dim])

    def describe(self) -> str:
        return f"shape {self.ref}"


def _shape_ends_with(shape: list[int], sizes: Any) -> bool:
    """The shape's last len(sizes) sizes equal sizes (a flat list of integers; -1 is unknown)."""
    if not isinstance(sizes, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in sizes):
        return False
    if len(sizes) > len(shape):
        return False
    tail = shape[len(shape) - len(sizes):]
    return all(known == size for known, size in zip(tail, sizes))


@dataclass(frozen=True)
class InScope(Condition):
    """{scope: graph | function}: where the match is."""

    key: ClassVar[str] = "scope"
    keys: ClassVar[frozenset[str]] = frozenset({"scope"})
    kind: str

    @classmethod
    def parse(cls, checker: Fail, spec: Any, names: set[str]) -> Condition:
        if spec["scope"] not in SCOPE_KINDS:
            raise checker.fail(spec, f"scope: must be one of {list(SCOPE_KINDS)}, got {spec['scope']!r}")
        return cls(str(spec["scope"]))

    def failure(self, ctx: MatchContext, binding: dict[str, str]) -> str | None:
        return None if ctx.scope.kind == self.kind else f"the node is in a {ctx.scope.kind}, not a {self.kind}"


@dataclass(frozen=True)
class Returned(Condition):
    """{returned: n}: every reader of n is a return value of its function, directly or through Identity."""

    key: ClassVar[str] = "returned"
    keys: ClassVar[frozenset[str]] = frozenset({"returned"})
    node: str

    @classmethod
    def parse(cls, checker: Fail, spec: Any, names: set[str]) -> Condition:
        return cls(matched_node(checker, spec, "returned", spec["returned"], names))

    def failure(self, ctx: MatchContext, binding: dict[str, str]) -> str | None:
        if ctx.only_returned(binding[self.node]):
            return None
        return f"{self.node} ({binding[self.node]}) is read by something other than its function's return values"


@dataclass(frozen=True)
class Readers(Condition):
    """{readers: n, in: [Op, ...]}: every node reading n has one of these ops (and one does)."""

    key: ClassVar[str] = "readers"
    keys: ClassVar[frozenset[str]] = frozenset({"readers", "in"})
    node: str
    ops: tuple[str, ...]

    @classmethod
    def parse(cls, checker: Fail, spec: Any, names: set[str]) -> Condition:
        checker.keys(spec, set(cls.keys), {"readers", "in"}, "condition readers")
        node = matched_node(checker, spec, "readers", spec["readers"], names)
        ops = spec["in"]
        if not isinstance(ops, list) or not ops or not all(isinstance(o, str) and NAME_RE.match(o) for o in ops):
            raise checker.fail(spec, "readers: `in` needs a list of op names")
        return cls(node, tuple(ops))

    def failure(self, ctx: MatchContext, binding: dict[str, str]) -> str | None:
        readers = ctx.reader_ops(binding[self.node])
        if not readers:
            return f"nothing reads {self.node} ({binding[self.node]})"
        other = sorted({op for op in readers if op not in self.ops})
        return None if not other else f"{self.node} ({binding[self.node]}) is also read by {', '.join(other)}"


@dataclass(frozen=True)
class Producer(Condition):
    """{producer: n.input[i], in: [Op, Op:OUTPUT]}: which op (and output) feeds an input."""

    key: ClassVar[str] = "producer"
    keys: ClassVar[frozenset[str]] = frozenset({"producer", "in"})
    ref: InputRef
    ops: tuple[tuple[str, int | None], ...]

    @classmethod
    def parse(cls, checker: Fail, spec: Any, names: set[str]) -> Condition:
        checker.keys(spec, set(cls.keys), {"producer", "in"}, "condition producer")
        ref = input_ref(checker, spec, spec["producer"], names, "producer")
        items = spec["in"]
        matches = [PRODUCER_RE.match(str(i)) for i in items] if isinstance(items, list) else []
        if not items or not matches or not all(matches):
            raise checker.fail(spec, "producer: `in` needs a list of Op or Op:OUTPUT")
        return cls(ref, tuple((m.group("op"), int(m.group("index")) if m.group("index") else None)
                              for m in matches if m is not None))

    def failure(self, ctx: MatchContext, binding: dict[str, str]) -> str | None:
        found = ctx.producer_of(binding, self.ref)
        if found is None:
            return f"{self.ref} is not read from a node (a function argument, or missing)"
        producer, flat = found
        if any(producer.op == op and (port is None or flat == port) for op, port in self.ops):
            return None
        wanted = ", ".join(op + (f":{port}" if port is not None else "") for op, port in self.ops)
        return f"{self.ref} comes from {producer.op}:{flat}, wants one of {wanted}"


@dataclass(frozen=True)
class AxisSize(Condition):
    """{axis_size: n.input[i], axis: n.input[j], <value test>}: the recorded size of the tensor
    input i reads along the axis a Const input j holds (negative counts from the end). ArgMax /
    ArgMin computed in int32 and cast back to int16 give the same numbers only when that size is
    at most 32767, the largest index int16 holds; the axis is an input, not an attr, so `shape`
    with a fixed `dim` cannot say it. No recorded shape, an unknown size (-1) or a non-Const axis
    does not hold."""

    key: ClassVar[str] = "axis_size"
    keys: ClassVar[frozenset[str]] = frozenset({"axis_size", "axis", *VALUE_TESTS})
    ref: InputRef
    axis: InputRef
    test: ValueTest

    @classmethod
    def parse(cls, checker: Fail, spec: Any, names: set[str]) -> Condition:
        checker.keys(spec, set(cls.keys), {"axis_size", "axis"}, "condition axis_size")
        test = ValueTest.parse(checker, spec)
        assert test is not None
        return cls(input_ref(checker, spec, spec["axis_size"], names, "axis_size"),
                   input_ref(checker, spec, spec["axis"], names, "axis"), test)

    def failure(self, ctx: MatchContext, binding: dict[str, str]) -> str | None:
        shape = ctx.static_shape(binding, self.ref)
        if shape is None:
            return f"no static shape was recorded for {self.ref}"
        axis = ctx.const_value(binding, self.axis)
        if isinstance(axis, list) and len(axis) == 1:
            axis = axis[0]
        if not isinstance(axis, int) or isinstance(axis, bool):
            return f"the axis {self.axis} is not a Const integer"
        if not -len(shape) <= axis < len(shape):
            return f"the shape of {self.ref}, {shape}, has no axis {axis}"
        size = shape[axis]
        if size < 0:
            return f"the size of {self.ref} along axis {axis} is unknown (recorded as -1)"
        return self.test.failure(f"the size of {self.ref} along axis {axis}", size)


# Dispatch order: the first class whose key the condition names (the keys exclude each other).
CONDITION_KINDS: tuple[type[Condition], ...] = (
    AnyOf, AllOf, Not, Same, Compare, Attr, Const, Unused, Shape, InScope, Returned, Readers, Producer, AxisSize,
)


def parse_condition(checker: Fail, spec: Any, names: set[str]) -> Condition:
    if not isinstance(spec, dict) or not spec:
        raise checker.fail(spec, f"a condition must be a mapping, got {spec!r}")
    for kind in CONDITION_KINDS:
        if kind.key in spec:
            checker.keys(spec, set(kind.keys), {kind.key}, f"condition {kind.key}")
            try:
                return kind.parse(checker, spec, names)
            except Exception as error:
                message = str(error)
                if "needs exactly one of" in message and f"condition {kind.key}" not in message:
                    # ValueTest.parse speaks of the condition generically: name it
                    raise checker.fail(spec, f"a {kind.key} condition " + message.split(": ", 1)[1]) from None
                raise
    names_text = ", ".join(kind.key for kind in CONDITION_KINDS)
    raise checker.fail(spec, f"unknown condition {sorted(spec)}; use one of {names_text}")
