"""Event-time marks of the input partitions: what each owner sends, and how a scope partition combines them.

An input partition's **mark** is its latest event time minus its topic's grace: the owner promises that what it
reads next is not older. A scope partition's **watermark** is the minimum of the marks of every input partition;
events older than it are late. Two views, one per side of the scopes topic:

* :class:`OwnedMarks`, on the member that reads an input partition: the marks it sends (with each scope message and
  in ``~tick`` messages to every scope partition), and when it says a partition went silent (``idle``).
* :class:`ScopeMarks`, on the member that owns a scope partition: every source's last mark, kept in the partition's
  state store (so the member that takes the partition over after a rebalance or a crash has them at once, instead
  of waiting to hear from every source, which a source with nothing new to read never sends).

Silence. A partition nobody writes to must not stop every window, so its owner says when it has been silent for
``source_idle_seconds`` (and repeats it every half of that while it stays silent), and the scope partitions then
leave it out of the minimum. Two exceptions, each from a failing acceptance run (kill -9 and a member joining):

* Within ``source_idle_seconds`` after any partition starts reporting again, the silent ones count again at their
  last mark. After a quiet spell the first partition to wake would otherwise set the watermark alone, ahead of the
  records the others are about to deliver (producers write to every partition at once; their owners fetch them a
  moment later).
* A silent flag its owner has not repeated for ``source_idle_seconds`` no longer counts: the owner may be dead,
  with new records waiting in its partitions for the next owner. Since a dead owner's flag lapses before the hold
  that a wake starts ends, its records are not overtaken.

The clock of a scope partition is the broker time of its own messages (the scopes topic is created with
LogAppendTime), not the reader's wall clock: a member that re-reads the partition after a crash reaches the same
verdicts as the member that read it first, and no member's clock running ahead moves it. A partition left
out is the trade-off of any idleness rule: if it later delivers records older than what the others moved the
watermark to meanwhile, those are late (counted and dead-lettered).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from temporal_siem.detections.scoped import NEVER

#: The state-store entry of a scope partition holding its :class:`ScopeMarks` (beside ``__meta__``; no scope key starts
#: with an underscore).
MARKS_KEY = "__marks__"


@dataclass
class SourceMark:
    """One input partition's event-time progress, as the member reading it saw it."""

    mark: int = NEVER  # latest event time minus grace (microseconds)
    sent: int = NEVER  # last mark broadcast to every scope partition
    active_at: float = field(default_factory=time.monotonic)
    # When the silent flag last went out; None since the partition was last active. The flag is repeated every half
    # of ``idle_seconds`` (scope partitions let it lapse).
    idle_sent_at: float | None = None


class OwnedMarks:
    """The marks of the input partitions this member reads, and which of them to broadcast now.

    A partition taken away keeps its mark here: what this member read of it is a lower bound of the partition's
    progress whoever reads it next, and a rebalance that takes every partition away and gives them back at once
    (the eager protocol) must not forget the records read just before it (they are committed at the revocation and
    never read again: their mark would be lost, and the scope partitions would wait for it).
    """

    def __init__(self, idle_seconds: float, heartbeat_seconds: float) -> None:
        self.idle_seconds = idle_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.marks: dict[str, SourceMark] = {}
        self.assigned: frozenset[str] = frozenset()
        self._last_full: float | None = None  # heartbeats count from the first call

    def get(self, source: str) -> SourceMark:
        mark = self.marks.get(source)
        if mark is None:
            mark = self.marks[source] = SourceMark()
        return mark

    def active(self, source: str, now: float) -> SourceMark:
        """``source`` read a record, or was just (re)assigned: its silence counts from ``now``."""
        mark = self.get(source)
        mark.active_at = now
        mark.idle_sent_at = None
        return mark

    def due(self, assigned: set[str], now: float) -> list[tuple[str, int, bool]]:
        """(source, mark, idle) to send to every scope partition now, for the partitions assigned to this member.

        A moved mark goes out at once; every mark goes out again each ``heartbeat_seconds`` (a member that took a
        scope partition over learns the marks of sources that are not moving). A partition silent for
        ``idle_seconds`` is sent with the idle flag, again every half of ``idle_seconds``. A partition just (re)assigned
        counts as active from now: its silence is measured from when this member started reading it."""
        for source in assigned - self.assigned:
            self.active(source, now)
        self.assigned = frozenset(assigned)
        if self._last_full is None:
            self._last_full = now
        full = now - self._last_full >= self.heartbeat_seconds
        if full:
            self._last_full = now
        out: list[tuple[str, int, bool]] = []
        for source in sorted(assigned):
            mark = self.get(source)
            idle = now - mark.active_at > self.idle_seconds
            if mark.mark > mark.sent or (full and not idle and mark.mark > NEVER):
                out.append((source, mark.mark, False))
                mark.sent = mark.mark
            elif idle and (mark.idle_sent_at is None or now - mark.idle_sent_at >= self.idle_seconds / 2):
                out.append((source, mark.mark, True))
                mark.idle_sent_at = now
        return out


