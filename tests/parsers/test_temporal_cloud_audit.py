"""Temporal Cloud audit parser: every record generation and spelling, field by field."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from temporal_siem.kernel.flatten import unflatten
from temporal_siem.kernel.records import Origin, RawRecord
from temporal_siem.kernel.schema import validate_event
from temporal_siem.parsers.router import ParserRouter
from tests.parsers.golden_harness import parse_file, sample_files

ROUTER = ParserRouter()


def parse(record: dict[str, Any] | bytes) -> dict[str, Any]:
    data = record if isinstance(record, bytes) else orjson.dumps(record)
    result = ROUTER.parse(RawRecord(data, Origin("test", line=1)))
    assert not result.dead, result.dead[0].as_dict()
    assert len(result.events) == 1
    event = result.events[0]
    assert event["event.dataset"] == "temporal_cloud.audit"
    validate_event(unflatten(event))
    return event


def dead_reason(record: dict[str, Any]) -> str:
    result = ROUTER.parse(RawRecord(orjson.dumps(record), Origin("test", line=7)))
    assert not result.events and len(result.dead) == 1
    assert str(result.dead[0].origin) == "test:7"
    return result.dead[0].reason


G2: dict[str, Any] = {"operation": "UpdateNamespaceAPI", "status": "OK", "version": 2, "log_id": "0b9e2f4c-6a1d-4e8b-9c3f-2d7a5e1b8c40",
      "emit_time": "2025-06-02T17:45:03.512Z", "x_forwarded_for": "198.51.100.7", "async_operation_id": "",
      "principal": {"type": "user", "id": "u-1", "name": "alice@example.com", "api_key_id": ""},
      "raw_details": {"namespace": "payments-prod.a1b2c"}}


def _cert(cn: str, not_after: dt.datetime, serial: int) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key()).serial_number(serial)
            .not_valid_before(not_after - dt.timedelta(days=365)).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.parametrize("emit", [
    {"emit_time": "2025-10-02T20:23:37.048Z"},
    {"emit_time": "2025-10-02T22:23:37.048+02:00"},
    {"emitTime": {"seconds": 1759436617, "nanos": 48000000}},
    {"emitTime": {"seconds": "1759436617", "nanos": "48000000"}},
    {"emitTime": {"$typeName": "google.protobuf.Timestamp", "seconds": "1759436617", "nanos": 48000000}},
])
def test_every_timestamp_style(emit):
    record = {k: v for k, v in G2.items() if k != "emit_time"} | emit
    assert parse(record)["@timestamp"] == "2025-10-02T20:23:37.048000Z"


def test_second_precision_legacy_time():
    assert parse(G2 | {"emit_time": "2023-10-24T08:19:41Z"})["@timestamp"] == "2023-10-24T08:19:41.000000Z"


@pytest.mark.parametrize("bad", [None, "", "yesterday", {"nanos": 5}, {"seconds": "soon"}, 12.5e30])
def test_no_timestamp_is_dead_lettered(bad):
    assert dead_reason(G2 | {"emit_time": bad}) == "no timestamp"


@pytest.mark.parametrize("operation", [None, "", 42, ["UpdateNamespace"]])
def test_missing_or_wrong_typed_operation_is_dead_lettered(operation):
    assert dead_reason(G2 | {"operation": operation}) == "missing operation"


def test_snake_and_camel_case_give_the_same_normalized_event():
    snake = G2 | {"raw_details": {"key_id": "key-1", "spec": {"owner_type": "service-account", "owner_id": "sa-9", "display_name": "k", "disabled": True}},
                  "operation": "UpdateAPIKey", "principal": G2["principal"] | {"api_key_id": "key-0"}, "x_forwarded_for": "2001:db8::5, 10.0.0.1"}
    camel = {"operation": "UpdateAPIKey", "status": "OK", "version": 2, "logId": snake["log_id"], "emitTime": {"seconds": 1748886303, "nanos": 512000000},
             "xForwardedFor": "2001:db8::5, 10.0.0.1", "asyncOperationId": "",
             "principal": {"type": "user", "id": "u-1", "name": "alice@example.com", "apiKeyId": "key-0"},
             "rawDetails": {"keyId": "key-1", "spec": {"ownerType": "OWNER_TYPE_SERVICE_ACCOUNT", "ownerId": "sa-9", "displayName": "k", "disabled": True}}}
    a, b = parse(snake), parse(camel)
    normalized = [k for k in a if not k.startswith("temporal_cloud.") and k != "event.ingested"]
    assert {k: a[k] for k in normalized} == {k: b.get(k) for k in normalized}
    assert a["temporal.target.owner_type"] == "serviceaccount" and a["temporal.target.disabled"] is True
    assert a["temporal.api_key.id"] == "key-0" and a["temporal.auth_method"] == "api_key"


def test_raw_details_as_json_string_equals_object():
    as_object = parse(G2 | {"operation": "DeleteAPIKey", "raw_details": {"key_id": "key-77"}})
    as_string = parse(G2 | {"operation": "DeleteAPIKey", "raw_details": '{"key_id": "key-77"}'})
    assert as_object["temporal.target.id"] == as_string["temporal.target.id"] == "key-77"
    assert as_string["temporal_cloud.raw_details.key_id"] == "key-77"  # decoded, kept under the vendor spelling


def test_broken_raw_details_string_is_kept_not_fatal():
    event = parse(G2 | {"raw_details": '{"key_id": "trunc'})
    assert event["temporal_cloud.raw_details"] == '{"key_id": "trunc'


def test_target_api_key_is_never_the_callers_key():
    """CreateAPIKey by a human for a service account: the new key is the target, the caller used no key."""
    event = parse(G2 | {"operation": "CreateAPIKey", "raw_details": {"spec": {"owner_type": "service-account", "owner_id": "sa-1", "display_name": "ci",
                                                                                 "expiry_time": "2026-01-01T00:00:00Z"}}})
    assert "temporal.api_key.id" not in event and "temporal.auth_method" not in event
    assert event["temporal.target.type"] == "api_key"
    assert event["temporal.target.owner_type"] == "serviceaccount"
    assert event["temporal.target.expiry_time"] == "2026-01-01T00:00:00.000000Z"
    assert event["event.category"] == ["iam"] and event["event.type"] == ["creation"]


def test_delete_several_keys_at_once_lists_them():
    event = parse(G2 | {"operation": "DeleteAPIKey", "raw_details": {"key_ids": ["k1", "k2", "k3"]}})
    assert event["temporal.target.id"] == ["k1", "k2", "k3"]


@pytest.mark.parametrize("ptype, expected", [("serviceaccount", "serviceaccount"), ("service-account", "serviceaccount"),
                                             ("SERVICE_ACCOUNT", "serviceaccount"), ("user", "user"), ("Robot", "robot")])
def test_principal_type_normalized(ptype, expected):
    event = parse(G2 | {"principal": {"type": ptype, "id": "p", "name": "ci-deployer", "api_key_id": "key-9"}})
    assert event["temporal.principal.type"] == expected
    assert event["user.name"] == "ci-deployer" and "user.email" not in event
    assert event["temporal_cloud.principal.type"] == ptype  # vendor value kept as written


def test_empty_principal_id_is_not_a_user_id():
    event = parse(G2 | {"principal": {"type": "user", "id": "", "name": "bob@example.com", "api_key_id": ""}})
    assert "user.id" not in event and event["user.email"] == "bob@example.com"
    assert event["related.user"] == ["bob@example.com"]


@pytest.mark.parametrize("chain, ip, related", [
    ("203.0.113.10, 10.20.0.4", "203.0.113.10", ["203.0.113.10", "10.20.0.4"]),
    ("2001:db8:85a3::8a2e:370:7334, 10.20.0.4", "2001:db8:85a3::8a2e:370:7334", ["2001:db8:85a3::8a2e:370:7334", "10.20.0.4"]),
    ("[2001:db8::1]:443", "2001:db8::1", ["2001:db8::1"]),
    ("8.8.8.8, 9.9.9.9, 10.0.0.1", "9.9.9.9", ["8.8.8.8", "9.9.9.9", "10.0.0.1"]),  # right to left: first untrusted hop
])
def test_forwarded_chains(chain, ip, related):
    event = parse(G2 | {"x_forwarded_for": chain})
    assert event["source.ip"] == ip and event["related.ip"] == related


def test_server_name_goes_to_source_address():
    record = {k: v for k, v in G2.items() if k != "x_forwarded_for"} | {"caller_ip_address": "edge-proxy.example.com"}
    event = parse(record)
    assert "source.ip" not in event and event["source.address"] == "edge-proxy.example.com"


@pytest.mark.parametrize("status, outcome, code", [("OK", "success", None), ("ok", "success", None), ("ERROR", "failure", "ERROR"),
                                                   ("PermissionDenied", "failure", "PermissionDenied"), (None, "unknown", None), (7, "failure", "7")])
def test_status(status, outcome, code):
    event = parse(G2 | {"status": status})
    assert event["event.outcome"] == outcome
    assert event.get("error.code") == code


def test_operation_normalized_raw_kept():
    event = parse(G2 | {"operation": "FailoverNamespacesAPI"})
    assert event["event.action"] == "FailoverNamespacesAPI" and event["temporal.operation"] == "FailoverNamespace"


@pytest.mark.parametrize("record, generation", [
    ({"emit_time": "2025-01-01T00:00:00Z", "operation": "UpdateNamespace", "log_id": "a", "user_email": "a@example.com", "details": {}}, "legacy"),
    ({"emit_time": "2025-01-01T00:00:00Z", "operation": "UpdateNamespace", "log_id": "a", "principal": {"type": "user"}, "request_id": "r"}, "transitional"),
    (G2, "current"),
])
def test_generation_detected_by_fields(record, generation):
    assert parse(record)["temporal.record_generation"] == generation


def test_legacy_targets_and_role_escalation():
    event = parse({"emit_time": "2025-01-14T22:47:03Z", "level": "LOG_LEVEL_INFO", "user_email": "mallory@example.com", "operation": "UpdateUser",
                   "details": {"target_users": ["mallory@example.com", "2b0c7f4e-0000-4000-8000-000000000001"], "roles": ["Account Admin"]},
                   "status": "OK", "version": "1", "log_id": "abc"})
    assert event["user.target.email"] == ["mallory@example.com"]
    assert event["user.target.id"] == ["2b0c7f4e-0000-4000-8000-000000000001"]
    assert event["user.changes.roles"] == ["Account Admin"]
    assert event["event.type"] == ["change", "user", "admin"]
    assert event["temporal.record_version"] == 1


def test_current_role_escalation_from_raw_details():
    event = parse(G2 | {"operation": "UpdateUserAPI", "raw_details": {"user_id": "u-9", "spec": {"email": "eve@example.com",
                                                                                                  "access": {"account_access": {"role": "owner"}}}}})
    assert event["user.changes.roles"] == ["owner"] and "admin" in event["event.type"]
    assert event["user.target.email"] == ["eve@example.com"] and event["user.target.id"] == ["u-9"]


def test_developer_role_is_not_admin():
    event = parse(G2 | {"operation": "UpdateUserAPI", "raw_details": {"user_id": "u-9", "spec": {"access": {"account_access": {"role": "developer"}}}}})
    assert "admin" not in event["event.type"]


def test_client_ca_fingerprints_legacy():
    event = parse({"emit_time": "2025-01-14T09:02:11Z", "operation": "UpdateNamespace", "log_id": "x", "status": "OK",
                   "details": {"namespace": "ns.acct", "client_ca_fingerprints": ["3f9a", "0d1e"]}})
    assert event["temporal.client_ca_fingerprints"] == ["3f9a", "0d1e"]
    assert event["temporal.namespace"] == "ns.acct" and event["temporal.target.id"] == "ns.acct"


@pytest.mark.parametrize("encode", [lambda pem: pem, lambda pem: base64.b64encode(pem.encode()).decode()], ids=["pem", "base64-pem"])
def test_ca_bundle_parsed_into_x509(encode):
    at = dt.datetime(2025, 6, 10, tzinfo=dt.UTC)
    soon = _cert("ca soon", at + dt.timedelta(days=10), 0x0ABC)
    expired = _cert("ca expired", at - dt.timedelta(days=40), 0x0DEF)
    later = _cert("ca later", at + dt.timedelta(days=900), 0x0123)
    event = parse(G2 | {"emit_time": "2025-06-10T00:00:00Z",
                        "raw_details": {"namespace": "ns.acct", "spec": {"mtls_auth": {"accepted_client_ca": encode(soon + later + expired)}}}})
    assert event["x509.subject.common_name"] == ["ca expired"]  # the one expiring first
    assert event["x509.serial_number"] == "0DEF"
    assert event["x509.not_after"] == "2025-05-01T00:00:00.000000Z"
    assert event["x509.public_key_algorithm"] == "ECDSA" and event["x509.signature_algorithm"] == "ECDSA-SHA256"
    assert event["temporal.certificates.subject"] == ["CN=ca soon", "CN=ca later", "CN=ca expired"]
    assert event["temporal.certificates.expires_in_days"] == [10, 900, -40]
    assert event["temporal.certificates.is_ca"] == [True, True, True]
    assert all(len(h) == 64 and h == h.upper() for h in event["temporal.certificates.sha256"])
    assert event["related.hash"] == event["temporal.certificates.sha256"]


def test_garbage_certificate_text_is_ignored():
    event = parse(G2 | {"raw_details": {"accepted_client_ca": "-----BEGIN CERTIFICATE-----\nnot base64 at all!!\n-----END CERTIFICATE-----"}})
    assert "x509.not_after" not in event and "temporal.certificates.subject" not in event


def test_secrets_redacted_in_vendor_namespace():
    event = parse(G2 | {"raw_details": {"spec": {"token": "s3cr3t-value", "api_key": "tmprl_abcdefghijklmnop"},
                                        "note": "Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123"},
                        "details": {"third_party_details": {"source": "auth0", "raw_message": '{"jwt":"eyJhbGciOiJI.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl"}'}}})
    text = orjson.dumps(event).decode()
    for secret in ("s3cr3t-value", "tmprl_abcdefghijklmnop", "abcdefghijklmnopqrstuvwxyz0123", "eyJhbGciOiJI"):
        assert secret not in text
    assert event["temporal_cloud.raw_details.spec.token"] == "[REDACTED]"


def test_wrong_typed_fields_do_not_crash():
    event = parse(G2 | {"principal": "alice", "details": ["x"], "raw_details": 5, "x_forwarded_for": 12, "version": True})
    assert event["event.outcome"] == "success" and "user.name" not in event and "temporal.record_version" not in event


def test_ui_export_array_parses_every_element():
    page = orjson.dumps([G2 | {"log_id": f"id-{i}"} for i in range(3)] + [{"operation": "X", "logId": "bad"}])
    result = ROUTER.parse(RawRecord(page, Origin("page.json", line=1)))
    assert [e["event.id"] for e in result.events] == ["id-0", "id-1", "id-2"]
    assert [(d.reason, d.origin.index) for d in result.dead] == [("no timestamp", 3)]


def test_pubsub_and_kinesis_envelopes():
    data = base64.b64encode(orjson.dumps(G2)).decode()
    pubsub = parse({"message": {"data": data, "messageId": "1"}, "subscription": "projects/p/subscriptions/s"})
    kinesis = ROUTER.parse(RawRecord(orjson.dumps({"Records": [{"kinesis": {"data": data}, "eventSource": "aws:kinesis"}]}), Origin("k")))
    firehose = ROUTER.parse(RawRecord(orjson.dumps({"requestId": "r", "records": [{"data": data}]}), Origin("f")))
    assert pubsub["event.id"] == kinesis.events[0]["event.id"] == firehose.events[0]["event.id"] == G2["log_id"]


def test_every_sample_validates_against_the_schema():
    count = 0
    for path in sample_files("temporal_cloud_audit"):
        events, dead = parse_file(path)
        assert not dead
        for event in events:
            validate_event(event)
            count += 1
    assert count >= 30


def test_documented_ui_example_and_ops_api_page():
    """The two records of the Temporal Cloud docs' own example (docs/cloud/audit-logs.mdx), as a UI download and as a GetAuditLogs page."""
    docs_example = [
        {"operation": "UserLogin", "status": "OK", "version": 2, "logId": "edb3aa3e-78c4-48fc-9c7e-2078c6989775", "xForwardedFor": "10.1.2.3",
         "asyncOperationId": "", "emitTime": {"$typeName": "google.protobuf.Timestamp", "seconds": 1759436617, "nanos": 48000000},
         "principal": {"type": "user", "id": "", "name": "user@email.com", "apiKeyId": ""}},
        {"operation": "UserLogin", "status": "OK", "version": 2, "logId": "5fe6a81e-8d3c-4f4d-88a5-52db864c9ea5", "xForwardedFor": "10.1.2.3",
         "asyncOperationId": "", "emitTime": {"seconds": 1759178573, "nanos": 671000000},
         "principal": {"type": "user", "id": "", "name": "user@email.com", "apiKeyId": ""}},
    ]
    for document in (docs_example, {"logs": docs_example, "nextPageToken": "abc"}):
        result = ROUTER.parse(RawRecord(orjson.dumps(document), Origin("download.json", line=1)))
        assert not result.dead
        assert [(e["event.id"], e["@timestamp"]) for e in result.events] == [
            ("edb3aa3e-78c4-48fc-9c7e-2078c6989775", "2025-10-02T20:23:37.048000Z"), ("5fe6a81e-8d3c-4f4d-88a5-52db864c9ea5", "2025-09-29T20:42:53.671000Z")]
        first = result.events[0]
        assert first["event.category"] == ["authentication", "session"] and first["source.ip"] == "10.1.2.3"
        assert first["user.email"] == "user@email.com" and first["temporal.record_generation"] == "current"


