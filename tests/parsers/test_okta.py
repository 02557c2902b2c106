"""Okta System Log parser: field-by-field on the cases detections depend on."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from temporal_siem.kernel.flatten import unflatten
from temporal_siem.kernel.records import Origin, RawRecord
from temporal_siem.kernel.schema import validate_event
from temporal_siem.parsers.okta import OktaParser, categorize, parse_pseudo_map
from temporal_siem.parsers.router import ParserRouter

SSO: dict[str, Any] = {
    "uuid": "2b7e1f0c-4a9d-11f0-8c3e-0a1b2c3d4e5f", "published": "2025-05-06T14:22:08.431Z", "eventType": "user.authentication.sso",
    "version": "0", "severity": "WARN", "legacyEventType": "app.auth.sso", "displayMessage": "User single sign on to app",
    "actor": {"id": "00u1a2b3c4D5e6F7g8h9", "type": "User", "alternateId": "carol@example.com", "displayName": "Carol Ng", "detailEntry": None},
    "client": {"ipAddress": "203.0.113.77", "device": "Computer", "zone": "null", "id": None,
               "userAgent": {"rawUserAgent": "Mozilla/5.0 (X11; Linux x86_64)", "os": "Linux", "browser": "CHROME"},
               "geographicalContext": {"city": "Lisbon", "state": "Lisbon", "country": "Portugal", "postalCode": None,
                                       "geolocation": {"lat": 38.72, "lon": -9.14}}},
    "outcome": {"result": "FAILURE", "reason": "User is not assigned to this application"},
    "target": [{"id": "0oa9z8y7x6w5v4u3t2s1", "type": "AppInstance", "alternateId": "Temporal Cloud", "displayName": "Temporal Cloud",
                "detailEntry": {"signOnModeType": "SAML_2_0"}}],
    "transaction": {"type": "WEB", "id": "aBcD1234efGH5678", "detail": {}},
    "debugContext": {"debugData": {"requestUri": "/app/temporalcloud/exk1a2b3c4/sso/saml", "initiationType": "SP_INITIATED",
                                   "signOnMode": "SAML 2.0", "threatSuspected": "false"}},
    "authenticationContext": {"externalSessionId": "102AbCdEfGhIjKlMnOp", "authenticationStep": 0},
    "securityContext": {"asNumber": 64496, "asOrg": "example isp", "isp": "example isp", "domain": "example.net", "isProxy": False},
    "request": {"ipChain": [{"ip": "203.0.113.77", "version": "V4", "source": None}]},
}


def parse(record: Any) -> dict[str, Any]:
    raw = orjson.dumps(record)
    result = ParserRouter("auto").parse(RawRecord(raw, Origin("test", line=1)))
    assert not result.dead, result.dead[0].as_dict()
    assert len(result.events) == 1
    event = result.events[0]
    validate_event(unflatten(event))
    return event


def dead_reason(record: Any) -> str:
    result = ParserRouter("okta").parse(RawRecord(orjson.dumps(record), Origin("test", line=7)))
    assert not result.events and len(result.dead) == 1
    assert str(result.dead[0].origin) == "test:7"
    return result.dead[0].reason


def test_failed_sso_to_temporal_app():
    event = parse(SSO)
    assert event["@timestamp"] == "2025-05-06T14:22:08.431000Z"
    assert event["event.id"] == SSO["uuid"]
    assert event["event.dataset"] == "okta.system" and event["event.module"] == "okta"
    assert event["event.action"] == "user.authentication.sso"
    assert event["event.outcome"] == "failure"
    assert event["event.category"] == ["authentication"]
    assert event["event.type"] == ["start", "denied"]
    assert event["event.reason"] == event["error.message"] == "User is not assigned to this application"
    assert event["user.name"] == "carol" and event["user.email"] == "carol@example.com" and event["user.domain"] == "example.com"
    assert event["user.id"] == event["client.user.id"] == event["source.user.id"] == "00u1a2b3c4D5e6F7g8h9"
    assert event["user.full_name"] == "Carol Ng"
    assert event["source.ip"] == event["client.ip"] == "203.0.113.77"
    assert event["related.ip"] == ["203.0.113.77"]
    assert set(event["related.user"]) == {"carol", "carol@example.com"}
    assert event["source.geo.city_name"] == "Lisbon" and event["client.geo.location"] == {"lat": 38.72, "lon": -9.14}
    assert event["source.as.number"] == 64496 and event["client.as.organization.name"] == "example isp"
    assert event["user_agent.original"] == "Mozilla/5.0 (X11; Linux x86_64)"
    assert event["log.level"] == "WARN"
    assert event["temporal.auth_method"] == "saml"
    assert event["service.name"] == "Temporal Cloud"
    # vendor namespace: Okta's own spellings, target array flattened Elasticsearch style
    assert event["okta.target.displayName"] == ["Temporal Cloud"]
    assert event["okta.target.type"] == ["AppInstance"]
    assert event["okta.debugContext.debugData.initiationType"] == "SP_INITIATED"
    assert event["okta.debug_context.debug_data.threat_suspected"] is False
    assert event["okta.transaction.id"] == "aBcD1234efGH5678"


@pytest.mark.parametrize(("result", "outcome"), [
    ("SUCCESS", "success"), ("ALLOW", "success"), ("FAILURE", "failure"), ("DENY", "failure"),
    ("SKIPPED", "unknown"), ("CHALLENGE", "unknown"), ("RATE_LIMIT", "unknown"), ("UNKNOWN", "unknown"), (None, "unknown"),
])
def test_outcome_mapping(result, outcome):
    record = copy.deepcopy(SSO)
    record["outcome"] = {"result": result, "reason": None}
    assert parse(record)["event.outcome"] == outcome


def test_device_assurance_deny_with_pseudo_maps():
    record = copy.deepcopy(SSO)
    record.update(eventType="policy.evaluate_sign_on", outcome={"result": "DENY", "reason": "Device assurance policy not met"})
    record["target"] = [
        {"id": "00p5q6r7", "type": "PolicyEntity", "alternateId": "unknown", "displayName": "Temporal Cloud access"},
        {"id": "0pr8s9t0", "type": "PolicyRule", "alternateId": "00p5q6r7", "displayName": "Managed devices only"},
    ]
    record["debugContext"] = {"debugData": {
        "behaviors": "{New Geo-Location=POSITIVE, New Device=NEGATIVE, New IP=POSITIVE}",
        "risk": "{reasons=Anomalous Device, Anomalous Location, level=HIGH}", "threatSuspected": "true"}}
    event = parse(record)
    assert event["event.outcome"] == "failure"
    assert event["event.category"] == ["authentication"] and "denied" in event["event.type"]
    assert event["okta.debug_context.debug_data.risk_level"] == "HIGH"
    assert event["okta.debug_context.debug_data.risk_reasons"] == ["Anomalous Device", "Anomalous Location"]
    assert event["okta.debug_context.debug_data.risk_behaviors"] == ["New Geo-Location", "New IP"]
    assert event["okta.debug_context.debug_data.threat_suspected"] is True
    assert event["okta.target.displayName"] == ["Temporal Cloud access", "Managed devices only"]


def test_log_only_security_data_json_in_string():
    record = copy.deepcopy(SSO)
    record["debugContext"]["debugData"]["logOnlySecurityData"] = (
        '{"risk":{"level":"MEDIUM","reasons":"Anomalous Device"},"behaviors":{"New Device":"POSITIVE","New IP":"NEGATIVE"}}')
    event = parse(record)
    assert event["okta.debug_context.debug_data.risk_level"] == "MEDIUM"
    assert event["okta.debug_context.debug_data.risk_behaviors"] == ["New Device"]
    assert event["okta.debug_context.debug_data.log_only_security_data.risk.level"] == "MEDIUM"
    record["debugContext"]["debugData"]["logOnlySecurityData"] = "{not json"
    event = parse(record)  # broken JSON-in-string is kept raw, not fatal
    assert event["okta.debugContext.debugData.logOnlySecurityData"] == "{not json"
    assert "okta.debug_context.debug_data.risk_level" not in event


def test_pseudo_map_edge_cases():
    assert parse_pseudo_map("{}") == {}
    assert parse_pseudo_map("no equals sign") == {}
    assert parse_pseudo_map("{a=1, b=x, y, c=}") == {"a": "1", "b": "x, y", "c": ""}
    assert parse_pseudo_map(None) == {}


def test_lifecycle_deactivate_targets_user_and_group():
    record = copy.deepcopy(SSO)
    record.update(eventType="group.user_membership.remove", outcome={"result": "SUCCESS", "reason": None})
    record["actor"] = {"id": "00uAdMiN1", "type": "User", "alternateId": "it-admin@example.com", "displayName": "IT Admin"}
    record["target"] = [
        {"id": "00u1a2b3c4D5e6F7g8h9", "type": "User", "alternateId": "carol@example.com", "displayName": "Carol Ng"},
        {"id": "00gTeMpOrAl", "type": "UserGroup", "alternateId": "unknown", "displayName": "temporal-cloud-admins"},
    ]
    event = parse(record)
    assert event["event.category"] == ["iam"] and event["event.type"] == ["group", "change"]
    assert event["user.name"] == "it-admin"
    assert event["user.target.id"] == "00u1a2b3c4D5e6F7g8h9"
    assert event["user.target.email"] == "carol@example.com" and event["user.target.name"] == "carol"
    assert event["user.target.full_name"] == "Carol Ng"
    assert event["user.target.group.name"] == "temporal-cloud-admins" and event["user.target.group.id"] == "00gTeMpOrAl"
    assert "carol@example.com" in event["related.user"]


@pytest.mark.parametrize(("event_type", "result", "categories", "types"), [
    ("user.session.start", "FAILURE", ["authentication", "session"], ["start", "denied"]),
    ("user.session.end", "SUCCESS", ["authentication", "session"], ["end"]),
    ("user.lifecycle.deactivate", "SUCCESS", ["iam"], ["user", "change"]),
    ("user.lifecycle.suspend", "SUCCESS", ["iam"], ["user", "change"]),
    ("user.lifecycle.delete.initiated", "SUCCESS", ["iam"], ["user", "deletion"]),
    ("user.lifecycle.create", "SUCCESS", ["iam"], ["user", "creation"]),
    ("application.user_membership.remove", "SUCCESS", ["iam"], ["user", "change"]),
    ("application.provision.user.deprovision", "SUCCESS", ["iam"], ["user", "deletion"]),
    ("system.api_token.revoke", "SUCCESS", ["authentication"], ["info"]),  # Elastic's categories for these three
    ("security.threat.detected", "DENY", ["threat"], ["indicator", "denied"]),
    ("security.request.blocked", "DENY", ["threat"], ["indicator", "denied"]),
    ("user.mfa.okta_verify.deny_push", "FAILURE", ["authentication"], ["info", "denied"]),
    ("device.assurance.policy.add", "SUCCESS", ["configuration"], ["creation"]),
    ("something.new.from.okta", "SUCCESS", [], ["info"]),
])
def test_categories(event_type, result, categories, types):
    got_categories, got_types = categorize(event_type, result)
    assert got_categories == categories
    assert got_types[: len(types)] == types[: len(got_types)]


def test_ipv6_client_and_ip_chain_fallback():
    record = copy.deepcopy(SSO)
    record["client"]["ipAddress"] = "2001:DB8:85A3::8A2E:370:7334"
    event = parse(record)
    assert event["source.ip"] == "2001:db8:85a3::8a2e:370:7334"
    record["client"]["ipAddress"] = None
    record["request"]["ipChain"] = [{"ip": "198.51.100.9"}, {"ip": "10.0.0.1"}]
    event = parse(record)
    assert event["source.ip"] == "198.51.100.9"
    assert event["related.ip"] == ["198.51.100.9", "10.0.0.1"]


def test_non_ip_client_address_goes_to_source_address():
    record = copy.deepcopy(SSO)
    record["client"]["ipAddress"] = "unknown-host"
    record["request"] = {"ipChain": []}
    event = parse(record)
    assert "source.ip" not in event and event["source.address"] == "unknown-host"


def test_wrong_types_do_not_crash():
    record = copy.deepcopy(SSO)
    record["client"] = "not-an-object"
    record["target"] = {"id": "x"}
    record["actor"] = ["list"]
    record["securityContext"] = {"asNumber": "64496"}
    record["debugContext"] = {"debugData": "a string"}
    event = parse(record)
    assert event["event.action"] == "user.authentication.sso"
    assert "user.name" not in event and "user.target.id" not in event
    assert event["source.ip"] == "203.0.113.77"  # from request.ipChain when client is unusable
    assert event["source.as.number"] == 64496  # numeric string accepted


def test_eventbridge_wrapper_and_array_page():
    wrapped = {"version": "0", "id": "6a7e", "detail-type": "SystemLog", "source": "aws.partner/okta.com/x/okta-logs",
               "time": "2025-05-07T10:00:00Z", "detail": SSO}
    assert parse(wrapped)["event.id"] == SSO["uuid"]
    second = copy.deepcopy(SSO)
    second["uuid"] = "other"
    result = ParserRouter("auto").parse(RawRecord(orjson.dumps([SSO, second]), Origin("page.json")))
    assert [e["event.id"] for e in result.events] == [SSO["uuid"], "other"]
    assert not result.dead


def test_no_timestamp_is_dead_lettered():
    record = copy.deepcopy(SSO)
    record["published"] = "yesterday"
    assert dead_reason(record) == "no timestamp"
    record["published"] = None
    assert dead_reason(record) == "no timestamp"


def test_missing_event_type_is_dead_lettered():
    record = copy.deepcopy(SSO)
    record["eventType"] = 42
    assert dead_reason(record) == "missing field"


def test_tokens_redacted_everywhere():
    record = copy.deepcopy(SSO)
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjYXJvbCJ9.c2lnbmF0dXJlc2lnbmF0dXJl"
    record["debugContext"]["debugData"]["url"] = f"/oauth2/v1/authorize?id_token_hint={jwt}"
    record["debugContext"]["debugData"]["password"] = "hunter2"
    record["client"]["userAgent"]["rawUserAgent"] = f"curl/8.0 Authorization: Bearer {jwt}"
    event = parse(record)
    text = orjson.dumps(event).decode()
    assert jwt not in text and "hunter2" not in text
    assert event["okta.debugContext.debugData.password"] == "[REDACTED]"


def test_accepts_is_specific():
    parser = OktaParser()
    assert parser.accepts(SSO)
    assert not parser.accepts({"uuid": "x", "eventType": "y"})
    assert not parser.accepts({"eventSource": "kms.amazonaws.com"})


def test_session_tokens_in_debug_urls_redacted():
    record = copy.deepcopy(SSO)
    record["debugContext"]["debugData"]["url"] = "/login/sessionCookieRedirect?checkAccountSetupComplete=true&token=20111abcDEF123xyz&redirectUrl=x"
    record["debugContext"]["debugData"]["redirectUri"] = "https://cloud.temporal.io/callback?code=SplxlOBeZQQYbYS6WxSbIA&state=af0ifjsldkj"
    event = parse(record)
    text = orjson.dumps(event).decode()
    assert "20111abcDEF123xyz" not in text and "SplxlOBeZQQYbYS6WxSbIA" not in text
    assert event["okta.debugContext.debugData.url"] == (
        "/login/sessionCookieRedirect?checkAccountSetupComplete=true&token=[REDACTED]&redirectUrl=x")
    assert event["okta.debugContext.debugData.redirectUri"].endswith("code=[REDACTED]&state=af0ifjsldkj")
    assert SSO["debugContext"]["debugData"].get("url") is None  # the input record is not modified
