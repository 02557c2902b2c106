"""Per-group window state: the sliding form (lower-bound conditions) and the window-close form.

Both keep only what their metric needs, with ``__slots__`` and flat lists, because a million open
groups must fit in well under a gigabyte.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Hashable
from typing import Any

from temporal_siem.detections.correlation.compiled import CompiledCorrelation

NEVER = -(1 << 62)  # "no time": smaller than every event time
STRIDE = 4  # sliding buffer entry: time, event id, rule mask, value
_SET_FROM = 16  # below this many ids a linear scan beats a set (and saves 200 bytes per group)

Value = Any  # value_count: tuple of hashables; numeric types: float; others: None


def popcount(mask: int) -> int:
    return mask.bit_count()


def nearest_rank(values: list[float], percentile: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``percentile`` % of values at or below it."""
    ordered = sorted(values)
    rank = max(1, math.ceil(percentile / 100.0 * len(ordered)))
    return ordered[rank - 1]


class SlidingGroup:
    """Events of one group inside [now - timespan, now], with incremental aggregates.

    After an alert the buffer is cleared and events up to ``quiet_until`` (window start + timespan) are
    absorbed: one alert per window, so a long burst raises one alert per timespan, not one per event.
    """

    __slots__ = ("best", "buf", "head", "ids", "last_t", "quiet_until", "rule_counts", "total", "values")

    def __init__(self) -> None:
        self.buf: list[Any] = []
        self.head = 0  # index (in entries) of the oldest live entry
        self.last_t = NEVER
        self.quiet_until = NEVER
        self.rule_counts: list[int] | None = None
        self.values: dict[Hashable, int] | None = None
        self.total: float = 0
        self.best: list[int] | None = None  # temporal_ordered: latest start of an in-order chain of length k
        self.ids: set[str] | None = None

    def live(self) -> int:
        return len(self.buf) // STRIDE - self.head

    def contains(self, event_id: str) -> bool:
        if self.ids is not None:
            return event_id in self.ids
        buf = self.buf
        return any(buf[i] == event_id for i in range(self.head * STRIDE + 1, len(buf), STRIDE))

    def add(self, corr: CompiledCorrelation, t: int, event_id: str, mask: int, value: Value) -> None:
        self.buf.extend((t, event_id, mask, value))
        self.last_t = t
        if self.ids is not None:
            self.ids.add(event_id)
        elif self.live() > _SET_FROM:
            buf = self.buf
            self.ids = {buf[i] for i in range(self.head * STRIDE + 1, len(buf), STRIDE)}
        kind = corr.kind
        if kind == "temporal":
            counts = self.rule_counts
            if counts is None:
                counts = self.rule_counts = [0] * len(corr.refs)
            for index in range(len(counts)):
                if mask >> index & 1:
                    counts[index] += 1
        elif kind == "temporal_ordered":
            best = self.best
            if best is None:
                best = self.best = [NEVER] * (len(corr.refs) + 1)
            for index in range(len(corr.refs) - 1, -1, -1):
                if mask >> index & 1:
                    start = t if index == 0 else best[index]
                    if start > best[index + 1]:
                        best[index + 1] = start
        elif kind == "value_count" and value:
            values = self.values
            if values is None:
                values = self.values = {}
            for item in value:
                values[item] = values.get(item, 0) + 1
        elif kind == "value_sum" and value is not None:
            self.total += value

    def drop_oldest(self, corr: CompiledCorrelation) -> None:
        base = self.head * STRIDE
        buf = self.buf
        event_id, mask, value = buf[base + 1], buf[base + 2], buf[base + 3]
        buf[base + 1] = buf[base + 3] = None
        self.head += 1
        if self.ids is not None:
            self.ids.discard(event_id)
        kind = corr.kind
        if kind == "temporal" and self.rule_counts is not None:
            for index in range(len(self.rule_counts)):
                if mask >> index & 1:
                    self.rule_counts[index] -= 1
        elif kind == "value_count" and value and self.values is not None:
            for item in value:
                left = self.values[item] - 1
                if left:
                    self.values[item] = left
                else:
                    del self.values[item]
        elif kind == "value_sum" and value is not None:
            self.total -= value
        if self.head > 32 and self.head * 2 > len(buf) // STRIDE:
            del buf[: self.head * STRIDE]
            self.head = 0

    def slide(self, corr: CompiledCorrelation, low: int) -> None:
        """Forget entries older than ``low`` (the window start for the event being added)."""
        buf = self.buf
        while self.head * STRIDE < len(buf) and buf[self.head * STRIDE] < low:
            self.drop_oldest(corr)

    def metric(self, corr: CompiledCorrelation, now: int) -> tuple[float, int]:
        """(value, mask of rules present) for the window ending now."""
        kind = corr.kind
        if kind == "event_count":
            return self.live(), 0
        if kind == "value_count":
            return (len(self.values) if self.values else 0), 0
        if kind == "value_sum":
            return self.total, 0
        if kind == "temporal":
            counts = self.rule_counts or []
            mask = sum(1 << index for index, count in enumerate(counts) if count > 0)
            return popcount(mask), mask
        best = self.best or []
        low = now - corr.timespan_us
        length = 0
        for k in range(1, len(best)):
            if best[k] < low:
                break
            length = k
        return length, (1 << length) - 1

    def first_time(self) -> int:
        return int(self.buf[self.head * STRIDE])

    def live_ids(self, limit: int) -> list[str]:
        buf = self.buf
        start = self.head * STRIDE + 1
        return [buf[i] for i in range(start, min(len(buf), start + limit * STRIDE), STRIDE)]

    def chain_start(self, length: int) -> int:
        """temporal_ordered: time of the first event of the latest complete in-order chain of ``length`` rules."""
        best = self.best or []
        return int(best[length]) if length < len(best) and best[length] > NEVER else self.first_time()

    def ids_since(self, low: int, limit: int) -> list[str]:
        buf = self.buf
        out: list[str] = []
        for i in range(self.head * STRIDE, len(buf), STRIDE):
            if buf[i] >= low:
                out.append(buf[i + 1])
                if len(out) >= limit:
                    break
        return out

    def count_since(self, low: int) -> int:
        buf = self.buf
        return sum(1 for i in range(self.head * STRIDE, len(buf), STRIDE) if buf[i] >= low)

    def reset(self, quiet_until: int) -> None:
        self.buf = []
        self.head = 0
        self.quiet_until = quiet_until
        self.rule_counts = None
        self.values = None
        self.total = 0
        self.best = None
        self.ids = None

    # Snapshot form: the live entries, last time, quiet-until and the ordered-chain table; the other
    # aggregates are recomputed from the entries on restore.
    def dump(self) -> list[Any]:
        return [self.buf[self.head * STRIDE:], self.last_t, self.quiet_until, self.best]

    @classmethod
    def load(cls, corr: CompiledCorrelation, data: list[Any]) -> SlidingGroup:
        group = cls()
        entries, last_t, quiet_until, best = data
        for i in range(0, len(entries), STRIDE):
            group.add(corr, int(entries[i]), str(entries[i + 1]), int(entries[i + 2]), entries[i + 3])
        group.last_t = int(last_t)
        group.quiet_until = int(quiet_until)
        group.best = [int(x) for x in best] if best is not None else None
        return group


