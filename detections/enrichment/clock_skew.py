"""Clock skew between a record's own time and the time it was received.

``event.ingested`` is set by whoever received the record first: a shipper or Elastic ingest pipeline when the
record arrives already normalized (ECS input), else our parser router when it parses it. In the Kafka daemon our
stamp is (within seconds) the arrival time, so ``ingested - @timestamp`` measures the source clock's error plus
delivery delay. In a replay of old files our stamp is the time of the replay and the difference is only the
file's age: meaningless, and it would flood a skew rule. The reference is chosen per event:

* ``auto`` (default): ``event.created`` if present (a receive time carried by the record or its transport);
  else ``event.ingested`` when it came with the record (more than two minutes away from our clock now, so not
  our stamp); else our own stamp, but only for records written within the last hour (a live stream; a replay of
  last week's file stays quiet). Replaying a file written minutes ago is indistinguishable from live and is
  treated as live.
* ``created``: ``event.created`` only. ``ingested``: also ``event.ingested``, always. ``off``: never.

Choose with ``ClockSkew(reference)`` or the environment variable ``TSIEM_CLOCK_SKEW_REFERENCE``.
Positive skew: the record claims a time in the past (slow clock or late delivery); negative: the source clock
runs ahead of ours (the "certificate not yet valid" failure mode).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from temporal_siem.detections.enrichment.base import Enricher, as_datetime, event_time

OUTPUT_FIELD = "temporal.clock_skew_seconds"
REFERENCES = ("auto", "created", "ingested", "off")
ENV_VAR = "TSIEM_CLOCK_SKEW_REFERENCE"
OUR_STAMP_TOLERANCE_S = 120.0
LIVE_WINDOW_S = 3600.0


class ClockSkew(Enricher):
    name = "clock_skew"

    def __init__(self, reference: str | None = None) -> None:
        chosen = (reference or os.environ.get(ENV_VAR) or "auto").strip().lower()
        if chosen not in REFERENCES:
            raise ValueError(f"clock skew reference must be one of {', '.join(REFERENCES)}, not {chosen!r}")
        self.reference = chosen

    def enrich(self, events: list[dict[str, Any]]) -> None:
        if self.reference == "off":
            return
        now = datetime.now(UTC)
        for event in events:
            if OUTPUT_FIELD in event:
                continue  # a parser that knows better (a vendor receive time) already set it
            created = event.get("event.created")
            ingested = event.get("event.ingested")
            if created is None and (ingested is None or self.reference == "created"):
                continue
            when = event_time(event)
            if when is None:
                continue
            received = as_datetime(created) if created is not None else None
            if received is None and ingested is not None and self.reference != "created":
                stamp = as_datetime(ingested)
                if stamp is not None and (self.reference == "ingested" or self._trust_ingested(stamp, when, now)):
                    received = stamp
            if received is not None:
                event[OUTPUT_FIELD] = round((received - when).total_seconds(), 3)

    @staticmethod
    def _trust_ingested(stamp: datetime, when: datetime, now: datetime) -> bool:
        if abs((now - stamp).total_seconds()) > OUR_STAMP_TOLERANCE_S:
            return True  # not our stamp: the record brought its own ingest time
        return abs((now - when).total_seconds()) <= LIVE_WINDOW_S  # our stamp, on a live stream
