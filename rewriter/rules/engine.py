"""Applying rules to scopes: match, check conditions, rewrite, repeat until nothing changes.

The engine knows nothing about particular ops. Everything op-specific is in rules/*.yaml.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, cast

import numpy as np

from rewriter.protos import node_def_pb2, op_def_pb2
from rewriter.protos.op_def_pb2 import OpDef
from rewriter.protos.node_def_pb2 import NodeDef

from rewriter.savedmodel import attr_values
from rewriter.rules import repeat as rule_repeat
from rewriter.savedmodel import static_shapes
from rewriter.savedmodel import tensors
from rewriter.findings import Finding
from rewriter.savedmodel.graph_model import ARG, CONTROL_RET, RET, NodeDefView, Scope
from rewriter.savedmodel.op_signatures import OpSignatures, PortError
from rewriter.targets.registry import OpRegistry, attr_or_default, first_release_with_op
from rewriter.targets.releases import Release
from rewriter.rules.conditions import AttrRef, Condition, InputRef, MatchContext, OutputRef
from rewriter.rules.loader import INPUT_REF_RE, OUTPUT_REF_RE, Rule, _ConstSpec, _TensorAttr
from rewriter.report.subgraph import snapshot

MAX_PASSES = 50


class RuleApplicationError(RuntimeError):
    """A rule asked for something impossible (a bug in the rule, not in the model)."""


@dataclass
class Application:
    """One rewrite: which rule, where, what was matched, what changed."""

    rule: str
    where: str
    matched: dict[str, str]  # pattern name -> node name
    ops: dict[str, str]  # node name -> op, before
    removed: list[str] = field(default_factory=list)
    added: dict[str, str] = field(default_factory=dict)  # node name -> op
    dropped_attrs: list[str] = field(default_factory=list)
    set_attrs: list[str] = field(default_factory=list)
    retyped: list[str] = field(default_factory=list)
    # The touched part of the graph before and after (rewriter/report/subgraph.py), for the HTML report.
    graph_before: Any = field(default=None, repr=False, compare=False)
    graph_after: Any = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "where": self.where,
            "matched": self.matched,
            "before": self.ops,
            "removed": self.removed,
            "added": self.added,
            "dropped_attrs": self.dropped_attrs,
            "set_attrs": self.set_attrs,
            "retyped": self.retyped,
        }


# --- matching -----------------------------------------------------------------------------
class OpIndex:
    """Which nodes of a scope have which op, so a rule looks only at nodes of its root ops.

    Scanning every node of every scope for every rule on every pass made matching O(rules x
    nodes x passes). The index is built with one scan and kept current by the Rewriter (the
    only code that adds nodes or changes ops while rules run). Removed nodes are dropped
    lazily: `names` skips names no longer in the graph or no longer of that op.
    """

    def __init__(self, scope: Scope | NodeDefView) -> None:
        self.scope = scope
        self.by_op: dict[str, set[str]] = {}
        self.additions = 0  # how many times add() ran: a rule's candidates may have changed
        if isinstance(scope, Scope) and scope.names_by_op:
            # Made while the scope was built, and not read since: taken over (names() skips what
            # edits removed or retyped; add() records what they added).
            self.by_op, scope.names_by_op = scope.names_by_op, {}
            return
        by_op = self.by_op
        for name, node in scope.nodes():
            names = by_op.get(node.op)
            if names is None:
                names = by_op[node.op] = set()
            names.add(name)

    def add(self, name: str, op: str) -> None:
        self.by_op.setdefault(op, set()).add(name)
        self.additions += 1

    def names(self, ops: tuple[str, ...]) -> list[str]:
        """Nodes of these ops that are still in the scope, in the scope's node order (the order
        a full scan visits them in, so rewrites happen in the same order as before)."""
        scope = self.scope
        if isinstance(scope, Scope):
            # networkx's node dict read directly, and sorted by Scope.order_key's (order, name)
            # as tuples (a key call per name was most of this)
            node_data = scope.graph._node
            live = {(data["order"], name) for op in ops for name in self.by_op.get(op, ())
                    if (data := node_data.get(name)) is not None and data["def"].op == op}
            return [name for _, name in sorted(live)]
        found = [name for op in ops for name in self.by_op.get(op, ())
                 if scope.has_node(name) and scope.node_def(name).op == op]
        return sorted(set(found), key=scope.order_key)


class Matcher:
    def __init__(self, scope: Scope | NodeDefView, index: OpIndex | None = None) -> None:
        assert scope.ops is not None, "the pipeline sets Scope.ops before rules run"
        self.scope, self.ops = scope, scope.ops
        self._index = index  # made on first use: bind and the conditions do not need it

    @property
    def index(self) -> OpIndex:
        if self._index is None:
            self._index = OpIndex(self.scope)
        return self._index

    def matches(self, rule: Rule) -> Iterator[dict[str, str]]:
        for name in self.index.names(rule.root.ops):
            binding = self.bind(rule, name)
            if binding is not None and self.conditions_hold(rule, binding):
                yield binding

    def bind(self, rule: Rule, root_name: str) -> dict[str, str] | None:
        """Follow the pattern's input edges from the root; each input has one producer, so no search."""
        return self.bind_explained(rule, root_name)[0]

    def bind_explained(self, rule: Rule, root_name: str) -> tuple[dict[str, str] | None, str]:
        """The binding, or None and which part of the pattern did not match."""
        if not self.scope.has_node(root_name):
            return None, f"{root_name} is no longer in the graph"
        patterns = rule.pattern_by_name
        binding = {rule.root.name: root_name}
        frontier = [rule.root.name]
        while frontier:
            pattern = patterns[frontier.pop()]
            node_name = binding[pattern.name]
            node = self.scope.node_def(node_name)
            if node.op not in pattern.ops:
                return None, f"pattern node {pattern.name}: {node_name} is a {node.op}, wants {' or '.join(pattern.ops)}"
            if not pattern.inputs:
                continue  # (most patterns are one node: its inputs are not read)
            inputs = self.scope.data_inputs(node_name)
            for index, other, out_index in pattern.inputs:
                where = f"pattern {pattern.name}.input[{index}] ({other}:{out_index})"
                if index >= len(inputs):
                    return None, f"{where}: {node_name} has only {len(inputs)} inputs"
                src, port = inputs[index]
                if not isinstance(src, str):
                    return None, f"{where}: it reads a function argument, not a node"
                src_node = self.scope.node_def(src)
                if src_node.op not in patterns[other].ops:
                    return None, f"{where}: it reads {src} ({src_node.op}), wants {' or '.join(patterns[other].ops)}"
                if self.scope.output_index(src_node, port) != out_index:
                    return None, f"{where}: it reads output {port or ':0'} of {src}, wants output {out_index}"
                if other in binding:
                    if binding[other] != src:
                        return None, f"{where}: it reads {src}, but {other} is already {binding[other]}"
                else:
                    binding[other] = src
                    frontier.append(other)
        return binding, ""

    # --- what conditions read (rule_conditions.MatchContext) ------------------------------
    def attr_value(self, binding: dict[str, str], ref: AttrRef) -> tuple[bool, Any]:
        """(present, plain value) of n.attr or n.attr[i]; an absent attr takes its OpDef default."""
        return attr_plain(self.scope, binding, str(ref))

    def attr_present(self, binding: dict[str, str], ref: AttrRef) -> bool:
        return ref.attr in self.scope.node_def(binding[ref.node]).attr

    def producer_of(self, binding: dict[str, str], ref: InputRef) -> tuple[NodeDef, int | None] | None:
        """The node an input reference (n.input[i]) reads, and which flat output; None for a
        function argument or a missing input."""
        inputs = self.scope.data_inputs(binding[ref.node])
        if ref.index >= len(inputs) or not isinstance(inputs[ref.index][0], str):
            return None
        producer = self.scope.node_def(str(inputs[ref.index][0]))
        return producer, self.scope.output_index(producer, inputs[ref.index][1])

    def const_value(self, binding: dict[str, str], ref: InputRef) -> Any:
        found = self.producer_of(binding, ref)
        if found is None:
            return None
        producer = found[0]
        if producer.op != "Const" or "value" not in producer.attr:
            return None
        return attr_values.tensor_to_numpy(producer.attr["value"].tensor).tolist()

    def static_shape(self, binding: dict[str, str], ref: InputRef | OutputRef) -> list[int] | None:
        """The shape TF recorded for a node's output (n:O, a flat output index) or for the tensor
        an input reference (n.input[i]) reads; None if nothing was recorded."""
        if isinstance(ref, OutputRef):
            return static_shapes.output_shape(self.scope.node_def(binding[ref.node]), ref.index)
        inputs = self.scope.data_inputs(binding[ref.node])
        if ref.index >= len(inputs):
            return None
        src, port = inputs[ref.index]
        if isinstance(src, tuple):
            return static_shapes.arg_shape(self.scope, src[1]) if src[0] == ARG else None
        producer = self.scope.node_def(str(src))
        return static_shapes.output_shape(producer, self.scope.output_index(producer, port))

    def only_returned(self, name: str) -> bool:
        """Every data reader of the node is a return value of its function, directly or through
        Identity nodes that are likewise only returned (a resource creator function's shape)."""
        if not self.scope.is_function:
            return False
        readers = self.scope.readers(name)
        if not readers:
            return False
        for dst in (edge.dst for edge in readers):
            if isinstance(dst, tuple):
                if dst[0] != RET:
                    return False
            elif self.scope.node_def(str(dst)).op != "Identity" or not self.only_returned(str(dst)):
                return False
        return True

    def reader_ops(self, name: str) -> list[str]:
        """The op of every node reading a data output of the node ("_Retval" for a return value)."""
        return [("_Retval" if isinstance(edge.dst, tuple) else self.scope.node_def(str(edge.dst)).op)
                for edge in self.scope.readers(name)]

    def conditions_hold(self, rule: Rule, binding: dict[str, str]) -> bool:
        if "counts" in rule.extra and self.counts(rule, binding) is None:
            return False
        for cond in rule.where:  # (as all() would, without a generator per match)
            if not cond.holds(self, binding):
                return False
        return True

    def explain(self, rule: Rule, root_name: str) -> str | None:
        """Why the rule does not apply at this node (None: it does): the first pattern part or
        condition that does not hold."""
        binding, reason = self.bind_explained(rule, root_name)
        if binding is None:
            return reason
        for index, cond in enumerate(rule.where):
            failure = cond.failure(self, binding)
            if failure is not None:
                return f"condition {index + 1} ({cond.key}): {failure}"
        return None

    def counts(self, rule: Rule, binding: dict[str, str]) -> dict[str, int] | None:
        """match.counts for this match (rewriter/rules/repeat.py); None if one is not known."""
        if "counts" not in rule.extra:
            return {}

        def shape(ref: str) -> list[int] | None:
            out = OUTPUT_REF_RE.match(ref)
            if out:
                return self.static_shape(binding, OutputRef(out.group("node"), int(out.group("index"))))
            match = INPUT_REF_RE.match(ref)
            assert match
            return self.static_shape(binding, InputRef(match.group("node"), int(match.group("index"))))

        return rule_repeat.evaluate(rule.extra["counts"], shape,
                                    lambda ref: attr_plain(self.scope, binding, ref)[1])


