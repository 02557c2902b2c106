"""Batch envelopes, unwrapped before any parser sees a record (log-format reference §0.1)."""

from __future__ import annotations

import base64
import binascii
import gzip
import re
import zlib
from collections.abc import Iterator
from typing import Any

import orjson

from temporal_siem.kernel.records import RecordError

MAX_ENVELOPE_DEPTH = 3
FIREHOSE_RECORD_KEYS = frozenset({"data", "recordId", "approximateArrivalTimestamp", "kinesisRecordMetadata"})


#: A key every envelope :func:`unwrap` opens must have (``detail`` of EventBridge, ``subscription`` of Pub/Sub push,
#: ``data`` of Firehose...). A record with none of them is not an envelope: :func:`unwrap_all` skips the walk.
ENVELOPE_KEYS = ("Records", "records", "items", "logEvents", "logs", "detail", "subscription", "awslogs", "kinesis", "data")
ENVELOPE_KEY_SET = frozenset(ENVELOPE_KEYS)


def unwrap_all(obj: Any) -> list[tuple[Any, int | None]]:
    """``list(unwrap(obj))``, with the one plain object of most records answered by a few key probes."""
    if type(obj) is dict:
        if obj.keys().isdisjoint(ENVELOPE_KEY_SET):  # one C pass over the smaller side, not ten probes in Python
            return [(obj, None)]
        return list(unwrap(obj))
    return list(unwrap(obj))


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


# Prefixes that log collectors write before a container's or a unit's own line (issue 14): the line after them is
# what the parsers know. Each pattern is anchored and bounded, so stripping is linear in the line.
_COLLECTOR_PREFIXES = (
    # docker compose: "temporal  | ", "temporal-1  | ", "temporal_1  | "
    re.compile(r"^[\w.-]{1,128}[ \t]+\| ?"),
    # kubectl logs --prefix: "[pod/temporal-frontend-7d9/frontend] "
    re.compile(r"^\[(?:pod|deployment|statefulset|daemonset|job)/[^\]\s]{1,300}\] "),
    # CRI (containerd / CRI-O) container log file: "<RFC 3339 nanos> stdout F "
    re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2}) (?:stdout|stderr) [FP] "),
    # RFC 5424 syslog: "<134>1 2025-03-04T10:15:30.123Z host app 1234 - - " (structured data "-" or [..] groups)
    re.compile(r"^<\d{1,3}>1 \S{1,64} \S{1,255} \S{1,48} \S{1,128} \S{1,32} (?:-|(?:\[[^\]]{0,2000}\]){1,8}) ?"),
    # RFC 3164 syslog / journalctl short: "[<13>]Mar  4 10:15:30 host temporal-server[1234]: "
    re.compile(r"^(?:<\d{1,3}>)?[A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} \S{1,255} [\w./@-]{1,128}(?:\[\d{1,10}\])?: "),
    # journalctl -o short-iso(-precise): "2025-03-04T10:15:30+0000 host temporal-server[1234]: "
    re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2}) \S{1,255} [\w./@-]{1,128}(?:\[\d{1,10}\])?: "),
    # kubectl logs --timestamps: "2025-03-04T10:15:30.123456789Z "
    re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2}) "),
)
MAX_PREFIXES = 3


def collector_prefix_candidates(line: str) -> list[str]:
    """The line with one, two, ... collector prefixes removed (docker compose, kubectl, CRI, syslog/journald).

    Prefixes can stack (kubectl timestamps in front of a compose-style name); at most ``MAX_PREFIXES`` are removed.
    The caller takes the first candidate a parser recognizes: a Rust SDK line starts with a time that is its own.
    """
    candidates: list[str] = []
    stripped = line
    for _ in range(MAX_PREFIXES):
        for pattern in _COLLECTOR_PREFIXES:
            match = pattern.match(stripped)
            if match and match.end() < len(stripped):
                stripped = stripped[match.end():]
                candidates.append(stripped)
                break
        else:
            break
    return candidates


def strip_collector_prefix(line: str) -> str | None:
    """The line after its first collector prefix, or None if it has none."""
    candidates = collector_prefix_candidates(line)
    return candidates[0] if candidates else None


def json_object_or_none(text: str) -> dict[str, Any] | None:
    if text.lstrip()[:1] != "{":
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
