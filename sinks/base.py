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


#: Deeper than this, a value is written as a marker: orjson refuses 255 levels and Python recursion ends near 1,000.
MAX_ENCODE_DEPTH = 64
TOO_DEEP_TO_ENCODE = "[nested deeper than 64 levels: not encoded]"


def to_json_line(document: dict[str, Any]) -> bytes:
    """One nested JSON document and a newline. Never raises for a document's content: non-JSON values
    become strings, lone surrogates and huge integers are fixed, and anything nested deeper than
    ``MAX_ENCODE_DEPTH`` becomes a marker, because one hostile record must not stop a batch or the daemon.
    The fallback encodes the nested form: nesting shares the document's inner dicts, so the flat document
    may already be changed and must not be nested again."""
    nested = unflatten(document)
    try:
        return orjson.dumps(nested, default=str, option=orjson.OPT_NON_STR_KEYS) + b"\n"
    except (TypeError, RecursionError, ValueError):
        # a lone surrogate (JSON "\ud800"), an integer beyond 64 bits, or nesting past orjson's limit:
        # fix those, keep the rest
        return orjson.dumps(_valid_text(nested, 0), default=_as_text, option=orjson.OPT_NON_STR_KEYS) + b"\n"


def _as_text(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return f"[unencodable {type(value).__name__}]"


def _valid_text(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return str(value)
    if isinstance(value, dict | list | tuple) and depth >= MAX_ENCODE_DEPTH:
        return TOO_DEEP_TO_ENCODE if value else value
    if isinstance(value, dict):
        return {_valid_text(k, depth) if isinstance(k, str) else k: _valid_text(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_valid_text(v, depth + 1) for v in value]
    return value
