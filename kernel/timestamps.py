"""Timestamp parsing and ECS formatting shared by the parsers (normalizing vendor times) and the detections
(enrichment ages, event time). In the kernel so that neither stage imports the other."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?\s*(Z|z|[+-]\d{2}:?\d{2}|[+-]\d{2})?$"
)
_US = re.compile(
    r"^(\d{1,2})/(\d{1,2})/(\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s*([AaPp][Mm]))?(?:\s*([+-]\d{2}:?\d{2}|Z))?$"
)
_MONTHS = {m: i for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)}
_TEXT_DATE = re.compile(r"^([A-Za-z]{3})\s+(\d{1,2}),\s*(\d{4})\s+(\d{1,2}):(\d{2}):(\d{2})(?:\s*([AaPp][Mm]))?$")


def _tz(text: str | None) -> timezone:
    if not text or text in ("Z", "z"):
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours = int(digits[:2])
    minutes = int(digits[2:4] or 0) if len(digits) > 2 else 0
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def parse_timestamp(value: Any) -> datetime | None:
    """Parse every timestamp style in the log-format reference to an aware UTC datetime (µs precision).

    Accepts RFC 3339/ISO 8601 (any fraction length, ``Z``, ``+01:00``, zap's ``+0100``, no zone = UTC),
    ``{"seconds": s, "nanos": n}`` objects (numbers or strings), epoch numbers (s, ms, µs, ns by size),
    US-locale ``1/9/2007 9:41:00 AM [+01:00]`` and ``Apr 12, 2021 18:58:30 PM``. Returns None if unparseable.
    """
    if value.__class__ is str and len(value) == 27 and value[26] == "Z" and value[19] == ".":
        # Our own form (format_timestamp, now_timestamp: every @timestamp and event.ingested we write), read
        # back by enrichers for every event: the C parser alone, no checks it would pass anyway.
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    try:
        if value is None or isinstance(value, bool):
            return None
        if isinstance(value, dict):
            seconds = value.get("seconds", value.get("Seconds"))
            if seconds is None:
                return None
            nanos = value.get("nanos", value.get("Nanos", 0)) or 0
            return datetime.fromtimestamp(int(seconds), UTC) + timedelta(microseconds=int(nanos) // 1000)
        if isinstance(value, (int, float)):
            return _from_epoch(float(value))
        if not isinstance(value, str):
            return None
        text = value.strip()
        if not text or len(text) > 64:
            return None
        if len(text) >= 19 and text[4] == "-" and text[7] == "-" and text[10] in "T " and text[13] == ":" and text[16] == ":":
            try:  # C fast path for the common RFC 3339 shapes; the regex below stays the reference
                parsed = datetime.fromisoformat(text)
            except ValueError:
                parsed = None
            if parsed is not None:
                zone = parsed.tzinfo
                if zone is UTC:  # "Z" or "+00:00": already what astimezone(UTC) would return
                    return parsed
                if zone is None:  # no zone = UTC; parsing it with one is cheaper than replace(tzinfo=...)
                    try:
                        return datetime.fromisoformat(text + "+00:00")
                    except ValueError:
                        return parsed.replace(tzinfo=UTC)
                return parsed.astimezone(UTC)
        m = _ISO.match(text)
        if m:
            year, month, day, hour, minute = (int(m.group(i)) for i in range(1, 6))
            second = int(m.group(6) or 0)
            fraction = (m.group(7) or "0")[:6].ljust(6, "0")
            dt = datetime(year, month, day, hour, minute, min(second, 59), int(fraction), tzinfo=_tz(m.group(8)))
            return dt.astimezone(UTC)
        if text.lstrip("-").replace(".", "", 1).isdigit():
            return _from_epoch(float(text))
        m = _US.match(text)
        if m:
            month, day, year, hour, minute = int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4)), int(m.group(5))
            hour = _twelve_hour(hour, m.group(7))
            dt = datetime(year, month, day, hour, minute, int(m.group(6) or 0), tzinfo=_tz(m.group(8)))
            return dt.astimezone(UTC)
        m = _TEXT_DATE.match(text)
        if m and m.group(1).lower() in _MONTHS:
            hour = _twelve_hour(int(m.group(4)), m.group(7))
            return datetime(int(m.group(3)), _MONTHS[m.group(1).lower()], int(m.group(2)), hour, int(m.group(5)), int(m.group(6)), tzinfo=UTC)
    except (ValueError, OverflowError, OSError, TypeError):
        return None
    return None


def _twelve_hour(hour: int, meridiem: str | None) -> int:
    if not meridiem or hour > 12:
        return hour  # "18:58:30 PM" appears in KMS records: a 24-hour clock with a stray PM
    pm = meridiem.lower() == "pm"
    if hour == 12:
        return 12 if pm else 0
    return hour + 12 if pm else hour


def _from_epoch(number: float) -> datetime:
    magnitude = abs(number)
    if magnitude >= 1e17:
        number /= 1e9
    elif magnitude >= 1e14:
        number /= 1e6
    elif magnitude >= 1e11:
        number /= 1e3
    return datetime.fromtimestamp(number, UTC)


def format_timestamp(dt: datetime) -> str:
    """ECS @timestamp text: UTC, microseconds, ``Z``."""
    if dt.tzinfo is UTC:  # what parse_timestamp returns: the fields are already UTC
        # %-formatting of the fields: half the time of isoformat(), which formats the UTC offset only for it to be
        # cut off (every parsed record pays this once). Same text for every year datetime holds (1-9999). Not an
        # f-string: seven format specs cost twice this one %-format.
        return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (  # noqa: UP031
            dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second, dt.microsecond)
    return dt.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


#: "YYYY-MM-DD?HH:MM:SS" texts already parsed -> what format_timestamp made of that second (up to the seconds).
_SECONDS: dict[str, str] = {}
#: Seconds that missed once: a second is learnt at its second miss, so a stream with one record a second (or
#: fewer) pays a dict probe per record, not the check and the insert.
_MISSED: set[str] = set()
_SECONDS_LIMIT = 4096


def _from_second(value: str, head: str) -> str | None:
    """The text for ``value`` when its first 19 characters are a second whose text is ``head`` and the rest is
    nothing, ``Z``, or a 3- or 6-digit fraction with or without ``Z``: forms that carry no offset, so the second
    stays what it was and the fraction is its digits. None for any other rest."""
    tail = value[19:]
    if tail[-1:] == "Z":
        tail = tail[:-1]
    if not tail:
        return head + ".000000Z"
    size = len(tail)
    if (size == 4 or size == 7) and tail[0] == "." and tail.isascii() and tail[1:].isdigit():
        return head + tail + "000Z" if size == 4 else head + tail + "Z"
    return None


def timestamp_or_none(value: Any) -> str | None:
    """``format_timestamp(parse_timestamp(value))``, or None when it does not parse.

    Why: the generic JSON parser stamps every record from a time field, and most such fields are one of a few
    forms (Sysmon's ``2026-11-29 12:00:03.123``, RFC 3339 ``...Z``). A second seen twice is remembered with its
    text, and a later time in the same second in one of those forms is its text plus the fraction: ~0.3 us where
    parsing and formatting cost ~1 us. A second is only remembered after the full parse gave exactly what this
    shortcut gives for the text that taught it (``tests/kernel/test_fast_paths.py`` holds it to the full path)."""
    second = None
    if value.__class__ is str and 19 <= len(value) <= 27:
        second = value[:19]
        head = _SECONDS.get(second)
        if head is not None:
            text = _from_second(value, head)
            if text is not None:
                return text
    dt = parse_timestamp(value)
    if dt is None:
        return None
    text = format_timestamp(dt)
    if second is not None:
        if second not in _MISSED:
            if len(_MISSED) >= _SECONDS_LIMIT:
                _MISSED.clear()
            _MISSED.add(second)
        elif _from_second(value, text[:19]) == text:
            if len(_SECONDS) >= _SECONDS_LIMIT:
                _SECONDS.clear()
            _SECONDS[second] = text[:19]
    return text


_now_second: tuple[int, str] = (-1, "")


def now_timestamp() -> str:
    """``format_timestamp(datetime.now(UTC))``, in a third of the time: the router stamps every record with it, and
    the text up to the second is rendered once per second (same clock, same ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` form)."""
    global _now_second
    now = time.time_ns() // 1000
    second, micros = divmod(now, 1_000_000)
    cached_second, text = _now_second
    if second != cached_second:
        text = datetime.fromtimestamp(second, UTC).replace(tzinfo=None).isoformat(timespec="seconds")
        _now_second = (second, text)
    return f"{text}.{micros:06d}Z"