class ClosingGroup:
    """One window [start, start + timespan] whose condition is decided when it closes."""

    __slots__ = ("count", "ids", "last_t", "mask", "numeric", "nums", "progress", "seen", "start", "total", "values")

    def __init__(self, start: int) -> None:
        self.start = start
        self.last_t = start
        self.count = 0
        self.ids: list[str] = []
        self.seen: set[str] | None = None
        self.mask = 0
        self.progress = 0  # temporal_ordered: rules matched in order so far
        self.values: set[Hashable] | None = None
        self.total: float = 0
        self.nums: list[float] | None = None  # kept for median/percentile, capped
        self.numeric = 0

    def contains(self, event_id: str) -> bool:
        if self.seen is not None:
            return event_id in self.seen
        return event_id in self.ids

    def add(self, corr: CompiledCorrelation, t: int, event_id: str, mask: int, value: Value, id_cap: int) -> None:
        self.count += 1
        self.last_t = max(self.last_t, t)
        if len(self.ids) < id_cap:
            self.ids.append(event_id)
            if self.seen is not None:
                self.seen.add(event_id)
            elif len(self.ids) > _SET_FROM:
                self.seen = set(self.ids)
        self.mask |= mask
        if corr.kind == "temporal_ordered" and self.progress < len(corr.refs) and mask >> self.progress & 1:
            self.progress += 1
        if corr.kind == "value_count" and value:
            if self.values is None:
                self.values = set()
            if len(self.values) < id_cap:
                self.values.update(value)
        elif value is not None and corr.kind in ("value_sum", "value_avg", "value_percentile", "value_median"):
            self.total += value
            self.numeric += 1
            if corr.kind in ("value_percentile", "value_median"):
                if self.nums is None:
                    self.nums = []
                if len(self.nums) < id_cap:
                    self.nums.append(value)

    def metric(self, corr: CompiledCorrelation) -> tuple[float, int] | None:
        """(value, mask) at close; None when the metric is undefined (an average of no values)."""
        kind = corr.kind
        if kind == "event_count":
            return self.count, 0
        if kind == "value_count":
            return (len(self.values) if self.values else 0), 0
        if kind == "temporal":
            return popcount(self.mask), self.mask
        if kind == "temporal_ordered":
            return self.progress, (1 << self.progress) - 1
        if kind == "value_sum":
            return self.total, 0
        if kind == "value_avg":
            return (self.total / self.numeric, 0) if self.numeric else None
        if not self.nums:
            return None
        if kind == "value_median":
            return float(statistics.median(self.nums)), 0
        return nearest_rank(self.nums, corr.percentile), 0

    def dump(self) -> list[Any]:
        return [self.start, self.last_t, self.count, self.ids, self.mask, self.progress,
                list(self.values) if self.values is not None else None, self.total, self.nums, self.numeric]

    @classmethod
    def load(cls, data: list[Any], freeze: Any) -> ClosingGroup:
        start, last_t, count, ids, mask, progress, values, total, nums, numeric = data
        group = cls(int(start))
        group.last_t, group.count, group.ids = int(last_t), int(count), [str(x) for x in ids]
        group.seen = set(group.ids) if len(group.ids) > _SET_FROM else None
        group.mask, group.progress, group.total = int(mask), int(progress), total
        group.values = {freeze(v) for v in values} if values is not None else None
        group.nums = list(nums) if nums is not None else None
        group.numeric = int(numeric)
        return group
