"""The candidate index of one lane (the rules routed to one kind of event).

Per event it probes only the event's own keys that some rule of the lane needs: presence lists, a folded
exact-value dict, a numeric exact dict, and one Aho-Corasick scan over the ``\\x00``-joined folded values of
the substring fields (hits are attributed per needle, not per field: coarser, still sound). Keyword needles
scan every value of the event. Rules without a witness are always candidates. The result may only
over-approximate the rules that match; ``tests/engine/test_differential.py`` checks it against a full scan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ahocorasick

from detections.sigma.values import fold, keyword_values, to_number
from detections.sigma.witness import Witness


@dataclass(slots=True)
class FieldSlot:
    """What the lane knows about one event key. ``seen`` feeds the rule-health "missing fields" report."""

    presence: tuple[int, ...] = ()
    exact: dict[str, tuple[int, ...]] | None = None
    numbers: dict[int | float, tuple[int, ...]] | None = None
    scanned: bool = False
    seen: bool = False


@dataclass
class CandidateIndex:
    always: tuple[int, ...]
    fields: dict[str, FieldSlot]
    substrings: Any  # ahocorasick.Automaton | None
    keywords: Any  # ahocorasick.Automaton | None
    witness_kinds: dict[str, int] = field(default_factory=dict)

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
        return cls(tuple(sorted(always)), slots, _automaton(needles), _automaton(keywords), kinds)

    def candidates(self, event: dict[str, Any], cache: dict[int, Any]) -> set[int]:
        found: list[int] = list(self.always)
        fields = self.fields
        buffer: list[str] = []
        for key, value in event.items():
            slot = fields.get(key)
            if slot is None:
                continue
            if not slot.seen:
                slot.seen = True
            if slot.presence:
                found.extend(slot.presence)
            if value is None:
                continue
            if slot.exact is not None or slot.scanned:
                folded = value.lower() if value.__class__ is str else fold(value)
                if folded.__class__ is str:
                    if slot.exact is not None:
                        hit = slot.exact.get(folded)  # type: ignore[arg-type]
                        if hit:
                            found.extend(hit)
                    if slot.scanned:
                        buffer.append(folded)  # type: ignore[arg-type]
                elif folded:
                    for member in folded:  # type: ignore[union-attr]
                        if slot.exact is not None:
                            hit = slot.exact.get(member)
                            if hit:
                                found.extend(hit)
                        if slot.scanned:
                            buffer.append(member)
            if slot.numbers is not None:
                self._numbers(slot.numbers, value, found)
        if buffer and self.substrings is not None:
            for _, hit in self.substrings.iter("\x00".join(buffer)):
                found.extend(hit)
        if self.keywords is not None:
            text = "\x00".join(keyword_values(event, cache, False))
            if text:
                for _, hit in self.keywords.iter(text):
                    found.extend(hit)
        return set(found)

    @staticmethod
    def _numbers(table: dict[int | float, tuple[int, ...]], value: Any, found: list[int]) -> None:
        members = value if value.__class__ is list else (value,)
        for member in members:
            number = to_number(member)
            if number is not None:
                hit = table.get(number)
                if hit:
                    found.extend(hit)


def _automaton(needles: dict[str, set[int]]) -> Any:
    if not needles:
        return None
    automaton = ahocorasick.Automaton()
    for needle, rules in needles.items():
        automaton.add_word(needle, tuple(sorted(rules)))
    automaton.make_automaton()
    return automaton
