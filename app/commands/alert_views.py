"""What a replay shows and writes, as Hayabusa and Chainsaw users expect: a minimum level, an event-time
range, rule filters (id, name or tag globs), and alert files as JSON Lines, CSV or a timeline CSV.

The filters wrap the detector rather than the sinks so that every output (alerts file, configured sinks,
table, summary, report, exit code) sees the same alerts.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import sys
from datetime import UTC, datetime
from typing import IO, Any

from temporal_siem.detections.base import Detector
from temporal_siem.kernel.levels import SEVERITY_BY_LEVEL
from temporal_siem.kernel.records import DeadLetter
from temporal_siem.kernel.timestamps import parse_timestamp
from temporal_siem.sinks.base import Sink
from temporal_siem.sinks.file import FileSink

ALERT_FORMATS = ("jsonl", "csv", "timeline")


def parse_time_bound(text: str) -> datetime:
    """``--from``/``--to``: any timestamp the parsers accept (ISO 8601, epoch seconds); naive means UTC."""
    moment = parse_timestamp(text)
    if moment is None:
        raise ValueError(f"not a timestamp: {text!r} (e.g. 2025-10-01T00:00:00Z)")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class AlertFilter:
    """Which alerts a run keeps: at or above a level, and (when globs are given) of a matching rule."""

    def __init__(self, min_level: str | None = None, rule_globs: list[str] | None = None) -> None:
        self.min_severity = SEVERITY_BY_LEVEL[min_level] if min_level else 0
        self.globs = [g.lower() for g in rule_globs or []]

    @property
    def active(self) -> bool:
        return bool(self.min_severity or self.globs)

    def keeps(self, alert: dict[str, Any]) -> bool:
        severity = alert.get("event.severity")
        if self.min_severity and not (isinstance(severity, int) and severity >= self.min_severity):
            return False
        if not self.globs:
            return True
        names = [str(alert.get("rule.id") or ""), str(alert.get("rule.name") or "")]
        tags = alert.get("tags")
        if isinstance(tags, list):
            names.extend(str(t) for t in tags)
        return any(fnmatch.fnmatchcase(name.lower(), glob) for name in names for glob in self.globs)


class FilteredDetector(Detector):
    """Delegates to the real detector; passes only events inside the time range, keeps only wanted alerts.

    Events outside ``--from``/``--to`` are not evaluated at all (they cannot feed a correlation either),
    which is what a responder narrowing a replay to an incident window means."""

    def __init__(self, inner: Detector, alerts: AlertFilter, start: datetime | None = None, end: datetime | None = None) -> None:
        self.inner = inner
        self.alerts = alerts
        self.start = start
        self.end = end
        self.outside_range = 0

    def _in_range(self, event: dict[str, Any]) -> bool:
        moment = parse_timestamp(event.get("@timestamp"))
        if moment is None:
            return False
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return (self.start is None or moment >= self.start) and (self.end is None or moment <= self.end)

    def _keep(self, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [a for a in alerts if self.alerts.keeps(a)] if self.alerts.active else alerts

    def process(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.start is not None or self.end is not None:
            kept = [e for e in events if self._in_range(e)]
            self.outside_range += len(events) - len(kept)
            events = kept
        return self._keep(self.inner.process(events))

    def finish(self) -> list[dict[str, Any]]:
        return self._keep(self.inner.finish())

    def stats(self) -> dict[str, Any]:
        stats = dict(self.inner.stats())
        if self.start is not None or self.end is not None:
            stats["events_outside_time_range"] = self.outside_range
        return stats

    def take_dead_letters(self) -> list[DeadLetter]:
        return self.inner.take_dead_letters()

    def rule_titles(self) -> dict[str, str]:
        return self.inner.rule_titles()


def _entity(alert: dict[str, Any]) -> str:
    for key in ("temporal.user_key", "user.email", "user.name", "user.id", "temporal.principal.name", "temporal.namespace",
                "temporal.key.id", "temporal.api_key.id", "source.ip"):
        value = alert.get(key)
        if value not in (None, "", []):
            return ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    group = alert.get("alert.group_by")
    if isinstance(group, dict) and group:
        return ", ".join(f"{k}={v}" for k, v in group.items())
    return ""


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    # A log value opened in a spreadsheet must not run as a formula.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


TIMELINE_COLUMNS = ("time", "level", "rule", "entity", "source ip", "action", "dataset", "event ids")
CSV_COLUMNS = ("@timestamp", "alert.id", "alert.type", "alert.level", "rule.id", "rule.name", "event.action", "event.outcome",
               "event.dataset", "user.name", "user.email", "source.ip", "temporal.namespace", "alert.source_event_ids")


def timeline_row(alert: dict[str, Any]) -> list[str]:
    ids = alert.get("alert.source_event_ids") or alert.get("event.id")
    return [_cell(alert.get("@timestamp")), _cell(alert.get("alert.level")), _cell(alert.get("rule.name")), _cell(_entity(alert)),
            _cell(alert.get("source.ip")), _cell(alert.get("event.action")), _cell(alert.get("event.dataset")), _cell(ids)]


class CsvAlertSink(Sink):
    """Alerts as CSV with a header: ``csv`` (the main alert fields) or ``timeline`` (one analyst row per alert)."""

    name = "csv"

    def __init__(self, path: str = "-", layout: str = "csv") -> None:
        if layout not in ("csv", "timeline"):
            raise ValueError(f"unknown CSV layout {layout!r}")
        self.path = path
        self.layout = layout
        self._stream: IO[str] | None = None
        self._writer: Any = None

    def open(self) -> None:
        if self._stream is not None:
            return
        self._stream = sys.stdout if self.path == "-" else open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115
        self._writer = csv.writer(self._stream)
        self._writer.writerow(TIMELINE_COLUMNS if self.layout == "timeline" else CSV_COLUMNS)

    def write(self, documents: list[dict[str, Any]]) -> None:
        if self._stream is None:
            self.open()
        rows = [timeline_row(d) if self.layout == "timeline" else [_cell(d.get(c)) for c in CSV_COLUMNS] for d in documents]
        self._writer.writerows(rows)

    def flush(self) -> None:
        if self._stream is not None:
            self._stream.flush()

    def close(self) -> None:
        if self._stream is None:
            self.open()  # an empty run still writes the header: the file exists and parses
        assert self._stream is not None
        self._stream.flush()
        if self._stream is not sys.stdout:
            self._stream.close()
        self._stream = None


def alert_file_sink(path: str, fmt: str) -> Sink:
    if fmt == "jsonl":
        return FileSink(path=path, append=False)
    return CsvAlertSink(path, "timeline" if fmt == "timeline" else "csv")


def csv_text(alerts: list[dict[str, Any]], layout: str = "csv") -> str:
    """The CSV a sink would write, as text (tests and ``rules`` tooling)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(TIMELINE_COLUMNS if layout == "timeline" else CSV_COLUMNS)
    writer.writerows(timeline_row(a) if layout == "timeline" else [_cell(a.get(c)) for c in CSV_COLUMNS] for a in alerts)
    return buffer.getvalue()
