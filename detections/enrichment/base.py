"""The enricher protocol: derived fields added to flat events before the rules see them.

Rules can only compare fields that exist in an event. Facts that need memory (when was this API key
created?) or arithmetic on two fields (how many days until this certificate expires?) are computed
here, once per event, so that Sigma rules stay declarative (``temporal.api_key.age_days|gt: 90``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import UTC, datetime
from typing import Any

from parsers.common import parse_timestamp


class Enricher(ABC):
    """Adds fields to flat events in place. Stateful enrichers persist their state via snapshot/restore."""

    name: str = "enricher"

    @abstractmethod
    def enrich(self, events: list[dict[str, Any]]) -> None:
        """Add derived fields to each event (in place); never raise on odd values."""

    def snapshot(self) -> bytes:
        return b""

    def restore(self, state: bytes) -> None:  # noqa: B027 - stateless enrichers ignore it
        """Load what :meth:`snapshot` wrote."""

    def stats(self) -> dict[str, Any]:
        return {}


def event_time(event: dict[str, Any]) -> datetime | None:
    """The event's own time (``@timestamp``), timezone-aware, or None when absent or unparseable."""
    return as_datetime(event.get("@timestamp"))


def as_datetime(value: Any) -> datetime | None:
    """Accept what parsers emit (ISO strings, datetimes); anything odd gives None rather than an error."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, (str, int, float, dict)):
        return None
    return parse_timestamp(value)  # never raises; None for anything it cannot read
