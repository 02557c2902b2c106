"""Prometheus metrics, defined once so the daemon, the sinks and the dashboards agree on names.

docs/operations.md and dashboards/grafana.json use exactly these names.
"""

from __future__ import annotations

import re
import threading

from prometheus_client import Counter, Gauge, Histogram

RECORDS_CONSUMED = Counter("tsiem_records_consumed_total", "Raw records read from a source.", ["source"])
EVENTS = Counter("tsiem_events_total", "Normalized events produced, by dataset.", ["dataset"])
DEAD_LETTERS = Counter("tsiem_dead_letters_total", "Records dead-lettered, by reason and stage.", ["reason", "stage"])
ALERTS = Counter("tsiem_alerts_total", "Alerts raised, by rule.", ["rule_id", "rule_name", "level"])
CONSUMER_LAG = Gauge("tsiem_consumer_lag", "Kafka consumer lag in records.", ["topic", "partition"])
BATCH_LATENCY = Histogram("tsiem_batch_seconds", "Time to process one batch end to end.",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
SINK_WRITE = Histogram("tsiem_sink_write_seconds", "Time for a sink to accept a batch.", ["sink"],
                       buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30))
SINK_FAILURES = Counter("tsiem_sink_failures_total", "Batches a sink refused (retried).", ["sink"])
SINK_REJECTED = Counter("tsiem_sink_rejected_total", "Documents a sink rejected for their content (dead-lettered).", ["sink"])
RULE_EVALUATIONS = Counter("tsiem_rule_evaluations_total", "Events a rule was evaluated on (after candidate selection).", ["rule_id"])
RULE_MATCHES = Counter("tsiem_rule_matches_total", "Events a rule matched.", ["rule_id"])
CORRELATION_GROUPS = Gauge("tsiem_correlation_groups", "Open correlation groups in memory.")
CORRELATION_EVICTIONS = Counter("tsiem_correlation_evictions_total", "Correlation groups evicted by the memory cap.")
LATE_EVENTS = Counter("tsiem_late_events_total", "Events older than the watermark minus allowed lateness.")
UP = Gauge("tsiem_up", "1 while the daemon is running and its sources and required sinks are healthy.")


class BoundedLabel:
    """Label values taken from log content, bounded (issue 15: 1,500 records with distinct 100 KB
    ``event.dataset`` values held 150 MB of label text and made /metrics 300 MB).

    The parsers' own datasets (``known``) are always labels; other well-formed values (``[a-z0-9_.-]``, at most 64 characters, as ECS datasets are) are kept
    until ``limit`` distinct ones have been seen; everything else is ``other``.
    """

    OTHER = "other"
    _WELL_FORMED = re.compile(r"[A-Za-z0-9_.-]{1,64}")

    def __init__(self, known: frozenset[str] = frozenset(), limit: int = 64) -> None:
        self.known = set(known)
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def add_known(self, names: frozenset[str] | set[str]) -> None:
        with self._lock:
            self.known.update(names)

    def __call__(self, value: object) -> str:
        text = value if isinstance(value, str) else ""
        if text in self.known or text in self._seen:
            return text
        if not text or len(text) > 64 or self._WELL_FORMED.fullmatch(text) is None:
            return self.OTHER
        with self._lock:
            if len(self._seen) >= self.limit:
                return self.OTHER
            self._seen.add(text)
        return text


#: ``tsiem_events_total{dataset}``: the pipeline registers the parsers' datasets as known.
DATASET_LABEL = BoundedLabel()
