"""Helpers every parser shares: timestamps, IPs, ids, redaction, ECS list fields.

Kept dependency-free and regex-light: these run once or twice per record on the hot path.
"""

from __future__ import annotations

import hashlib
import ipaddress
from functools import lru_cache
from typing import Any

from temporal_siem.kernel.flatten import MAX_DEPTH, TOO_DEEP, bound_depth
from temporal_siem.kernel.secrets import (
    KEYS,
    MIN_TOKEN_TEXT,
    SECRET_KEY_CACHE,
    TEXT,
    has_value,
    is_secret_key_cached,
    record_checks,
    secret_pair_member,
)

# Parsers reach the shared secret and time helpers through this module (re-exported): one import line each.
from temporal_siem.kernel.secrets import REDACTED as REDACTED
from temporal_siem.kernel.secrets import is_secret_key as is_secret_key
from temporal_siem.kernel.secrets import redact as redact
from temporal_siem.kernel.secrets import redact_text as redact_text
from temporal_siem.kernel.timestamps import format_timestamp as format_timestamp
from temporal_siem.kernel.timestamps import now_timestamp as now_timestamp
from temporal_siem.kernel.timestamps import parse_timestamp as parse_timestamp
from temporal_siem.kernel.timestamps import timestamp_or_none as timestamp_or_none


def event_id_from_raw(raw: bytes) -> str:
    """The spec's id for formats without a native one: sha256 of the record bytes, first 32 hex digits."""
    return hashlib.sha256(raw.rstrip(b"\r\n")).hexdigest()[:32]


# --- addresses ------------------------------------------------------------------------------


def clean_ip(value: Any) -> str | None:
    """A valid IPv4/IPv6 address in canonical form, or None. Strips ports and brackets ('1.2.3.4:80', '[::1]:443')."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > 64:
        return None
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1 and "." in text:
        text = text.split(":", 1)[0]
    if "%" in text:
        text = text.split("%", 1)[0]
    return _canonical_ip(text)


@lru_cache(maxsize=65_536)
def _canonical_ip(text: str) -> str | None:
    """Cached: the same few thousand addresses recur in every log, and ipaddress parsing costs ~10 µs."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def ip_and_port(value: Any) -> tuple[str | None, int | None]:
    """Split 'ip:port' / '[v6]:port' / bare ip."""
    if not isinstance(value, str):
        return None, None
    text = value.strip()
    port: int | None = None
    if text.startswith("[") and "]:" in text:
        host, _, port_text = text[1:].partition("]:")
        text = host
        port = int(port_text) if port_text.isdigit() else None
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        text = host
        port = int(port_text) if port_text.isdigit() else None
    return clean_ip(text), port


def forwarded_chain(value: Any) -> list[str]:
    """Valid IPs of an X-Forwarded-For style chain, left (client) to right (nearest proxy)."""
    if not isinstance(value, str):
        return []
    ips = []
    for part in value.split(","):
        ip = clean_ip(part)
        if ip:
            ips.append(ip)
    return ips


def client_ip_from_chain(chain: list[str]) -> str | None:
    """First untrusted hop: walk right to left past private/loopback proxies; fall back to the leftmost."""
    for ip in reversed(chain):
        addr = ipaddress.ip_address(ip)
        if not (addr.is_private or addr.is_loopback or addr.is_link_local):
            return ip
    return chain[0] if chain else None


# --- ECS list helpers -------------------------------------------------------------------------


def add_related(event: dict[str, Any], key: str, *values: Any) -> None:
    """Append unique non-empty strings to ``related.<key>`` (ip, user, hash, hosts)."""
    field = f"related.{key}"
    bucket = event.get(field)
    for value in values:
        if not value or not isinstance(value, str):
            continue
        if bucket is None:
            bucket = event[field] = []
        if value not in bucket:
            bucket.append(value)


def set_if(event: dict[str, Any], key: str, value: Any) -> None:
    """Set a field only when the value carries information (not None, '', [] or {})."""
    if value is None or value == "" or value == [] or value == {}:
        return
    event[key] = value


def as_mapping(value: Any) -> dict[str, Any]:
    """The value if it is a JSON object, else an empty one: vendor fields change type between versions."""
    return value if isinstance(value, dict) else {}


