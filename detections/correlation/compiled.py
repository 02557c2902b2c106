"""A Sigma correlation rule compiled to plain data the streaming state reads on every event.

Compiling once keeps the hot path free of pySigma objects: rule references become bit positions,
aliases become one field tuple per referenced rule, the condition becomes a list of (operator,
threshold) bounds, and the evaluation mode (sliding or window-close) is decided here.
"""

from __future__ import annotations

import hashlib
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from temporal_siem.detections.alerts import RuleMeta

if TYPE_CHECKING:  # pySigma (and pyparsing under it) is imported where a rule is compiled, not with the engine:
    # a start from the compiled-ruleset cache with no correlation rule never needs it (~80 ms less per start)
    from sigma.correlations import CorrelationConditionItem, SigmaCorrelationRule, SigmaRuleReference

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
    "eq": operator.eq,
    "neq": operator.ne,
}
# Only lower bounds can be decided as soon as an event arrives; everything else waits for window close.
LOWER_BOUNDS = frozenset({"gt", "gte"})
# Key under `correlation:` where prepare_correlation_dict keeps a multi-operator (range) condition.
RANGE_KEY = "tsiem_condition"

COUNT_TYPES = frozenset({"event_count", "value_count", "temporal", "temporal_ordered", "value_sum"})
NUMERIC_TYPES = frozenset({"value_sum", "value_avg", "value_percentile", "value_median"})
CLOSE_ONLY_TYPES = frozenset({"value_avg", "value_percentile", "value_median"})


#: An extended correlation condition as data: ``("rule", i)`` (the ``i``-th referenced rule was seen),
#: ``("not", tree)``, ``("and", (tree, ...))``, ``("or", (tree, ...))``.
ConditionTree = tuple[Any, ...]


class CorrelationRuleError(ValueError):
    """A correlation rule this engine cannot evaluate (with the rule it came from)."""


def prepare_correlation_dict(document: dict[str, Any]) -> dict[str, Any]:
    """Make a range condition (``gt: 100`` + ``lte: 200``, as the spec allows) parseable by pySigma 1.5.1.

    pySigma accepts exactly one operator. The engine calls this on each YAML document before
    ``SigmaCollection``: the full mapping moves to ``correlation.tsiem_condition`` (kept by pySigma in
    ``custom_attributes``) and pySigma sees the first operator only. Other documents pass unchanged.
    """
    correlation = document.get("correlation")
    if not isinstance(correlation, dict):
        return document
    condition = correlation.get("condition")
    if not isinstance(condition, dict):
        return document
    ops = [key for key in condition if key in OPERATORS]
    if len(ops) <= 1:
        return document
    reduced = {key: value for key, value in condition.items() if key not in OPERATORS or key == ops[0]}
    return {**document, "correlation": {**correlation, "condition": reduced, RANGE_KEY: dict(condition)}}


@dataclass(frozen=True, slots=True)
class Bounds:
    """The metric condition: every (operator, threshold) must hold."""

    items: tuple[tuple[str, float], ...]

    @property
    def early(self) -> bool:
        return all(op in LOWER_BOUNDS for op, _ in self.items)

    def holds(self, value: float) -> bool:
        return all(OPERATORS[op](value, threshold) for op, threshold in self.items)

    def describe(self) -> str:
        return " and ".join(f"{op} {threshold:g}" for op, threshold in self.items)


@dataclass(frozen=True, slots=True)
class CompiledCorrelation:
    """Everything the state machine needs about one correlation rule."""

    rule_id: str
    name: str | None
    meta: RuleMeta
    kind: str
    refs: tuple[str, ...]  # rule references as written, in order (order matters for temporal_ordered)
    ref_keys: tuple[frozenset[str], ...]  # every string (reference, id, name) that identifies each referenced rule
    timespan_us: int
    group_by: tuple[str, ...]
    group_fields: tuple[tuple[str, ...], ...]  # per referenced rule: the event field for each group-by entry
    value_fields: tuple[tuple[str, ...], ...] | None  # per referenced rule: the condition field(s)
    bounds: Bounds
    percentile: float
    expression: Callable[[int], bool] | None  # extended temporal condition over a mask of present rules
    early: bool  # True: sliding window, fire on the completing event; False: fire at window close
    generate: bool
    fingerprint: str
    condition: ConditionTree | None = None  # ``expression`` as data (the ruleset cache stores this, not the function)

    @property
    def all_mask(self) -> int:
        return (1 << len(self.refs)) - 1

    def metric_holds(self, value: float, mask: int) -> bool:
        if self.expression is not None:
            return self.expression(mask)
        return self.bounds.holds(value)


