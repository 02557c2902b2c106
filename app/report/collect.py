"""What a replay keeps for its report beyond the alerts themselves.

A rule alert already carries its triggering event's fields; a correlation alert carries only the ids of
the events that made it. To show those events the replay wraps the detector in an :class:`EventRecorder`,
which remembers the most recent events by id (a bounded window: correlation windows are short compared with
a replay) and, whenever a correlation alert fires, copies the contributing events still in that window into
a bounded store. Memory stays bounded whatever the replay size; events that fell out of the window are
reported as "not retained" rather than silently missing.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from temporal_siem.detections.base import Detector
from temporal_siem.kernel.records import DeadLetter

RECENT_EVENTS = 20_000
RETAINED_EVENTS = 20_000


class EventRecorder(Detector):
    """Delegates to the real detector; keeps recent events so correlation alerts can show their evidence."""

    def __init__(self, inner: Detector, *, recent: int = RECENT_EVENTS, retained: int = RETAINED_EVENTS) -> None:
        self.inner = inner
        self.recent_limit = max(recent, 0)
        self.retained_limit = max(retained, 0)
        self._recent: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.retained: dict[str, dict[str, Any]] = {}
        self.not_retained = 0

    def process(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        recent = self._recent
        for event in events:
            event_id = event.get("event.id")
            if event_id is None:
                continue
            key = str(event_id)
            recent[key] = event
            recent.move_to_end(key)
        while len(recent) > self.recent_limit:
            recent.popitem(last=False)
        alerts = self.inner.process(events)
        self._retain(alerts)
        return alerts

    def finish(self) -> list[dict[str, Any]]:
        alerts = self.inner.finish()
        self._retain(alerts)
        return alerts

    def _retain(self, alerts: list[dict[str, Any]]) -> None:
        for alert in alerts:
            if alert.get("alert.type") != "correlation":
                continue
            ids = alert.get("alert.source_event_ids")
            if not isinstance(ids, list):
                continue
            for event_id in ids:
                key = str(event_id)
                if key in self.retained:
                    continue
                event = self._recent.get(key)
                if event is None or len(self.retained) >= self.retained_limit:
                    self.not_retained += 1
                    continue
                self.retained[key] = event

    def snapshot(self) -> bytes:
        return self.inner.snapshot()

    def restore(self, state: bytes) -> None:
        self.inner.restore(state)

    def stats(self) -> dict[str, Any]:
        return self.inner.stats()

    def take_dead_letters(self) -> list[DeadLetter]:
        return self.inner.take_dead_letters()

    def rule_titles(self) -> dict[str, str]:
        return self.inner.rule_titles()
