"""The sink protocol. Sinks receive flat documents and write them nested (ECS JSON).

``write`` returns only once the batch is acknowledged (or raises): the pipeline commits source
positions after every required sink has returned, which is what makes delivery at-least-once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import orjson
from temporal_siem.kernel.flatten import unflatten


class SinkError(Exception):
    """The sink could not take the batch now (connection, 5xx): retry later, keep the data."""


class Sink(ABC):
    name: ClassVar[str]
    #: "alerts", "events" or "dead_letter": what a sink instance receives is decided by the pipeline config.

    def open(self) -> None:  # noqa: B027 - optional hook
        """Connect, install templates; idempotent."""

    @abstractmethod
    def write(self, documents: list[dict[str, Any]]) -> None:
        """Deliver a batch of flat documents; raise SinkError if it was not accepted."""

    def flush(self) -> None:  # noqa: B027 - optional hook
        """Push buffered data out."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release resources."""

    def take_rejected(self) -> list[tuple[dict[str, Any], str]]:
        """Documents refused for their content (mapping errors), with ``"code: detail"`` (e.g.
        ``"elasticsearch_rejected: HTTP 400 ..."``), for the dead-letter output; the code is the reason."""
        return []


def to_json_line(document: dict[str, Any]) -> bytes:
    """One nested JSON document and a newline; non-JSON values become strings rather than errors."""
    nested = unflatten(document)
    try:
        return orjson.dumps(nested, default=str, option=orjson.OPT_NON_STR_KEYS) + b"\n"
    except TypeError:  # a lone surrogate (JSON "\ud800") or an integer beyond 64 bits: fix those, keep the rest
        return orjson.dumps(_valid_text(nested), default=str, option=orjson.OPT_NON_STR_KEYS) + b"\n"


def _valid_text(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return str(value)
    if isinstance(value, dict):
        return {_valid_text(k): _valid_text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_valid_text(v) for v in value]
    return value
