"""Streaming evaluation of Sigma correlation rules in event time, with bounded, snapshot-able state.

Design (docs/correlation.md has the full contract):

* Event time only. The watermark is ``max event time seen - allowed lateness``. Matched events wait in a
  per-rule heap until the watermark passes them and are then applied in (time, event.id) order, so the
  alerts do not depend on arrival order, and replaying last month gives what the live run gave.
* Events older than the watermark are late: counted and handed back through :meth:`take_rejected`.
* Lower-bound conditions (gt/gte) use a sliding window ending at each event and fire on the event that
  completes it; every other condition is decided when a window anchored at the group's first event
  closes (watermark or :meth:`finish`).
* Memory is capped (groups and events per group) with oldest-first eviction, and the whole state
  serializes to versioned JSON (orjson) beside the caller's source position.
"""

from __future__ import annotations

import gc
import hashlib
import heapq
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from temporal_siem.detections.alerts import RuleMeta, correlation_alert
from temporal_siem.detections.correlation.compiled import CompiledCorrelation, CorrelationRuleError, compile_correlations
from temporal_siem.detections.correlation.state import NEVER, ClosingGroup, SlidingGroup
from temporal_siem.detections.correlation.timeutil import MICROS, BadTimestamp, format_micros, parse_micros
from temporal_siem.kernel.config import CorrelationConfig
from temporal_siem.kernel.metrics import CORRELATION_EVICTIONS, CORRELATION_GROUPS, LATE_EVENTS
from temporal_siem.kernel.records import DeadLetter, Origin

if TYPE_CHECKING:  # annotations only: pySigma is imported where correlation rules are loaded (compiled.py)
    from sigma.correlations import SigmaCorrelationRule

log = logging.getLogger("detections.correlation")

SNAPSHOT_VERSION = 1
FOREVER = 1 << 62
_NUMERIC_KINDS = frozenset({"value_sum", "value_avg", "value_percentile", "value_median"})


@dataclass(slots=True)
class RejectedEvent:
    """An event a correlation could not use, for the caller to dead-letter with the reason."""

    event: dict[str, Any]
    reason: str  # correlation_late_event | correlation_bad_timestamp | correlation_future_timestamp
    detail: str
    rules: list[str] = field(default_factory=list)

    def to_dead_letter(self) -> DeadLetter:
        """The pipeline's dead-letter form: stage ``correlation``, the event as JSON, and which rules it missed."""
        event_id = self.event.get("event.id")
        origin = Origin(source=f"event {event_id}" if event_id is not None else str(self.event.get("event.dataset") or "event"))
        raw = _event_bytes(self.event)
        return DeadLetter(self.reason, "correlation", origin, raw, self.detail,
                          extra={"event.id": event_id, "correlation_rules": list(self.rules)}, masked=True)


def _event_bytes(event: dict[str, Any]) -> bytes:
    """Stable bytes of an event (its identity when it has no event.id, and its dead-letter body)."""
    try:
        return orjson.dumps(event, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str)
    except (TypeError, orjson.JSONEncodeError):  # lone surrogates, integers beyond 64 bits, ...
        return repr(sorted(event.items(), key=lambda item: str(item[0]))).encode("utf-8", "backslashreplace")


