"""Compiles one processed Sigma rule into one generated Python function ``match(e, c) -> bool``.

Why generated code: a short-circuiting ``and``/``or`` expression over locals is 2-4x cheaper than walking a
tree of closures (docs/engine.md). Every literal enters the source through ``repr()``; compiled objects
(regexes, frozensets, networks) enter through the function's namespace, never through string formatting.

``e`` is the flat event, ``c`` its :class:`~detections.sigma.values.EventFolds` (folded values and keyword
values, computed once per event and shared by all candidate rules). Value semantics are in
:mod:`detections.sigma.values`.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

import ahocorasick

try:
    import re2
except ImportError:  # optional guard: without it every regex uses Python's engine
    re2 = None
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.rule import SigmaDetection, SigmaRule
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
)

from temporal_siem.detections.sigma.runtime import RUNTIME as RUNTIME
from temporal_siem.detections.sigma.runtime import LazyMatch as LazyMatch
from temporal_siem.detections.sigma.runtime import LinearRegex, WildcardSet
from temporal_siem.detections.sigma.runtime import Wildcard as Wildcard

_COMPARE_OPS = {
    CompareOperators.LT: "lt",
    CompareOperators.LTE: "lte",
    CompareOperators.GT: "gt",
    CompareOperators.GTE: "gte",
    CompareOperators.NEQ: "neq",
}
_REGEX_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: re.IGNORECASE,
    SigmaRegularExpressionFlag.MULTILINE: re.MULTILINE,
    SigmaRegularExpressionFlag.DOTALL: re.DOTALL,
}


#: Longest ``|re`` pattern a rule may hold (a load error beyond): RE2 and Python compile time grows with it.
MAX_REGEX_LENGTH = 10_000
#: A counted repeat up to this bound keeps a pattern "bounded" (Python's engine runs it in O(value x pattern)).
MAX_BOUNDED_REPEAT = 100


def guarded_regex(pattern: str, flags: int) -> Any:
    """A regex that runs in time linear in the value, or a :class:`RuleCompileError` that says why not.

    Python's ``re`` backtracks: ``(a+)+$`` is exponential, ``a+a+a+a+a+c`` polynomial and even ``\\w+@`` is
    quadratic on a long run of word characters. So Python's engine only runs *bounded* patterns (no ``*``,
    ``+`` or ``{n,}`` and counted repeats up to ``MAX_BOUNDED_REPEAT``: O(value x pattern)); every other
    pattern runs on RE2 (linear time). A pattern that is unbounded and needs what RE2 lacks (lookaround,
    backreferences, repeats over 1,000) is refused at load: no rule may stall the stream.
    """
    if len(pattern) > MAX_REGEX_LENGTH:
        raise RuleCompileError(f"regex of {len(pattern)} characters is longer than the limit of {MAX_REGEX_LENGTH}")
    try:
        compiled = re.compile(pattern, flags)
    except (re.error, RecursionError, OverflowError) as exc:
        raise RuleCompileError(f"invalid regex {_excerpt(pattern)}: {exc}") from exc
    if bounded_regex(pattern):
        return compiled
    if re2 is None:
        raise RuleCompileError(f"regex {_excerpt(pattern)} repeats without bound and RE2 (google-re2) is not installed")
    inline = "".join(f for f, bit in (("i", re.IGNORECASE), ("m", re.MULTILINE), ("s", re.DOTALL)) if flags & bit)
    try:
        translated = unicode_classes_for_re2(pattern, end_anchors=_end_anchors(pattern, flags))
        return LinearRegex(f"(?{inline}){translated}" if inline else translated)
    except Exception as exc:  # RE2 rejects the syntax
        reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise RuleCompileError(
            f"regex {_excerpt(pattern)} can take super-linear time on a long value (it repeats without bound) and "
            f"RE2, the linear-time engine, cannot run it ({reason}); rewrite it without lookaround/backreferences "
            f"or with repeats bounded to {MAX_BOUNDED_REPEAT}") from exc


#: Python's ``\\s`` on text: every character ``str.isspace()`` holds for (RE2's ``\\s`` is ``[\\t\\n\\f\\r ]``).
_PY_SPACE = "\\t\\n\\x0b\\f\\r\\x1c-\\x1f \\x85\\xa0\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"
#: Shorthand classes as Python's ``re`` means them on text (Unicode), spelled for RE2 (whose own are ASCII).
_RE2_OUTSIDE = {"d": "\\p{Nd}", "D": "\\P{Nd}", "w": "[\\p{L}\\p{N}_]", "W": "[^\\p{L}\\p{N}_]",
                "s": f"[{_PY_SPACE}]", "S": f"[^{_PY_SPACE}]"}
_RE2_INSIDE = {"d": "\\p{Nd}", "D": "\\P{Nd}", "w": "\\p{L}\\p{N}_", "s": _PY_SPACE}


#: Python's ``$`` without MULTILINE matches at the end and before a newline that ends the text; RE2's only at the
#: end. As a boolean search, "then an optional newline, then the very end" is the same test.
_PY_END = "(?:\\n?\\z)"


def _end_anchors(pattern: str, flags: int) -> bool:
    """Whether every ``$`` of ``pattern`` is Python's end-of-text ``$`` (no MULTILINE anywhere, no verbose mode,
    where a ``$`` may sit in a comment): then :func:`unicode_classes_for_re2` may rewrite them all."""
    if flags & (re.MULTILINE | re.VERBOSE) or "$" not in pattern:
        return False
    try:
        tree = re._parser.parse(pattern, flags)  # type: ignore[attr-defined]
    except (re.error, RecursionError, OverflowError):
        return False
    if tree.state.flags & (re.MULTILINE | re.VERBOSE):  # an inline (?m) or (?x)
        return False
    constants = re._constants  # type: ignore[attr-defined]
    found: set[Any] = set()

    def walk(items: Any) -> None:
        for op, arg in items:
            if op is constants.AT:
                found.add(arg)
            elif isinstance(arg, (list, tuple)):
                for part in arg:
                    if isinstance(part, re._parser.SubPattern):  # type: ignore[attr-defined]
                        walk(part)
                    elif isinstance(part, (list, tuple)):
                        for inner in part:
                            if isinstance(inner, re._parser.SubPattern):  # type: ignore[attr-defined]
                                walk(inner)
            elif isinstance(arg, re._parser.SubPattern):  # type: ignore[attr-defined]
                walk(arg)

    walk(tree)
    return constants.AT_END_LINE not in found  # a scoped (?m:...) $ would be rewritten too: leave them all


def unicode_classes_for_re2(pattern: str, end_anchors: bool = False) -> str:
    """``pattern`` with ``\\d \\w \\s`` (and their negations) meaning what they mean to Python's ``re``, and with
    ``\\Z`` spelled ``\\z`` (RE2 has no ``\\Z``); with ``end_anchors`` (see :func:`_end_anchors`) each ``$`` is
    Python's end-of-text ``$`` too (:data:`_PY_END`): ``a+$`` matches ``"aa\\n"`` in Python and did not in RE2.

    Bounded patterns run on Python's engine, the others on RE2 (:func:`guarded_regex`), and one rule must not
    change meaning with its repeats: ``\\d`` matches U+0660 (ARABIC-INDIC DIGIT ZERO) in Python and did not in RE2.
    Inside a character class ``\\W`` and ``\\S`` (a complement inside a union) have no RE2 spelling and stay
    ASCII; ``\\b``/``\\B`` stay RE2's ASCII word boundary (no lookaround there): both are documented limits. So is
    a ``$`` followed by something that must match the final newline itself (``$\\n``): RE2 cannot look ahead.
    """
    if "\\" not in pattern and not end_anchors:
        return pattern
    out: list[str] = []
    i, n, depth = 0, len(pattern), 0  # depth: inside a character class
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if nxt == "Z" and not depth:
                out.append("\\z")
            else:
                table = _RE2_INSIDE if depth else _RE2_OUTSIDE
                out.append(table.get(nxt, ch + nxt))
            i += 2
            continue
        if ch == "$" and end_anchors and not depth:
            out.append(_PY_END)
            i += 1
            continue
        if ch == "[" and not depth:
            depth = 1
            out.append(ch)
            i += 1
            # a ']' right after '[' or '[^' is a literal member, not the end of the class
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":
                out.append("]")
                i += 1
            continue
        if ch == "]" and depth:
            depth = 0
        out.append(ch)
        i += 1
    return "".join(out)


def _excerpt(pattern: str) -> str:
    return repr(pattern if len(pattern) <= 80 else pattern[:77] + "...")


def bounded_regex(pattern: str) -> bool:
    """True if the pattern has no unbounded repeat and no counted repeat above ``MAX_BOUNDED_REPEAT``."""
    try:
        tree = re._parser.parse(pattern)  # type: ignore[attr-defined]
    except (re.error, RecursionError, OverflowError):
        return False
    constants = re._constants  # type: ignore[attr-defined]
    repeats = {constants.MAX_REPEAT, constants.MIN_REPEAT}
    repeats.update(getattr(constants, name) for name in ("POSSESSIVE_REPEAT",) if hasattr(constants, name))

    def walk(items: Any) -> bool:
        for op, arg in items:
            if op in repeats:
                _low, high, sub = arg
                if high > MAX_BOUNDED_REPEAT or not walk(sub):
                    return False
            elif op is constants.SUBPATTERN:
                if not walk(arg[-1]):
                    return False
            elif op is constants.BRANCH:
                if not all(walk(branch) for branch in arg[1]):
                    return False
            elif op in (constants.ASSERT, constants.ASSERT_NOT):
                if not walk(arg[1]):
                    return False
            elif getattr(constants, "ATOMIC_GROUP", None) is op and not walk(arg):
                return False
        return True

    try:
        return walk(tree)
    except RecursionError:
        return False


def regex_prefilter(pattern: str, flags: int) -> str | None:
    """A folded literal that every match of the regex contains, for a cheap ``in`` test on the folded value.

    Only a single required literal qualifies. With case-insensitive matching a literal holding ``s`` is not
    used: ``re.IGNORECASE`` also matches U+017F (long s), which ``str.lower()`` does not turn into ``s``.
    """
    from temporal_siem.detections.sigma.witness import regex_literals

    needles = regex_literals(pattern, min_bytes=1)
    if not needles or len(needles) != 1:
        return None
    needle = next(iter(needles))
    insensitive = bool(flags & re.IGNORECASE) or "(?" in pattern
    if not needle.isascii() or (insensitive and "s" in needle):
        return None
    return needle


class RuleCompileError(Exception):
    """A rule uses something the engine cannot evaluate (the message says what)."""


#: Size limits of one rule (a load error beyond): the largest SigmaHQ rule has 4,432 values, 228 KB of
#: literals and 19 regexes; a rule with 100k |re values took 1.9 GB and 27 s to load (issue 15).
MAX_RULE_VALUES = 20_000
MAX_RULE_REGEXES = 1_000
MAX_RULE_TEXT_CHARS = 2_000_000


def check_rule_size(rule: SigmaRule) -> None:
    """Refuse a rule past the size limits before any pipeline or compile work is spent on it."""
    values = regexes = chars = 0
    stack: list[Any] = list(rule.detection.detections.values())
    while stack:
        item = stack.pop()
        if isinstance(item, SigmaDetection):
            stack.extend(item.detection_items)
            continue
        for value in item.value:
            values += 1
            if isinstance(value, SigmaRegularExpression):
                regexes += 1
                chars += len(str(value.regexp))
            elif isinstance(value, SigmaString):
                chars += len(value.original or "")
    for count, limit, what in ((values, MAX_RULE_VALUES, "values"), (regexes, MAX_RULE_REGEXES, "regular expressions"),
                               (chars, MAX_RULE_TEXT_CHARS, "characters of values")):
        if count > limit:
            raise RuleCompileError(f"rule too large: {count} {what} (limit {limit})")


@dataclass(slots=True)
class StringTest:
    """One Sigma string reduced to the cheapest str operation (on folded text unless cased)."""

    kind: str  # eq | startswith | endswith | contains | any | wildcard | never
    literal: Any  # str; for wildcard a tuple of segments (see Wildcard)


def string_test(value: SigmaString, cased: bool) -> StringTest:
    """Hayabusa-style rewrite: ``*x*`` -> contains, ``x*`` -> startswith, ``*x`` -> endswith, else a
    :class:`Wildcard` (linear time; never a backtracking regex)."""
    # The common shapes first (checked in one look each; none can hold a placeholder), then the general order.
    parts = value.s
    star = SpecialChars.WILDCARD_MULTI
    count = len(parts)
    if count == 3 and parts[0] is star and parts[2] is star and isinstance(parts[1], str):
        return StringTest("contains", parts[1] if cased else parts[1].lower())
    if count == 2:
        first, last = parts
        if last is star and isinstance(first, str):
            return StringTest("startswith", first if cased else first.lower())
        if first is star and isinstance(last, str):
            return StringTest("endswith", last if cased else last.lower())
    if all(isinstance(p, str) for p in parts):
        text = "".join(parts)  # type: ignore[arg-type]
        return StringTest("eq", text if cased else text.lower())
    parts = list(parts)
    if any(isinstance(p, Placeholder) for p in parts):
        return StringTest("never", "")

    def norm(text: str) -> str:
        return text if cased else text.lower()

    if all(p is star for p in parts):
        return StringTest("any", "")
    segments: list[tuple[str | int, ...]] = [()]
    for part in parts:
        if isinstance(part, str):
            segments[-1] += (norm(part),)
        elif part is star:
            segments.append(())
        else:  # SpecialChars.WILDCARD_SINGLE: any one character
            segments[-1] += (1,)
    return StringTest("wildcard", tuple(segments))


def _unanchored(value: SigmaString) -> SigmaString:
    """Keywords are full-text search: the value may appear anywhere in a field (``*value*``)."""
    star = SpecialChars.WILDCARD_MULTI
    parts = list(value.s)
    if not parts or parts[0] is not star:
        parts.insert(0, star)
    if parts[-1] is not star:
        parts.append(star)
    wrapped = copy.copy(value)
    wrapped.s = parts
    return wrapped


AUTOMATON_THRESHOLD = 8  # an OR of this many |contains literals is one Aho-Corasick scan (rsigma's crossover)
_KIND_ORDER = {"eq": 0, "startswith": 1, "endswith": 2, "contains": 3, "wildcard": 4}


@dataclass
class CompiledSource:
    source: str
    namespace: dict[str, Any]
    fields: tuple[str, ...]
    warnings: list[str]
    keywords: tuple[tuple[str | None, bool], ...] = ()  # see CompiledRule.keywords


@dataclass
class _Context:
    fields: dict[str, int] = field(default_factory=dict)
    constants: dict[str, Any] = field(default_factory=dict)
    helpers: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    keywords: list[tuple[str | None, bool]] = field(default_factory=list)

    def field_slot(self, name: str) -> int:
        if name not in self.fields:
            self.fields[name] = len(self.fields)
        return self.fields[name]

    def constant(self, value: Any) -> str:
        name = f"_k{len(self.constants)}"
        self.constants[name] = value
        return name

    def helper(self, body_on_x: str) -> str:
        name = f"_t{len(self.helpers)}"
        self.helpers.append(f"def {name}(x):\n    return {body_on_x}\n")
        return name


class RuleCompiler:
    """Turns the condition tree of a processed rule into Python source, then into a function."""

    def compile_source(self, rule: SigmaRule, trees: list[Any] | None = None) -> CompiledSource:
        """``trees``: the rule's parsed conditions if the caller has them (pySigma re-parses on every access)."""
        ctx = _Context()
        branches = []
        if trees is None:
            trees = [condition.parsed for condition in rule.detection.parsed_condition]
        for tree in trees:
            expr, _ = self._node(tree, ctx)
            branches.append(expr)
        body = branches[0] if len(branches) == 1 else " or ".join(f"({b})" for b in branches)
        lines = ["def match(e, c):"]
        lines.append(f"    return bool({body})")
        source = "".join(ctx.helpers) + "\n".join(lines) + "\n"
        namespace = dict(RUNTIME)
        namespace.update(ctx.constants)
        return CompiledSource(source, namespace, tuple(ctx.fields), ctx.warnings, tuple(ctx.keywords))

    def build(self, compiled: CompiledSource, filename: str) -> Any:
        code = compile(compiled.source, filename, "exec")
        namespace = dict(compiled.namespace)
        exec(code, namespace)
        return namespace["match"]

    # ---- condition tree --------------------------------------------------------------------------------

    def _node(self, node: Any, ctx: _Context) -> tuple[str, int]:
        if node is None:
            return "True", 0
        if isinstance(node, ConditionNOT):
            inner, cost = self._node(node.args[0], ctx)
            return f"not ({inner})", cost
        if isinstance(node, ConditionAND | ConditionOR):
            is_and = isinstance(node, ConditionAND)
            args = [a for a in node.args if a is not None]
            if not args:
                return ("True" if is_and else "False"), 0
            parts = self._grouped(args, ctx) if not is_and else [self._node(a, ctx) for a in args]
            parts.sort(key=lambda p: p[1])
            joiner = " and " if is_and else " or "
            text = joiner.join(f"({p})" for p, _ in parts)
            return text, sum(c for _, c in parts)
        if isinstance(node, ConditionFieldEqualsValueExpression):
            return self._field_values(node.field, [node.value], ctx)
        if isinstance(node, ConditionValueExpression):
            return self._keyword_values([node.value], ctx)
        raise RuleCompileError(f"unsupported condition element {type(node).__name__}")

    def _grouped(self, args: list[Any], ctx: _Context) -> list[tuple[str, int]]:
        """OR children: plain string values on the same field collapse into one test (set / tuple calls)."""
        by_field: dict[tuple[str | None, bool], list[Any]] = {}
        out: list[tuple[str, int]] = []
        for arg in args:
            if isinstance(arg, ConditionFieldEqualsValueExpression) and type(arg.value) in (SigmaString, SigmaCasedString):
                by_field.setdefault((arg.field, isinstance(arg.value, SigmaCasedString)), []).append(arg.value)
            elif isinstance(arg, ConditionValueExpression) and type(arg.value) in (SigmaString, SigmaCasedString):
                by_field.setdefault((None, isinstance(arg.value, SigmaCasedString)), []).append(arg.value)
            else:
                out.append(self._node(arg, ctx))
        for (name, _cased), vals in by_field.items():
            out.append(self._field_values(name, vals, ctx) if name is not None else self._keyword_values(vals, ctx))
        return out

    # ---- values on a field -------------------------------------------------------------------------------

    def _field_values(self, name: str, vals: list[Any], ctx: _Context) -> tuple[str, int]:
        """OR over ``vals`` for field ``name``."""
        slot = ctx.field_slot(name)
        strings: dict[bool, list[SigmaString]] = {}
        parts: list[tuple[str, int]] = []
        for value in self._flatten_expansions(vals):
            if isinstance(value, SigmaString):
                strings.setdefault(isinstance(value, SigmaCasedString), []).append(value)
            else:
                parts.append(self._scalar(slot, name, value, ctx))
        for cased, group in strings.items():
            # fields are fetched where they are tested (walrus), so a failed earlier test skips the fetch;
            # folded text comes from the per-event memo ``c``, raw text straight from the event
            var = f"p{slot}" if cased else f"s{slot}"
            fetch = f"e.get({name!r})" if cased else f"c[{name!r}]"
            fallback = f"_plain({var})" if cased else var
            test, cost = self._string_group(group, cased, ctx, name)
            if test == "False":
                parts.append(("False", 0))
                continue
            helper = ctx.helper(test.replace("\x00", "x"))
            parts.append((f"({test.replace(chr(0), var)} if ({var} := {fetch}).__class__ is str else _any({helper}, {fallback}))", cost))
        if not parts:
            return "False", 0
        parts.sort(key=lambda p: p[1])
        if len(parts) == 1:
            return parts[0]
        return " or ".join(f"({p})" for p, _ in parts), sum(c for _, c in parts)

    def _keyword_values(self, vals: list[Any], ctx: _Context) -> tuple[str, int]:
        parts: list[tuple[str, int]] = []
        strings: dict[bool, list[SigmaString]] = {}
        for value in self._flatten_expansions(vals):
            if isinstance(value, SigmaString):
                cased = isinstance(value, SigmaCasedString)
                strings.setdefault(cased, []).append(value)
                literal = "".join(part for part in value.s if isinstance(part, str))
                ctx.keywords.append((literal if cased else literal.lower(), cased))
            elif isinstance(value, SigmaNumber) and not isinstance(value, SigmaTimestampPart):
                parts.append((f"_kwnum(e, {value.number!r})", 20))
                ctx.keywords.append((None, False))
            else:
                raise RuleCompileError(f"keyword of type {type(value).__name__} is not supported")
        for cased, group in strings.items():
            test, _ = self._string_group([_unanchored(v) for v in group], cased, ctx, "<keyword>")
            if test == "False":
                parts.append(("False", 0))
                continue
            helper = ctx.helper(test.replace("\x00", "x"))
            parts.append((f"_any({helper}, _kwv(e, c, {cased!r}))", 20))
        if not parts:
            return "False", 0
        return " or ".join(f"({p})" for p, _ in parts), sum(c for _, c in parts)

    @staticmethod
    def _flatten_expansions(vals: list[Any]) -> list[Any]:
        out: list[Any] = []
        for value in vals:
            if isinstance(value, SigmaExpansion):
                out.extend(RuleCompiler._flatten_expansions(list(value.values)))
            else:
                out.append(value)
        return out

    def _string_group(self, group: list[SigmaString], cased: bool, ctx: _Context, name: str) -> tuple[str, int]:
        """One expression over the placeholder char NUL (replaced by the variable name) for an OR of strings."""
        by_kind: dict[str, list[Any]] = {}
        for value in group:
            test = string_test(value, cased)
            if test.kind == "never":
                ctx.warnings.append(f"unresolved placeholder in {name}: {_as_written(value)!r} (define it as a pipeline variable)")
                continue
            if test.kind == "any":
                return "True", 0
            by_kind.setdefault(test.kind, []).append(test.literal)
        x = "\x00"
        out: list[str] = []
        cost = 0
        for kind in sorted(by_kind, key=_KIND_ORDER.__getitem__):
            literals = sorted(set(by_kind[kind]), key=lambda s: (len(s), repr(s)))
            if kind == "eq":
                if len(literals) == 1:
                    out.append(f"{x} == {literals[0]!r}")
                else:
                    out.append(f"{x} in {ctx.constant(frozenset(literals))}")
                cost += 1
            elif kind in ("startswith", "endswith"):
                arg = repr(literals[0]) if len(literals) == 1 else repr(tuple(literals))
                out.append(f"{x}.{kind}({arg})")
                cost += 2
            elif kind == "contains" and len(literals) >= AUTOMATON_THRESHOLD and "" not in literals:
                automaton = ahocorasick.Automaton()
                for literal in literals:
                    automaton.add_word(literal, None)
                automaton.make_automaton()
                out.append(f"next({ctx.constant(automaton)}.iter({x}), None) is not None")
                cost += 5
            elif kind == "contains":
                out.extend(f"{lit!r} in {x}" for lit in literals)
                cost += 2 + len(literals)
            else:
                out.append(f"{ctx.constant(WildcardSet(literals))}.fullmatch({x}) is not None")
                cost += 6
        if not out:
            return "False", 0
        return " or ".join(out), cost

    def _scalar(self, slot: int, name: str, value: Any, ctx: _Context) -> tuple[str, int]:
        v = f"e.get({name!r})"  # helpers take the raw value; inline tests bind it once with a walrus
        bound = f"(v{slot} := {v})"
        if isinstance(value, SigmaTimestampPart):
            return f"_tsp({v}, {value.timestamp_part.name.lower()!r}, {value.number!r})", 8
        if isinstance(value, SigmaNumber):
            n = value.number
            return f"(v{slot} == {n!r} if ({bound}.__class__ is int or v{slot}.__class__ is float) else _numeq(v{slot}, {n!r}))", 1
        if isinstance(value, SigmaBool):
            return f"_booleq({v}, {bool(value.boolean)!r})", 2
        if isinstance(value, SigmaNull):
            return f"_isnull({v})", 1
        if isinstance(value, SigmaExists):
            # Presence of the key, whatever its value: the spec's "exists, be it empty or null".
            return (f"{name!r} in e" if value.exists else f"{name!r} not in e"), 1
        if isinstance(value, SigmaRegularExpression):
            if value.contains_placeholder():
                ctx.warnings.append(f"unresolved placeholder in regex of {name}")
                return "False", 0
            flags = 0
            for flag in value.flags:
                flags |= _REGEX_FLAGS[flag]
            text = str(value.regexp)
            pattern = ctx.constant(guarded_regex(text, flags))
            search = f"{pattern}.search(v{slot}) is not None"
            needle = regex_prefilter(text, flags)
            if needle is not None:  # a literal every match contains: one `in` (~0.2 us) before the regex (1-5 us)
                search = f"{needle!r} in c[{name!r}] and {search}"
            return f"(({search}) if {bound}.__class__ is str else _re({pattern}, v{slot}))", 6
        if isinstance(value, SigmaCIDRExpression):
            return f"_cidr({v}, {ctx.constant(value.network)})", 5
        if isinstance(value, SigmaCompareExpression):
            return f"_cmp({v}, {_COMPARE_OPS[value.op]!r}, {value.number.number!r})", 2
        if isinstance(value, SigmaFieldReference):
            other = ctx.field_slot(value.field)
            mode = ("contains" if value.starts_with and value.ends_with else "startswith" if value.starts_with
                    else "endswith" if value.ends_with else "eq")
            if other == slot:  # the field against itself: the helper (one name cannot hold both sides)
                return f"_fref({v}, {v}, {mode!r})", 4
            # Two strings (nearly always) compared inline, as ``_fref`` would (~0.1 us where its call was ~0.35);
            # ``&`` (not ``and``) so both names are bound before either branch reads them.
            a, b = f"v{slot}", f"v{other}"
            test = {"eq": f"{a} == {b}", "startswith": f"{a}.startswith({b})", "endswith": f"{a}.endswith({b})",
                    "contains": f"{b} in {a}"}[mode]
            both = f"(({bound}.__class__ is str) & ((v{other} := e.get({value.field!r})).__class__ is str))"
            return f"(({test}) if {both} else _fref({a}, {b}, {mode!r}))", 2
        raise RuleCompileError(f"value type {type(value).__name__} on field {name!r} is not supported")


