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
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from temporal_siem.detections.enrichment.base import Enricher, as_datetime, event_time
from temporal_siem.kernel.timestamps import format_timestamp

OUTPUT_FIELD = "temporal.clock_skew_seconds"
REFERENCES = ("auto", "created", "ingested", "off")
ENV_VAR = "TSIEM_CLOCK_SKEW_REFERENCE"
OUR_STAMP_TOLERANCE_S = 120.0
LIVE_WINDOW_S = 3600.0

#: Our own timestamp form (``format_timestamp``), every digit an ASCII digit and seconds below 60. Two such texts
#: compare as text exactly as their times compare, and each parses to exactly the time it spells (or not at all).
_CANONICAL = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-5][0-9]\.[0-9]{6}Z")


_NOTHING = object()  # identical to no value an event can hold (not None: a missing stamp must be checked)


class _ReplayGate:
    """Decides from the texts alone, for the ``auto`` reference, that an event gets no skew: the common case of a
    replayed file, where every event carries our own fresh ``event.ingested`` stamp and an old ``@timestamp``.

    Without it each such event parsed two timestamps and did three datetime subtractions (~2 µs, 6 % of a
    Windows-event replay) only to conclude "our stamp, not live". The gate answers only when both texts are in our
    canonical form (:data:`_CANONICAL`), where comparing the texts is comparing the times; anything else takes the
    datetime path. Bounds are inclusive exactly as ``abs(delta) > limit`` is exclusive.
    """

    __slots__ = ("_ours", "live_high", "live_low", "stamp_high", "stamp_low")

    def __init__(self, now: datetime) -> None:
        tolerance = timedelta(seconds=OUR_STAMP_TOLERANCE_S)
        live = timedelta(seconds=LIVE_WINDOW_S)
        self.stamp_low = format_timestamp(now - tolerance)
        self.stamp_high = format_timestamp(now + tolerance)
        self.live_low = format_timestamp(now - live)
        self.live_high = format_timestamp(now + live)
        # The last ``event.ingested`` found to be ours: a batch's events share one stamp object (parse_batch), so
        # its checks run once a batch; an identity test, so any other object is checked afresh.
        self._ours: Any = _NOTHING

    def quiet(self, ingested: Any, timestamp: Any) -> bool:
        """True only if the datetime path would find ``ingested`` to be our stamp and the event not live."""
        if ingested is not self._ours:
            if (ingested.__class__ is not str or not (self.stamp_low <= ingested <= self.stamp_high)
                    or _CANONICAL.fullmatch(ingested) is None):
                return False
            self._ours = ingested
        return (timestamp.__class__ is str and not (self.live_low <= timestamp <= self.live_high)
                and _CANONICAL.fullmatch(timestamp) is not None)


class ClockSkew(Enricher):
    name = "clock_skew"
    deferrable = True
    written = "number"
    writes = frozenset({OUTPUT_FIELD})

    def __init__(self, reference: str | None = None) -> None:
        chosen = (reference or os.environ.get(ENV_VAR) or "auto").strip().lower()
        if chosen not in REFERENCES:
            raise ValueError(f"clock skew reference must be one of {', '.join(REFERENCES)}, not {chosen!r}")
        self.reference = chosen

    def enrich(self, events: list[dict[str, Any]]) -> None:
        if self.reference == "off":
            return
        now = datetime.now(UTC)
        gate = _ReplayGate(now) if self.reference == "auto" else None
        for event in events:
            if OUTPUT_FIELD in event:
                continue  # a parser that knows better (a vendor receive time) already set it
            created = event.get("event.created")
            ingested = event.get("event.ingested")
            if created is None and (ingested is None or self.reference == "created"):
                continue
            if created is None and gate is not None and gate.quiet(ingested, event.get("@timestamp")):
                continue  # our stamp on an old record: what _trust_ingested below would conclude, from the texts
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
