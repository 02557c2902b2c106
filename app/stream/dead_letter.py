"""The dead-letter topic: bad records go back to Kafka, as they arrived, with why and where in headers.

The value is the original record (full bytes, not the 4 KB excerpt of the JSON dead-letter document), so
a fixed parser can re-consume the topic as is. Headers: ``tsiem.reason``, ``tsiem.stage``,
``tsiem.detail``, ``tsiem.origin.topic``/``.partition``/``.offset`` (and ``.index`` for one element of a
batch envelope), ``tsiem.origin`` (human-readable). The original key and headers are kept.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from temporal_siem.kernel.secrets import redact_raw, redact_text

#: Values above this go as their excerpt (the broker's default message limit is 1 MB).
MAX_VALUE_BYTES = 900 * 1024
HEADER_PREFIX = "tsiem."


def topic_message(doc: dict[str, Any], original: Any) -> dict[str, Any]:
    """The dead-letter message (value, key, headers) for a dead-letter document and the consumed record behind it
    (anything with ``key``, ``value`` and ``headers``; None when it is not in hand). The stream runtime produces it
    with its own (transactional, under exactly-once) producer."""
    origin = doc.get("origin") or {}
    value, masked = _value(doc, original)
    if not masked:  # an output like any other: secrets masked (issue 15)
        value = redact_raw(value)
    headers: list[tuple[str, bytes]] = list(original.headers or []) if original is not None else []
    headers += [(HEADER_PREFIX + key, str(val).encode()) for key, val in (
        ("reason", doc.get("reason", "")), ("stage", doc.get("stage", "")), ("detail", redact_text(str(doc.get("detail", "")))[:1000]),
        ("origin", doc.get("origin_text", "")), ("raw_bytes", doc.get("raw_bytes", 0)))]
    for key in ("source", "topic", "partition", "offset", "index", "line"):
        if origin.get(key) is not None:
            headers.append((f"{HEADER_PREFIX}origin.{key}", str(origin[key]).encode()))
    if len(value) > MAX_VALUE_BYTES:
        value = value[:MAX_VALUE_BYTES]
        headers.append((HEADER_PREFIX + "truncated", b"true"))
    return {"value": value, "key": original.key if original is not None else None, "headers": headers}


def dead_letter_value(doc: dict[str, Any], original: Any) -> bytes:
    """The bad bytes themselves: the element when it is complete in the document, else the whole record."""
    return _value(doc, original)[0]


def _value(doc: dict[str, Any], original: Any) -> tuple[bytes, bool]:
    """The bad bytes, and whether they are already masked: the document's excerpt and the document itself were
    masked when the document was made (``DeadLetter.as_dict``); only the full original record was not."""
    if not doc.get("raw_truncated"):
        if "raw" in doc and (doc.get("raw") or original is None):
            return str(doc["raw"]).encode("utf-8"), True
        if "raw_base64" in doc:
            return base64.b64decode(doc["raw_base64"]), True
    if original is not None and original.value is not None:
        return bytes(original.value), False
    # A sink rejection or a record no longer in hand: the dead-letter document itself.
    return orjson.dumps(doc, default=str), True
