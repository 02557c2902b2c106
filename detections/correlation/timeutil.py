"""Event time as integer microseconds since the epoch.

Integers, not floats, so that "exactly one timespan apart" compares exactly at the window edge.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)  # naive: isoformat() without an offset, then "Z"
MICROS = 1_000_000


class BadTimestamp(ValueError):
    """The event has no usable ``@timestamp``."""


def parse_micros(value: object) -> int:
    """``@timestamp`` (ISO 8601 string, or epoch seconds as a number) to epoch microseconds."""
    if isinstance(value, bool) or value is None:
        raise BadTimestamp(f"@timestamp is {value!r}")
    if isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")):
            raise BadTimestamp(f"@timestamp is {value!r}")
        return round(value * MICROS)
    if not isinstance(value, str):
        raise BadTimestamp(f"@timestamp has type {type(value).__name__}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise BadTimestamp(f"@timestamp {value[:64]!r} is not ISO 8601") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * MICROS + delta.microseconds


def format_micros(micros: int) -> str:
    """Epoch microseconds to ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (microseconds only when they are not zero)."""
    moment = _NAIVE_EPOCH + timedelta(microseconds=micros)
    return moment.isoformat(timespec="microseconds" if micros % 1000 else "milliseconds") + "Z"
