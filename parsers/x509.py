"""PEM/DER certificates carried inside log records → ECS x509 fields.

Temporal Cloud namespace updates carry the accepted client CA bundle (PEM text, or base64 of PEM as
proto3-JSON renders ``bytes``); Vault PKI responses carry issued certificates. Detections care about
what the certificate says (who issued it, when it expires), so we parse it with ``cryptography``
rather than guessing from text. Everything is defensive: a broken certificate is skipped, never fatal.

Output conventions (ECS x509): times UTC ``...Z``, serial upper-case hex without colons, distinguished
name parts as lists, SHA-256 of the DER as upper-case hex in the summaries.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple

from temporal_siem.parsers.common import format_timestamp

if TYPE_CHECKING:
    from cryptography import x509 as cx509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
    from cryptography.x509.oid import ExtensionOID

PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----")
PEM_MARKER = "-----BEGIN CERTIFICATE-----"
# base64("-----BEGIN") with the three possible alignments of the marker inside a base64 stream.
B64_PEM_PREFIXES = ("LS0tLS1CRUdJTi", "LS0tLS0tQkVHSU4", "tLS0tLUJFR0lO")
_B64_PEM_PREFIXES_BYTES = tuple(p.encode() for p in B64_PEM_PREFIXES)
MAX_CERTIFICATES = 64
MAX_BUNDLE_CHARS = 1 << 20
#: Bundles and certificates remembered (least recently used dropped first); a bundle text is remembered only up to
#: this size, so the memory they hold stays under ~16 MB whatever the records carry.
MEMO_ENTRIES = 256
MEMO_TEXT_CHARS = 64 * 1024

_DN_PARTS: tuple[tuple[str, Any], ...] = ()
_loaded = False


def _load() -> None:
    """Import ``cryptography`` on first use. It is ~35 modules (~25 ms of every process start, a replay's and a
    test's included), and only a record that carries a certificate needs it. The two functions that make a
    certificate and every public one that reads one call this first (a bool test once loaded); the private
    helpers run only under those. The names it binds are the module's own."""
    global _DN_PARTS, _loaded
    if _loaded:
        return
    from cryptography import x509 as x509_module
    from cryptography.hazmat.primitives import hashes as hashes_module
    from cryptography.hazmat.primitives.asymmetric import dsa as dsa_module
    from cryptography.hazmat.primitives.asymmetric import ec as ec_module
    from cryptography.hazmat.primitives.asymmetric import ed448 as ed448_module
    from cryptography.hazmat.primitives.asymmetric import ed25519 as ed25519_module
    from cryptography.hazmat.primitives.asymmetric import rsa as rsa_module
    from cryptography.x509.oid import ExtensionOID as extension_oid
    from cryptography.x509.oid import NameOID as name_oid

    globals().update(cx509=x509_module, hashes=hashes_module, dsa=dsa_module, ec=ec_module, ed448=ed448_module,
                     ed25519=ed25519_module, rsa=rsa_module, ExtensionOID=extension_oid)
    _DN_PARTS = (
        ("common_name", name_oid.COMMON_NAME),
        ("organization", name_oid.ORGANIZATION_NAME),
        ("organizational_unit", name_oid.ORGANIZATIONAL_UNIT_NAME),
        ("country", name_oid.COUNTRY_NAME),
        ("state_or_province", name_oid.STATE_OR_PROVINCE_NAME),
        ("locality", name_oid.LOCALITY_NAME),
    )
    _loaded = True

# Go-style names, as ECS examples use them ("SHA256-RSA").
_SIGNATURE_NAMES = {
    "sha1WithRSAEncryption": "SHA1-RSA",
    "sha256WithRSAEncryption": "SHA256-RSA",
    "sha384WithRSAEncryption": "SHA384-RSA",
    "sha512WithRSAEncryption": "SHA512-RSA",
    "ecdsa-with-SHA256": "ECDSA-SHA256",
    "ecdsa-with-SHA384": "ECDSA-SHA384",
    "ecdsa-with-SHA512": "ECDSA-SHA512",
    "ed25519": "Ed25519",
    "ed448": "Ed448",
    "RSASSA-PSS": "RSASSA-PSS",
}


def certificates_in(value: Any) -> list[cx509.Certificate]:
    """Every certificate found in a string (PEM text, base64 of PEM, base64 DER) or a list of them."""
    found: list[cx509.Certificate] = []
    for text in _strings(value):
        for cert in _certificates_in_text(text):
            found.append(cert)
            if len(found) >= MAX_CERTIFICATES:
                return found
    return found


def looks_like_certificate_text(value: Any) -> bool:
    """Cheap test before any decoding: a PEM marker, or base64 that decodes to one."""
    return isinstance(value, str) and (PEM_MARKER in value or value.lstrip().startswith(B64_PEM_PREFIXES))


def may_carry_certificate(raw: bytes) -> bool:
    """Byte-level pre-check on serialized JSON (PEM marker or its base64 forms; JSON escaping leaves both intact),
    so the common record without a certificate skips the walk over its details."""
    return b"-----BEGIN" in raw or any(prefix in raw for prefix in _B64_PEM_PREFIXES_BYTES)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, str):
                yield item