def attr_plain(scope: Scope | NodeDefView, binding: dict[str, str], ref: str) -> tuple[bool, Any]:
    """(present, plain value) of n.attr, or of element i of a list attr for n.attr[i] (None past
    its end); an absent attr takes its OpDef default if known."""
    node_key, attr = ref.split(".", 1)
    return node_attr_plain(scope.node_def(binding[node_key]), scope.ops, attr)


def node_attr_plain(node: NodeDef, ops: OpSignatures | None, attr: str) -> tuple[bool, Any]:
    """attr_plain of one NodeDef's attr ('T' or 'ksize[1]')."""
    attr, _, index_text = attr.partition("[")
    if attr in node.attr:
        present, value = True, attr_values.to_plain(node.attr[attr])
    else:
        op = ops.op(node.op) if ops is not None else None
        default = attr_or_default(op, node, attr) if op is not None else None
        present, value = False, (attr_values.to_plain(default) if default is not None else None)
    if index_text:
        index = int(index_text.rstrip("]"))
        value = value[index] if isinstance(value, list) and index < len(value) else None
    return present, value


# --- rewriting ----------------------------------------------------------------------------
class Rewriter:
    def __init__(self, scope: Scope, index: OpIndex | None = None, pictures: bool = True) -> None:
        assert scope.ops is not None, "the pipeline sets Scope.ops before rules run"
        self.scope, self.ops = scope, scope.ops
        self.index = index  # kept current with every node this rewriter adds or retypes
        # Snapshots of the touched subgraph for the HTML report: two per rewrite, as costly as the
        # rewrite itself, so taken only when a report will draw them.
        self.pictures = pictures
        # Names the MetaGraphDef refers to from outside the graph (signatures, saver): such a
        # node cannot be removed without breaking the reference.
        self.external_names = scope.external_names
        self.where = scope.where()  # (a scope keeps its name and kind)

    def apply(self, rule: Rule, binding: dict[str, str]) -> Application | None:
        scope, spec = self.scope, rule.rewrite
        assert spec is not None
        app = Application(rule.id, self.where, dict(binding), {n: scope.node_def(n).op for n in binding.values()})
        if self.pictures:
            app.graph_before = snapshot(scope, binding.values())
        # A node a signature (or the saver) names by its tensor names cannot simply go: it is
        # replaced by an IdentityN of the same name that forwards what replaced each output.
        named_types = {binding[key]: self._forwardable(rule, binding, key) for key in spec.remove
                       if binding[key] in self.external_names} if self.external_names else {}
        changed = False
        for node_key, op_name in spec.retype:  # first: set_attrs may name the new op's attrs
            changed |= self._retype(rule, binding[node_key], op_name, app)
        # New nodes first: their {copy: n.attr} reads the matched node's value, not what
        # drop_attrs / set_attrs leave (a rule may drop an attr and keep its meaning in a Const).
        new_names = self._add_nodes(rule, binding, app)
        changed |= bool(new_names)
        changed |= self._edit_attrs(rule, binding, app)
        for node_key, in_index, ref in spec.inputs:
            changed |= self._rewire_input(binding[node_key], in_index, self._resolve_ref(ref, binding, new_names))
        added = set(new_names.values())
        for node_key, out_index, ref in spec.outputs:
            changed |= self._rewire_output(binding[node_key], out_index, self._resolve_ref(ref, binding, new_names), added)
        replacements: dict[str, list[str]] = {}
        for node_key, _, ref in spec.outputs:
            src, _ = self._resolve_ref(ref, binding, new_names)
            if isinstance(src, str):
                replacements.setdefault(binding[node_key], []).append(src)
        for key in spec.remove:
            name = binding[key]
            # (resolved before the node goes: a ref may read its inputs)
            forwards = [self._resolve_ref(ref, binding, new_names)
                        for _, ref in sorted((i, r) for k, i, r in spec.outputs if k == key)] if name in named_types else []
            self._remove(name, replacements.get(name, []), rule)
            app.removed.append(name)
            if name in named_types:
                self._add_forwarder(name, forwards, named_types[name], sorted(added)[0] if added else None)
                app.added[name] = "IdentityN"
            changed = True
        for key in spec.remove_if_unused:
            name = binding[key]
            if scope.has_node(name) and not scope.out_edges(name):
                self._remove(name, [], rule)
                app.removed.append(name)
                changed = True
        if changed and self.pictures:
            app.graph_after = snapshot(scope, [*binding.values(), *app.added], keep=app.graph_before.members)
        return app if changed else None

    def _forwardable(self, rule: Rule, binding: dict[str, str], key: str) -> list[int]:
        """The output types of a removed, externally named node, if the rule rewires every output."""
        assert rule.rewrite is not None
        node = self.scope.node_def(binding[key])
        op = self.ops.op(node.op)
        rewired = sorted(i for k, i, _ in rule.rewrite.outputs if k == key)
        types: list[int] = []
        for arg in op.output_arg if op is not None else []:
            if arg.number_attr or arg.type_list_attr:
                types = []
                break
            if arg.type:
                types.append(int(arg.type))
            else:
                value = attr_or_default(op, node, arg.type_attr) if op is not None else None
                if value is None:
                    types = []
                    break
                types.append(int(value.type))
        if not types or rewired != list(range(len(types))):
            raise RuleApplicationError(
                f"{self.scope.where()}: rule {rule.id} would remove node {node.name!r}, which a signature or "
                "the saver names, without rewiring each of its outputs"
            )
        return types

    def _add_forwarder(self, name: str, forwards: list[tuple[object, str]], types: list[int], after: str | None) -> None:
        node = NodeDef(name=name, op="IdentityN")
        node.attr["T"].list.type.extend(types)
        assert after is not None, "an externally named node is only removed by a rule that adds nodes"
        self.scope.add_node(node, after=after)
        self._indexed(name, "IdentityN")
        for index, (src, port) in enumerate(forwards):
            self.scope.add_edge(src, name, port, index)

    def _retype(self, rule: Rule, name: str, op_name: str, app: Application) -> bool:
        """Give a node another op, keeping inputs and attrs. Only sound when the two ops name
        their outputs alike, since FunctionDef consumers address outputs by arg name."""
        node = self.scope.node_def(name)
        if node.op == op_name:
            return False
        old, new = self.ops.op(node.op), self.ops.target_op(op_name)
        if new is None:
            raise RuleApplicationError(f"rule {rule.id} retypes to op {op_name}, which the target release lacks")
        if old is not None and [a.name for a in old.output_arg] != [a.name for a in new.output_arg]:
            raise RuleApplicationError(
                f"rule {rule.id}: {node.op} and {op_name} name their outputs differently; retype cannot keep consumers"
            )
        app.retyped.append(f"{name}: {node.op} -> {op_name}")
        self.scope.editable_node_def(name).op = op_name
        self._indexed(name, op_name)
        return True

    def _indexed(self, name: str, op: str) -> None:
        if self.index is not None:
            self.index.add(name, op)

    def _rewire_input(self, name: str, in_index: int, target: tuple[object, str]) -> bool:
        """Make data input `in_index` of a kept node read `target` instead."""
        scope = self.scope
        edges = [edge for edge in scope.in_edges(name) if not edge.is_control]
        if in_index >= len(edges):
            raise RuleApplicationError(f"{scope.where()}: node {name!r} has no input {in_index}")
        edge = edges[in_index]
        if (edge.src, edge.port) == target:
            return False
        scope.rewire(edge, target[0], target[1])
        return True

    def _edit_attrs(self, rule: Rule, binding: dict[str, str], app: Application) -> bool:
        assert rule.rewrite is not None
        changed = False
        for node_key, attr in rule.rewrite.drop_attrs:
            if attr in self.scope.node_def(binding[node_key]).attr:
                node = self.scope.editable_node_def(binding[node_key])
                del node.attr[attr]
                app.dropped_attrs.append(f"{node.name}.{attr}")
                changed = True
        for node_key, attr, plain in rule.rewrite.set_attrs:
            node = self.scope.node_def(binding[node_key])
            value = self._attr_value(rule, node.op, attr, plain, binding)
            if attr not in node.attr or node.attr[attr] != value:
                node = self.scope.editable_node_def(binding[node_key])
                node.attr[attr].CopyFrom(value)
                app.set_attrs.append(f"{node.name}.{attr}")
                changed = True
        return changed

    def _attr_value(self, rule: Rule, op_name: str, attr: str, plain: Any, binding: dict[str, str]) -> Any:
        if isinstance(plain, _TensorAttr):
            value = attr_values.AttrValue()
            value.tensor.CopyFrom(plain.tensor)
            return value
        if isinstance(plain, _ConstSpec):
            value = attr_values.AttrValue()
            value.tensor.CopyFrom(self._const_tensor(rule, plain, binding))
            return value
        if isinstance(plain, dict) and "format" in plain:
            # Deterministic and unique per node: names are unique within a scope.
            plain = str(plain["format"]).format(scope=self.scope.name, node=binding[rule.root.name])
        if isinstance(plain, dict) and "copy" in plain:
            node_key, source_attr = str(plain["copy"]).split(".", 1)
            source_attr, _, element = source_attr.partition("[")  # n.attr[k]: element k of a list attr
            node = self.scope.node_def(binding[node_key])
            if source_attr in node.attr:
                copied = node.attr[source_attr]
            else:
                op = self.ops.op(node.op)
                copied = attr_or_default(op, node, source_attr) if op is not None else None
            if copied is not None:
                # An absent attr's OpDef default is in the same layout as a written one: permute it too.
                if "permute" in plain:
                    return _permuted(rule, copied, plain["permute"])
                return _element(rule, copied, element)
            if "default" in plain:
                plain = plain["default"]
            else:
                raise RuleApplicationError(f"rule {rule.id}: {node.name} has no attr {source_attr} to copy")
        op = self.ops.target_op(op_name) or self.ops.op(op_name)
        attr_def = next((a for a in op.attr if a.name == attr), None) if op is not None else None
        if attr_def is None:
            raise RuleApplicationError(f"rule {rule.id}: op {op_name} has no attr {attr!r}")
        try:
            return attr_values.from_plain(plain, attr_def.type)
        except attr_values.AttrConversionError as error:
            raise RuleApplicationError(f"rule {rule.id}: attr {op_name}.{attr}: {error}") from None

    def _const_tensor(self, rule: Rule, spec: _ConstSpec, binding: dict[str, str]) -> Any:
        """The tensor of a const node whose dtype or value comes from the match."""
        dtype = spec.dtype
        if isinstance(dtype, dict):
            dtype = attr_values.to_plain(self._attr_value(rule, "Const", "dtype", dtype, binding))
        content = spec.value
        if isinstance(content, dict) and "copy" in content:
            node_key, attr = str(content["copy"]).split(".", 1)
            _, content = attr_plain(self.scope, binding, content["copy"])
            if content is None:
                raise RuleApplicationError(f"rule {rule.id}: {binding[node_key]} has no attr {attr} to copy")
        elif isinstance(content, dict):
            bounds = tensors.limits(attr_values.type_enum(str(dtype)))
            if bounds is None:
                raise RuleApplicationError(f"rule {rule.id}: {dtype} has no {content['limit']} value")
            content = bounds[0] if content["limit"] == "lowest" else bounds[1]
        plain = {"dtype": dtype, "value": content}
        if spec.shape is not None:
            plain["shape"] = list(spec.shape)
        try:
            tensor = attr_values.tensor_from_plain(plain)
        except (attr_values.AttrConversionError, TypeError, ValueError) as error:
            raise RuleApplicationError(f"rule {rule.id}: const {plain}: {error}") from None
        # make_tensor_proto silently wraps an int that does not fit the dtype (2**40 in int32):
        # read a copied value back to be sure.
        if isinstance(spec.value, dict) and "copy" in spec.value:
            written = np.ravel(attr_values.tensor_to_numpy(tensor)).tolist()
            if not attr_values.plain_equal(written, np.ravel(np.asarray(content)).tolist()):
                raise RuleApplicationError(f"rule {rule.id}: {spec.value['copy']} = {content!r} does not fit {dtype}")
        return tensor

    def _add_nodes(self, rule: Rule, binding: dict[str, str], app: Application) -> dict[str, str]:
        assert rule.rewrite is not None
        if not rule.rewrite.nodes:
            return {}  # (what the removed nodes waited on is read only for new nodes to inherit)
        scope = self.scope
        anchor = binding[rule.root.name]
        root = scope.node_def(anchor)
        inherited: list[object] = []
        for key in rule.rewrite.remove:
            for src in scope.control_inputs(binding[key]):
                if src not in inherited:
                    inherited.append(src)
        new_names = {new.key: scope.unique_name(f"{anchor}/{new.key}") for new in rule.rewrite.nodes}
        for new in rule.rewrite.nodes:
            if self.ops.target_op(new.op) is None:
                raise RuleApplicationError(f"rule {rule.id} creates op {new.op}, which the target release lacks")
            node = NodeDef(name=new_names[new.key], op=new.op, device=root.device)
            for attr, plain in new.attrs:
                if isinstance(plain, dict) and plain.get("if_present"):
                    present, default = attr_plain(self.scope, binding, str(plain["copy"]))
                    if not present and default is None:
                        continue  # {copy: n.attr, if_present: true}: only where the matched node's op has it
                node.attr[attr].CopyFrom(self._attr_value(rule, new.op, attr, plain, binding))
            scope.add_node(node, after=anchor)
            self._indexed(node.name, new.op)
            for index, ref in enumerate(new.inputs):
                src, port = self._resolve_ref(ref, binding, new_names)
                scope.add_edge(src, node.name, port, index)
            for offset, src in enumerate(inherited):
                scope.add_edge(src, node.name, None, len(new.inputs) + offset)
            app.added[node.name] = new.op
        return new_names

    def _resolve_ref(self, ref: str, binding: dict[str, str], new_names: dict[str, str]) -> tuple[object, str]:
        scope = self.scope
        match = INPUT_REF_RE.match(ref)
        if match:
            inputs = scope.data_inputs(binding[match.group("node")])
            index = int(match.group("index"))
            if index >= len(inputs):
                raise RuleApplicationError(f"{ref}: the node has only {len(inputs)} inputs")
            src, port = inputs[index]
            return src, port
        match = OUTPUT_REF_RE.match(ref)
        assert match
        key, flat = match.group("node"), int(match.group("index"))
        if key in new_names:
            node = scope.node_def(new_names[key])
            return new_names[key], self._port(node, flat, added=True)
        node = scope.node_def(binding[key])
        return binding[key], self._port(node, flat)

    def _port(self, node: NodeDef, flat: int, added: bool = False) -> str:
        try:
            return self.scope.output_port(node, flat, added)
        except PortError as error:
            raise RuleApplicationError(str(error)) from None

    def _rewire_output(self, name: str, out_index: int, target: tuple[object, str], added: set[str]) -> bool:
        scope, node = self.scope, self.scope.node_def(name)
        moved = False
        for edge in scope.out_edges(name):
            if edge.port is None or scope.output_index(node, edge.port) != out_index:
                continue
            if edge.dst in added:
                continue  # a node this rewrite added reads the old output on purpose (e.g. a Cast of it)
            scope.rewire(edge, target[0], target[1])
            moved = True
        return moved

    def _remove(self, name: str, replacements: list[str], rule: Rule) -> None:
        """Remove a node; whatever waited on it (control edges) now waits on what replaced it, or on
        what it waited on itself, so no ordering is lost."""
        scope = self.scope
        anchors: list[object] = list(dict.fromkeys(replacements)) or _anchors(scope, name)
        for dst, port in scope.out_ports(name):
            if port is not None:
                raise RuleApplicationError(
                    f"rule {rule.id} removes {name!r} in {scope.where()}, but {dst} still reads its output {port or ':0'}"
                )
            if isinstance(dst, tuple) and dst[0] == CONTROL_RET:
                self._repoint_control_ret(dst, name, anchors)
                continue
            # Anything dst already reads (data or control) already orders it after that node.
            # graph.has_edge is O(1); listing dst's inputs per removed node was O(n^2) on the
            # wide NoOps of save functions (one control input per variable).
            for anchor in anchors:
                if anchor != dst and not scope.has_edge(anchor, dst):
                    scope.add_edge(anchor, dst, None, scope.next_input_index(dst))
        scope.remove_node(name)

    def _repoint_control_ret(self, control_ret: tuple[str, str], name: str, anchors: list[object]) -> None:
        scope = self.scope
        scope.remove_node(control_ret)
        if not anchors:
            return  # nothing left to wait for: the control output goes with the node
        if len(anchors) == 1:
            target = anchors[0]
        else:
            target = scope.unique_name(f"{name}/control_anchor")
            scope.add_node(NodeDef(name=str(target), op="NoOp"), after=name)
            self._indexed(str(target), "NoOp")
            for index, anchor in enumerate(anchors):
                scope.add_edge(anchor, target, None, index)
        scope.add_edge(target, control_ret, None, 0)