#: A rule's generated code is compiled on first use only when Python's own limits cannot reject it: condition
#: trees up to this depth (each level adds at most a few parentheses; CPython refuses 200 nested ones) and
#: sources up to this size. Deeper or larger rules are compiled at load, so their errors stay load errors.
LAZY_MAX_DEPTH = 16
LAZY_MAX_SOURCE = 200_000


def condition_depth(trees: list[Any], limit: int = LAZY_MAX_DEPTH) -> int:
    """Nesting depth of a rule's condition trees (AND/OR/NOT levels), counted up to just past ``limit``."""
    deepest = 0
    stack = [(tree, 1) for tree in trees]
    while stack:
        node, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                break
        cls = node.__class__
        boolean = _BOOLEAN_CLASSES.get(cls)
        if boolean is None:  # pySigma's condition classes are ABCs: isinstance() is slow, so once per class
            boolean = _BOOLEAN_CLASSES[cls] = issubclass(cls, (ConditionAND, ConditionOR, ConditionNOT))
        if boolean:
            stack.extend((arg, depth + 1) for arg in node.args)
    return deepest


_BOOLEAN_CLASSES: dict[type, bool] = {}


def _as_written(value: SigmaString) -> str:
    """A value's text for a message: its original, or, when a modifier rewrote it (pySigma then keeps no original),
    its parts as Sigma would write them (``*%admins%*`` for ``|contains|expand: '%admins%'``)."""
    if value.original:
        return str(value.original)
    special: dict[Any, str] = {SpecialChars.WILDCARD_MULTI: "*", SpecialChars.WILDCARD_SINGLE: "?"}
    return "".join(f"%{part.name}%" if isinstance(part, Placeholder) else special.get(part, str(part)) for part in value.s)
