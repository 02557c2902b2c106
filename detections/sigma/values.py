"""Run-time value semantics shared by the generated rule functions and the witness index.

Both sides must fold and coerce identically (an index that folds differently from the evaluator loses
matches), so every coercion lives here, once:

* strings compare case-insensitively through ``str.lower()`` on both sides (not ``casefold``: it changes
  lengths, which breaks prefix/suffix reasoning); ``|cased`` compares the raw text;
* a number or boolean in the event is compared to a Sigma *string* through its JSON text
  (``4688`` -> ``"4688"``, ``True`` -> ``"true"``);
* a Sigma *number* equals an event number of the same value, or a string that parses as that number
  (``"4688"``, ``" 4688 "``, ``"4688.0"``); booleans are never numbers;
* ``null`` matches a field that is absent, ``None`` or an empty list; ``exists`` is its negation;
* a list value matches if any member matches (Elasticsearch semantics for flattened arrays).
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

Folded = str | tuple[str, ...] | None


def fold(value: Any) -> Folded:
    """The case-folded text of an event value: a str, a tuple of str for lists, or None."""
    cls = value.__class__
    if cls is str:
        return value.lower()  # type: ignore[no-any-return]
    if value is None:
        return None
    if cls is bool:
        return "true" if value else "false"
    if cls is int or cls is float:
        return str(value)
    if cls is list or cls is tuple:
        out: list[str] = []
        for member in value:
            folded = fold(member)
            if folded.__class__ is str:
                out.append(folded)  # type: ignore[arg-type]
            elif folded.__class__ is tuple:
                out.extend(folded)  # type: ignore[arg-type]
        return tuple(out)
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return None


def plain(value: Any) -> Folded:
    """Like :func:`fold` without lowering (``|cased``, ``|re``)."""
    cls = value.__class__
    if cls is str:
        return value  # type: ignore[no-any-return]
    if value is None:
        return None
    if cls is bool:
        return "true" if value else "false"
    if cls is int or cls is float:
        return str(value)
    if cls is list or cls is tuple:
        out: list[str] = []
        for member in value:
            text = plain(member)
            if text.__class__ is str:
                out.append(text)  # type: ignore[arg-type]
            elif text.__class__ is tuple:
                out.extend(text)  # type: ignore[arg-type]
        return tuple(out)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool | int | float):
        return plain(bool(value) if isinstance(value, bool) else value + 0)
    return None


def any_member(test: Any, folded: Folded) -> bool:
    """A str test applied to the members of a folded list."""
    if folded.__class__ is tuple:
        for member in folded:  # type: ignore[union-attr]
            if test(member):
                return True
    return False


_NUMBER_TEXT = re.compile(r"\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*\Z")


def to_number(value: Any) -> int | float | None:
    """The number an event value stands for, or None (booleans and non-numeric text are not numbers)."""
    cls = value.__class__
    if cls is int or cls is float:
        return value  # type: ignore[no-any-return]
    if cls is str:
        if not _NUMBER_TEXT.match(value):
            return None
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            number = float(text)
            return number if number == number and number not in (float("inf"), float("-inf")) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def num_eq(value: Any, number: int | float) -> bool:
    if value.__class__ is list:
        return any(num_eq(member, number) for member in value)
    candidate = to_number(value)
    return candidate is not None and candidate == number


def bool_eq(value: Any, expected: bool) -> bool:
    if value.__class__ is bool:
        return value is expected
    if value.__class__ is str:
        return value.strip().lower() == ("true" if expected else "false")
    if value.__class__ is list:
        return any(bool_eq(member, expected) for member in value)
    return False


def is_null(value: Any) -> bool:
    return value is None or (value.__class__ is list and not value)


def compare(value: Any, op: str, number: int | float) -> bool:
    if value.__class__ is list:
        return any(compare(member, op, number) for member in value)
    candidate = to_number(value)
    if candidate is None:
        return False
    if op == "lt":
        return candidate < number
    if op == "lte":
        return candidate <= number
    if op == "gt":
        return candidate > number
    if op == "gte":
        return candidate >= number
    return candidate != number  # "neq"


@lru_cache(maxsize=4096)
def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def in_network(value: Any, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    if value.__class__ is list:
        return any(in_network(member, network) for member in value)
    if value.__class__ is not str:
        return False
    address = _ip(value)
    if address is None:
        return False
    if address.version == 6 and network.version == 4 and address.ipv4_mapped is not None:  # type: ignore[union-attr]
        address = address.ipv4_mapped  # type: ignore[union-attr]
    return address.version == network.version and address in network


def regex_search(pattern: re.Pattern[str], value: Any) -> bool:
    text = plain(value)
    if text.__class__ is str:
        return pattern.search(text) is not None  # type: ignore[arg-type]
    return any_member(lambda member: pattern.search(member) is not None, text)


def field_equals(value: Any, other: Any, mode: str) -> bool:
    """``|fieldref``: compares the two fields' text exactly (case-sensitive, like the SQL/ES backends)."""
    left, right = plain(value), plain(other)
    if left is None or right is None:
        return False
    lefts = left if left.__class__ is tuple else (left,)
    rights = right if right.__class__ is tuple else (right,)
    for a in lefts:
        for b in rights:
            if (mode == "eq" and a == b) or (mode == "startswith" and a.startswith(b)) or (  # type: ignore[union-attr]
                mode == "endswith" and a.endswith(b)  # type: ignore[union-attr]
            ) or (mode == "contains" and b in a):
                return True
    return False


