"""What a compiled rule needs at run time, apart from pySigma: the helpers its generated code calls
(:data:`RUNTIME`), the matcher objects it may hold (:class:`LinearRegex`, :class:`WildcardSet`; the cache
pickles the latter by this module's name) and the lazily compiled match function (:class:`LazyMatch`).

Why a module of its own: a ruleset restored from the compiled-ruleset cache runs with these alone. The
compiler (``compiler.py``) and the witness analysis import pySigma, and pySigma imports pyparsing: ~80 ms of
every start that the cache otherwise saves (``tests/sigma/test_rule_cache.py`` checks that a warm start with no
correlation rule never imports it).
"""

from __future__ import annotations

import re
from typing import Any

try:
    import re2
except ImportError:  # optional guard: without it every regex uses Python's engine
    re2 = None

from temporal_siem.detections.sigma import values

RUNTIME: dict[str, Any] = {
    "_fold": values.fold,
    "_plain": values.plain,
    "_any": values.any_member,
    "_numeq": values.num_eq,
    "_booleq": values.bool_eq,
    "_isnull": values.is_null,
    "_cmp": values.compare,
    "_cidr": values.in_network,
    "_re": values.regex_search,
    "_fref": values.field_equals,
    "_tsp": values.timestamp_part,
    "_kwv": values.keyword_values,
    "_kwnum": values.keyword_numbers,
}


class LinearRegex:
    """An RE2 pattern with the one call rules make of a regex: ``search(text)``, true (not None) on a match.

    Why not RE2's own ``search``: google-re2's wrapper is Python around the C++ matcher. It turns the text into
    UTF-8 and back, runs a generator and builds a match object with every offset decoded: ~4.5 us for a match
    on a 100-character command line, ~1 us without one. Asking the C++ matcher directly whether there is a
    match costs ~1 us and ~0.6 us: the same answer, with the same UTF-8 encoding (a lone surrogate raises
    as it did, counted as a rule error by the detector). ``pattern`` is the RE2 pattern (the cache stores it).
    """

    __slots__ = ("_compiled", "_match", "pattern")

    def __init__(self, pattern: str) -> None:
        options = re2.Options()
        options.log_errors = False
        compiled = re2.compile(pattern, options)  # raises on a syntax RE2 does not have
        self._compiled = compiled
        # The C++ matcher is google-re2's internal API (``_regexp``, ``_Anchor``): should a release move it, every
        # search takes the wrapper's own path (slower, same answers).
        matcher = getattr(compiled, "_regexp", None)
        self._match = getattr(matcher, "Match", None) if _UNANCHORED is not None else None
        self.pattern = pattern

    def search(self, text: str) -> bool | None:
        match = self._match
        if match is None:
            return None if self._compiled.search(text) is None else True
        data = text.encode("utf-8")
        return True if match(_UNANCHORED, data, 0, len(data))[0] != _NO_SPAN else None

    def __reduce__(self) -> tuple[Any, ...]:
        return LinearRegex, (self.pattern,)


_UNANCHORED = getattr(getattr(re2, "_Anchor", None), "UNANCHORED", None)
_NO_SPAN = (-1, -1)



class LazyMatch:
    """A rule's ``match(e, c)`` whose ``compile()`` waits for its first call.

    Why: ``compile()`` is a sixth of a cold corpus load, and most rules of a large corpus never become a
    candidate in a given run. Code generation (which raises the rule's compile errors) stays eager; only
    rules whose source Python's limits cannot refuse are made lazy (:data:`LAZY_MAX_DEPTH`), so a rule that does
    not compile is still a load error. The first call compiles, then puts the real function in the owning
    ruleset's ``functions`` list (so later calls pay no indirection) and on the rule (``match``, ``module_code``).
    """

    __slots__ = ("filename", "function", "functions", "namespace", "rule", "source")

    def __init__(self, source: str, namespace: dict[str, Any], filename: str) -> None:
        self.source = source
        self.namespace = namespace
        self.filename = filename
        self.function: Any = None
        self.rule: Any = None  # the CompiledRule this is the match of, and the functions list that holds it
        self.functions: list[Any] | None = None

    def __call__(self, e: dict[str, Any], c: Any) -> bool:
        result: bool = self.materialize()(e, c)
        return result

    def materialize(self) -> Any:
        """The compiled function (compiled now if it was not yet). Idempotent; harmless if two threads race."""
        function = self.function
        if function is None:
            code = compile(self.source, self.filename, "exec")
            namespace = dict(self.namespace)
            exec(code, namespace)
            function = namespace["match"]
            self.function = function
            rule = self.rule
            if rule is not None:
                rule.match = function
                rule.module_code = code
                functions = self.functions
                if functions is not None and 0 <= rule.index < len(functions) and functions[rule.index] is self:
                    functions[rule.index] = function
        return function


class _Segment:
    """Text between two ``*``: literal pieces and single-character wildcards (``?``), of a fixed length."""

    __slots__ = ("length", "literal", "regex")

    def __init__(self, pieces: tuple[str | int, ...]) -> None:
        self.length = sum(len(p) if isinstance(p, str) else 1 for p in pieces)
        if all(isinstance(p, str) for p in pieces):
            self.literal: str | None = "".join(pieces)  # type: ignore[arg-type]
            self.regex: re.Pattern[str] | None = None
        else:  # no repetition in it: each try costs at most its length, so a search is O(value x segment)
            self.literal = None
            self.regex = re.compile("".join(re.escape(p) if isinstance(p, str) else "." for p in pieces), re.DOTALL)

    def at(self, text: str, position: int) -> bool:
        if self.literal is not None:
            return text.startswith(self.literal, position)
        assert self.regex is not None
        return self.regex.match(text, position, position + self.length) is not None

    def find(self, text: str, start: int, end: int) -> int:
        if self.literal is not None:
            return text.find(self.literal, start, end)
        assert self.regex is not None
        found = self.regex.search(text, start, end)
        return -1 if found is None else found.start()


class Wildcard:
    """One Sigma value with ``*`` / ``?`` inside, matched against the whole text without backtracking.

    The segments between stars are matched greedily leftmost, in order, after the first is anchored at the
    start and the last at the end: for glob patterns this finds a match whenever one exists, in time linear
    in the text (times the pattern's size), where ``re.fullmatch('.*a.*a...')`` was exponential.
    """

    __slots__ = ("minimum", "segments")

    def __init__(self, segments: tuple[tuple[str | int, ...], ...]) -> None:
        self.segments = [_Segment(s) for s in segments]
        self.minimum = sum(s.length for s in self.segments)

    def match(self, text: str) -> bool:
        segments = self.segments
        if len(text) < self.minimum:
            return False
        if len(segments) == 1:
            return len(text) == self.minimum and segments[0].at(text, 0)
        head, tail = segments[0], segments[-1]
        end = len(text) - tail.length
        if (head.length and not head.at(text, 0)) or (tail.length and not tail.at(text, end)):
            return False
        position = head.length
        for segment in segments[1:-1]:
            if segment.length:
                found = segment.find(text, position, end)
                if found < 0:
                    return False
                position = found + segment.length
        return position <= end


class WildcardSet:
    """An OR of :class:`Wildcard` values with the ``fullmatch`` interface the generated code calls."""

    __slots__ = ("wildcards",)

    def __init__(self, patterns: list[tuple[tuple[str | int, ...], ...]]) -> None:
        self.wildcards = [Wildcard(p) for p in patterns]

    def fullmatch(self, text: str) -> bool | None:
        for wildcard in self.wildcards:
            if wildcard.match(text):
                return True
        return None