def _certificates_in_text(text: str) -> list[cx509.Certificate]:
    _load()
    if len(text) > MAX_BUNDLE_CHARS:
        return []
    if len(text) <= MEMO_TEXT_CHARS:
        return list(_remembered_certificates(text))
    return _parse_certificates(text)


@lru_cache(maxsize=MEMO_ENTRIES)
def _remembered_certificates(text: str) -> tuple[cx509.Certificate, ...]:
    """A bundle's certificates by its text: a namespace's accepted CA bundle and Vault's issuing CA and chain come
    back in record after record, and loading one certificate costs ~20 µs. Certificates are immutable."""
    return tuple(_parse_certificates(text))


def _parse_certificates(text: str) -> list[cx509.Certificate]:
    data = text.encode("utf-8", "replace")
    if PEM_MARKER not in text:
        decoded = _b64(text)
        if decoded is None:
            return []
        if b"-----BEGIN" not in decoded:
            cert = _load_der(decoded)
            return [cert] if cert else []
        data = decoded
    certs = []
    for block in PEM_BLOCK.findall(data):
        try:
            certs.append(cx509.load_pem_x509_certificate(block))
        except ValueError:
            continue
    return certs


def _b64(text: str) -> bytes | None:
    compact = "".join(text.split())
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _load_der(data: bytes) -> cx509.Certificate | None:
    _load()
    try:
        return cx509.load_der_x509_certificate(data)
    except ValueError:
        return None


def load_der_b64(text: Any) -> cx509.Certificate | None:
    """One base64 DER certificate (e.g. a TLS peer certificate field)."""
    if not isinstance(text, str):
        return None
    data = _b64(text)
    return _load_der(data) if data else None


# --- field extraction ---------------------------------------------------------------------


def _utc(cert: cx509.Certificate, name: str) -> datetime:
    value: datetime = getattr(cert, name + "_utc")
    return value.astimezone(UTC)


def serial_hex(serial: int) -> str:
    """ECS form of a serial: upper-case hex, no colons, even length (leading zero kept as DER shows it)."""
    text = format(serial, "X")
    return text if len(text) % 2 == 0 else "0" + text


def _name_parts(name: cx509.Name) -> dict[str, Any]:
    parts: dict[str, Any] = {}
    for key, oid in _DN_PARTS:
        values = [str(attr.value) for attr in name.get_attributes_for_oid(oid)]
        if values:
            parts[key] = values
    parts["distinguished_name"] = name.rfc4514_string()
    return parts


def _alternative_names(cert: cx509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    except (cx509.ExtensionNotFound, ValueError):
        return []
    names: list[str] = []
    san = ext.value
    if not isinstance(san, cx509.SubjectAlternativeName):
        return []
    for general in san:
        value = getattr(general, "value", None)
        if value is not None and not isinstance(value, (bytes, cx509.Name)):
            names.append(str(value))
    return names


def _is_ca(cert: cx509.Certificate) -> bool:
    try:
        ext = cert.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS)
    except (cx509.ExtensionNotFound, ValueError):
        return False
    value = ext.value
    return bool(isinstance(value, cx509.BasicConstraints) and value.ca)


def _public_key(cert: cx509.Certificate) -> dict[str, Any]:
    try:
        key = cert.public_key()
    except (ValueError, cx509.UnsupportedGeneralNameType, Exception):  # unsupported algorithms raise assorted errors
        return {}
    if isinstance(key, rsa.RSAPublicKey):
        return {"public_key_algorithm": "RSA", "public_key_size": key.key_size, "public_key_exponent": key.public_numbers().e}
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"public_key_algorithm": "ECDSA", "public_key_size": key.key_size, "public_key_curve": key.curve.name}
    if isinstance(key, ed25519.Ed25519PublicKey):
        return {"public_key_algorithm": "Ed25519", "public_key_size": 256}
    if isinstance(key, ed448.Ed448PublicKey):
        return {"public_key_algorithm": "Ed448", "public_key_size": 456}
    if isinstance(key, dsa.DSAPublicKey):
        return {"public_key_algorithm": "DSA", "public_key_size": key.key_size}
    return {}