def _timestamp(value: Any) -> datetime | None:
    if value.__class__ is str:
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            number = to_number(value)
            return _timestamp(number) if number is not None else None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if value.__class__ in (int, float):
        seconds = float(value)
        if seconds > 1e11:  # epoch milliseconds
            seconds /= 1000.0
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def timestamp_part(value: Any, part: str, number: int | float) -> bool:
    if value.__class__ is list:
        return any(timestamp_part(member, part, number) for member in value)
    moment = _timestamp(value)
    if moment is None:
        return False
    moment = moment.astimezone(UTC)
    actual = {
        "minute": moment.minute,
        "hour": moment.hour,
        "day": moment.day,
        "week": moment.isocalendar()[1],
        "month": moment.month,
        "year": moment.year,
    }[part]
    return bool(actual == number)


def keyword_values(event: dict[str, Any], cache: dict[Any, Any], cased: bool) -> tuple[str, ...]:
    """The event's string values (and string members of lists), folded unless ``cased``: what a keyword
    (a value bound to no field) is searched in. Numbers and booleans are not text here. Once per event."""
    slot = 1 if cased else 0
    values = cache.get(slot)
    if values is None:
        out: list[str] = []
        for value in event.values():
            if value.__class__ is str:
                out.append(value if cased else value.lower())
            elif value.__class__ is list:
                out.extend(m if cased else m.lower() for m in value if m.__class__ is str)
        values = cache[slot] = tuple(out)
    return values  # type: ignore[no-any-return]


def keyword_numbers(event: dict[str, Any], number: int | float) -> bool:
    return any(num_eq(value, number) for value in event.values())


class EventFolds(dict):  # type: ignore[type-arg]
    """Per-event memo of folded field values: ``folds[name]`` folds the field once, on first use.

    Shared by the index and every candidate rule of the event, so a long command line is lowered once, not
    once per rule. Integer keys hold the keyword value tuples (see :func:`keyword_values`).
    """

    __slots__ = ("event",)

    def __init__(self, event: dict[str, Any]) -> None:
        # No ``super().__init__()``: dict's __new__ already made it empty, and the call was 0.3 µs of every event.
        self.event = event

    def __missing__(self, key: str) -> Folded:
        value = self.event.get(key)
        folded = value.lower() if value.__class__ is str else fold(value)
        self[key] = folded
        return folded
