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
    #: Top-level keys of which a record needs at least one for ``accepts`` to say yes: a necessary condition, not a
    #: sufficient one. Auto-detection skips, in one set operation, every parser whose keys a record lacks (a
    #: Windows or other plain JSON event lacks them all and goes straight to the generic parser) instead of
    #: calling each ``accepts``. None (the default) promises nothing: the router always asks.
    accept_keys: ClassVar[frozenset[str] | None] = None

    def accepts(self, record: dict[str, Any]) -> bool:
        """Whether a decoded JSON object is this format."""
        return False

    def accepts_text(self, line: str) -> bool:
        """Whether a non-JSON text line is this format."""
        return False

    @abstractmethod
    def parse(self, record: dict[str, Any] | str, raw: bytes) -> list[dict[str, Any]]:
        """Normalize one record. ``raw`` is the record's bytes, for event.id hashing where no native id exists."""