def _identities(ref: SigmaRuleReference) -> frozenset[str]:
    keys = {ref.reference}
    rule = getattr(ref, "rule", None)
    if rule is not None:
        if getattr(rule, "id", None):
            keys.add(str(rule.id))
        if getattr(rule, "name", None):
            keys.add(str(rule.name))
    return frozenset(keys)


def _bounds(rule: SigmaCorrelationRule, where: str) -> Bounds:
    raw = rule.custom_attributes.get("correlation") if isinstance(rule.custom_attributes, Mapping) else None
    raw_condition = raw.get(RANGE_KEY) or raw.get("condition") if isinstance(raw, Mapping) else None
    items: list[tuple[str, float]] = []
    if isinstance(raw_condition, Mapping):
        for key, value in raw_condition.items():
            if key not in OPERATORS:
                continue
            try:
                threshold = float(value)
            except (TypeError, ValueError) as exc:
                raise CorrelationRuleError(f"{where}: condition {key}: {value!r} is not a number") from exc
            if not math.isfinite(threshold):
                raise CorrelationRuleError(f"{where}: condition {key}: {value!r} is not finite")
            items.append((key, threshold))
    from sigma.correlations import SigmaCorrelationCondition

    if not items and isinstance(rule.condition, SigmaCorrelationCondition):
        items.append((rule.condition.op.name.lower(), float(rule.condition.count)))
    if not items:
        raise CorrelationRuleError(f"{where}: no condition")
    return Bounds(tuple(items))


def _condition_tree(node: CorrelationConditionItem | SigmaRuleReference, bit_of: Callable[[str], int],
                    where: str) -> tuple[ConditionTree, bool]:
    """The extended condition as data (:data:`ConditionTree`), and whether it uses ``not``."""
    from sigma.correlations import (
        CorrelationConditionAND,
        CorrelationConditionNOT,
        CorrelationConditionOR,
        SigmaRuleReference,
    )

    if isinstance(node, SigmaRuleReference):
        return ("rule", bit_of(node.reference)), False
    parts = [_condition_tree(arg, bit_of, where) for arg in node.args]
    negates = any(neg for _, neg in parts)
    trees = tuple(tree for tree, _ in parts)
    if isinstance(node, CorrelationConditionNOT):
        return ("not", trees[0]), True
    if isinstance(node, CorrelationConditionAND):
        return ("and", trees), negates
    if isinstance(node, CorrelationConditionOR):
        return ("or", trees), negates
    raise CorrelationRuleError(f"{where}: unsupported condition node {type(node).__name__}")


def condition_predicate(tree: ConditionTree) -> Callable[[int], bool]:
    """A condition tree as a predicate over the mask of rules present (bit ``i``: the ``i``-th rule was seen)."""
    kind = tree[0]
    if kind == "rule":
        bit = 1 << tree[1]
        return lambda mask: bool(mask & bit)
    if kind == "not":
        inner = condition_predicate(tree[1])
        return lambda mask: not inner(mask)
    funcs = [condition_predicate(part) for part in tree[1]]
    if kind == "and":
        return lambda mask: all(func(mask) for func in funcs)
    if kind == "or":
        return lambda mask: any(func(mask) for func in funcs)
    raise CorrelationRuleError(f"unknown condition node {kind!r}")