def _anchors(scope: Scope, name: str) -> list[object]:
    """What a node waited on: its control inputs and the nodes (not args) its data came from."""
    found: list[object] = []
    for src in scope.input_sources(name):
        if isinstance(src, str) and src not in found:
            found.append(src)
    return found


# --- the fixpoint -------------------------------------------------------------------------
@dataclass
class RuleOutcome:
    applications: list[Application]
    findings: list[Finding]


def apply_rules(
    scopes: list[Scope],
    rules: list[Rule],
    target: Release,
    allow_lossy: set[str] | frozenset[str] = frozenset(),
    strict: bool = False,
    pictures: bool = True,
) -> RuleOutcome:
    """Apply every rule for `target` until none applies; then collect refusals. With `strict`,
    narrowing rules refuse instead of applying. `pictures`: keep each rewrite's before/after
    subgraph for the HTML report.

    Each scope carries what matching needs (`Scope.ops`, `Scope.external_names`); the op index
    of each scope is kept current by its Rewriter.
    """
    run = RuleRun(rules, target, allow_lossy, strict, pictures)
    for position, scope in enumerate(scopes):
        run.apply(position, scope)
    return run.outcome()


# (pass, rule's position, scope's position, n-th event of that rule in that scope in that pass):
# the order in which a whole-model fixpoint (every rule over every scope, pass after pass) meets
# an application or a finding.
_Tag = tuple[int, int, int, int]


