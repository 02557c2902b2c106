"""Witness analysis: for each rule, a few clauses of necessary conditions, all of which hold on every event
it matches; a clause is an OR-set of witnesses (one of them holds).

rsigma's scheme (docs/engine.md, "Candidate selection") reduces a rule to one clause: ``OR`` unions its
children's sets (one open child opens all), ``AND`` keeps its single most selective child. Here ``AND`` keeps
the clauses of all its children (the best ``MAX_CLAUSES``), and ``OR`` pairs its children's clauses by rank,
so with several clauses the index admits ``Image|endswith: \\certutil.exe`` AND ``CommandLine|contains:
-decode`` only on an event with both, where one clause admits every certutil event. ``NOT``/``null``/
``exists: false`` are open. A rule whose whole condition is open has no witness and is evaluated on every
event of its lane.

Witnesses fold exactly like :mod:`detections.sigma.values` (``str.lower()``), so a needle found by the
index is found by the evaluator too; the index may only over-approximate.
"""

from __future__ import annotations

import re
import re._constants as sre_constants  # private: pinned to CPython 3.11+, see regex_literal
import re._parser as sre_parse
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.rule import SigmaRule
from sigma.types import (
    Placeholder,
    SigmaBool,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
)

from temporal_siem.detections.sigma.witness_types import COMMON_NEEDLES as COMMON_NEEDLES
from temporal_siem.detections.sigma.witness_types import MIN_NEEDLE as MIN_NEEDLE
from temporal_siem.detections.sigma.witness_types import Clause as Clause
from temporal_siem.detections.sigma.witness_types import Witness as Witness
from temporal_siem.detections.sigma.witness_types import Witnesses as Witnesses
from temporal_siem.detections.sigma.witness_types import flat_witnesses as flat_witnesses
from temporal_siem.detections.sigma.witness_types import needle_long_enough as _long_enough
from temporal_siem.detections.sigma.witness_types import witnesses_from_plain as witnesses_from_plain
from temporal_siem.detections.sigma.witness_types import witnesses_to_plain as witnesses_to_plain

#: Clauses kept per rule: the index admits a rule only when every kept clause has a hit. One clause is
#: rsigma's scheme and the shipped setting: measured on SigmaHQ (bench/engine_bench.py flat, peer_bench.py pc),
#: two or three clauses halve the candidates (16 -> 8.5 per process-creation event) but cost more than they
#: save, because every further needle hit on a command line is a Python scan callback and a token to
#: resolve (~0.3 us each, 15-40 per event), where a false candidate costs ~1 us. The gate logic stays (and
#: is tested with 3, tests/sigma/test_differential.py) for a cheaper token path.
MAX_CLAUSES = 1
#: A clause this weak (a presence, a common path fragment) hits nearly every event: kept only as the first.
WEAK_CLAUSE = 3.9


def rule_witnesses(rule: SigmaRule, trees: list[Any] | None = None) -> Witnesses:
    """The rule's clauses, most selective first. Several condition lines are alternatives (an OR)."""
    if trees is None:
        trees = [condition.parsed for condition in rule.detection.parsed_condition]
    branches: list[tuple[Clause, ...]] = []
    for tree in trees:
        branch = _node(tree)
        if branch is None:
            return None
        branches.append(branch)
    if not branches:
        return None
    gate = branches[0] if len(branches) == 1 else _either(branches)
    return _prune(gate)


def _set_score(ws: frozenset[Witness]) -> float:
    if not ws:
        return -1.0  # an empty clause never holds: the most selective of all
    return max(w.score for w in ws) + 0.01 * len(ws)


def _prune(clauses: tuple[Clause, ...]) -> tuple[Clause, ...]:
    """Most selective first; drop duplicates, clauses implied by a kept one (a superset), weak clauses after
    the first, and everything past ``MAX_CLAUSES``. Dropping a clause only admits more events: always sound."""
    if len(clauses) == 1:  # what the loop below keeps of one clause (most calls: a single value, a pruned child)
        return clauses
    kept: list[Clause] = []
    scored = sorted((_set_score(c), len(c), i, c) for i, c in enumerate(dict.fromkeys(clauses)))  # i: tree order breaks ties
    for score, _, _, clause in scored:
        if not clause:
            return (clause,)  # never holds: the rule can match nothing
        if kept and score >= WEAK_CLAUSE:
            continue
        if any(k <= clause for k in kept):
            continue
        kept.append(clause)
        if len(kept) == MAX_CLAUSES:
            break
    return tuple(kept)


def _either(children: list[tuple[Clause, ...]]) -> tuple[Clause, ...]:
    """OR of conjunctions of clauses: the union of one clause from each child holds whenever one child holds.
    Pairing the children's clauses by rank (best with best, second with second...) stays linear (no DNF/CNF
    expansion) and its first clause is exactly the one-clause scheme's union."""
    children = [_prune(c) for c in children]
    children = [c for c in children if c != (frozenset(),)]  # a child that can never hold adds nothing
    if not children:
        return (frozenset(),)
    width = max(len(c) for c in children)
    return tuple(frozenset().union(*(c[min(j, len(c) - 1)] for c in children)) for j in range(width))


_NOT, _OR, _AND, _FIELD, _KEYWORD, _OTHER = range(6)
_NODE_KINDS: dict[type, int] = {}


def _node_kind(cls: type) -> int:
    """Which condition element a class is, asked once per class (pySigma's are ABCs: isinstance() is slow)."""
    kinds = ((_NOT, ConditionNOT), (_OR, ConditionOR), (_AND, ConditionAND),
             (_FIELD, ConditionFieldEqualsValueExpression), (_KEYWORD, ConditionValueExpression))
    found = next((kind for kind, base in kinds if issubclass(cls, base)), _OTHER)
    _NODE_KINDS[cls] = found
    return found