def compile_rule(rule: SigmaCorrelationRule, meta: RuleMeta | None) -> CompiledCorrelation:
    from sigma.correlations import SigmaCorrelationCondition, SigmaExtendedCorrelationCondition, SigmaRuleReference

    rule_id = str(rule.id) if rule.id else (rule.name or rule.title)
    where = f"correlation rule {rule_id!r} ({rule.title})"
    if rule.type is None:
        raise CorrelationRuleError(f"{where}: no correlation type")
    kind = rule.type.name.lower()
    references = list(rule.referenced_rules or rule.rules or [])
    if not references and isinstance(rule.condition, SigmaExtendedCorrelationCondition):
        references = [SigmaRuleReference(name) for name in rule.condition.get_referenced_rules()]
    if not references:
        raise CorrelationRuleError(f"{where}: references no rules")
    if len(references) > 60:
        raise CorrelationRuleError(f"{where}: references {len(references)} rules (at most 60)")
    refs = tuple(ref.reference for ref in references)
    ref_keys = tuple(_identities(ref) for ref in references)

    def bit_of(reference: str) -> int:
        for index, keys in enumerate(ref_keys):
            if reference in keys:
                return index
        raise CorrelationRuleError(f"{where}: condition names {reference!r}, which is not among its rules")

    def field_for(name: str, index: int) -> str:
        alias = rule.aliases.aliases.get(name) if rule.aliases else None
        if alias is None:
            return name
        for alias_ref, field_name in alias.mapping.items():
            if alias_ref.reference in ref_keys[index] or _identities(alias_ref) & ref_keys[index]:
                return field_name
        return name

    group_by = tuple(rule.group_by or ())
    group_fields = tuple(tuple(field_for(name, index) for name in group_by) for index in range(len(refs)))

    expression: Callable[[int], bool] | None = None
    condition: ConditionTree | None = None
    negates = False
    if isinstance(rule.condition, SigmaExtendedCorrelationCondition):
        condition, negates = _condition_tree(rule.condition.parsed, bit_of, where)
        expression = condition_predicate(condition)
        bounds = Bounds((("gte", 1.0),))
    else:
        bounds = _bounds(rule, where)

    value_fields: tuple[tuple[str, ...], ...] | None = None
    percentile = 50.0
    if kind in {"value_count", *NUMERIC_TYPES}:
        fieldref = rule.condition.fieldref if isinstance(rule.condition, SigmaCorrelationCondition) else None
        if not fieldref:
            raise CorrelationRuleError(f"{where}: {kind} needs condition.field")
        names = [fieldref] if isinstance(fieldref, str) else [str(name) for name in fieldref]
        value_fields = tuple(tuple(field_for(name, index) for name in names) for index in range(len(refs)))
        if kind in NUMERIC_TYPES and len(names) != 1:
            raise CorrelationRuleError(f"{where}: {kind} takes exactly one field")
        if isinstance(rule.condition, SigmaCorrelationCondition) and rule.condition.percentile is not None:
            percentile = float(rule.condition.percentile)
            if not 0 <= percentile <= 100:
                raise CorrelationRuleError(f"{where}: percentile {percentile:g} is outside 0..100")

    if kind in CLOSE_ONLY_TYPES:
        early = False
    elif expression is not None:
        early = not negates
    else:
        early = bounds.early
    if meta is None:
        level = rule.level.name.lower() if rule.level is not None else "medium"
        meta = RuleMeta(id=rule_id, title=rule.title or rule_id, level=level)
    rule_id = meta.id
    fingerprint_text = repr((kind, refs, rule.timespan.seconds, group_by, group_fields, value_fields, bounds.items,
                             percentile, getattr(rule.condition, "expression", None)))
    return CompiledCorrelation(
        rule_id=rule_id, name=rule.name, meta=meta, kind=kind, refs=refs, ref_keys=ref_keys,
        timespan_us=int(rule.timespan.seconds) * 1_000_000, group_by=group_by, group_fields=group_fields,
        value_fields=value_fields, bounds=bounds, percentile=percentile, expression=expression, early=early,
        generate=bool(rule.generate), fingerprint=hashlib.sha256(fingerprint_text.encode()).hexdigest()[:16],
        condition=condition,
    )


def compile_correlations(rules: list[SigmaCorrelationRule], meta: Mapping[str, RuleMeta]) -> list[CompiledCorrelation]:
    """Each correlation rule compiled, with its metadata found by id, name or fallback identifier in ``meta``
    (the ruleset's ``correlation_meta``). Raises :class:`CorrelationRuleError` for a rule it cannot evaluate."""
    compiled = []
    for rule in rules:
        found = None
        for key in (str(rule.id) if rule.id else None, rule.name, fallback_identifier(rule)):
            if key and key in meta:
                found = meta[key]
                break
        compiled.append(compile_rule(rule, found))
    return compiled


def fallback_identifier(rule: SigmaCorrelationRule) -> str:
    """The id detections.sigma gives a rule with neither id nor name (keep in step with rule_identifier there)."""
    import uuid

    path = rule.source.path if rule.source is not None and rule.source.path is not None else ""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"sigma:{rule.title}:{path}"))