def _signature_algorithm(cert: cx509.Certificate) -> str:
    oid = cert.signature_algorithm_oid
    name = getattr(oid, "_name", None) or oid.dotted_string
    return _SIGNATURE_NAMES.get(name, name)


def sha256_hex(cert: cx509.Certificate) -> str:
    _load()
    return _facts(cert).sha256


class _Facts(NamedTuple):
    """What the summaries read from one certificate, computed once per certificate (see :func:`_facts`)."""

    summary: dict[str, Any]  # summary() without expires_in_days, which depends on the record's time
    not_after: datetime
    sha256: str

    def at(self, when: datetime | None) -> dict[str, Any]:
        """The ``temporal.certificates[]`` member as of ``when`` (a copy: the remembered dict is never handed out)."""
        return {**self.summary,
                "expires_in_days": None if when is None else math.floor((self.not_after - when).total_seconds() / 86400)}


@lru_cache(maxsize=MEMO_ENTRIES)
def _facts(cert: cx509.Certificate) -> _Facts:
    """A certificate's summary fields: ~25 µs of name formatting, fingerprinting and extension reading that a
    CA seen again (the common case) needs once. Keyed by the certificate (equal DER, equal key); never mutated:
    :func:`summary` copies it."""
    not_after = _utc(cert, "not_valid_after")
    fingerprint = cert.fingerprint(hashes.SHA256()).hex().upper()
    return _Facts({
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial_number": serial_hex(cert.serial_number),
        "not_before": format_timestamp(_utc(cert, "not_valid_before")),
        "not_after": format_timestamp(not_after),
        "sha256": fingerprint,
        "is_ca": _is_ca(cert),
    }, not_after, fingerprint)


def md5_hex(cert: cx509.Certificate) -> str:
    _load()
    return cert.fingerprint(hashes.MD5()).hex().upper()


def ecs_x509(cert: cx509.Certificate) -> dict[str, Any]:
    """The ECS x509 field set of one certificate, nested (``subject.common_name`` is ``{"subject": {...}}``)."""
    _load()
    fields: dict[str, Any] = {
        "serial_number": serial_hex(cert.serial_number),
        "not_before": format_timestamp(_utc(cert, "not_valid_before")),
        "not_after": format_timestamp(_utc(cert, "not_valid_after")),
        "subject": _name_parts(cert.subject),
        "issuer": _name_parts(cert.issuer),
        "signature_algorithm": _signature_algorithm(cert),
        "version_number": str(cert.version.value + 1),
    }
    names = _alternative_names(cert)
    if names:
        fields["alternative_names"] = names
    fields.update(_public_key(cert))
    return fields


def summary(cert: cx509.Certificate, at: datetime | None = None) -> dict[str, Any]:
    """One ``temporal.certificates[]`` member. Every key is always present so flattened lists stay aligned.

    ``expires_in_days`` is counted from ``at`` (the record's own time, so replays give the same answer):
    negative = already expired when the record was written; rules cannot do date arithmetic themselves.
    """
    _load()
    return _facts(cert).at(at)


def flat_ecs_x509(cert: cx509.Certificate, prefix: str) -> dict[str, Any]:
    """``ecs_x509`` flattened under ``prefix`` (``x509``, ``tls.client.x509``...): a copy of the remembered
    fields whose lists are the caller's own (an event's lists may be appended to downstream)."""
    _load()
    return {key: list(value) if type(value) is list else value for key, value in _flat_ecs_x509(cert, prefix).items()}


@lru_cache(maxsize=MEMO_ENTRIES)
def _flat_ecs_x509(cert: cx509.Certificate, prefix: str) -> dict[str, Any]:
    from temporal_siem.kernel.flatten import flatten

    return flatten(ecs_x509(cert), prefix + ".")


def add_certificates(event: dict[str, Any], certs: list[cx509.Certificate], top_level: bool = True, at: datetime | None = None,
                     primary: cx509.Certificate | None = None) -> None:
    """Put a bundle on a flat event: ``x509.*`` = ``primary`` (an issued certificate) or else the certificate
    that expires first (a CA bundle), every one in ``temporal.certificates.*`` (Elasticsearch-style columns,
    one list entry per certificate)."""
    _load()
    if not certs:
        return
    from temporal_siem.kernel.flatten import flatten

    facts = [_facts(cert) for cert in certs]
    if top_level:
        first = primary or certs[min(range(len(certs)), key=lambda i: facts[i].not_after)]
        event.update(flat_ecs_x509(first, "x509"))
    event.update(flatten({"certificates": [fact.at(at) for fact in facts]}, "temporal."))
    for fact in facts:
        fingerprint = fact.sha256
        bucket = event.setdefault("related.hash", [])
        if fingerprint not in bucket:
            bucket.append(fingerprint)