def _node(node: Any) -> tuple[Clause, ...] | None:
    if node is None:
        return None
    kind = _NODE_KINDS.get(node.__class__)
    if kind is None:
        kind = _node_kind(node.__class__)
    if kind == _NOT:
        return None
    if kind == _OR:
        args = [a for a in node.args if a is not None]
        if not args:
            return (frozenset(),)  # OR of nothing never matches: no event needs evaluating
        children: list[tuple[Clause, ...]] = []
        for arg in args:
            child = _node(arg)
            if child is None:
                return None
            children.append(child)
        return _either(children) if len(children) > 1 else _prune(children[0])
    if kind == _AND:
        clauses: list[Clause] = []
        for item in node.args:
            if item is None:
                continue
            child = _node(item)
            if child is not None:
                clauses.extend(child)
        return _prune(tuple(clauses)) if clauses else None
    if kind == _FIELD:
        single = _value(node.field, node.value)
        return None if single is None else (single,)
    if kind == _KEYWORD:
        single = _value(None, node.value)
        return None if single is None else (single,)
    return None


def _presence(field: str | None) -> Clause | None:
    return frozenset({Witness("presence", field)}) if field is not None else None


def _value(field: str | None, value: Any) -> Clause | None:
    if isinstance(value, SigmaString):  # includes SigmaCasedString: folded, which over-approximates
        return _string(field, value) or _presence(field)
    presence = _presence(field)
    if isinstance(value, SigmaExpansion):
        union: set[Witness] = set()
        for member in value.values:
            child = _value(field, member)
            if child is None:
                return presence
            union |= child
        return frozenset(union)
    if isinstance(value, SigmaTimestampPart):
        return presence
    if isinstance(value, SigmaNumber):
        if field is None:
            return None
        return frozenset({Witness("number", field, value.number)})
    if isinstance(value, SigmaRegularExpression):
        if field is None or value.contains_placeholder():
            return presence
        needles = regex_literals(str(value.regexp), min_bytes=1)
        if needles:
            return frozenset(Witness("substring", field, n) for n in needles)
        return presence
    if isinstance(value, SigmaNull):
        return None
    if isinstance(value, SigmaExists):
        return presence if value.exists else None
    if isinstance(value, SigmaBool | SigmaCIDRExpression | SigmaCompareExpression | SigmaFieldReference):
        return presence
    return presence


def _string(field: str | None, value: SigmaString) -> frozenset[Witness] | None:
    parts = value.s
    runs = [p for p in parts if isinstance(p, str)]
    if len(runs) == len(parts):  # all text (so no placeholder)
        text = "".join(runs).lower()
        if field is None:
            return frozenset({Witness("keyword", None, text)}) if _long_enough(text) else None
        return frozenset({Witness("exact", field, text)})
    if any(isinstance(p, Placeholder) for p in parts):
        return None
    if not runs:
        return None
    longest = max(runs, key=len).lower()
    if not _long_enough(longest):
        return None
    if field is None:
        return frozenset({Witness("keyword", None, longest)})
    return frozenset({Witness("substring", field, longest)})


_ = SpecialChars  # re-exported for symmetry with the compiler


def regex_literals(pattern: str, min_bytes: int | None = None) -> frozenset[str] | None:
    """Folded literals of which every match of ``pattern`` contains at least one, or None.

    Walks the stdlib parse tree (``re._parser``, private, pinned to the running CPython 3.11+): a
    concatenation keeps its most selective part (a literal run, or the set of an inner group or
    alternation); an alternation needs a literal set from every branch (their union); a repetition counts
    only with a minimum of at least one. Anything else (classes, anchors inside runs, backreferences) ends
    a run. Lowercased: the index scans folded text, which over-approximates case-sensitive regexes.
    """
    try:
        tree = sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError):
        return None
    try:
        found = _required(list(tree))  # type: ignore[call-overload]
    except RecursionError:
        return None
    if not found:
        return None
    long_enough = _long_enough if min_bytes is None else (lambda n: len(n.encode("utf-8", "surrogatepass")) >= min_bytes)
    if not all(long_enough(n) for n in found):
        return None
    return frozenset(n.lower() for n in found)


def regex_literal(pattern: str, ignorecase: bool = False) -> str | None:
    """The longest single literal every match must contain (kept for callers wanting one needle)."""
    found = regex_literals(pattern)
    return max(found, key=len) if found and len(found) == 1 else None


def _quality(option: frozenset[str]) -> tuple[int, int]:
    return (min(len(n.encode("utf-8", "surrogatepass")) for n in option), -len(option))


def _required(items: list[Any]) -> frozenset[str] | None:
    options: list[frozenset[str]] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            options.append(frozenset({"".join(run)}))
            run.clear()

    for op, arg in items:
        if op is sre_constants.LITERAL:
            run.append(chr(arg))
            continue
        if op is sre_constants.AT:
            continue  # anchors consume nothing: the run stays contiguous
        flush()
        inner: frozenset[str] | None = None
        if op is sre_constants.SUBPATTERN:
            inner = _required(list(arg[-1]))
        elif op in _REPEATS:
            low, _high, sub = arg
            if low >= 1:
                inner = _required(list(sub))
        elif op is sre_constants.BRANCH:
            union: set[str] = set()
            for branch in arg[1]:
                alternative = _required(list(branch))
                if not alternative:
                    union = set()
                    break
                union |= alternative
            inner = frozenset(union) if union else None
        if inner:
            options.append(inner)
    flush()
    options = [o for o in options if all(o)]
    if not options:
        return None
    return max(options, key=_quality)


_REPEATS = tuple(op for op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT,
                               getattr(sre_constants, "POSSESSIVE_REPEAT", None)) if op is not None)