class RuleRun:
    """apply_rules one scope at a time, with the outcome a whole-model run gives, in its order.

    Rules are local to a scope: a match, its conditions and its rewrite read and change only the
    scope they are in (and the MetaGraphDef's function signatures, which no rewrite changes). So
    running the fixpoint (every rule, pass after pass, until nothing changes) scope by scope
    reaches the same graphs with the same applications and findings as running it over all scopes
    at once; each event is tagged with where the whole-model run would meet it, and outcome()
    sorts them back into that order. This lets plan() build each scope's graph model, rewrite it,
    serialize it and drop it, so only one scope's graph model is ever in memory.
    """

    def __init__(self, rules: list[Rule], target: Release,
                 allow_lossy: set[str] | frozenset[str] = frozenset(), strict: bool = False,
                 pictures: bool = True) -> None:
        active = [rule for rule in rules if rule.applies_to(target)]
        self.target = target
        self._lacking: dict[str, tuple[str, ...]] = {}  # rule id -> the ops it writes that the target lacks
        self.rewrites = [rule for rule in active if rule.rewrite is not None]
        self.refusals = [rule for rule in active if rule.refuse is not None]
        self.allow_lossy, self.strict, self.pictures = allow_lossy, strict, pictures
        # Per root op, the rules (with their position) that can start a match there, in order.
        self._rewrites_by_op = _by_root_op(self.rewrites)
        self._refusals_by_op = _by_root_op(self.refusals)
        self._applications: list[tuple[_Tag, Application]] = []
        self._findings: dict[tuple[str, str, str], tuple[_Tag, Finding]] = {}
        # Per root op, the conditions of each rule on it that read only the root node's attrs:
        # judged on the bare NodeDef, they tell whether any rule can match in a scope at all.
        self._screens: dict[str, list[tuple[Rule, tuple[Condition, ...]]]] = {}
        for rule in active:
            screen = tuple(c for c in rule.where if c.reads_only_attrs_of(rule.root.name))
            for op in rule.root.ops:
                self._screens.setdefault(op, []).append((rule, screen))
        # Per root op, the attrs its screens read (None: not known). A screen's verdict on a node
        # depends on nothing else, so nodes of the same op with the same values of those attrs
        # (most nodes of an op in a model) share one verdict (_screened).
        self._screened_attrs: dict[str, tuple[str, ...] | None] = {}
        # Per root op, the screened attrs no screen reads the value of (`present: true`): their
        # presence alone goes into the key (VarHandleOp.debug_name differs on every node). Worked
        # out for an op when a node of it is first screened (most ops never are).
        self._presence_only: dict[str, frozenset[str]] = {}
        for op, candidates in self._screens.items():
            refs = [c.attr_refs() for _, screen in candidates for c in screen]
            self._screened_attrs[op] = (None if any(r is None for r in refs)
                                        else tuple(sorted({ref.attr for found in refs if found is not None for ref in found})))
        # Per OpSignatures (attr defaults come from it; held, so its id is not reused): verdicts
        # by (op, the screened attrs' serialized values).
        self._verdicts: dict[int, tuple[OpSignatures | None, dict[tuple[str, tuple[bytes | None, ...]], list[Rule]]]] = {}

    def may_match(self, view: NodeDefView) -> bool:
        """Whether any rule matches in a scope, judged on its NodeDefs as they are (a
        NodeDefView). False: no rule matches there, so none applies, adds a node or refuses, and
        the scope needs no graph model. The rule's conditions on the root's own attrs are tried
        first on the bare NodeDef (most candidates fail there); the rest is the Matcher's own
        bind and conditions, on the view."""
        screens, ops = self._screens, view.ops
        found = self._verdicts.get(id(ops))
        if found is None or found[0] is not ops:
            found = self._verdicts[id(ops)] = (ops, {})
        verdicts = found[1]
        matcher: Matcher | None = None
        for node in view.node_defs:
            op = node.op
            candidates = screens.get(op)
            if candidates is None:
                continue
            passing = self._screened(node, op, candidates, ops, verdicts)
            if passing:
                name = node.name
                view.note(node, name)
            for rule in passing:
                matcher = matcher or Matcher(view)
                binding = matcher.bind(rule, name)
                if binding is not None and matcher.conditions_hold(rule, binding):
                    return True
        return False

    def _screened(self, node: NodeDef, op: str, candidates: list[tuple[Rule, tuple[Condition, ...]]],
                  ops: OpSignatures | None, verdicts: dict[tuple[str, tuple[bytes | None, ...]], list[Rule]]) -> list[Rule]:
        """The candidate rules whose screen holds on the node, worked out once per op and values
        of the attrs the screens read (a tensor-valued one is read anew each time: it may be large)."""
        names = self._screened_attrs[op]
        key: tuple[str, tuple[bytes | None, ...]] | None = None
        if names == ():  # screens that read no attr: one verdict per op, and no read of the attr map
            key = (op, ())
            passing = verdicts.get(key)
            if passing is not None:
                return passing
        elif names is not None:
            attrs = node.attr
            presence_only = self._presence_only.get(op)
            if presence_only is None:
                presence_only = self._presence_only[op] = frozenset(names) - _value_read(
                    c for _, screen in candidates for c in screen)
            values: list[bytes | None] = []
            for name in names:
                if name not in attrs:
                    values.append(None)  # its OpDef default, the same for every node of the op
                    continue
                if name in presence_only:
                    values.append(b"")  # set (what its value is, no screen reads)
                    continue
                value = attrs[name]
                kind = value.WhichOneof("value")
                if kind == "tensor" or (kind == "list" and len(value.list.tensor)):
                    break
                values.append(value.SerializeToString(deterministic=True))
            else:
                key = (op, tuple(values))
                passing = verdicts.get(key)
                if passing is not None:
                    return passing
        # Only attr conditions are in a screen: attr_value is all they read of a MatchContext.
        context = cast(MatchContext, _NodeAttrs(node, ops))
        passing = [rule for rule, screen in candidates if all(c.holds(context, _NodeAttrs.BINDING) for c in screen)]
        if key is not None:
            verdicts[key] = passing
        return passing

    def _find(self, key: tuple[str, str, str], tag: _Tag, finding: Finding) -> None:
        # A dict keeps a key where it was first inserted, with the value last set.
        first = self._findings.get(key)
        self._findings[key] = (first[0] if first is not None else tag, finding)

    def apply(self, position: int, scope: Scope) -> bool:
        """Run the rules on one scope (`position`: its place among all the scopes of the model);
        whether anything was applied or found there (then the scope must be serialized again)."""
        before = (len(self._applications), len(self._findings))
        strict, allow_lossy = self.strict, self.allow_lossy
        index = OpIndex(scope)  # one scan, kept current
        where = scope.where()
        # Nodes a rule would rewrite into ops the target lacks: refused once the fixpoint is
        # reached, if the node is still there (a later rule may rewrite it another way).
        unwritable: dict[str, tuple[_Tag, Rule, str, tuple[str, ...], frozenset[str]]] = {}
        for pass_number in range(MAX_PASSES):
            changed = False
            for rule_position, rule in _candidates(self._rewrites_by_op, index):
                missing = self._lacking.get(rule.id)
                if missing is None:  # the same target registry for every scope: asked once per rule
                    missing = self._lacking[rule.id] = _lacking_ops(rule, scope)
                if missing:
                    for events, binding in enumerate(Matcher(scope, index).matches(rule)):
                        name = binding[rule.root.name]
                        unwritable.setdefault(name, ((pass_number, rule_position, position, events), rule,
                                                     scope.node_def(name).op, missing, frozenset(binding.values())))
                    continue
                matcher = Matcher(scope, index)
                rewriter = Rewriter(scope, index, self.pictures)
                events = 0
                root_key, counted = rule.root.name, "counts" in rule.extra
                for binding in list(matcher.matches(rule)):
                    # An earlier application may have changed the graph: match again before rewriting.
                    fresh = matcher.bind(rule, binding[root_key])
                    if fresh != binding or not matcher.conditions_hold(rule, binding):
                        continue
                    root = scope.node_def(binding[root_key])
                    tag = (pass_number, rule_position, position, events)
                    events += 1
                    if rule.exactness == "narrowing" and strict:
                        self._find((rule.id, where, root.name), tag, Finding(
                            "narrowing", where, root.name, root.op,
                            f"rule {rule.id} rewrites this exactly wherever the output runs, but the output fails "
                            f"on {rule.fails_on} --strict refuses that; convert without --strict to accept it.",
                            rule=rule.id, since=str(rule.since),
                        ))
                        continue
                    if not rule.exact and rule.id not in allow_lossy:
                        self._find((rule.id, where, root.name), tag, Finding(
                            "lossy", where, root.name, root.op,
                            f"rule {rule.id} can rewrite this, but not exactly: {rule.description} "
                            f"Pass --allow-lossy {rule.id} to accept that.",
                            rule=rule.id, since=str(rule.since),
                        ))
                        continue
                    try:
                        # (a rule without match.counts is its own expansion: for_counts(rule, {}))
                        expanded = rule_repeat.for_counts(rule, matcher.counts(rule, binding)) if counted else rule
                        application = rewriter.apply(expanded, binding)
                    except RuleApplicationError as error:
                        self._find((rule.id, where, root.name), tag, Finding(
                            "rule-error", where, root.name, root.op, str(error), rule=rule.id
                        ))
                        continue
                    if application is not None:
                        self._applications.append((tag, application))
                        changed = True
            if not changed:
                break
        else:
            raise RuleApplicationError(f"the rules still change the graph after {MAX_PASSES} passes: a rule undoes another")
        # The nodes of the subgraphs refused here: the rewrite would have replaced them all, so a
        # refusal rule's more general reason (a catch-all) would only mislead about them.
        covered: set[str] = set()
        for name, (tag, rule, op, missing, bound) in unwritable.items():
            if scope.has_node(name) and scope.node_def(name).op == op:
                covered |= bound
                root = scope.node_def(name)
                self._find((rule.id, where, name), tag, Finding(
                    "refused", where, name, root.op, self._lacks_message(rule, missing), rule=rule.id,
                    since=str(rule.since),
                ))
        for rule_position, rule in _candidates(self._refusals_by_op, index):
            for events, binding in enumerate(Matcher(scope, index).matches(rule)):
                if binding[rule.root.name] in covered:
                    continue  # refused above, for the reason that is specific to it
                root = scope.node_def(binding[rule.root.name])
                assert rule.refuse is not None
                self._find((rule.id, where, root.name), (MAX_PASSES, rule_position, position, events), Finding(
                    "refused", where, root.name, root.op, rule.refuse, rule=rule.id, since=str(rule.since)
                ))
        return (len(self._applications), len(self._findings)) != before

    def _lacks_message(self, rule: Rule, missing: tuple[str, ...]) -> str:
        firsts = [first_release_with_op(op) for op in missing]
        known = [release for release in firsts if release is not None]
        ops = " and ".join(missing)
        message = (f"rule {rule.id} would rewrite this exactly into {ops}, but TensorFlow {self.target} lacks it, "
                   f"and no rule has an exact form of it for {self.target}.")
        if len(known) == len(firsts):
            message += f" Target TensorFlow {max(known)} or newer."
        return message

    def outcome(self) -> RuleOutcome:
        applications = [app for _, app in sorted(self._applications, key=lambda item: item[0])]
        findings = [finding for _, finding in sorted(self._findings.values(), key=lambda item: item[0])]
        return RuleOutcome(applications, findings)


