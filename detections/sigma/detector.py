"""The pipeline's detector over a shared :class:`Ruleset`: enrich, match, alert, correlate, count.

Per-detector state is small on purpose (the daemon keeps one per Kafka partition): per-rule counters,
per-lane event counts, the enrichers' and the correlation engine's state.
"""

from __future__ import annotations

import base64
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson

from temporal_siem.detections.alerts import rule_alert
from temporal_siem.detections.base import Detector
from temporal_siem.detections.correlation import CorrelationEngine
from temporal_siem.detections.enrichment import EnricherRegistry
from temporal_siem.detections.sigma.ruleset import Ruleset
from temporal_siem.detections.sigma.values import EventFolds
from temporal_siem.kernel import metrics
from temporal_siem.kernel.grouping import grouped_order
from temporal_siem.kernel.records import PENDING, DeadLetter

log = logging.getLogger("detections.sigma")


def _grouped_order(events: list[dict[str, Any]]) -> list[int] | None:
    """The events' indexes with one dataset's events together (:func:`kernel.grouping.grouped_order`)."""
    return grouped_order(events, _dataset, _dataset_text)


def _dataset(event: dict[str, Any]) -> Any:
    return event.get("event.dataset")


def _dataset_text(event: dict[str, Any]) -> str:
    dataset = event.get("event.dataset")
    return dataset if dataset.__class__ is str else ""  # a hostile value (a list, a number) sorts first