def freeze(value: Any) -> Any:
    """A hashable, JSON-safe form of a field value (lists become tuples)."""
    if isinstance(value, list | tuple):
        return tuple(freeze(item) for item in value)
    if isinstance(value, dict):
        return _event_bytes(value).decode("utf-8")
    if isinstance(value, str):
        return value if value.isascii() else _utf8_safe(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if -(1 << 63) <= value < (1 << 63) else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


def _utf8_safe(text: str) -> str:
    """Lone surrogates (hostile input) cannot be serialized: keep them as visible escapes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def thaw(value: Any) -> Any:
    return [thaw(item) for item in value] if isinstance(value, tuple) else value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _to_micros(watermark: Any) -> int:
    if isinstance(watermark, datetime):
        return parse_micros(watermark.isoformat())
    return parse_micros(watermark)


class _Runner:
    """One compiled correlation with its open groups and the events waiting for the watermark."""

    __slots__ = ("corr", "downstream", "expiry_at", "frontier", "groups", "output", "pending")

    def __init__(self, corr: CompiledCorrelation) -> None:
        self.corr = corr
        # Ordered oldest first: by last event (sliding) or by window start (window-close).
        self.groups: OrderedDict[tuple[Any, ...], SlidingGroup | ClosingGroup] = OrderedDict()
        self.pending: list[tuple[int, str, int, tuple[Any, ...], int, Any]] = []
        self.frontier = NEVER  # time of the last event applied
        self.downstream: list[tuple[_Runner, int]] = []  # correlations that reference this one, with our bit there
        self.output = True
        self.expiry_at = FOREVER  # no group can expire before the watermark passes this (a lower bound)

    def front_time(self) -> int:
        if not self.groups:
            return FOREVER
        group = self.groups[next(iter(self.groups))]
        return group.last_t if isinstance(group, SlidingGroup) else group.start


class CorrelationEngine:
    """Sigma correlation rules over a stream of flat events (see the module docstring)."""

    def __init__(self, correlations: list[CompiledCorrelation], options: dict[str, Any] | None = None) -> None:
        config = CorrelationConfig.model_validate(options or {})  # the defaults live there, once
        lateness = config.allowed_lateness_seconds
        # Negative: unbounded (replay): events wait until finish(), advance() or the pending cap.
        self.allowed_lateness_us = FOREVER if lateness < 0 else int(lateness * MICROS)
        self.max_pending_events = max(1, config.max_pending_events)
        self._pending_count = 0
        self.max_groups = max(1, config.max_groups)
        self.max_events_per_group = max(1, config.max_events_per_group)
        self.max_alert_event_ids = max(1, config.max_alert_event_ids)
        self.max_future_us = int(config.max_future_seconds * MICROS)
        self.max_rejected = max(0, config.max_rejected_events)
        self.watermark = NEVER
        self.max_seen = NEVER
        self._seq = 0
        self._runs = 0
        self._group_count = 0
        self._published_groups = 0
        self._rejected: list[RejectedEvent] = []
        # Inner alert id -> (its source event ids, its source event count, its own related alert ids): what an outer
        # alert cites in place of the inner alert (docs/correlation.md, "Chained correlations"). Bounded like groups.
        self._evidence: OrderedDict[str, tuple[list[str], int, list[str]]] = OrderedDict()
        self.max_evidence = max(1, config.max_groups)
        self._counters: dict[str, int] = dict.fromkeys(
            ("events_observed", "events_applied", "late_events", "bad_timestamps", "future_timestamps",
             "missing_group_by", "duplicates", "absorbed", "evicted_groups", "dropped_events", "alerts",
             "chained_alerts", "forced_advances", "rejected_overflow"), 0)
        self._runners = self._ordered(correlations)
        self._by_ref: dict[str, list[tuple[_Runner, int]]] = {}
        for runner in self._runners:
            for bit, keys in enumerate(runner.corr.ref_keys):
                for key in keys:
                    self._by_ref.setdefault(key, []).append((runner, bit))
        self._link_chains()

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_rules(cls, correlation_rules: list[SigmaCorrelationRule], meta: dict[str, RuleMeta],
                   options: dict[str, Any] | None = None) -> CorrelationEngine:
        return cls(compile_correlations(correlation_rules, meta), options)

    @staticmethod
    def _ordered(correlations: list[CompiledCorrelation]) -> list[_Runner]:
        """Referenced correlations before the ones that reference them, so chained alerts flow in one pass."""
        runners = [_Runner(corr) for corr in correlations]
        names = {}
        for runner in runners:
            names[runner.corr.rule_id] = runner
            if runner.corr.name:
                names[runner.corr.name] = runner
        deps = {id(r): {id(names[k]) for keys in r.corr.ref_keys for k in keys if k in names} for r in runners}
        ordered: list[_Runner] = []
        placed: set[int] = set()
        while len(ordered) < len(runners):
            ready = [r for r in runners if id(r) not in placed and deps[id(r)] <= placed]
            if not ready:
                cycle = sorted(r.corr.rule_id for r in runners if id(r) not in placed)
                raise CorrelationRuleError(f"correlation rules reference each other in a cycle: {cycle}")
            for runner in ready:
                ordered.append(runner)
                placed.add(id(runner))
        return ordered

    def _link_chains(self) -> None:
        """Wire alerts of referenced correlations into their referrers; silence them like base rules.

        As for base rules (detections.sigma): quiet when every referrer has ``generate: false``.
        """
        for upstream in self._runners:
            identities = {upstream.corr.rule_id, *([upstream.corr.name] if upstream.corr.name else [])}
            referrers = []
            for downstream in self._runners:
                for bit, keys in enumerate(downstream.corr.ref_keys):
                    if keys & identities:
                        upstream.downstream.append((downstream, bit))
                        referrers.append(downstream.corr.generate)
            upstream.output = not referrers or any(referrers)

    # ----------------------------------------------------------------- what the engine engineer reads
    def referenced_refs(self) -> set[str]:
        """Every rule id/name a correlation listens to: pass matches of these to :meth:`observe`."""
        return set(self._by_ref)

    def suppressed_refs(self) -> set[str]:
        """Ids/names of rules referenced only by correlations with ``generate: false``: not output on their own.

        Correlations in that position are already silenced here (their alerts only feed the chain).
        """
        quiet: set[str] = set()
        loud: set[str] = set()
        for runner in self._runners:
            for keys in runner.corr.ref_keys:
                (loud if runner.corr.generate else quiet).update(keys)
        return quiet - loud

    def rules(self) -> list[CompiledCorrelation]:
        return [runner.corr for runner in self._runners]

    # ----------------------------------------------------------------- streaming
    def observe(self, event: dict[str, Any], matched_refs: Iterable[str]) -> list[dict[str, Any]]:
        """Feed one event (call it for every event, so event time keeps moving); returns alerts that fire now."""
        self._counters["events_observed"] += 1
        hits: dict[_Runner, int] = {}
        for ref in matched_refs:
            for runner, bit in self._by_ref.get(ref, ()):
                hits[runner] = hits.get(runner, 0) | (1 << bit)
        try:
            t = parse_micros(event.get("@timestamp"))
        except BadTimestamp as exc:
            if hits:
                self._counters["bad_timestamps"] += 1
                self._reject(event, "correlation_bad_timestamp", str(exc), hits)
            return []
        if t > self.max_seen and t > time.time_ns() // 1000 + self.max_future_us:
            if hits:
                self._counters["future_timestamps"] += 1
                self._reject(event, "correlation_future_timestamp",
                             f"@timestamp {format_micros(t)} is more than {self.max_future_us // MICROS}s ahead of the clock", hits)
            return []
        if hits:
            if t < self.watermark:
                self._counters["late_events"] += 1
                LATE_EVENTS.inc()
                lateness = "unbounded" if self.allowed_lateness_us >= FOREVER else f"{self.allowed_lateness_us / MICROS:g}s"
                self._reject(event, "correlation_late_event",
                             f"@timestamp {format_micros(t)} is older than the watermark {format_micros(self.watermark)} "
                             f"(allowed lateness {lateness})", hits)
                return []
            event_id = self._event_id(event)
            for runner, mask in hits.items():
                self._enqueue(runner, event, t, event_id, mask)
        return self._moved(t)

    def observe_time(self, t: int | None, count: int = 1) -> list[dict[str, Any]]:
        """What :meth:`observe` does for ``count`` events in a row that matched no rule a correlation listens to:
        count them and move event time to ``t``, the latest ``@timestamp`` among them (microseconds) that parsed
        and is not ahead of the clock (None: none was). For ``replay --workers``, whose workers parse the times
        (app/parallel.py); with a bounded lateness each event may close windows, so runs are not merged there."""
        self._counters["events_observed"] += count
        return self._moved(self.max_seen if t is None else t)

    def _moved(self, t: int) -> list[dict[str, Any]]:
        """After an event at ``t`` was taken: move event time, close what the watermark passed, bound memory."""
        alerts: list[dict[str, Any]] = []
        if t > self.max_seen:
            self.max_seen = t
            if self.allowed_lateness_us < FOREVER and t - self.allowed_lateness_us > self.watermark:
                alerts = self._run(t - self.allowed_lateness_us)
        while self._pending_count > self.max_pending_events:
            # Memory before lateness: apply the oldest waiting events now (later ones older than them become late).
            self._counters["forced_advances"] += 1
            oldest = min(runner.pending[0][0] for runner in self._runners if runner.pending)
            alerts.extend(self._run(oldest + 1))
        return alerts

    def advance(self, watermark: Any) -> list[dict[str, Any]]:
        """Move event time forward without an event (idle source): ISO string, datetime or epoch seconds."""
        target = _to_micros(watermark)
        if target <= self.watermark:
            return []
        return self._run(target)

    def finish(self) -> list[dict[str, Any]]:
        """End of stream: apply every waiting event, close every window, return what fires."""
        watermark = self.watermark
        alerts = self._run(FOREVER)
        self.watermark = max(watermark, self.max_seen)
        return alerts

    def take_rejected(self) -> list[RejectedEvent]:
        """Late / unusable events since the last call (each relevant to at least one correlation)."""
        rejected, self._rejected = self._rejected, []
        return rejected

    # ----------------------------------------------------------------- internals
    def _reject(self, event: dict[str, Any], reason: str, detail: str, hits: dict[_Runner, int]) -> None:
        if len(self._rejected) >= self.max_rejected:  # nobody drains take_rejected(): count, do not grow
            self._counters["rejected_overflow"] += 1
            return
        self._rejected.append(RejectedEvent(event, reason, detail, [r.corr.rule_id for r in hits]))

    @staticmethod
    def _event_id(event: dict[str, Any]) -> str:
        event_id = event.get("event.id")
        if event_id is not None and event_id != "":
            text = str(event_id)
            return text if text.isascii() else _utf8_safe(text)
        return "sha256:" + hashlib.sha256(_event_bytes(event)).hexdigest()[:32]

    def _enqueue(self, runner: _Runner, event: dict[str, Any], t: int, event_id: str, mask: int) -> None:
        corr = runner.corr
        keyed: dict[tuple[Any, ...], tuple[int, Any]] = {}
        for index in range(len(corr.refs)):
            if not mask >> index & 1:
                continue
            key_parts = []
            for name in corr.group_fields[index]:
                value = event.get(name)
                if value is None or value == [] or value == ():
                    break
                key_parts.append(freeze(value))
            else:
                key = tuple(key_parts)
                value = self._value(corr, event, index)
                if key in keyed:
                    old_mask, old_value = keyed[key]
                    if corr.kind == "value_count" and value:
                        value = tuple(dict.fromkeys((*(old_value or ()), *value)))
                    elif value is None:
                        value = old_value
                    keyed[key] = (old_mask | 1 << index, value)
                else:
                    keyed[key] = (1 << index, value)
                continue
            self._counters["missing_group_by"] += 1
        for key, (key_mask, value) in keyed.items():
            self._seq += 1
            self._pending_count += 1
            heapq.heappush(runner.pending, (t, event_id, self._seq, key, key_mask, value))

    @staticmethod
    def _value(corr: CompiledCorrelation, event: dict[str, Any], index: int) -> Any:
        if corr.value_fields is None:
            return None
        names = corr.value_fields[index]
        if corr.kind == "value_count":
            if len(names) == 1:
                raw = event.get(names[0])
                if raw is None:
                    return None
                return freeze(raw) if isinstance(raw, list) else (freeze(raw),)
            parts = [event.get(name) for name in names]
            if any(part is None for part in parts):
                return None
            return (freeze(parts),)
        return _number(event.get(names[0]))

    def _run(self, watermark: int) -> list[dict[str, Any]]:
        self.watermark = max(self.watermark, watermark)
        out: list[dict[str, Any]] = []
        for runner in self._runners:
            fired: list[tuple[dict[str, Any], int]] = []
            pending = runner.pending
            if not (pending and pending[0][0] < watermark) and watermark <= runner.expiry_at:
                continue
            if watermark >= FOREVER and pending:
                # End of stream (a replay's one application of everything): a heap pops in sorted order (its
                # entries are unique by sequence number), so one sort in C replaces a pop per waiting event. Taken
                # out of the runner first, so the runner and the count agree even if an application raises.
                pending.sort()
                ready, runner.pending = pending, []
                pending = runner.pending
                self._pending_count -= len(ready)
                for t, event_id, _, key, mask, value in ready:
                    if t > runner.frontier:
                        runner.frontier = t
                    result = self._apply(runner, t, event_id, key, mask, value)
                    if result is not None:
                        fired.append(result)
            while pending and pending[0][0] < watermark:
                t, event_id, _, key, mask, value = heapq.heappop(pending)
                self._pending_count -= 1
                if t > runner.frontier:
                    runner.frontier = t
                result = self._apply(runner, t, event_id, key, mask, value)
                if result is not None:
                    fired.append(result)
            self._expire(runner, watermark, fired)
            for alert, chain_t in fired:
                self._counters["alerts"] += 1
                if runner.output:
                    out.append(alert)
                if runner.downstream:
                    self._remember_evidence(alert)
                for downstream, bit in runner.downstream:
                    self._counters["chained_alerts"] += 1
                    self._enqueue(downstream, alert, max(chain_t, downstream.frontier), str(alert["alert.id"]), 1 << bit)
        self._runs += 1
        if not self._runs & 1023 or watermark == FOREVER:
            self._publish_groups()
        return out

    def _apply(self, runner: _Runner, t: int, event_id: str, key: tuple[Any, ...], mask: int,
               value: Any) -> tuple[dict[str, Any], int] | None:
        corr = runner.corr
        groups = runner.groups
        span = corr.timespan_us
        self._counters["events_applied"] += 1
        if corr.early:
            sliding = groups.get(key)
            if sliding is None:
                sliding = SlidingGroup()
                self._admit(runner, key, sliding, t + span)
            else:
                groups.move_to_end(key)
            assert isinstance(sliding, SlidingGroup)
            if t <= sliding.quiet_until:
                self._counters["absorbed"] += 1
                sliding.last_t = max(sliding.last_t, t)
                return None
            sliding.slide(corr, t - span)
            if sliding.contains(event_id):
                self._counters["duplicates"] += 1
                return None
            sliding.add(corr, t, event_id, mask, value)
            if sliding.live() > self.max_events_per_group:
                sliding.drop_oldest(corr)
                self._counters["dropped_events"] += 1
            metric, present = sliding.metric(corr, t)
            if not corr.metric_holds(metric, present):
                return None
            if corr.kind == "temporal_ordered":
                # "A then B": the evidence is the matched chain (from the latest start of a complete in-order chain
                # to now), and the quiet period covers only that chain, so a later A-then-B in the timespan is a new
                # finding (docs/correlation.md, "Ordered sequences").
                chain_start = sliding.chain_start(int(metric))
                ids = sliding.ids_since(chain_start, self.max_alert_event_ids)
                alert = self._alert(corr, key, t, chain_start, ids, sliding.count_since(chain_start), metric)
                sliding.reset(t)
                return alert, t
            start = sliding.first_time()
            alert = self._alert(corr, key, t, start, sliding.live_ids(self.max_alert_event_ids), sliding.live(), metric)
            sliding.reset(start + span)
            return alert, t
        closing = groups.get(key)
        fired = None
        if isinstance(closing, ClosingGroup) and t > closing.start + span:
            fired = self._close(runner, key, closing)
            del groups[key]
            self._group_count -= 1
            closing = None
        if closing is None:
            closing = ClosingGroup(t)
            self._admit(runner, key, closing, t + span)
        assert isinstance(closing, ClosingGroup)
        if closing.contains(event_id):
            self._counters["duplicates"] += 1
            return fired
        closing.add(corr, t, event_id, mask, value, self.max_events_per_group)
        return fired

    def _close(self, runner: _Runner, key: tuple[Any, ...], group: ClosingGroup) -> tuple[dict[str, Any], int] | None:
        corr = runner.corr
        measured = group.metric(corr)
        if measured is None or not corr.metric_holds(*measured):
            return None
        alert = self._alert(corr, key, group.last_t, group.start, group.ids[: self.max_alert_event_ids], group.count, measured[0])
        return alert, group.start + corr.timespan_us

    def _expire(self, runner: _Runner, watermark: int, fired: list[tuple[dict[str, Any], int]]) -> None:
        """Drop groups no future event can join (and decide window-close conditions for them)."""
        groups = runner.groups
        span = runner.corr.timespan_us
        while groups:
            key = next(iter(groups))
            group = groups[key]
            if isinstance(group, SlidingGroup):
                if group.last_t + span >= watermark:
                    break
            else:
                if group.start + span >= watermark:
                    break
                result = self._close(runner, key, group)
                if result is not None:
                    fired.append(result)
            del groups[key]
            self._group_count -= 1
        runner.expiry_at = runner.front_time() + span if groups else FOREVER

    def _admit(self, runner: _Runner, key: tuple[Any, ...], group: SlidingGroup | ClosingGroup, expires: int) -> None:
        if self._group_count >= self.max_groups:
            victim = min(self._runners, key=_Runner.front_time)
            if victim.groups:
                victim.groups.popitem(last=False)
                self._group_count -= 1
                self._counters["evicted_groups"] += 1
                CORRELATION_EVICTIONS.inc()
                evicted = self._counters["evicted_groups"]
                if evicted == 1 or evicted % 10_000 == 0:
                    log.warning("correlation state is full (max_groups=%d): evicted %d oldest windows so far; "
                                "raise detection.correlation.max_groups or narrow group-by", self.max_groups, evicted)
        runner.groups[key] = group
        self._group_count += 1
        if expires < runner.expiry_at:
            runner.expiry_at = expires

    def _alert(self, corr: CompiledCorrelation, key: tuple[Any, ...], last_t: int, start: int, ids: list[str],
               count: int, metric: float) -> dict[str, Any]:
        group_by = {name: thaw(value) for name, value in zip(corr.group_by, key, strict=True)}
        event_ids, count, related = self._flatten_evidence(ids, count)
        return correlation_alert(
            corr.meta, timestamp=format_micros(last_t), event_ids=event_ids, event_count=count, group_by=group_by,
            window_start=format_micros(start), window_end=format_micros(start + corr.timespan_us),
            correlation_type=corr.kind, referenced_rules=list(corr.refs), value=float(metric),
            related_alert_ids=related)

    def _remember_evidence(self, alert: dict[str, Any]) -> None:
        evidence = self._evidence
        evidence[str(alert["alert.id"])] = (list(alert.get("alert.source_event_ids", [])), int(alert.get("alert.source_event_count", 0)),
                                            list(alert.get("alert.related_alert_ids", [])))
        evidence.move_to_end(str(alert["alert.id"]))
        while len(evidence) > self.max_evidence:
            evidence.popitem(last=False)

    def _flatten_evidence(self, ids: list[str], count: int) -> tuple[list[str], int, list[str]]:
        """Inner alert ids in a window become the events behind them (capped; the count stays complete) and move
        to the related-alert list: ``alert.source_event_ids`` holds event ids only."""
        if not self._evidence:
            return ids, count, []
        events: dict[str, None] = {}
        related: dict[str, None] = {}
        for item in ids:
            inner = self._evidence.get(item)
            if inner is None:
                events[item] = None
                continue
            inner_ids, inner_count, inner_related = inner
            related[item] = None
            related.update(dict.fromkeys(inner_related))
            events.update(dict.fromkeys(inner_ids))
            count += max(inner_count, len(inner_ids)) - 1
        return list(events)[: self.max_alert_event_ids], count, list(related)

    # ----------------------------------------------------------------- durability
    def snapshot(self) -> bytes:
        """All open windows and waiting events, versioned JSON; store it beside the source position."""
        with _gc_paused():
            return self._snapshot()

    def _snapshot(self) -> bytes:
        rules = {}
        for runner in self._runners:
            rules[runner.corr.rule_id] = {
                "fingerprint": runner.corr.fingerprint,
                "frontier": runner.frontier,
                "pending": [[t, eid, seq, list(key), mask, value] for t, eid, seq, key, mask, value in runner.pending],
                "groups": [[list(key), group.dump()] for key, group in runner.groups.items()],
            }
        state = {"version": SNAPSHOT_VERSION, "watermark": self.watermark, "max_seen": self.max_seen,
                 "seq": self._seq, "counters": self._counters, "rules": rules,
                 "evidence": [[alert_id, list(ids), count, list(related)] for alert_id, (ids, count, related) in self._evidence.items()]}
        return orjson.dumps(state, default=_json_default)

    def restore(self, state: bytes) -> None:
        """Load :meth:`snapshot` output. Rules whose definition changed since start over with a warning."""
        if not state:
            return
        with _gc_paused():
            self._restore(state)

    def _restore(self, state: bytes) -> None:
        try:
            data = orjson.loads(state)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"correlation snapshot is not valid JSON: {exc}") from exc
        if not isinstance(data, dict) or data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"correlation snapshot version {data.get('version') if isinstance(data, dict) else None!r} "
                             f"is not {SNAPSHOT_VERSION}")
        self.watermark = int(data["watermark"])
        self.max_seen = int(data["max_seen"])
        self._seq = int(data.get("seq", 0))
        for name, value in data.get("counters", {}).items():
            if name in self._counters:
                self._counters[name] = int(value)
        self._group_count = 0
        self._pending_count = 0
        self._runs = 0
        self._evidence = OrderedDict(
            (str(alert_id), ([str(i) for i in ids], int(count), [str(r) for r in related]))
            for alert_id, ids, count, related in data.get("evidence", []))
        saved = data.get("rules", {})
        for runner in self._runners:
            runner.groups.clear()
            runner.pending.clear()
            entry = saved.get(runner.corr.rule_id)
            if entry is None:
                continue
            if entry.get("fingerprint") != runner.corr.fingerprint:
                log.warning("correlation %s changed since the snapshot; its open windows are dropped", runner.corr.rule_id)
                continue
            runner.frontier = int(entry["frontier"])
            runner.pending = [(int(t), str(eid), int(seq), freeze(key), int(mask), freeze(value))
                              for t, eid, seq, key, mask, value in entry["pending"]]
            heapq.heapify(runner.pending)
            self._pending_count += len(runner.pending)
            for key, dumped in entry["groups"]:
                if runner.corr.early:
                    sliding = SlidingGroup.load(runner.corr, _freeze_entries(dumped))
                    runner.groups[freeze(key)] = sliding
                else:
                    runner.groups[freeze(key)] = ClosingGroup.load(dumped, freeze)
                self._group_count += 1
            runner.expiry_at = NEVER  # recomputed by the next _expire
        self._publish_groups()

    def _publish_groups(self) -> None:
        """Add this engine's change to the process-wide gauge (the daemon runs one engine per partition)."""
        delta = self._group_count - self._published_groups
        if delta:
            CORRELATION_GROUPS.inc(delta)
            self._published_groups = self._group_count

    def stats(self) -> dict[str, Any]:
        self._publish_groups()
        return {**self._counters, "rules": len(self._runners), "groups": self._group_count, "pending": self._pending_count,
                "watermark": format_micros(self.watermark) if self.watermark > NEVER else None}


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Millions of fresh containers would trigger full cyclic collections that find nothing (no cycles here)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _freeze_entries(dumped: list[Any]) -> list[Any]:
    entries, last_t, quiet_until, best = dumped
    thawed = list(entries)
    for i in range(3, len(thawed), 4):
        thawed[i] = freeze(thawed[i])
    return [thawed, last_t, quiet_until, best]


def _json_default(value: Any) -> Any:
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)
