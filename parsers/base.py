"""The parser protocol: one module per log format, registered by name in :mod:`parsers.registry`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar


class Parser(ABC):
    """Turns one decoded record into zero or more flat ECS events (dotted keys, see temporal_siem.kernel.flatten).

    ``accepts`` must be cheap (a few key lookups): auto-detection calls it on every record for every
    parser in registry order until one says yes. ``parse`` raises :class:`temporal_siem.kernel.records.RecordError`
    with a short reason for a record it recognises but cannot normalise; the pipeline dead-letters it.
    """

    name: ClassVar[str]
    dataset: ClassVar[str]
    #: Sigma logsource this format answers to (product, service, category); used by detections' routing.
    logsource: ClassVar[dict[str, str]] = {}

    def accepts(self, record: dict[str, Any]) -> bool:
        """Whether a decoded JSON object is this format."""
        return False

    def accepts_text(self, line: str) -> bool:
        """Whether a non-JSON text line is this format."""
        return False

    @abstractmethod
    def parse(self, record: dict[str, Any] | str, raw: bytes) -> list[dict[str, Any]]:
        """Normalize one record. ``raw`` is the record's bytes, for event.id hashing where no native id exists."""