def nonempty_text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def as_int(value: Any) -> int | None:
    """An integer from an int or a decimal string; None for bools, floats and junk."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and len(value) <= 24 and value.strip().isascii():
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def as_str(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def split_email(value: Any) -> tuple[str | None, str | None]:
    """('alice', 'example.com') for 'alice@example.com'; (value, None) otherwise."""
    if not isinstance(value, str) or not value:
        return None, None
    if "@" in value:
        local, _, domain = value.rpartition("@")
        return local or None, domain or None
    return value, None


def namespaced(prefix: str, obj: Any, out: dict[str, Any], depth: int = 0, drop_nulls: bool = False) -> None:
    """Keep a vendor record, redacted, under ``prefix.*`` with the vendor's own key spellings.

    One fused pass (redact while flattening) because this runs on every field of every record; it gives
    exactly ``flatten(redact(obj), prefix + ".")`` and never overwrites a field the parser already set.
    ``drop_nulls`` leaves out null members (Okta pads objects with nulls), keeping object-list fields aligned.
    """
    if isinstance(obj, dict):
        flat: dict[str, Any] = {}
        checks = record_checks()
        if not checks:  # nothing secret-shaped in the record's bytes: flatten without the checks
            _flatten_plain(obj, prefix + ".", flat, 0, drop_nulls)
        else:
            _flatten_redacted(obj, prefix + ".", flat, 0, drop_nulls, checks)
        if out.keys().isdisjoint(flat):  # the usual case: two passes in C instead of a probe per field in Python
            out.update(flat)
            return
        for key, value in flat.items():
            if key not in out:
                out[key] = value


def _flatten_plain(obj: dict[str, Any], prefix: str, out: dict[str, Any], depth: int, drop_nulls: bool) -> None:
    """``_flatten_redacted`` for a record the secret scan found clean: the same shape, no per-field checks."""
    for key, value in obj.items():
        if value is None and drop_nulls:
            continue
        name = prefix + key if type(key) is str else f"{prefix}{key}"
        kind = type(value)
        if kind is dict:
            if not value:
                out[name] = value
            elif depth < MAX_DEPTH:
                _flatten_plain(value, name + ".", out, depth + 1, drop_nulls)
            else:
                out[name] = TOO_DEEP
        elif kind is list:
            if drop_nulls:
                value = [v for v in value if v is not None]
            if not value:
                out[name] = value
            elif depth >= MAX_DEPTH:
                out[name] = TOO_DEEP
            elif any(type(v) is dict for v in value):
                _flatten_redacted_objects(value, name, out, depth + 1, drop_nulls)
            else:
                out[name] = bound_depth(value, depth + 1)
        else:
            out[name] = value


def _flatten_redacted(obj: dict[str, Any], prefix: str, out: dict[str, Any], depth: int, drop_nulls: bool = False,
                      checks: int = KEYS | TEXT) -> None:
    """Flatten with the checks the record's scan asked for: secret key names (KEYS), secret text (TEXT)."""
    secret_keys = SECRET_KEY_CACHE
    check_keys = checks & KEYS
    check_text = checks & TEXT
    pair = secret_pair_member(obj) if check_keys and ("value" in obj or "Value" in obj or "values" in obj) else None
    for key, value in obj.items():
        if value is None and drop_nulls:
            continue
        name = prefix + key if type(key) is str else f"{prefix}{key}"
        kind = type(value)
        secret: bool | None = False
        if check_keys:
            secret = secret_keys.get(key)  # inlined is_secret_key_cached: this loop runs for every vendor field
            if secret is None:
                secret = is_secret_key_cached(str(key))
        if (secret or (pair is not None and key == pair)) and has_value(value):
            out[name] = REDACTED
        elif kind is str:
            out[name] = redact_text(value) if check_text and len(value) >= MIN_TOKEN_TEXT else value
        elif kind is dict:
            if not value:
                out[name] = value
            elif depth < MAX_DEPTH:
                _flatten_redacted(value, name + ".", out, depth + 1, drop_nulls, checks)
            else:
                out[name] = TOO_DEEP
        elif kind is list:
            if drop_nulls:
                value = [v for v in value if v is not None]
            if not value:
                out[name] = value
            elif depth >= MAX_DEPTH:
                out[name] = TOO_DEEP
            elif any(type(v) is dict for v in value):
                _flatten_redacted_objects(value, name, out, depth + 1, drop_nulls)
            else:  # lists of lists may hold objects with secret keys: redact() looks inside
                out[name] = bound_depth([redact(v, depth + 1) for v in value], depth + 1)
        else:
            out[name] = value


_LEAF_TYPES = frozenset({str, int, float, bool, type(None)})


def _flat_object_columns(items: list[Any], drop_nulls: bool) -> dict[str, list[Any]] | None:
    """The columns of a list of flat objects (every member an object of scalars, as Entra's policies and Okta's
    targets are): what the general loop below merges, without a flatten call and a dict per member. None for any
    other list (a scalar member, a nested value, a non-text key), which then takes the general loop."""
    columns: dict[str, list[Any]] = {}
    leaf = _LEAF_TYPES
    for item in items:
        if type(item) is not dict:
            return None
        for key, value in item.items():
            if type(value) not in leaf or type(key) is not str:
                return None
            if value is None and drop_nulls:
                continue
            column = columns.get(key)
            if column is None:
                columns[key] = [value]
            else:
                column.append(value)
    return columns


def _flatten_redacted_objects(items: list[Any], name: str, out: dict[str, Any], depth: int, drop_nulls: bool = False) -> None:
    checks = record_checks()
    if not checks:
        columns = _flat_object_columns(items, drop_nulls)
        if columns is not None:
            for sub_key, values in columns.items():
                out[f"{name}.{sub_key}"] = values
            return
    scalars: list[Any] = []
    merged: dict[str, list[Any]] = {}
    for item in items:
        if type(item) is dict:
            sub: dict[str, Any] = {}
            if not checks:
                _flatten_plain(item, "", sub, depth, drop_nulls)
            else:
                _flatten_redacted(item, "", sub, depth, drop_nulls, checks)
            for sub_key, sub_value in sub.items():
                bucket = merged.setdefault(sub_key, [])
                if isinstance(sub_value, list):
                    bucket.extend(sub_value)
                else:
                    bucket.append(sub_value)
        else:
            scalars.append(bound_depth(redact(item, depth), depth))
    if scalars:
        out[name] = scalars
    for sub_key, values in merged.items():
        out[f"{name}.{sub_key}"] = values