def _lacking_ops(rule: Rule, scope: Scope) -> tuple[str, ...]:
    """The ops a rewrite rule writes that the scope's target lacks."""
    assert rule.rewrite is not None and scope.ops is not None
    target_op = scope.ops.target_op
    return tuple(op for op in rule.rewrite.written_ops if target_op(op) is None)


def _by_root_op(rules: list[Rule]) -> dict[str, list[tuple[int, Rule]]]:
    by_op: dict[str, list[tuple[int, Rule]]] = {}
    for position, rule in enumerate(rules):
        for op in rule.root.ops:
            by_op.setdefault(op, []).append((position, rule))
    return by_op


def _candidates(by_op: dict[str, list[tuple[int, Rule]]], index: OpIndex) -> Iterator[tuple[int, Rule]]:
    """In rule order, the rules whose root op the scope has a node of when the pass reaches them
    (without one a rule cannot match). A rule that adds nodes may make later rules candidates
    in the same pass: the list is drawn again after it."""
    last = -1
    while True:
        additions = index.additions
        pending: dict[int, Rule] = {}
        for op, names in index.by_op.items():
            if names:
                for position, rule in by_op.get(op, ()):
                    if position > last:
                        pending[position] = rule
        for position in sorted(pending):
            yield position, pending[position]
            last = position
            if index.additions != additions:
                break
        else:
            return


