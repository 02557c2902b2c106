"""The enricher protocol: derived fields added to flat events before the rules see them.

Rules can only compare fields that exist in an event. Facts that need memory (when was this API key
created?) or arithmetic on two fields (how many days until this certificate expires?) are computed
here, once per event, so that Sigma rules stay declarative (``temporal.api_key.age_days|gt: 90``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson

from temporal_siem.kernel.timestamps import parse_timestamp


class Enricher(ABC):
    """Adds fields to flat events in place. Stateful enrichers persist their state via snapshot/restore."""

    name: str = "enricher"
    # The ``event.dataset`` values (None: no dataset) of the events ``enrich()`` reads or changes at all; None: any.
    # The detector then hands it only a batch's events of those datasets when that costs nothing (one dataset of
    # them in the batch), or skips it when the batch has none: a loop over the batch per enricher was ~0.15 us
    # an event each. It also bounds what a stateful enricher's state can read (the default ``reads_state``), so
    # ``replay --workers`` sends only those events to the one process that holds the state (None: every event,
    # correct, just not parallel). ``tests/rules/test_enricher_datasets.py`` holds each declaration to enrich().
    datasets: ClassVar[frozenset[str | None] | None] = None
    # True when enrich() on an event depends on that event alone (no state, nothing learnt from other events) and
    # adds only the fields in ``writes``: then enriching an event after matching, or not at all when nothing reads
    # it, changes nothing anyone sees, and the detector may do so (``SigmaDetector.accepts_deferred``).
    # ``tests/rules/test_enricher_deferrable.py`` holds each declaration to enrich().
    deferrable: ClassVar[bool] = False
    writes: ClassVar[frozenset[str]] = frozenset()
    # What the values it writes are, for keyword rules (which search every value) when it is deferred: "number"
    # (ints and floats), "folded" (each a ``str.strip().lower()`` of a string value or list member the event
    # already holds: an unanchored keyword that matches it matches that value, unless the keyword is cased), or
    # "text" (anything).
    written: ClassVar[str] = "text"

    @abstractmethod
    def enrich(self, events: list[dict[str, Any]]) -> None:
        """Add derived fields to each event (in place); never raise on odd values."""

    def reads_state(self, event: dict[str, Any]) -> bool:
        """Whether :meth:`enrich` may read or change this enricher's state on ``event`` (a superset is correct; a
        miss is not). ``replay --workers`` sends only such events to the one process that holds the state, the
        rest are enriched and matched in parallel: the tighter the test, the less crosses between processes.
        ``enrich`` keeps its own checks (it is given every event in one process); a contract test holds the two
        together (tests/rules/test_enrichment_state_gate.py: an event this refuses leaves event and state as
        they were). The default: an event of a declared ``datasets`` value, or every event when none is declared."""
        declared = self.datasets
        if declared is None:
            return True
        try:
            return event.get("event.dataset") in declared
        except TypeError:  # an unhashable dataset value
            return True

    def snapshot(self) -> bytes:
        return b""

    def restore(self, state: bytes) -> None:  # noqa: B027 - stateless enrichers ignore it
        """Load what :meth:`snapshot` wrote."""

    def stats(self) -> dict[str, Any]:
        return {}


def event_time(event: dict[str, Any]) -> datetime | None:
    """The event's own time (``@timestamp``), timezone-aware, or None when absent or unparseable."""
    return as_datetime(event.get("@timestamp"))


#: The last text :func:`as_datetime` parsed and its result: each enricher reads the same event's ``@timestamp``
#: string object in turn (one tuple, swapped whole, so threads never see a text with another's result).
_LAST_TEXT: tuple[str | None, datetime | None] = (None, None)


def as_datetime(value: Any) -> datetime | None:
    """Accept what parsers emit (ISO strings, datetimes); anything odd gives None rather than an error."""
    global _LAST_TEXT
    if type(value) is str:
        last = _LAST_TEXT
        if value is last[0]:
            return last[1]
        parsed = parse_timestamp(value)  # never raises; None for anything it cannot read
        _LAST_TEXT = (value, parsed)
        return parsed
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, (str, int, float, dict)):
        return None
    return parse_timestamp(value)  # never raises; None for anything it cannot read


def read_snapshot_map(state: bytes, registry: str, key: str) -> dict[str, Any] | None:
    """The ``key`` map of a registry snapshot; None for an empty state, ValueError naming the registry if broken."""
    if not state:
        return None
    try:
        data = orjson.loads(state)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{registry} snapshot is not JSON: {exc}") from exc
    mapping = data.get(key) if isinstance(data, dict) else None
    if not isinstance(mapping, dict):
        raise ValueError(f"{registry} snapshot has no {key!r} map")
    return mapping


class SetRegistry:
    """The last-seen set of values per key (a namespace's CA fingerprints, a user's roles), LRU-capped.

    ``update`` answers the question the rules need: did the set change, and what is new in it?
    """

    def __init__(self, registry: str, map_key: str, capacity: int) -> None:
        self.registry = registry
        self.map_key = map_key
        self.capacity = capacity
        self._sets: OrderedDict[str, frozenset[str]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sets)

    def update(self, key: str, current: frozenset[str]) -> tuple[bool, list[str]]:
        """Remember ``current`` for ``key``; return (changed since last time, values added)."""
        previous = self._sets.get(key)
        added = sorted(current - previous) if previous is not None else sorted(current)
        self._sets[key] = current
        self._sets.move_to_end(key)
        while len(self._sets) > self.capacity:
            self._sets.popitem(last=False)
        return previous != current, added

    def snapshot(self) -> bytes:
        return orjson.dumps({"version": 1, self.map_key: {k: sorted(v) for k, v in self._sets.items()}})

    def restore(self, state: bytes) -> None:
        mapping = read_snapshot_map(state, self.registry, self.map_key)
        for key, values in (mapping or {}).items():
            if isinstance(key, str) and isinstance(values, list):
                self._sets[key] = frozenset(str(v) for v in values)
