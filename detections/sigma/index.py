"""The candidate index of one lane (the rules routed to one kind of event).

Per event it probes only the event's own keys that some rule of the lane needs: presence lists, a folded
exact-value dict, a numeric exact dict, and one Aho-Corasick scan over the ``\\x00``-joined folded values of
the substring fields (hits are attributed per needle, not per field: coarser, still sound). Keyword needles
scan every value of the event. Rules without a witness are always candidates. The result may only
over-approximate the rules that match; ``tests/sigma/test_differential.py`` checks it against a full scan.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import ahocorasick

try:
    import hyperscan
except ImportError:  # no wheel for this platform: Aho-Corasick does the same job, slower
    hyperscan = None  # type: ignore[assignment]

from temporal_siem.detections.sigma.values import fold, to_number
from temporal_siem.detections.sigma.witness import Witness

MEMO_SIZE = 4096  # distinct values remembered per field and lane
MEMO_WINDOW = 4096  # lookups between checks that a field's values repeat often enough to keep its memo


@dataclass(slots=True)
class FieldSlot:
    """What the lane knows about one event key. ``seen`` feeds the rule-health "missing fields" report."""

    presence: tuple[int, ...] = ()
    exact: dict[str, tuple[int, ...]] | None = None
    numbers: dict[int | float, tuple[int, ...]] | None = None
    scanned: bool = False
    seen: bool = False
    # Memo of what one string value of this field contributes (presence, exact, numeric and substring rules):
    # low-cardinality fields (Image, User, Channel...) repeat their values, so the fold, dict probes and scan
    # are done once per distinct value. Exact because needles never span two values (they hold no NUL), so a
    # value's hits are the same scanned alone or in the joined buffer. Turned off (None) for a field whose
    # values rarely repeat (command lines, hashes, times): those go to the one joined scan.
    memo: dict[str, tuple[int, ...]] | None = field(default_factory=dict)
    lookups: int = 0
    repeats: int = 0


@dataclass
class CandidateIndex:
    always: tuple[int, ...]
    fields: dict[str, FieldSlot]
    substrings: Any  # ahocorasick.Automaton | None
    keywords: Any  # ahocorasick.Automaton | None
    witness_kinds: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._slot_names = tuple(self.fields)
        self._slot_count = len(self._slot_names)

    @classmethod
    def build(cls, rules: list[tuple[int, frozenset[Witness] | None, tuple[str, ...]]]) -> CandidateIndex:
        """``rules``: (rule index, witnesses or None, fields the rule reads)."""
        always: list[int] = []
        presence: dict[str, set[int]] = {}
        exact: dict[str, dict[str, set[int]]] = {}
        numbers: dict[str, dict[int | float, set[int]]] = {}
        needles: dict[str, set[int]] = {}
        scanned: set[str] = set()
        keywords: dict[str, set[int]] = {}
        kinds: dict[str, int] = {}
        all_fields: set[str] = set()
        for index, witnesses, fields in rules:
            all_fields.update(fields)
            if witnesses is None:
                always.append(index)
                kinds["always"] = kinds.get("always", 0) + 1
                continue
            for w in witnesses:
                kinds[w.kind] = kinds.get(w.kind, 0) + 1
                name = w.field or ""
                if w.kind == "presence":
                    presence.setdefault(name, set()).add(index)
                elif w.kind == "exact":
                    exact.setdefault(name, {}).setdefault(w.value, set()).add(index)
                elif w.kind == "number":
                    numbers.setdefault(name, {}).setdefault(w.value, set()).add(index)
                elif w.kind == "substring":
                    needles.setdefault(w.value, set()).add(index)
                    scanned.add(name)
                elif w.kind == "keyword":
                    keywords.setdefault(w.value, set()).add(index)
        slots: dict[str, FieldSlot] = {}
        for name in all_fields | set(presence) | set(exact) | set(numbers) | scanned:
            slots[name] = FieldSlot(
                presence=tuple(sorted(presence.get(name, ()))),
                exact={k: tuple(sorted(v)) for k, v in exact[name].items()} if name in exact else None,
                numbers={k: tuple(sorted(v)) for k, v in numbers[name].items()} if name in numbers else None,
                scanned=name in scanned,
            )
        if keywords:  # one scan over every value covers both kinds of needle
            for needle, members in needles.items():
                keywords.setdefault(needle, set()).update(members)
            return cls(tuple(sorted(always)), slots, None, _automaton(keywords), kinds)
        return cls(tuple(sorted(always)), slots, _automaton(needles), None, kinds)

    def candidates(self, event: dict[str, Any], cache: dict[Any, Any]) -> set[int]:
        if self.keywords is not None:
            return self._candidates_all_values(event, cache)
        # probe from the smaller side: a wide ECS event (dozens of keys) against a lane reading a few fields
        # walks the lane's fields; a narrow Windows event against thousands of rule fields walks the event
        if len(event) > self._slot_count:
            pairs: Any = ((name, event[name]) for name in self._slot_names if name in event)
        else:
            pairs = event.items()
        found: list[int] = list(self.always)
        fields = self.fields
        buffer: list[str] = []
        for key, value in pairs:
            slot = fields.get(key)
            if slot is None:
                continue
            if not slot.seen:
                slot.seen = True
            memo = slot.memo
            if memo is not None and value.__class__ is str:
                slot.lookups += 1
                hit = memo.get(value)
                if hit is None:
                    hit = self._contribution(slot, value)
                    if len(memo) < MEMO_SIZE:
                        memo[value] = hit
                else:
                    slot.repeats += 1
                if hit:
                    found.extend(hit)
                if slot.lookups >= MEMO_WINDOW:
                    if slot.repeats * 2 < slot.lookups:  # mostly new values: the memo only costs
                        slot.memo = None
                    slot.lookups = slot.repeats = 0
                continue
            if slot.presence:
                found.extend(slot.presence)
            if value is None:
                continue
            if slot.exact is not None or slot.scanned:
                folded = value.lower() if value.__class__ is str else fold(value)
                cache[key] = folded
                self._probe(slot, folded, found, buffer)
            if slot.numbers is not None:
                self._numbers(slot.numbers, value, found)
        if buffer and self.substrings is not None:
            self.substrings.scan("\x00".join(buffer), found)
        return set(found)

    def _candidates_all_values(self, event: dict[str, Any], cache: dict[Any, Any]) -> set[int]:
        """Keyword rules in the lane: every value is folded once and scanned once (substring and keyword
        needles share one database). Scanning numbers' text too only over-approximates the keywords."""
        found: list[int] = list(self.always)
        fields = self.fields
        values: list[str] = []
        for key, value in event.items():
            slot = fields.get(key)
            if value is None:
                if slot is not None:
                    slot.seen = True
                    if slot.presence:
                        found.extend(slot.presence)
                continue
            folded = value.lower() if value.__class__ is str else fold(value)
            cache[key] = folded
            if folded.__class__ is str:
                values.append(folded)  # type: ignore[arg-type]
            elif folded:
                values.extend(folded)  # type: ignore[arg-type]
            if slot is None:
                continue
            slot.seen = True
            if slot.presence:
                found.extend(slot.presence)
            if slot.exact is not None:
                self._probe(slot, folded, found, None)
            if slot.numbers is not None:
                self._numbers(slot.numbers, value, found)
        if values:
            self.keywords.scan("\x00".join(values), found)
        return set(found)

    def _contribution(self, slot: FieldSlot, value: str) -> tuple[int, ...]:
        """The rules one string value of a field admits: what the loop below would add for it alone."""
        out: list[int] = list(slot.presence)
        folded = value.lower()
        if slot.exact is not None:
            hit = slot.exact.get(folded)
            if hit:
                out.extend(hit)
        if slot.scanned and self.substrings is not None:
            self.substrings.scan(folded, out)
        if slot.numbers is not None:
            self._numbers(slot.numbers, value, out)
        return tuple(out)

    @staticmethod
    def _probe(slot: FieldSlot, folded: Any, found: list[int], buffer: list[str] | None) -> None:
        exact = slot.exact
        if folded.__class__ is str:
            if exact is not None:
                hit = exact.get(folded)
                if hit:
                    found.extend(hit)
            if buffer is not None and slot.scanned:
                buffer.append(folded)
        elif folded:
            for member in folded:
                if exact is not None:
                    hit = exact.get(member)
                    if hit:
                        found.extend(hit)
                if buffer is not None and slot.scanned:
                    buffer.append(member)

    @staticmethod
    def _numbers(table: dict[int | float, tuple[int, ...]], value: Any, found: list[int]) -> None:
        members = value if value.__class__ is list else (value,)
        for member in members:
            number = to_number(member)
            if number is not None:
                hit = table.get(number)
                if hit:
                    found.extend(hit)