class ScopeMarks:
    """Every input partition's mark as one scope partition heard it, and the watermark they give.

    Entries: ``source -> [mark, idle, idle_at_ms]``: the highest mark heard (marks only grow), whether its owner's last
    word was that it is silent, and the broker time of that word. ``clock_ms`` is the latest broker time seen on the
    partition; until ``hold_ms`` no silent partition is left out (a partition has just started reporting).
    """

    __slots__ = ("clock_ms", "entries", "hold_ms", "idle_ms")

    def __init__(self, idle_seconds: float) -> None:
        self.idle_ms = int(idle_seconds * 1000)
        self.entries: dict[str, list[Any]] = {}
        self.clock_ms = 0
        self.hold_ms = 0

    def observe(self, source: str, mark: int, idle: bool, timestamp_ms: int) -> None:
        """A mark heard from ``source`` (a scope message's header or a tick) in a message of broker time
        ``timestamp_ms``."""
        self.tick(timestamp_ms)
        entry = self.entries.get(source)
        if entry is None:
            entry = self.entries[source] = [NEVER, True, NEVER]  # not silent by its owner's word: lapsed at once
        if mark > entry[0]:
            entry[0] = mark
        if idle:
            entry[1] = True
            entry[2] = self.clock_ms
            return
        if entry[1]:  # (re)started reporting: no silent partition is left out for a while
            self.hold_ms = max(self.hold_ms, self.clock_ms + self.idle_ms)
        entry[1] = False

    def tick(self, timestamp_ms: int) -> None:
        """The broker time of a message: the partition's clock never goes back."""
        if timestamp_ms > self.clock_ms:
            self.clock_ms = timestamp_ms

    def watermark(self, sources: list[str]) -> int:
        """The minimum over ``sources`` (every input partition) of those not left out; NEVER while one of them was
        never heard of, or holds without a mark."""
        low: int | None = None
        clock = self.clock_ms
        holding = clock < self.hold_ms
        for source in sources:
            entry = self.entries.get(source)
            if entry is None:
                return NEVER
            if entry[1] and not holding and clock - entry[2] <= self.idle_ms:
                continue  # silent by its owner's current word
            if low is None or entry[0] < low:
                low = entry[0]
        return NEVER if low is None else low

    # -- kept in the scope partition's state store -------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {"e": {k: list(v) for k, v in self.entries.items()}, "c": self.clock_ms, "h": self.hold_ms}

    @classmethod
    def from_state(cls, value: Any, idle_seconds: float) -> ScopeMarks:
        """What :meth:`to_state` stored; anything else (absent, another shape) starts empty."""
        marks = cls(idle_seconds)
        if isinstance(value, dict):
            entries = value.get("e")
            if isinstance(entries, dict):
                for source, entry in entries.items():
                    if (isinstance(source, str) and isinstance(entry, list) and len(entry) == 3 and type(entry[0]) is int
                            and type(entry[1]) is bool and type(entry[2]) is int):
                        marks.entries[source] = list(entry)
            for name, attr in (("c", "clock_ms"), ("h", "hold_ms")):
                if type(value.get(name)) is int:
                    setattr(marks, attr, value[name])
        return marks
