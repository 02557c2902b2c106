"""The shared certificate helper: PEM / base64 PEM / base64 DER → ECS x509, robust to junk."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from temporal_siem.parsers.x509 import MAX_CERTIFICATES, add_certificates, certificates_in, ecs_x509, load_der_b64, serial_hex, summary

NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)


def make(cn: str, days: int = 30, serial: int = 0x1234, key_type: str = "ec", san: list[str] | None = None) -> x509.Certificate:
    key = ed25519.Ed25519PrivateKey.generate() if key_type == "ed25519" else ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Corp"),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Platform")])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key()).serial_number(serial)
               .not_valid_before(NOW - dt.timedelta(days=10)).not_valid_after(NOW + dt.timedelta(days=days)))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in san]), critical=False)
    return builder.sign(key, None if key_type == "ed25519" else hashes.SHA384())


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_every_encoding_is_found():
    cert = make("a")
    der_b64 = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    assert [c.serial_number for c in certificates_in(pem(cert))] == [0x1234]
    assert [c.serial_number for c in certificates_in(base64.b64encode(pem(cert).encode()).decode())] == [0x1234]
    assert [c.serial_number for c in certificates_in(der_b64)] == [0x1234]
    assert load_der_b64(der_b64) is not None and load_der_b64("!!!") is None and load_der_b64(5) is None


def test_bundle_with_junk_between_and_broken_members():
    good, other = make("good"), make("other", serial=0x99)
    broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"
    text = "comment line\n" + pem(good) + "\n" + broken + "\n\n" + pem(other).replace("\n", "\r\n")
    assert [c.serial_number for c in certificates_in(text)] == [0x1234, 0x99]


@pytest.mark.parametrize("value", [None, 5, {"a": 1}, "", "plain text", "LS0tLS1CRUdJTiBnYXJiYWdl", "A" * 2_000_000])
def test_non_certificates_give_nothing(value):
    assert certificates_in(value) == []


def test_certificate_count_is_capped():
    one = pem(make("x"))
    assert len(certificates_in(one * (MAX_CERTIFICATES + 10))) == MAX_CERTIFICATES


def test_ecs_fields():
    fields = ecs_x509(make("svc.example.com", san=["svc.example.com", "alt.example.com"]))
    assert fields["subject"]["common_name"] == ["svc.example.com"] and fields["subject"]["organizational_unit"] == ["Platform"]
    assert fields["subject"]["distinguished_name"] == "OU=Platform,O=Example Corp,CN=svc.example.com"
    assert fields["alternative_names"] == ["svc.example.com", "alt.example.com"]
    assert (fields["public_key_algorithm"], fields["public_key_size"], fields["public_key_curve"]) == ("ECDSA", 384, "secp384r1")
    assert fields["signature_algorithm"] == "ECDSA-SHA384" and fields["version_number"] == "3"
    assert fields["not_after"] == "2025-07-01T00:00:00.000000Z" and fields["serial_number"] == "1234"
    assert ecs_x509(make("e", key_type="ed25519"))["public_key_algorithm"] == "Ed25519"


@pytest.mark.parametrize("serial, text", [(1, "01"), (0xABC, "0ABC"), (0x3B9ACA07DEADBEEF, "3B9ACA07DEADBEEF")])
def test_serial_hex(serial, text):
    assert serial_hex(serial) == text


def test_add_certificates_columns_stay_aligned():
    event: dict = {}
    certs = [make("later", days=400), make("sooner", days=5), make("gone", days=-3)]
    add_certificates(event, certs, at=NOW)
    assert event["x509.subject.common_name"] == ["gone"]
    assert event["temporal.certificates.expires_in_days"] == [400, 5, -3]
    columns = [v for k, v in event.items() if k.startswith("temporal.certificates.")]
    assert all(len(column) == 3 for column in columns)
    assert summary(certs[0])["expires_in_days"] is None  # no reference time, no guess


def test_primary_certificate_wins_top_level():
    event: dict = {}
    leaf, ca = make("leaf", days=900), make("ca", days=100)
    add_certificates(event, [leaf, ca], primary=leaf)
    assert event["x509.subject.common_name"] == ["leaf"]


def test_a_bundle_seen_again_gives_the_same_fields_and_shares_nothing_mutable():
    """Certificates are remembered by their text and their facts by certificate (a namespace's CA bundle and
    Vault's issuing CA come back in record after record): the second record's fields equal the first's, counted
    from its own time, and changing one event's lists changes nothing in another's."""
    text = pem(make("ca.example.com", days=30, san=["ca.example.com"])) + pem(make("leaf", days=10, serial=0x77))
    first: dict = {}
    add_certificates(first, certificates_in(text), at=NOW)
    snapshot = {k: (list(v) if isinstance(v, list) else v) for k, v in first.items()}
    for value in first.values():
        if isinstance(value, list):
            value.append("mutated")
    second: dict = {}
    later = NOW + dt.timedelta(days=3)
    add_certificates(second, certificates_in(text), at=later)
    assert list(second) == list(snapshot)
    assert second["temporal.certificates.expires_in_days"] == [27, 7]
    assert {k: v for k, v in second.items() if k != "temporal.certificates.expires_in_days"} == \
           {k: v for k, v in snapshot.items() if k != "temporal.certificates.expires_in_days"}
    assert summary(certificates_in(text)[0], later) == {**summary(certificates_in(text)[0], NOW), "expires_in_days": 27}


def test_a_remembered_bundle_is_a_fresh_list_each_time():
    text = pem(make("a"))
    found = certificates_in(text)
    found.clear()
    assert len(certificates_in(text)) == 1