class LiteralScanner:
    """Finds which of many literal needles occur in a text: one Hyperscan pass, or Aho-Corasick without it.

    Both sides are already folded with ``str.lower()``, so the scan is case-sensitive on purpose (Hyperscan's
    CASELESS is ASCII-only and would not add anything). Each needle is reported once (SINGLEMATCH) and
    attributed to its rules, not to the field it was found in: coarser, still sound.
    """

    def __init__(self, needles: dict[str, set[int]]) -> None:
        self.needles = list(needles)
        self.rules = [tuple(sorted(needles[n])) for n in self.needles]
        self._hits: list[int] = []
        self._local = threading.local()
        self._database: Any = None
        self._automaton: Any = None
        if hyperscan is not None:
            self._database = _hyperscan_database(self.needles)
        if self._database is None:
            automaton = ahocorasick.Automaton()
            for i, needle in enumerate(self.needles):
                automaton.add_word(needle, i)
            automaton.make_automaton()
            self._automaton = automaton

    def scan(self, text: str, found: list[int]) -> None:
        rules = self.rules
        if self._database is not None:
            local = self._local  # a Hyperscan scratch belongs to one thread; detectors may run on several
            scratch = getattr(local, "scratch", None)
            if scratch is None:
                scratch = local.scratch = hyperscan.Scratch(self._database)
            hits: list[int] = []
            self._database.scan(text.encode("utf-8", "surrogatepass"), match_event_handler=_append_hit,
                                context=hits, scratch=scratch)
            self._hits = hits  # kept for the bench's hit statistics
            for needle_id in hits:
                found.extend(rules[needle_id])
        else:
            for _, needle_id in self._automaton.iter(text):
                found.extend(rules[needle_id])


#: Longer needles than this are not given to Hyperscan (its literal limit is near 16,000 bytes and
#: depends on the platform): a lane holding one scans with Aho-Corasick instead (issue 15: a 20,000-character
#: ``contains`` value crashed the lane build with "Pattern length exceeds limit").
MAX_HYPERSCAN_NEEDLE_BYTES = 8_192


def _hyperscan_database(needles: list[str]) -> Any:
    """A Hyperscan database of the needles, or None when Hyperscan cannot take them (then Aho-Corasick)."""
    encoded = [n.encode("utf-8", "surrogatepass") for n in needles]
    if any(len(n) > MAX_HYPERSCAN_NEEDLE_BYTES for n in encoded):
        return None
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    try:
        database.compile(expressions=encoded, ids=list(range(len(needles))), elements=len(needles),
                         flags=hyperscan.HS_FLAG_SINGLEMATCH, literal=True)
    except hyperscan.error:  # any other limit of this build: the same answers, from Aho-Corasick
        return None
    return database


def _append_hit(needle_id: int, start: int, end: int, flags: int, hits: list[int]) -> None:
    hits.append(needle_id)


def _automaton(needles: dict[str, set[int]]) -> LiteralScanner | None:
    return LiteralScanner(needles) if needles else None
