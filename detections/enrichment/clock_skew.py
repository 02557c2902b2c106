"""Clock skew between a record's own time and the time it was received.

``event.ingested`` is stamped by our parser router when it parses the record. In the Kafka daemon
that is (within seconds) when the record arrived, so ``ingested - @timestamp`` measures the source
clock's error plus delivery delay. In a replay of old files it is the time of the replay, and the
difference is only the age of the file: meaningless, and it would flood a skew rule. So:

* ``reference="created"`` (default): use ``event.created`` only — a receive time carried by the
  record or its transport (a shipper's read time, a broker timestamp). Replays stay quiet.
* ``reference="ingested"``: also fall back to ``event.ingested``; the live daemon selects this
  (environment ``TSIEM_CLOCK_SKEW_REFERENCE=ingested``, or pass it when building the enricher).
* ``reference="off"``: never compute.

Positive skew: the record claims a time in the past (slow clock or late delivery); negative: the
source clock runs ahead of ours (the "certificate not yet valid" failure mode).
"""

from __future__ import annotations

import os
from typing import Any

from detections.enrichment.base import Enricher, as_datetime, event_time

OUTPUT_FIELD = "temporal.clock_skew_seconds"
REFERENCES = ("created", "ingested", "off")
ENV_VAR = "TSIEM_CLOCK_SKEW_REFERENCE"


class ClockSkew(Enricher):
    name = "clock_skew"

    def __init__(self, reference: str | None = None) -> None:
        chosen = (reference or os.environ.get(ENV_VAR) or "created").strip().lower()
        if chosen not in REFERENCES:
            raise ValueError(f"clock skew reference must be one of {', '.join(REFERENCES)}, not {chosen!r}")
        self.reference = chosen
        self._fields = {"created": ("event.created",), "ingested": ("event.created", "event.ingested"), "off": ()}[chosen]

    def enrich(self, events: list[dict[str, Any]]) -> None:
        if not self._fields:
            return
        for event in events:
            if OUTPUT_FIELD in event:
                continue  # a parser that knows better (a vendor receive time) already set it
            received = None
            for field in self._fields:
                received = as_datetime(event.get(field))
                if received is not None:
                    break
            if received is None:
                continue
            when = event_time(event)
            if when is not None:
                event[OUTPUT_FIELD] = round((received - when).total_seconds(), 3)