def _value_read(conditions: Iterable[Condition]) -> set[str]:
    """The attrs whose values any of `conditions` reads: their attr_refs but those tested for presence only."""
    found: set[str] = set()
    for condition in conditions:
        refs, presence = condition.attr_refs() or (), condition.presence_refs()
        found.update(ref.attr for ref in ((Counter(refs) - Counter(presence)).elements() if presence else refs))
    return found


class _NodeAttrs:
    """The MatchContext of conditions on one NodeDef's own attrs (RuleRun.may_match)."""

    BINDING: dict[str, str] = {}

    def __init__(self, node: NodeDef, ops: OpSignatures | None) -> None:
        self.node, self.ops = node, ops
        self._read: dict[tuple[str, int | None], tuple[bool, Any]] = {}  # the rules on one op read the same attrs

    def attr_value(self, binding: dict[str, str], ref: AttrRef) -> tuple[bool, Any]:
        key = (ref.attr, ref.element)
        found = self._read.get(key)
        if found is None:
            found = self._read[key] = node_attr_plain(
                self.node, self.ops, ref.attr if ref.element is None else f"{ref.attr}[{ref.element}]")
        return found

    def attr_present(self, binding: dict[str, str], ref: AttrRef) -> bool:
        return ref.attr in self.node.attr