class SigmaDetector(Detector):
    """Matches batches against a shared compiled ruleset, with per-detector state: the enrichment registries
    and the correlation groups. Built by ``temporal_siem.detections.factory.new_detector``."""

    #: A batch of at least this many events that mixes datasets is matched one dataset after another.
    group_min_events = 32

    def __init__(self, ruleset: Ruleset, enrichers: EnricherRegistry, correlation: CorrelationEngine | None,
                 options: dict[str, Any] | None = None) -> None:
        self.ruleset = ruleset
        self.options = options or {}
        size = len(ruleset.rules)
        self._evaluated: Counter[int] = Counter()
        self.matched = [0] * size
        self.rule_errors = [0] * size
        self.lane_events: dict[int, int] = {}
        self.enrichment_errors = 0
        self.correlation_errors = 0
        self.events = 0
        self.candidates_total = 0
        self._metric_children: dict[int, tuple[Any, Any]] = {}
        self.enrichers = enrichers
        self.correlation = correlation
        #: Set by :meth:`defer_to` when parsing leaves fields pending: completes events in place.
        self.complete: Callable[[list[dict[str, Any]]], None] | None = None
        self._pending_reads: tuple[frozenset[str], Callable[[str | None, bool], bool]] | None = None
        self._eager_lanes: dict[int, bool] = {}  # lane key -> whether its rules may read what is pending

    def accepts_deferred(self, fields: frozenset[str], datasets: frozenset[str], alphabet: frozenset[str] = frozenset()) -> bool:
        """Whether this detector can take the events of ``datasets`` with ``fields`` :data:`PENDING` (their
        ``event.id`` always among them; their texts made of the characters in ``alphabet``, empty: any) and give
        the same alerts, completing an event through :attr:`complete` only when it needs it. True unless
        something reads those fields of every event whatever the rules: a correlation (every event's time and
        id), routing (``Ruleset.routing_reads``), or an enricher that may see such an event and is not
        deferrable (depends on that event alone, ``Enricher.deferrable``).

        Rules that may read them are handled by lane (:meth:`_lane_reads_pending`): an event whose lane holds
        one is completed and enriched before it is matched, as if nothing were deferred; any other is matched as
        it is, then completed and enriched only if it matched (an enricher's fields are then read by no rule of
        its lane, only by the alert)."""
        return self._deferral(fields, datasets, alphabet) is not None

    def defer_to(self, complete: Callable[[list[dict[str, Any]]], None], fields: frozenset[str], datasets: frozenset[str],
                 alphabet: frozenset[str] = frozenset()) -> bool:
        """Take pending events from now on (see :meth:`accepts_deferred`), completed by ``complete``; False (and
        nothing changed) when this detector cannot."""
        plan = self._deferral(fields, datasets, alphabet)
        if plan is None:
            return False
        self._pending_reads = plan
        self._eager_lanes = {}
        self.complete = complete
        return True

    def _deferral(self, fields: frozenset[str], datasets: frozenset[str],
                  alphabet: frozenset[str]) -> tuple[frozenset[str], Callable[[str | None, bool], bool]] | None:
        """What a rule must not read for its lane to match pending events as they are: field names (the pending
        ones and what the enrichers write), and which keywords could match their texts or the enrichers' values
        (``Enricher.written``). None when deferral is refused outright."""
        if self.correlation is not None or "event.id" not in fields:
            return None
        written: set[str] = set()
        kinds: set[str] = set()
        for enricher in self.enrichers:
            declared = getattr(enricher, "datasets", None)
            if declared is not None and declared.isdisjoint(datasets):
                continue  # never reads or changes such an event (the ``datasets`` contract)
            if not getattr(enricher, "deferrable", False):
                return None
            written.update(enricher.writes)
            kinds.add(enricher.written)
        names = frozenset(fields | written)
        if self.ruleset.routing_reads(names):
            return None

        def could(literal: str | None, cased: bool) -> bool:
            if literal is None:  # a number: equal to a numeric text or a number written
                return True
            if not alphabet or set(literal) <= alphabet:  # the pending texts hold every character it needs
                return True
            return "text" in kinds or ("folded" in kinds and cased)

        return names, could

    def _lane_reads_pending(self, key: int, members: tuple[int, ...]) -> bool:
        """Whether a rule of the lane names a pending field or an enricher's field, or has a keyword that could
        match their values (remembered per lane)."""
        assert self._pending_reads is not None
        names, could = self._pending_reads
        rules = self.ruleset.rules
        found = any(not names.isdisjoint(rules[i].fields) or any(could(literal, cased) for literal, cased in rules[i].keywords)
                    for i in members)
        self._eager_lanes[key] = found
        return found

    # ---- Detector --------------------------------------------------------------------------------------

    def process(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        complete = self.complete
        if self.enrichers:
            if complete is None:
                self._enrich(events)
            else:  # the events left pending are enriched after matching, those that matched (accepts_deferred)
                ready = [event for event in events if event.get("event.id") is not PENDING]
                if ready:
                    self._enrich(ready)
        rules = self.ruleset.rules
        functions = self.ruleset.functions
        matched = self.matched
        batch_evaluated: Counter[int] = Counter()
        batch_matched: Counter[int] = Counter()
        evaluated: list[int] = []  # every event's candidates, counted once per batch (a Counter.update per event cost 2 %)
        evaluated_extend = evaluated.extend
        lane_events = self.lane_events
        correlation = self.correlation
        alerts: list[dict[str, Any]] = []
        lane_of = self.ruleset.lane_for
        candidates_total = 0
        view = self.ruleset.viewer()
        lane_keys: list[int] = []
        lane_keys_append = lane_keys.append
        # Matching: each event's rules that hit, in an order that keeps one dataset's events together when the
        # batch mixes them (its lane's index, memos and rule functions stay in the CPU's caches: ~15 % less time
        # a mixed event). Rules are stateless, so the order changes nothing they answer; what follows (alerts,
        # correlations, which see events in order) runs in the events' own order below.
        order = _grouped_order(events) if len(events) >= self.group_min_events else None
        hits_at: dict[int, list[int]] = {}
        views: list[dict[str, Any]] | None = list(events) if correlation is not None else None  # what each event was matched as
        # First each event's view and lane; then each lane's events together: one candidate call for all of them
        # (CandidateIndex.candidates_many scans their unmemoised values and keywords once for the batch).
        groups: dict[int, tuple[Any, list[int], list[dict[str, Any]]]] = {}
        for index in order if order is not None else range(len(events)):
            original = events[index]
            event = view(original)
            lane = lane_of(event)
            key = lane.key
            if complete is not None and original.get("event.id") is PENDING:
                eager = self._eager_lanes.get(key)
                if eager is None:
                    eager = self._lane_reads_pending(key, lane.rules)
                if eager:  # a rule of this lane may read what is pending: completed and enriched first, as without deferral
                    self._complete([original], complete)
                    event = view(original)
            lane_keys_append(key)  # counted once per batch, in C
            group = groups.get(key)
            if group is None:
                group = groups[key] = (lane, [], [])
            group[1].append(index)
            group[2].append(event)
            if views is not None:
                views[index] = event
        for lane, members, lane_views in groups.values():
            caches = [EventFolds(event) for event in lane_views]
            try:
                found: list[set[int]] | None = lane.index.candidates_many(lane_views, caches)
            except Exception:  # hostile values: each event again on its own, so only the one that fails loses its index
                found = None
            if found is None:
                found = [self._candidates_alone(lane, event, cache) for event, cache in zip(lane_views, caches, strict=True)]
            for index, event, cache, candidates in zip(members, lane_views, caches, found, strict=True):
                if candidates:  # most events have none: no list, no comprehension frame
                    candidates_total += len(candidates)
                    evaluated_extend(candidates)
                    try:
                        hits = [i for i in candidates if functions[i](event, cache)]
                    except Exception:  # one rule failed on a hostile value: evaluate one by one, count the failures
                        hits = self._evaluate_carefully(candidates, functions, event, cache)
                    if hits:
                        if len(hits) > 1:
                            hits.sort()
                        hits_at[index] = hits
        if complete is not None and hits_at:
            self._complete([events[index] for index in hits_at], complete)
        # Alerts and correlations, in the events' order.
        if views is None:
            indexes: Any = hits_at if order is None else sorted(hits_at)
        else:
            indexes = range(len(events))
        no_hits: list[int] = []
        for index in indexes:
            original = events[index]
            hits = hits_at.get(index, no_hits)
            refs: set[str] = set()
            for i in hits:
                rule = rules[i]
                matched[i] += 1
                batch_matched[i] += 1
                if rule.generate:
                    alerts.append(rule_alert(rule.meta, original))
                refs.update(rule.refs)
            if views is not None:  # every event: event time moves the correlation windows
                event = views[index]
                assert correlation is not None
                try:
                    fired = correlation.observe(original if event is original else event, refs)
                except Exception:
                    self.correlation_errors += 1
                    log.exception("correlation engine failed on an event")
                    fired = None
                if fired:
                    alerts.extend(fired)
        batch_evaluated.update(evaluated)
        for key, count in Counter(lane_keys).items():
            lane_events[key] = lane_events.get(key, 0) + count
        self.events += len(events)
        self.candidates_total += candidates_total
        self._evaluated.update(batch_evaluated)
        self._publish_metrics(batch_evaluated, batch_matched)
        return alerts

    def _complete(self, events: list[dict[str, Any]], complete: Callable[[list[dict[str, Any]]], None]) -> None:
        """Events parsing left pending, completed and enriched: before an alert copies them, or before matching
        in a lane whose rules may read what was pending."""
        waiting = [event for event in events if event.get("event.id") is PENDING]
        if not waiting:
            return
        complete(waiting)
        if any(event.get("event.id") is PENDING for event in waiting):
            raise RuntimeError("an event left pending was not completed: its alert would lack its id")
        if self.enrichers:
            self._enrich(waiting)

    def _enrich(self, events: list[dict[str, Any]]) -> None:
        """Each enricher on the batch, or on the part of it of its declared datasets (``Enricher.datasets``)."""
        datasets: list[Any] | None = None
        present: set[Any] | None = None
        subsets: dict[Any, list[dict[str, Any]]] = {}
        for enricher in self.enrichers:
            subset = events
            declared = getattr(enricher, "datasets", None)  # a duck-typed enricher declares nothing
            if declared is not None:
                if datasets is None:
                    datasets = [event.get("event.dataset") for event in events]
                    try:
                        present = set(datasets)
                    except TypeError:  # a dataset value that cannot be a key (a hostile list): whole batches
                        present = None
                if present is not None:
                    wanted = declared & present
                    if not wanted:
                        continue
                    if len(wanted) == 1:  # the batch's events of that one dataset, in their order
                        (dataset,) = wanted
                        subset = subsets.get(dataset)  # type: ignore[assignment]
                        if subset is None:
                            subset = subsets[dataset] = [e for e, d in zip(events, datasets, strict=True) if d == dataset]
                    # several: the whole batch, whose order interleaves them; enrich() skips the others itself
            try:
                enricher.enrich(subset)
            except Exception:  # an enrichment bug must not stop detection: match without it, count it
                self.enrichment_errors += 1
                log.exception("enricher %s failed on a batch; matching without it", enricher.name)

    @staticmethod
    def _candidates_alone(lane: Any, event: dict[str, Any], cache: EventFolds) -> set[int]:
        """One event's candidates after its lane's batch call failed: a hostile value costs only its own event
        the index (the whole lane is evaluated for it), never the stream."""
        try:
            return lane.index.candidates(event, cache)  # type: ignore[no-any-return]
        except Exception:
            log.exception("candidate selection failed; evaluating the whole lane")
            return set(lane.rules)

    def _evaluate_carefully(self, candidates: set[int], functions: list[Any], event: dict[str, Any], cache: Any) -> list[int]:
        hits = []
        for i in candidates:
            try:
                if functions[i](event, cache):
                    hits.append(i)
            except Exception:
                self.rule_errors[i] += 1
        return hits

    @property
    def evaluated(self) -> list[int]:
        """Per rule (by index): events it was evaluated on after candidate selection."""
        counts = self._evaluated
        return [counts.get(i, 0) for i in range(len(self.ruleset.rules))]

    def finish(self) -> list[dict[str, Any]]:
        if self.correlation is None:
            return []
        return list(self.correlation.finish())

    def advance(self, watermark: Any) -> list[dict[str, Any]]:
        if self.correlation is None:
            return []
        return list(self.correlation.advance(watermark))

    def snapshot(self) -> bytes:
        state: dict[str, Any] = {"version": 1}
        if self.correlation is not None:
            state["correlation"] = base64.b64encode(self.correlation.snapshot()).decode()
        enrichers = {name: base64.b64encode(blob).decode() for name, blob in self.enrichers.snapshot().items()}
        if enrichers:
            state["enrichment"] = enrichers
        return orjson.dumps(state)

    def restore(self, state: bytes) -> None:
        if not state:
            return
        data = orjson.loads(state)
        if self.correlation is not None and data.get("correlation"):
            self.correlation.restore(base64.b64decode(data["correlation"]))
        saved = data.get("enrichment") or {}
        self.enrichers.restore({name: base64.b64decode(blob) for name, blob in saved.items() if blob})

    def take_dead_letters(self) -> list[DeadLetter]:
        """Events a correlation refused (late beyond the allowed lateness, unusable timestamps)."""
        if self.correlation is None:
            return []
        return [rejected.to_dead_letter() for rejected in self.correlation.take_rejected()]

    def rule_titles(self) -> dict[str, str]:
        titles = {r.id: r.meta.title for r in self.ruleset.rules}
        titles.update({k: m.title for k, m in self.ruleset.correlation_meta.items()})
        return titles

    def stats(self) -> dict[str, Any]:
        """The rule-health shape the report reads (docs/engine.md, "Rule health")."""
        rules = self.ruleset.rules
        routed = [0] * len(rules)
        seen_by_rule: list[set[str]] = [set() for _ in rules]
        for lane in self.ruleset.lanes:
            count = self.lane_events.get(lane.key, 0)
            if not count:
                continue
            for i in lane.rules:
                routed[i] += count
            slots = lane.index.fields
            for i in lane.rules:
                seen_by_rule[i].update(f for f in rules[i].fields if slots.get(f) is not None and slots[f].seen)
        out: dict[str, Any] = {}
        for rule in rules:
            i = rule.index
            missing = [f for f in rule.fields if f not in seen_by_rule[i]] if routed[i] else []
            out[rule.id] = {
                "title": rule.meta.title,
                "level": rule.meta.level,
                "routed": routed[i],
                "evaluated": self.evaluated[i],
                "matched": self.matched[i],
                "missing_fields": missing,
                "source": rule.meta.source,
                "errors": self.rule_errors[i],
                "warnings": list(rule.warnings),
            }
        stats: dict[str, Any] = {
            "rules": out,
            "load_errors": [e.as_dict() for e in self.ruleset.errors],
            "events": self.events,
            "rules_loaded": len(rules),
            "correlation_rules": len(self.ruleset.compiled_correlations),
            "candidates_mean": (self.candidates_total / self.events) if self.events else 0.0,
            "candidate_share_mean": (self.candidates_total / self.events / len(rules)) if self.events and rules else 0.0,
            "rule_errors": sum(self.rule_errors),
            "enrichment_errors": self.enrichment_errors,
            "correlation_errors": self.correlation_errors,
        }
        if self.correlation is not None:
            stats["correlation"] = self.correlation.stats()
        return stats

    def _publish_metrics(self, evaluated: Counter[int], matched: Counter[int]) -> None:
        """Once per batch, only for the rules this batch touched (label children are cached)."""
        children = self._metric_children
        rules = self.ruleset.rules
        for i, count in evaluated.items():
            pair = children.get(i)
            if pair is None:
                pair = children[i] = (metrics.RULE_EVALUATIONS.labels(rules[i].id), metrics.RULE_MATCHES.labels(rules[i].id))
            pair[0].inc(count)
            if i in matched:
                pair[1].inc(matched[i])
