"""Helpers every parser shares: timestamps, IPs, ids, redaction, ECS list fields.

Kept dependency-free and regex-light: these run once or twice per record on the hot path.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

REDACTED = "[REDACTED]"

# Keys whose values are secrets wherever they appear (compared lower-case, '-' and '_' ignored).
SECRET_KEYS = frozenset(
    {
        "password", "passwd", "secret", "clientsecret", "token", "accesstoken", "refreshtoken", "idtoken",
        "bearertoken", "clienttoken", "apikey", "apikeyvalue", "authorization", "privatekey", "secretkey",
        "secretaccesskey", "sessiontoken", "samlresponse", "samlassertion", "assertion", "credential",
        "credentials", "xvaulttoken", "wrappedtoken", "plaintext", "ciphertext_key", "key_material",
    }
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}")
_VAULT_TOKEN = re.compile(r"\b(hvs|hvb|hvr|s)\.[A-Za-z0-9]{20,}")


def event_id_from_raw(raw: bytes) -> str:
    """The spec's id for formats without a native one: sha256 of the record bytes, first 32 hex digits."""
    return hashlib.sha256(raw.rstrip(b"\r\n")).hexdigest()[:32]


def is_secret_key(key: str) -> bool:
    return key.lower().replace("-", "").replace("_", "") in SECRET_KEYS


_ANY_TOKEN = re.compile(
    r"(?i:\b(?:bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,})|\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}"
    r"|\b(?:hvs|hvb|hvr|s)\.[A-Za-z0-9]{20,}"
)
_MIN_TOKEN_TEXT = 14  # "basic " + 8 characters: nothing shorter can hold a token
_secret_key_cache: dict[str, bool] = {}


def _is_secret_key_cached(key: str) -> bool:
    known = _secret_key_cache.get(key)
    if known is None:
        known = is_secret_key(key)
        if len(_secret_key_cache) < 50_000:
            _secret_key_cache[key] = known
    return known


def _might_hold_token(text: str) -> bool:
    """Substring probes, ~10x cheaper than the regex: bearer/basic in its usual casings, JWT, Vault tokens."""
    return (
        "eyJ" in text or "s." in text or "hv" in text
        or "earer" in text or "EARER" in text or "asic" in text or "ASIC" in text
    )


def redact_text(text: str) -> str:
    """Mask bearer tokens, JWTs and Vault tokens inside free text (one regex probe for the common clean case)."""
    if len(text) < _MIN_TOKEN_TEXT or not _might_hold_token(text) or _ANY_TOKEN.search(text) is None:
        return text
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _JWT.sub(REDACTED, text)
    return _VAULT_TOKEN.sub(REDACTED, text)


def _has_value(value: Any) -> bool:
    return not (value is None or value == "" or value == [] or value == {})


def redact(value: Any, depth: int = 0) -> Any:
    """Return a copy with secret-named keys masked and tokens in strings masked."""
    if depth > 64:
        return value
    if isinstance(value, dict):
        return {k: (REDACTED if _is_secret_key_cached(str(k)) and _has_value(v) else redact(v, depth + 1)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, depth + 1) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


# --- timestamps -----------------------------------------------------------------------------

_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?\s*(Z|z|[+-]\d{2}:?\d{2}|[+-]\d{2})?$"
)
_US = re.compile(
    r"^(\d{1,2})/(\d{1,2})/(\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s*([AaPp][Mm]))?(?:\s*([+-]\d{2}:?\d{2}|Z))?$"
)
_MONTHS = {m: i for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)}
_TEXT_DATE = re.compile(r"^([A-Za-z]{3})\s+(\d{1,2}),\s*(\d{4})\s+(\d{1,2}):(\d{2}):(\d{2})(?:\s*([AaPp][Mm]))?$")


