"""Vault audit parser: request/response pairs, transit and PKI mapping, errors, redaction."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from temporal_siem.kernel.flatten import unflatten
from temporal_siem.kernel.records import Origin, RawRecord
from temporal_siem.kernel.schema import validate_event
from temporal_siem.parsers.router import ParserRouter
from tests.parsers.golden_harness import parse_file, sample_files

ROUTER = ParserRouter()
HMAC = "hmac-sha256:" + "ab" * 32


def parse(record: dict[str, Any] | str) -> dict[str, Any]:
    data = record.encode() if isinstance(record, str) else orjson.dumps(record)
    result = ROUTER.parse(RawRecord(data, Origin("audit.log", line=4)))
    assert not result.dead, result.dead[0].as_dict()
    (event,) = result.events
    assert event["event.dataset"] == "hashicorp_vault.audit"
    validate_event(unflatten(event))
    return event


def entry(path: str, operation: str = "update", mount_type: str = "transit", entry_type: str = "request", **extra: Any) -> dict[str, Any]:
    request = {"id": "req-1", "operation": operation, "mount_type": mount_type, "path": path, "remote_address": "10.42.3.17", "remote_port": 44812,
               "client_token": HMAC, "client_token_accessor": HMAC, "namespace": {"id": "root"}}
    request.update(extra.pop("request", {}))
    record = {"time": "2025-08-12T09:30:01.204518733Z", "type": entry_type,
              "auth": {"client_token": HMAC, "accessor": HMAC, "display_name": "oidc-alice", "entity_id": "ent-1", "policies": ["default", "kms"],
                       "metadata": {"email": "alice@example.com", "role": "ops"}},
              "request": request}
    record.update(extra)
    return record


def test_ids_timestamp_and_identity():
    request = parse(entry("transit/encrypt/k"))
    response = parse(entry("transit/encrypt/k", entry_type="response", response={"data": {"ciphertext": HMAC}}))
    assert request["event.id"] == "req-1:request" and response["event.id"] == "req-1:response"
    assert request["trace.id"] == response["trace.id"] == "req-1"
    assert request["@timestamp"] == "2025-08-12T09:30:01.204518Z"
    assert request["user.name"] == "oidc-alice" and request["user.id"] == "ent-1" and request["user.email"] == "alice@example.com"
    assert request["user.roles"] == ["default", "kms"] and request["related.user"] == ["oidc-alice", "alice@example.com"]
    assert request["source.ip"] == "10.42.3.17" and request["source.port"] == 44812
    assert (request["event.outcome"], response["event.outcome"]) == ("success", "success")  # Elastic: no error = success


@pytest.mark.parametrize("path, mount_point, operation, action", [
    ("transit/decrypt/payloads", "transit/", "update", "transit.decrypt"),
    ("codec/decrypt/payloads", "codec/", "update", "transit.decrypt"),
    ("team/a/codec/decrypt/payloads", None, "update", "transit.decrypt"),  # renamed, nested, no mount_point
    ("transit/rewrap/payloads", "transit/", "update", "transit.rewrap"),
    ("transit/datakey/plaintext/payloads", "transit/", "update", "transit.datakey"),
    ("transit/keys/payloads/rotate", "transit/", "update", "transit.rotate"),
    ("transit/keys/payloads/config", "transit/", "update", "transit.key_config"),
    ("transit/keys/payloads", "transit/", "update", "transit.key_create"),
    ("transit/keys/payloads", "transit/", "delete", "transit.key_delete"),
    ("transit/keys/payloads", "transit/", "read", "transit.key_read"),
    ("transit/export/encryption-key/payloads/2", "transit/", "read", "transit.export"),
    ("transit/backup/payloads", "transit/", "read", "transit.backup"),
])
def test_transit_actions_and_key(path, mount_point, operation, action):
    event = parse(entry(path, operation, request={"mount_point": mount_point} if mount_point else {}))
    assert event["temporal.action"] == action and event["event.action"] == operation
    assert event["event.category"] == ["authentication"]  # as Elastic's integration, on every entry
    assert event["event.type"] == {"update": ["info"], "read": ["info", "start"], "delete": ["info", "end"]}[operation]
    assert event["temporal.key.id"] == event["temporal.key.name"] == "payloads" and event["temporal.key.type"] == "vault_transit"


@pytest.mark.parametrize("value, expected", [(True, True), ("true", True), (False, False), ("False", False)])
def test_key_config_flags(value, expected):
    event = parse(entry("transit/keys/payloads/config", request={"data": {"deletion_allowed": value, "exportable": value}}))
    assert event["temporal.key.deletion_allowed"] is expected and event["temporal.key.exportable"] is expected


def test_rotation_response_version():
    event = parse(entry("transit/keys/payloads/rotate", entry_type="response", response={"data": {"latest_version": 5}}))
    assert event["temporal.key.version"] == 5


def test_decrypt_failure_generic_and_clear_error():
    generic = parse(entry("transit/decrypt/payloads", entry_type="response", response={"data": {"error": HMAC}},
                          error="1 error occurred:\n\t* invalid request\n\n"))
    assert generic["event.outcome"] == "failure" and generic["error.message"] == "invalid request"
    clear = parse(entry("transit/decrypt/payloads", entry_type="response",
                        response={"data": {"error": "ciphertext or signature version is disallowed by policy (too old)"}},
                        error="1 error occurred:\n\t* invalid request\n\n"))
    assert clear["error.message"] == "ciphertext or signature version is disallowed by policy (too old)"


@pytest.mark.parametrize("error, message", [
    ("permission denied", "permission denied"),
    ("1 error occurred:\n\t* permission denied\n\n", "permission denied"),
    ("1 error(s) occurred:\n\n* permission denied", "permission denied"),
    ("2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n", "permission denied; invalid token"),
])
def test_permission_denied_variants(error, message):
    event = parse(entry("transit/keys/payloads/rotate", error=error))
    assert event["event.outcome"] == "failure" and event["error.message"] == message
    assert "denied" in event["event.type"]


def test_cert_login_failure_and_serial_hex():
    record = {"time": "2025-08-12T10:00:00.000420Z", "type": "response", "auth": {"token_type": "default"},
              "request": {"id": "r-9", "operation": "update", "mount_type": "cert", "path": "auth/cert/login", "remote_address": "198.51.100.45",
                          "client_certificate_serial_number": "4299262263039"},
              "response": {"data": {"error": "failed to match all constraints for this login certificate"}},
              "error": "1 error occurred:\n\t* invalid request\n\n"}
    event = parse(record)
    assert event["temporal.action"] == "cert.login" and event["event.category"] == ["authentication"] and event["event.outcome"] == "failure"
    assert event["error.message"] == "failed to match all constraints for this login certificate"
    assert event["tls.client.x509.serial_number"] == "03E8FFFFFEFF"
    assert event["temporal.auth_method"] == "cert"


def test_hmac_serial_is_not_converted():
    event = parse(entry("auth/cert/login", mount_type="cert", request={"client_certificate_serial_number": HMAC}))
    assert "tls.client.x509.serial_number" not in event


def test_login_identity_from_response_auth():
    event = parse(entry("auth/userpass/login/eve", mount_type="userpass", entry_type="response", auth={},
                        response={"auth": {"client_token": HMAC, "display_name": "userpass-eve", "entity_id": "ent-eve", "policies": ["default"]}}))
    assert event["user.name"] == "userpass-eve" and event["user.id"] == "ent-eve" and event["temporal.action"] == "userpass.login"


def _issued(cn: str) -> str:
    key = rsa.generate_private_key(65537, 2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime(2025, 8, 12, tzinfo=dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key()).serial_number(0x0102)
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("*.example.com")]), critical=False).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_pki_issue_certificate_in_response():
    event = parse(entry("pki/issuer/default/issue/admin-any-cn", mount_type="pki", entry_type="response",
                        request={"mount_point": "pki/"}, response={"data": {"certificate": _issued("admin.example.com"), "private_key": HMAC}}))
    assert event["temporal.action"] == "pki.issue" and event["temporal.target.type"] == "pki_role" and event["temporal.target.name"] == "admin-any-cn"
    assert event["x509.subject.common_name"] == ["admin.example.com"] and event["x509.serial_number"] == "0102"
    assert event["x509.alternative_names"] == ["*.example.com"] and event["x509.public_key_size"] == 2048
    assert event["x509.signature_algorithm"] == "SHA256-RSA" and event["temporal.certificates.expires_in_days"] == [3649]


def test_pki_issue_with_hmac_certificate_has_no_x509():
    event = parse(entry("pki/issue/web", mount_type="pki", entry_type="response", request={"mount_point": "pki/"},
                        response={"data": {"certificate": HMAC}}))
    assert "x509.not_after" not in event and event["temporal.action"] == "pki.issue"


def test_pki_revoke_serial():
    event = parse(entry("pki_int/revoke", mount_type="pki", request={"mount_point": "pki_int/", "data": {"serial_number": "3b:9a:ca:07"}}))
    assert event["temporal.action"] == "pki.revoke" and event["temporal.target.id"] == "3B9ACA07"


def test_prefix_and_syslog_header_stripped():
    line = "vault-prod: " + orjson.dumps(entry("transit/encrypt/k")).decode()
    assert parse(line)["event.id"] == "req-1:request"
    assert parse("<134>1 2025-08-12T09:30:01Z vault-1 vault - - - " + orjson.dumps(entry("transit/encrypt/k")).decode())["trace.id"] == "req-1"


def test_broken_json_after_prefix_is_dead_lettered():
    line = 'vault-prod: {"time":"2025-08-12T09:30:01Z","type":"request","request":{"id":'
    result = ROUTER.parse(RawRecord(line.encode(), Origin("audit.log", line=12)))
    assert not result.events
    # The truncated line still names "request"/"type"/"time", so the Vault parser takes it and says why it failed.
    assert result.dead[0].reason == "invalid JSON" and "vault-prod" in result.dead[0].detail


def test_log_raw_tokens_redacted_hmac_kept():
    record = entry("transit/encrypt/k", request={"client_token": "hvs.CAESIabcdefghijklmnopqrstuvwxyz", "client_token_accessor": "9f8e7d6c5b4a",
                                                  "headers": {"x-vault-token": ["hvs.CAESIabcdefghijklmnopqrstuvwxyz"]}, "data": {"plaintext": "c2VjcmV0"}})
    record["auth"]["client_token"] = "hvs.CAESIabcdefghijklmnopqrstuvwxyz"
    record["auth"]["accessor"] = "9f8e7d6c5b4a"
    event = parse(record)
    text = orjson.dumps(event).decode()
    assert "hvs.CAESI" not in text and "9f8e7d6c5b4a" not in text and "c2VjcmV0" not in text
    assert event["hashicorp_vault.audit.auth.client_token"] == "[REDACTED]"
    assert event["hashicorp_vault.audit.request.mount_type"] == "transit"
    hmac_event = parse(entry("transit/encrypt/k"))
    assert hmac_event["hashicorp_vault.audit.auth.client_token"] == HMAC and hmac_event["hashicorp_vault.audit.request.client_token_accessor"] == HMAC


def test_kmip_and_missing_id():
    record = entry("kmip/scope/x", mount_type="kmip", entry_type="kmip-request")
    del record["request"]["id"]
    event = parse(record)
    assert len(event["event.id"]) == 32 and "trace.id" not in event


@pytest.mark.parametrize("mutate, reason", [
    (lambda r: r.update(time="later"), "no timestamp"),
    (lambda r: r.update(time=None), "no timestamp"),
])
def test_dead_letters(mutate, reason):
    record = entry("transit/encrypt/k")
    mutate(record)
    result = ROUTER.parse(RawRecord(orjson.dumps(record), Origin("audit.log", line=5)))
    assert not result.events and result.dead[0].reason == reason and str(result.dead[0].origin) == "audit.log:5"


def test_wrong_typed_fields():
    event = parse(entry("transit/encrypt/k", auth="x", response=[1], request={"remote_port": "44812", "remote_address": "vault-agent", "path": 5}))
    assert event["source.address"] == "vault-agent" and "source.port" not in event and "user.name" not in event


def test_jsonx_is_not_accepted():
    result = ROUTER.parse(RawRecord(b"<json:object><json:string name=\"type\">request</json:string></json:object>", Origin("a.xml", line=1)))
    assert not result.events and result.dead[0].reason == "no parser accepts the text line"


def test_every_sample_validates_against_the_schema():
    total = 0
    for path in sample_files("vault_audit"):
        events, dead = parse_file(path)
        assert not dead
        for event in events:
            validate_event(event)
        total += len(events)
    assert total >= 35


def test_kmip_entry_with_port_in_address():
    event = parse({"request": {"client_certificate_serial_number": "79311139933792246475030417908586135267121780670", "namespace": {"id": "root"},
                               "data": {"kmip_request": {"tag": "RequestMessage", "value": []}}, "remote_address": "192.168.0.10:36776"},
                   "time": "2026-05-20T13:49:00.313915809Z", "type": "kmip-request"})
    assert event["temporal.action"] == "kmip" and event["source.ip"] == "192.168.0.10" and event["source.port"] == 36776
    assert event["tls.client.x509.serial_number"] == format(79311139933792246475030417908586135267121780670, "X").rjust(40, "0")


def test_empty_error_null_data_and_help():
    ok = parse(entry("auth/token/lookup-self", "read", mount_type="token", error="", request={"data": None, "headers": {}}))
    assert ok["event.outcome"] == "success" and "error.message" not in ok  # an empty error is no error
    help_request = parse(entry("ca/roles/example", "help", mount_type="pki", request={"mount_point": "ca/"}))
    assert help_request["temporal.action"] == help_request["event.action"] == "help" and "info" in help_request["event.type"]


def test_user_agent_header_when_clear():
    clear = parse(entry("kv/data/x", "read", mount_type="kv", request={"headers": {"user-agent": ["Go-http-client/2.0"]}}))
    assert clear["user_agent.original"] == "Go-http-client/2.0"
    assert "user_agent.original" not in parse(entry("kv/data/x", "read", mount_type="kv", request={"headers": {"user-agent": [HMAC]}}))


@pytest.mark.parametrize("value", [[], {"a": 1}, ["request"]])
def test_unhashable_type_is_not_a_crash(value):
    """Found by fuzzing: ``type`` as a list made auto-detection raise for every record in the chain."""
    result = ROUTER.parse(RawRecord(orjson.dumps({"operation": None, "log_id": None, "type": value, "time": "2025-01-01T00:00:00Z",
                                                  "request": {}}), Origin("f", line=1)))
    assert all(d.reason != "parser error" for d in result.dead)
