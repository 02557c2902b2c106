"""A rule's witnesses as data: what the candidate index (``index.py``) and the compiled-ruleset cache read.

Why apart from ``witness.py``, which derives them from a rule's condition with pySigma: a ruleset restored
from the cache runs without importing pySigma (and pyparsing under it, ~80 ms of a start). ``witness.py``
re-exports these names.
"""

from __future__ import annotations

from typing import Any, NamedTuple

#: UTF-8 bytes. A one-byte needle gates nearly every value: presence instead. Two bytes is kept: a rule
#: whose ``contains`` list holds ``^^`` or ``;;`` would otherwise be a presence candidate, evaluated on every
#: event with the field, and a needle hit (one scan callback, memoised for repeated values) is cheaper than
#: a rule evaluation; under ``AND`` the scoring still prefers any longer needle.
MIN_NEEDLE = 2


def needle_long_enough(needle: str) -> bool:
    """Two ASCII characters; any non-ASCII character (a homoglyph, an emoji) is rare enough on its own."""
    if needle.isascii():
        return len(needle) >= MIN_NEEDLE
    return len(needle.encode("utf-8", "surrogatepass")) >= 2


class Witness(NamedTuple):
    """One necessary condition of a rule. A named tuple rather than a frozen dataclass: the same fields, repr,
    equality and hash (a tuple's, as the dataclass computed it), but built and hashed in C, and a corpus load
    builds and hashes ~90,000 of them into clause sets."""

    kind: str  # exact | number | substring | keyword | presence
    field: str | None
    value: Any = None

    @property
    def score(self) -> float:
        """Lower is more selective: longer literals first (rsigma's ranking refined by length), common
        Windows path fragments last. Only used to pick one conjunct under AND, so it never affects soundness."""
        if self.kind == "presence":
            return 4.0
        if self.kind == "number":
            return 1.5
        length = min(len(self.value), 16) / 10
        base = _BASE_SCORES[self.kind] - length
        return base + (1.5 if self.value in COMMON_NEEDLES else 0.0)


_BASE_SCORES = {"exact": 2.0, "substring": 2.5, "keyword": 3.0}


# Fragments present in most Windows events: a poor gate when the rule offers anything else.
COMMON_NEEDLES = frozenset({
    ".exe", ".dll", "exe", "c:\\", "\\windows\\", "c:\\windows\\", "c:\\windows\\system32\\", "\\system32\\",
    "c:\\windows\\syswow64\\", "\\syswow64\\", "c:\\program files", "c:\\program files (x86)", "c:\\users\\",
    "\\appdata\\", "\\appdata\\local\\", "\\appdata\\roaming\\", "\\temp\\", "windows", "system32", "microsoft",
    "http", "https://", "http://", "powershell", "\\cmd.exe", "cmd.exe", "\\powershell.exe", "powershell.exe",
    "high", "system", "medium", "true", "false", "nt authority\\system",
})


Clause = frozenset[Witness]  # one necessary condition: at least one of its witnesses holds
Witnesses = tuple[Clause, ...] | None  # every clause holds on every matching event (None = open, no witness)


def flat_witnesses(witnesses: Witnesses) -> frozenset[Witness] | None:
    """Every witness of every clause (the rule-health and explain views)."""
    return None if witnesses is None else frozenset(w for clause in witnesses for w in clause)


def witnesses_to_plain(witnesses: Witnesses) -> Any:
    """Tuples of (kind, field, value) per clause, for the compiled-ruleset cache."""
    if witnesses is None:
        return None
    return tuple(tuple((w.kind, w.field, w.value) for w in clause) for clause in witnesses)


def witnesses_from_plain(plain: Any) -> Witnesses:
    if plain is None:
        return None
    return tuple(frozenset(Witness(k, f, v) for k, f, v in clause) for clause in plain)