def _tz(text: str | None) -> timezone:
    if not text or text in ("Z", "z"):
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours = int(digits[:2])
    minutes = int(digits[2:4] or 0) if len(digits) > 2 else 0
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def parse_timestamp(value: Any) -> datetime | None:
    """Parse every timestamp style in the log-format reference to an aware UTC datetime (µs precision).

    Accepts RFC 3339/ISO 8601 (any fraction length, ``Z``, ``+01:00``, zap's ``+0100``, no zone = UTC),
    ``{"seconds": s, "nanos": n}`` objects (numbers or strings), epoch numbers (s, ms, µs, ns by size),
    US-locale ``1/9/2007 9:41:00 AM [+01:00]`` and ``Apr 12, 2021 18:58:30 PM``. Returns None if unparseable.
    """
    try:
        if value is None or isinstance(value, bool):
            return None
        if isinstance(value, dict):
            seconds = value.get("seconds", value.get("Seconds"))
            if seconds is None:
                return None
            nanos = value.get("nanos", value.get("Nanos", 0)) or 0
            return datetime.fromtimestamp(int(seconds), UTC) + timedelta(microseconds=int(nanos) // 1000)
        if isinstance(value, (int, float)):
            return _from_epoch(float(value))
        if not isinstance(value, str):
            return None
        text = value.strip()
        if not text or len(text) > 64:
            return None
        if len(text) >= 19 and text[4] == "-" and text[7] == "-" and text[10] in "T " and text[13] == ":" and text[16] == ":":
            try:  # C fast path for the common RFC 3339 shapes; the regex below stays the reference
                parsed = datetime.fromisoformat(text)
            except ValueError:
                parsed = None
            if parsed is not None:
                return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        m = _ISO.match(text)
        if m:
            year, month, day, hour, minute = (int(m.group(i)) for i in range(1, 6))
            second = int(m.group(6) or 0)
            fraction = (m.group(7) or "0")[:6].ljust(6, "0")
            dt = datetime(year, month, day, hour, minute, min(second, 59), int(fraction), tzinfo=_tz(m.group(8)))
            return dt.astimezone(UTC)
        if text.lstrip("-").replace(".", "", 1).isdigit():
            return _from_epoch(float(text))
        m = _US.match(text)
        if m:
            month, day, year, hour, minute = int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4)), int(m.group(5))
            hour = _twelve_hour(hour, m.group(7))
            dt = datetime(year, month, day, hour, minute, int(m.group(6) or 0), tzinfo=_tz(m.group(8)))
            return dt.astimezone(UTC)
        m = _TEXT_DATE.match(text)
        if m and m.group(1).lower() in _MONTHS:
            hour = _twelve_hour(int(m.group(4)), m.group(7))
            return datetime(int(m.group(3)), _MONTHS[m.group(1).lower()], int(m.group(2)), hour, int(m.group(5)), int(m.group(6)), tzinfo=UTC)
    except (ValueError, OverflowError, OSError, TypeError):
        return None
    return None


def _twelve_hour(hour: int, meridiem: str | None) -> int:
    if not meridiem or hour > 12:
        return hour  # "18:58:30 PM" appears in KMS records: a 24-hour clock with a stray PM
    pm = meridiem.lower() == "pm"
    if hour == 12:
        return 12 if pm else 0
    return hour + 12 if pm else hour


def _from_epoch(number: float) -> datetime:
    magnitude = abs(number)
    if magnitude >= 1e17:
        number /= 1e9
    elif magnitude >= 1e14:
        number /= 1e6
    elif magnitude >= 1e11:
        number /= 1e3
    return datetime.fromtimestamp(number, UTC)


def format_timestamp(dt: datetime) -> str:
    """ECS @timestamp text: UTC, microseconds, ``Z``."""
    return dt.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def timestamp_or_none(value: Any) -> str | None:
    dt = parse_timestamp(value)
    return format_timestamp(dt) if dt else None


def now_timestamp() -> str:
    return format_timestamp(datetime.now(UTC))


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
        _flatten_redacted(obj, prefix + ".", flat, 0, drop_nulls)
        for key, value in flat.items():
            if key not in out:
                out[key] = value


def _flatten_redacted(obj: dict[str, Any], prefix: str, out: dict[str, Any], depth: int, drop_nulls: bool = False) -> None:
    from temporal_siem.flatten import MAX_DEPTH, TOO_DEEP

    secret_keys = _secret_key_cache
    for key, value in obj.items():
        if value is None and drop_nulls:
            continue
        name = prefix + key if type(key) is str else f"{prefix}{key}"
        kind = type(value)
        secret = secret_keys.get(key)  # inlined _is_secret_key_cached: this loop runs for every vendor field
        if secret is None:
            secret = _is_secret_key_cached(str(key))
        if secret and _has_value(value):
            out[name] = REDACTED
        elif kind is str:
            out[name] = redact_text(value) if len(value) >= _MIN_TOKEN_TEXT else value
        elif kind is dict:
            if not value:
                out[name] = value
            elif depth < MAX_DEPTH:
                _flatten_redacted(value, name + ".", out, depth + 1, drop_nulls)
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
                out[name] = [redact(v, depth + 1) for v in value]
        else:
            out[name] = value


def _flatten_redacted_objects(items: list[Any], name: str, out: dict[str, Any], depth: int, drop_nulls: bool = False) -> None:
    scalars: list[Any] = []
    merged: dict[str, list[Any]] = {}
    for item in items:
        if type(item) is dict:
            sub: dict[str, Any] = {}
            _flatten_redacted(item, "", sub, depth, drop_nulls)
            for sub_key, sub_value in sub.items():
                bucket = merged.setdefault(sub_key, [])
                if isinstance(sub_value, list):
                    bucket.extend(sub_value)
                else:
                    bucket.append(sub_value)
        else:
            scalars.append(redact(item, depth))
    if scalars:
        out[name] = scalars
    for sub_key, values in merged.items():
        out[f"{name}.{sub_key}"] = values
