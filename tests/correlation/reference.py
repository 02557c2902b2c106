"""A brute-force reference for the correlation semantics, written from docs/correlation.md, not from the engine.

It sees the whole event list at once, sorts it by (time, event.id), and recomputes every window from
scratch:

* lower-bound conditions (only gt/gte; temporal expressions without ``not``): at each event e of a
  group, the window is every still-eligible event of the group with ``e.t - timespan <= t <= e.t``; if
  the condition holds, one alert (window start = its oldest event), then the eligible set is emptied and
  events up to ``start + timespan`` are absorbed; ``temporal_ordered`` cites the matched chain only (from the latest
  start of a chain as long as the one achieved) and absorbs nothing after the completing event;
* every other condition: windows start at a group's first event, hold events up to ``start + timespan``
  inclusive, and are decided when the next event is later than that (or at the end).
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from tests.correlation.harness import RULE_ID, Ev, Spec, ts

LOWER = {"gt", "gte"}
CLOSE_KINDS = {"value_avg", "value_percentile", "value_median"}
OPS = {"gt": lambda a, b: a > b, "gte": lambda a, b: a >= b, "lt": lambda a, b: a < b,
       "lte": lambda a, b: a <= b, "eq": lambda a, b: a == b, "neq": lambda a, b: a != b}


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _field(spec: Spec, name: str, rule: int) -> str:
    return spec.aliases.get(name, {}).get(f"r{rule}", name)


def _metric(spec: Spec, window: list[dict[str, Any]]) -> tuple[float | None, set[int]]:
    kind = spec.kind
    if kind == "event_count":
        return len(window), set()
    if kind == "value_count":
        return len({v for entry in window for v in entry["values"]}), set()
    if kind == "temporal":
        present = set().union(*(entry["rules"] for entry in window)) if window else set()
        return len(present), present
    if kind == "temporal_ordered":
        step = 0
        for entry in window:
            if step < spec.refs and step in entry["rules"]:
                step += 1
        return step, set(range(step))
    numbers = [entry["number"] for entry in window if entry["number"] is not None]
    if kind == "value_sum":
        return sum(numbers), set()
    if not numbers:
        return None, set()
    if kind == "value_avg":
        return sum(numbers) / len(numbers), set()
    if kind == "value_median":
        return statistics.median(numbers), set()
    ordered = sorted(numbers)
    rank = max(1, math.ceil((spec.percentile if spec.percentile is not None else 50) / 100 * len(ordered)))
    return ordered[rank - 1], set()


def _chain_start(spec: Spec, window: list[dict[str, Any]], length: int) -> float:
    """Time of the latest window entry from which an in-order chain of ``length`` rules can be completed (brute force)."""
    best = window[0]["t"]
    for i, first in enumerate(window):
        step = 0
        for entry in window[i:]:
            if step < length and step in entry["rules"]:
                step += 1
        if step >= length and 0 in first["rules"]:
            best = max(best, first["t"])
    return best


def _holds(spec: Spec, value: float | None, present: set[int]) -> bool:
    if value is None:
        return False
    if spec.expression is not None:
        names = {f"r{i}": i in present for i in range(spec.refs)}
        return bool(eval(spec.expression, {"__builtins__": {}}, names))
    return all(OPS[op](value, threshold) for op, threshold in spec.bounds.items())


def _is_sliding(spec: Spec) -> bool:
    if spec.kind in CLOSE_KINDS:
        return False
    if spec.expression is not None:
        return "not" not in spec.expression.split()
    return all(op in LOWER for op in spec.bounds)


def _entries(spec: Spec, events: list[Ev]) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for event in sorted(events, key=lambda e: (e.t, e.id)):
        fields = dict(event.fields)
        by_key: dict[tuple[Any, ...], dict[str, Any]] = {}
        for rule in sorted(event.rules):
            if rule >= spec.refs:
                continue
            key = tuple(fields.get(_field(spec, name, rule)) for name in spec.group_by)
            if any(part is None for part in key):
                continue
            entry = by_key.setdefault(key, {"t": event.t, "id": event.id, "rules": set(), "values": set(), "number": None})
            entry["rules"].add(rule)
            if spec.value_field:
                raw = fields.get(_field(spec, spec.value_field, rule))
                if raw is not None:
                    entry["values"].add(raw)
                number = _num(raw)
                if number is not None:
                    entry["number"] = number
        for key, entry in by_key.items():
            groups.setdefault(key, []).append(entry)
    return groups


def reference_alerts(spec: Spec, events: list[Ev]) -> list[tuple[Any, ...]]:
    span = spec.timespan
    out = []

    def emit(key: tuple[Any, ...], start: float, last: float, window: list[dict[str, Any]], value: float) -> None:
        group = tuple(sorted(zip(spec.group_by, key, strict=True)))
        out.append((RULE_ID, group, _iso(start), _iso(last),
                    tuple(entry["id"] for entry in window), len(window), round(float(value), 6)))

    for key, entries in _entries(spec, events).items():
        if _is_sliding(spec):
            eligible: list[dict[str, Any]] = []
            quiet_until = -math.inf
            for entry in entries:
                if entry["t"] <= quiet_until:
                    continue
                eligible.append(entry)
                window = [x for x in eligible if entry["t"] - span <= x["t"] <= entry["t"]]
                value, present = _metric(spec, window)
                if _holds(spec, value, present):
                    assert value is not None
                    if spec.kind == "temporal_ordered":
                        # "A then B": evidence is the matched chain only (from the latest start of a chain as long as
                        # the one achieved), and the quiet period ends with the completing event.
                        start = _chain_start(spec, window, int(value))
                        chain = [x for x in window if x["t"] >= start]
                        emit(key, start, entry["t"], chain, value)
                        eligible = []
                        quiet_until = entry["t"]
                        continue
                    start = window[0]["t"]
                    emit(key, start, entry["t"], window, value)
                    eligible = []
                    quiet_until = start + span
        else:
            windows: list[list[dict[str, Any]]] = []
            for entry in entries:
                if windows and entry["t"] <= windows[-1][0]["t"] + span:
                    windows[-1].append(entry)
                else:
                    windows.append([entry])
            for window in windows:
                value, present = _metric(spec, window)
                if _holds(spec, value, present):
                    assert value is not None
                    emit(key, window[0]["t"], max(x["t"] for x in window), window, value)
    return sorted(out)


def _iso(seconds: float) -> str:
    """The engine's time format: milliseconds, or microseconds when they are not whole milliseconds."""
    text = ts(seconds)  # ...SS.ffffffZ
    return text[:-4] + "Z" if text[-4:-1] == "000" else text
