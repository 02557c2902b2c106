"""Event time as integer microseconds since the epoch.

Integers, not floats, so that "exactly one timespan apart" compares exactly at the window edge.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)  # naive: isoformat() without an offset, then "Z"
_MICRO = timedelta(microseconds=1)
MICROS = 1_000_000
_MIN_MICROS = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // _MICRO
_MAX_MICROS = (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - _EPOCH) // _MICRO
_MIN_SECONDS = _MIN_MICROS // MICROS - 1  # a little outside the range: the exact check is on the microseconds
_MAX_SECONDS = _MAX_MICROS // MICROS + 1


class BadTimestamp(ValueError):
    """The event has no usable ``@timestamp``."""


def parse_micros(value: object) -> int:
    """``@timestamp`` (ISO 8601 string, or epoch seconds as a number) to epoch microseconds."""
    if type(value) is str:  # the normal case first: this runs for every event
        try:
            moment = datetime.fromisoformat(value)
        except ValueError as exc:
            raise BadTimestamp(f"@timestamp {value[:64]!r} is not ISO 8601") from exc
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return (moment - _EPOCH) // _MICRO
    if isinstance(value, bool) or value is None:
        raise BadTimestamp(f"@timestamp is {value!r}")
    if isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")):
            raise BadTimestamp(f"@timestamp is {value!r}")
        # range first: a float near its maximum (1.8e302 seconds) times a million is inf, and round(inf) raises
        micros = round(value * MICROS) if _MIN_SECONDS <= value <= _MAX_SECONDS else _MAX_MICROS + 1
        if not _MIN_MICROS <= micros <= _MAX_MICROS:
            raise BadTimestamp(f"@timestamp {value!r} is outside years 1..9999")
        return micros
    if isinstance(value, str):  # a str subclass
        return parse_micros(str(value))
    raise BadTimestamp(f"@timestamp has type {type(value).__name__}")


def format_micros(micros: int) -> str:
    """Epoch microseconds to ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (microseconds only when they are not zero)."""
    try:
        moment = _NAIVE_EPOCH + timedelta(microseconds=micros)
    except OverflowError:  # before year 1 (a "+01:00" offset on 0001-01-01): still say something exact
        return f"{micros}us-since-epoch"
    return moment.isoformat(timespec="microseconds" if micros % 1000 else "milliseconds") + "Z"
