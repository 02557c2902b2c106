"""Batch envelopes, unwrapped before any parser sees a record (log-format reference §0.1)."""

from __future__ import annotations

import base64
import binascii
import gzip
import zlib
from collections.abc import Iterator
from typing import Any

import orjson
from temporal_siem.kernel.records import RecordError

MAX_ENVELOPE_DEPTH = 3
FIREHOSE_RECORD_KEYS = frozenset({"data", "recordId", "approximateArrivalTimestamp", "kinesisRecordMetadata"})


def unwrap(obj: Any, depth: int = 0) -> Iterator[tuple[Any, int | None]]:
    """Yield (record, index within its envelope). Plain objects come out as themselves with index None."""
    if depth > MAX_ENVELOPE_DEPTH:
        yield obj, None
        return
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            for inner, _ in unwrap(item, depth + 1):
                yield inner, i
        return
    if not isinstance(obj, dict):
        yield obj, None
        return
    for key in ("Records", "records", "items", "logEvents", "logs"):
        items = obj.get(key)
        if isinstance(items, list) and _is_batch(obj, key):
            if key == "logEvents" and obj.get("messageType") == "CONTROL_MESSAGE":
                return
            for i, item in enumerate(items):
                if key == "logEvents" and isinstance(item, dict):
                    item = _json_or_text(item.get("message"))
                for inner, _ in unwrap(item, depth + 1):
                    yield inner, i
            return
    if "detail" in obj and "detail-type" in obj and isinstance(obj.get("detail"), dict):
        if obj.get("source") == "aws.kms" and str(obj["detail-type"]).startswith("KMS "):
            yield obj, None  # KMS's own service events: only the wrapper carries the time and key ARN
            return
        yield from unwrap(obj["detail"], depth + 1)
        return
    message = obj.get("message")
    if isinstance(message, dict) and "data" in message and "subscription" in obj:
        yield from unwrap(_decode_pubsub(message["data"]), depth + 1)
        return
    if "awslogs" in obj and isinstance(obj["awslogs"], dict) and "data" in obj["awslogs"]:
        yield from unwrap(_decode_pubsub(obj["awslogs"]["data"]), depth + 1)
        return
    kinesis = obj.get("kinesis")
    if isinstance(kinesis, dict) and "data" in kinesis:  # Lambda Kinesis event element: Records[].kinesis.data
        yield from unwrap(_decode_pubsub(kinesis["data"]), depth + 1)
        return
    if isinstance(obj.get("data"), str) and set(obj) <= FIREHOSE_RECORD_KEYS:  # Firehose HTTP endpoint: records[].data
        yield from unwrap(_decode_pubsub(obj["data"]), depth + 1)
        return
    yield obj, None


def _is_batch(obj: dict[str, Any], key: str) -> bool:
    if key == "Records":
        return True
    if key == "records":
        return True
    if key == "items":
        return str(obj.get("kind", "")).startswith("admin#reports#activities") or "nextPageToken" in obj or "etag" in obj
    if key == "logs":  # Temporal Cloud Ops API GetAuditLogs page: {"logs": [...], "nextPageToken": ...}
        return "nextPageToken" in obj or "next_page_token" in obj or len(obj) == 1
    return "messageType" in obj or "logGroup" in obj


def _json_or_text(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _decode_pubsub(data: Any) -> Any:
    if not isinstance(data, str):
        raise RecordError("bad envelope", "base64 data is not a string")
    try:
        payload = base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise RecordError("bad envelope", f"base64: {exc}") from exc
    if payload[:2] == b"\x1f\x8b":
        try:
            payload = gzip.decompress(payload)
        except (OSError, EOFError, zlib.error) as exc:
            raise RecordError("bad envelope", f"gzip: {exc}") from exc
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise RecordError("bad envelope", f"inner JSON: {exc}") from exc