def test_ca_bundle_inside_a_pubsub_delivery():
    bundle = base64.b64encode(_cert("via pubsub", dt.datetime(2026, 1, 1, tzinfo=dt.UTC), 0x77).encode()).decode()
    record = G2 | {"raw_details": {"namespace": "ns.acct", "spec": {"mtls_auth": {"accepted_client_ca": bundle}}}}
    envelope = {"message": {"data": base64.b64encode(orjson.dumps(record)).decode()}, "subscription": "projects/p/subscriptions/s"}
    event = parse(envelope)
    assert event["x509.subject.common_name"] == ["via pubsub"] and event["x509.serial_number"] == "77"


def test_hostile_forwarded_chain_is_bounded():
    chain = ", ".join(f"198.51.100.{i % 250}" for i in range(20000))
    event = parse(G2 | {"x_forwarded_for": chain})
    assert event["source.ip"] == "198.51.100.0" and len(event["related.ip"]) < 300


# -- issue 14 class 4: a CA bundle that does not decode is still visible, as a digest of its normalized text ----------

def _ca_update(ca: str) -> dict[str, Any]:
    return {"operation": "UpdateNamespaceAPI", "status": "OK", "version": 2, "log_id": "0b9e2f4c-6a1d-4e8b-9c3f-2d7a5e1b8c41",
            "emit_time": "2025-06-02T17:45:03.512Z", "x_forwarded_for": "198.51.100.7", "async_operation_id": "",
            "principal": {"type": "user", "id": "u", "name": "alice@example.com", "api_key_id": ""},
            "raw_details": {"namespace": "payments.a1b2c", "spec": {"mtls_auth": {"accepted_client_ca": ca}}}}


@pytest.mark.parametrize("ca", [
    "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUKx",            # truncated
    "[REDACTED]",                                                        # redacted by a shipper
    "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJ",                       # base64 PEM, cut
])
def test_undecodable_ca_bundle_gets_a_digest_marked_unparsed(ca):
    event = parse(_ca_update(ca))
    assert event["temporal.client_ca_unparsed"] is True and len(event["temporal.client_ca_digest"]) == 64
    assert "temporal.certificates.sha256" not in event


def test_digest_ignores_whitespace_only_differences():
    a = parse(_ca_update("-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUKx"))
    b = parse(_ca_update("-----BEGIN CERTIFICATE-----\r\n  MIIBszCCAVmg\nAwIBAgIUKx\n"))
    c = parse(_ca_update("-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUKy"))
    assert a["temporal.client_ca_digest"] == b["temporal.client_ca_digest"] != c["temporal.client_ca_digest"]