def _permuted(rule: Rule, value: Any, order: list[int]) -> Any:
    """A list attr with its elements reordered: element i is element order[i] (a layout change,
    e.g. NCHW ksize [1, 1, kh, kw] to NHWC [1, kh, kw, 1] with [0, 2, 3, 1]). A list of k elements
    per dimension moves in groups of k (explicit_paddings' before/after pair of each dimension);
    an empty list is the same in every layout."""
    if value.WhichOneof("value") != "list":
        raise RuleApplicationError(f"rule {rule.id}: permute needs a list attr")
    for kind in ("i", "f", "s", "type", "b"):
        items = list(getattr(value.list, kind))
        if items:
            group, rest = divmod(len(items), len(order))
            if rest or not group:
                raise RuleApplicationError(f"rule {rule.id}: cannot permute {len(items)} elements by {order}")
            out = attr_values.AttrValue()
            getattr(out.list, kind).extend(items[j * group + k] for j in order for k in range(group))
            return out
    return value


def _element(rule: Rule, value: Any, element: str) -> Any:
    """VALUE itself, or its element k when a copy names n.attr[k] (element is "k]")."""
    if not element:
        return value
    index = int(element.rstrip("]"))
    for field_name in ("type", "i", "f", "b", "s", "shape", "tensor", "func"):
        items = getattr(value.list, field_name)
        if len(items):
            if index >= len(items):
                raise RuleApplicationError(f"rule {rule.id}: the list attr has no element {index}")
            picked = attr_values.AttrValue()
            if field_name in ("shape", "tensor", "func"):
                getattr(picked, field_name).CopyFrom(items[index])
            else:
                setattr(picked, field_name, items[index])
            return picked
    raise RuleApplicationError(f"rule {rule.id}: the attr is not a list with element {index}")
