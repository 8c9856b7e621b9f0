"""The typed conditions of object-graph rules (`match: {message: ..., where: [...]}`).

Like the op rules' conditions (rewriter/rules/conditions.py), each kind is one frozen class that
checks its own YAML when the rule loads (`parse`, raising file:line errors) and evaluates itself
on a message (`failure`: None when it holds, otherwise a reason a person can read). A new kind is
one class registered in MESSAGE_CONDITION_KINDS plus a line in docs/writing-object-graph-rules.md.
The rule step asks a condition of every message of its rule's type (every NodeDef of a model), so
the kinds also compile themselves for that type: `holds_on` / `predicate` give failure()'s
verdict without its reason, `required_field` names a field that must be set (a screen that rules
on one type share). A new kind need not: failure() is the fallback.

    {field: kind, equals: captured_tensor}       the field's value (a oneof: its set case)
    {field: a.b, in: [...]} / {not_in: [...]}    dotted paths into sub-messages; enums by name
    {field: registered_name, present: true}      set / non-empty
    {field: dependencies, subset_of: children}   every element is also in another field
    {field: experimental_type, mentions: [...]}  an enum value so named anywhere below the field
    {needed_by_signatures: false}                SavedObject only: the signatures reach it
    {not: {...}} / {any: [...]} / {all: [...]}
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Protocol

from google.protobuf import message

from rewriter.rules.conditions import Fail
from rewriter.savedmodel.messages import MISSING, comparable, is_present, mentions, presence_test, value_at, value_reader


class ObjectContext(Protocol):
    """What `needed_by_signatures` reads about the SavedObjectGraph a message sits in."""

    needed: set[int]


# A condition compiled for messages of one type (a rule on NodeDef asks it of every node): the
# verdict of holds(), without building the reason failure() gives. A Test is one that does not
# read the object context (reads_object() is False).
Predicate = Callable[[message.Message, "ObjectContext | None", "int | None"], bool]
Test = Callable[[message.Message], bool]


class MessageCondition:
    key: ClassVar[str]
    keys: ClassVar[frozenset[str]]

    @classmethod
    def parse(cls, checker: Fail, spec: dict[str, Any]) -> MessageCondition:
        raise NotImplementedError

    def failure(self, msg: message.Message, ctx: ObjectContext | None, node_id: int | None) -> str | None:
        """None when the condition holds on `msg`; otherwise why not."""
        raise NotImplementedError

    def holds(self, msg: message.Message, ctx: ObjectContext | None = None, node_id: int | None = None) -> bool:
        return self.failure(msg, ctx, node_id) is None

    def reads_object(self) -> bool:
        """Does the verdict depend on the object context (the SavedObjectGraph, the node id)?
        Yes unless a kind says otherwise: then it is always given the context."""
        return True

    def required_field(self, desc: Any) -> str | None:
        """A field (or oneof) of a `desc` message that is set wherever this condition holds, and
        whose absence the condition finds without any error; None if there is none to name.
        Rules on one type share this screen (four NodeDef rules read experimental_type first)."""
        return None

    def holds_on(self, desc: Any) -> Test:
        """holds() on messages of type `desc`, for a condition that does not read the object
        context. This fallback calls failure()."""
        failure = self.failure
        return lambda msg: failure(msg, None, None) is None

    def predicate(self, desc: Any) -> Predicate:
        """holds() on messages of type `desc`."""
        if not self.reads_object():
            test = self.holds_on(desc)
            return lambda msg, ctx, node_id: test(msg)
        failure = self.failure
        return lambda msg, ctx, node_id: failure(msg, ctx, node_id) is None


def all_tests(tests: list[Test]) -> Test:
    """A Test that holds where each of `tests` does, tried in order."""
    if len(tests) == 1:
        return tests[0]
    return lambda msg: all(t(msg) for t in tests)


def all_predicates(predicates: list[Predicate]) -> Predicate:
    """A Predicate that holds where each of `predicates` does, tried in order."""
    if len(predicates) == 1:
        return predicates[0]
    return lambda msg, ctx, node_id: all(p(msg, ctx, node_id) for p in predicates)


@dataclass(frozen=True)
class _Combined(MessageCondition):
    """any / all: a non-empty list of conditions."""

    conditions: tuple[MessageCondition, ...]

    @classmethod
    def parse(cls, checker: Fail, spec: dict[str, Any]) -> MessageCondition:
        if not isinstance(spec[cls.key], list) or not spec[cls.key]:
            raise checker.fail(spec, f"{cls.key} takes a non-empty list of conditions")
        return cls(tuple(parse_message_condition(checker, c) for c in spec[cls.key]))

    def reads_object(self) -> bool:
        return any(c.reads_object() for c in self.conditions)


@dataclass(frozen=True)
class AnyOf(_Combined):
    key: ClassVar[str] = "any"
    keys: ClassVar[frozenset[str]] = frozenset({"any"})

    def failure(self, msg: message.Message, ctx: ObjectContext | None, node_id: int | None) -> str | None:
        reasons = []
        for cond in self.conditions:
            reason = cond.failure(msg, ctx, node_id)
            if reason is None:
                return None
            reasons.append(reason)
        return "none of these holds: " + "; ".join(reasons)

    def holds_on(self, desc: Any) -> Test:
        tests = [c.holds_on(desc) for c in self.conditions]
        return lambda msg: any(t(msg) for t in tests)

    def predicate(self, desc: Any) -> Predicate:
        predicates = [c.predicate(desc) for c in self.conditions]
        return lambda msg, ctx, node_id: any(p(msg, ctx, node_id) for p in predicates)


@dataclass(frozen=True)
class AllOf(_Combined):
    key: ClassVar[str] = "all"
    keys: ClassVar[frozenset[str]] = frozenset({"all"})

    def failure(self, msg: message.Message, ctx: ObjectContext | None, node_id: int | None) -> str | None:
        for cond in self.conditions:
            reason = cond.failure(msg, ctx, node_id)
            if reason is not None:
                return reason
        return None

    def holds_on(self, desc: Any) -> Test:
        return all_tests([c.holds_on(desc) for c in self.conditions])

    def required_field(self, desc: Any) -> str | None:
        return self.conditions[0].required_field(desc)  # the first tried: nothing before it can raise

    def predicate(self, desc: Any) -> Predicate:
        return all_predicates([c.predicate(desc) for c in self.conditions])


@dataclass(frozen=True)
class Not(MessageCondition):
    key: ClassVar[str] = "not"
    keys: ClassVar[frozenset[str]] = frozenset({"not"})
    condition: MessageCondition

    @classmethod
    def parse(cls, checker: Fail, spec: dict[str, Any]) -> MessageCondition:
        return cls(parse_message_condition(checker, spec["not"]))

    def failure(self, msg: message.Message, ctx: ObjectContext | None, node_id: int | None) -> str | None:
        return "it holds, but must not" if self.condition.failure(msg, ctx, node_id) is None else None

    def reads_object(self) -> bool:
        return self.condition.reads_object()

    def holds_on(self, desc: Any) -> Test:
        inner = self.condition.holds_on(desc)
        return lambda msg: not inner(msg)

    def predicate(self, desc: Any) -> Predicate:
        inner = self.condition.predicate(desc)
        return lambda msg, ctx, node_id: not inner(msg, ctx, node_id)


@dataclass(frozen=True)
class NeededBySignatures(MessageCondition):
    key: ClassVar[str] = "needed_by_signatures"
    keys: ClassVar[frozenset[str]] = frozenset({"needed_by_signatures"})
    wanted: bool

    @classmethod
    def parse(cls, checker: Fail, spec: dict[str, Any]) -> MessageCondition:
        if not isinstance(spec[cls.key], bool):
            raise checker.fail(spec, "needed_by_signatures takes true or false")
        return cls(spec[cls.key])

    def failure(self, msg: message.Message, ctx: ObjectContext | None, node_id: int | None) -> str | None:
        needed = ctx is not None and node_id is not None and node_id in ctx.needed
        if needed == self.wanted:
            return None
        return "the signatures need this object" if needed else "no signature needs this object"

    def predicate(self, desc: Any) -> Predicate:
        wanted = self.wanted
        return lambda msg, ctx, node_id: (ctx is not None and node_id is not None and node_id in ctx.needed) == wanted


FIELD_TESTS = ("equals", "in", "not_in", "present", "subset_of", "mentions")


@dataclass(frozen=True)
class Field(MessageCondition):
    """A test of one field (dotted path) of the message: exactly one of FIELD_TESTS."""

    key: ClassVar[str] = "field"
    keys: ClassVar[frozenset[str]] = frozenset({"field", *FIELD_TESTS})
    field: str
    test: str
    value: Any

    @classmethod
    def parse(cls, checker: Fail, spec: dict[str, Any]) -> MessageCondition:
        tests = [t for t in FIELD_TESTS if t in spec]
        if len(tests) != 1:
            raise checker.fail(spec, f"a field condition takes exactly one of {list(FIELD_TESTS)}")
        test = tests[0]
        value = spec[test]
        if test in ("in", "not_in", "mentions"):
            if not isinstance(value, list):
                raise checker.fail(spec, f"{test} takes a list")
            if test == "mentions" and not all(isinstance(name, str) for name in value):
                raise checker.fail(spec, "mentions takes a list of names")
            value = frozenset(value) if test == "mentions" else tuple(value)
        if test == "present" and not isinstance(value, bool):
            raise checker.fail(spec, "present takes true or false")
        if not isinstance(spec["field"], str) or not spec["field"]:
            raise checker.fail(spec, "field takes a dotted field path")
        return cls(spec["field"], test, value)

    def failure(self, msg: message.Message, ctx: ObjectContext | None, node_id: int | None) -> str | None:
        name, test = self.field, self.test
        if test == "present":
            present = is_present(msg, name)
            return None if present == self.value else f"{name} is {'set' if present else 'not set'}"
        if test == "mentions":
            return None if mentions(msg, name, self.value) else f"{name} mentions none of {sorted(self.value)}"
        value = value_at(msg, name)
        shown = "unset" if value is MISSING else repr(value)
        if test == "equals":
            return None if value is not MISSING and value == self.value else f"{name} is {shown}, not {self.value!r}"
        if test == "in":
            return None if value is not MISSING and value in self.value else f"{name} is {shown}, not one of {list(self.value)}"
        if test == "not_in":
            return None if value is MISSING or value not in self.value else f"{name} is {shown}"
        other = value_at(msg, self.value)
        mine = [] if value is MISSING else list(value)
        theirs = {comparable(x) for x in ([] if other is MISSING else list(other))}
        missing = [x for x in mine if comparable(x) not in theirs]
        return None if not missing else f"{len(missing)} element(s) of {name} are not in {self.value}"

    def reads_object(self) -> bool:
        return False

    def required_field(self, desc: Any) -> str | None:
        if "." in self.field:
            return None
        if self.test == "present" and self.value is True and (
                self.field in desc.fields_by_name or self.field in desc.oneofs_by_name):
            return self.field
        if self.test == "mentions" and self.field in desc.fields_by_name:
            return self.field  # mentions() finds nothing in an unset field
        return None

    def holds_on(self, desc: Any) -> Test:
        """The common tests of a field of the message itself (not a dotted path), read as failure()
        reads them (messages.presence_test / value_reader). The others, and a name the type does
        not have (failure() raises on it), take the fallback."""
        name, test, wanted = self.field, self.test, self.value
        is_field = name in desc.fields_by_name
        if "." in name or test == "subset_of" or not (is_field or name in desc.oneofs_by_name) or (
                test == "mentions" and not is_field):
            return super().holds_on(desc)
        if test == "present":
            present = presence_test(desc, name)
            return present if wanted else (lambda msg: not present(msg))
        if test == "mentions":
            present = presence_test(desc, name)
            return lambda msg: present(msg) and mentions(msg, name, wanted)
        read = value_reader(desc, name)
        if test == "equals":
            return lambda msg: bool(read(msg) == wanted)
        if test == "in":
            return lambda msg: read(msg) in wanted
        return lambda msg: read(msg) not in wanted  # not_in


MESSAGE_CONDITION_KINDS: tuple[type[MessageCondition], ...] = (AnyOf, AllOf, Not, NeededBySignatures, Field)


def parse_message_condition(checker: Fail, spec: Any) -> MessageCondition:
    if not isinstance(spec, dict) or not spec:
        raise checker.fail(spec, "a condition must be a mapping")
    for kind in MESSAGE_CONDITION_KINDS:
        if kind.key in spec:
            checker.keys(spec, set(kind.keys), {kind.key}, kind.key if kind is not Field else "condition")
            return kind.parse(checker, spec)
    names = ", ".join(kind.key for kind in MESSAGE_CONDITION_KINDS)
    raise checker.fail(spec, f"unknown condition {sorted(spec)}; use one of {names}")
