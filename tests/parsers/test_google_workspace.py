"""Google Workspace Reports API parser: login and saml applications, parameter typing, outcomes, shapes."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from temporal_siem.kernel.flatten import unflatten
from temporal_siem.kernel.records import Origin, RawRecord
from temporal_siem.kernel.schema import validate_event
from temporal_siem.parsers.google_workspace import GoogleWorkspaceParser, challenge_outcome, parameter_value
from temporal_siem.parsers.router import ParserRouter

SAML_FAILURE: dict[str, Any] = {
    "kind": "admin#reports#activity", "etag": "\"x1y2z3\"",
    "id": {"time": "2025-02-11T19:04:51.377Z", "uniqueQualifier": "-6150394728861039291", "applicationName": "saml", "customerId": "C01abcd23"},
    "actor": {"callerType": "USER", "email": "erin@example.com", "profileId": "108765432109876543210"},
    "ownerDomain": "example.com", "ipAddress": "192.0.2.150",
    "events": [{"type": "login", "name": "login_failure", "parameters": [
        {"name": "application_name", "value": "Temporal Cloud"}, {"name": "initiated_by", "value": "sp"},
        {"name": "failure_type", "value": "failure_app_not_enabled_for_user"}, {"name": "orgunit_path", "value": "/Contractors"},
        {"name": "saml_status_code", "value": "urn:oasis:names:tc:SAML:2.0:status:Responder"},
        {"name": "saml_second_level_status_code", "value": "urn:oasis:names:tc:SAML:2.0:status:RequestDenied"}]}],
}
LOGIN_FAILURE: dict[str, Any] = {
    "kind": "admin#reports#activity",
    "id": {"time": "2025-02-11T19:02:10Z", "uniqueQualifier": "4411223344556677", "applicationName": "login", "customerId": "C01abcd23"},
    "actor": {"callerType": "USER", "email": "erin@example.com", "profileId": "108765432109876543210"}, "ipAddress": "192.0.2.150",
    "events": [{"type": "login", "name": "login_failure", "parameters": [
        {"name": "login_type", "value": "google_password"}, {"name": "login_challenge_method", "multiValue": ["password"]},
        {"name": "login_failure_type", "value": "login_failure_invalid_password"}, {"name": "is_suspicious", "boolValue": False},
        {"name": "login_timestamp", "intValue": "1739300530123456"}]}],
}


def parse_all(record: Any, format_name: str = "auto") -> list[dict[str, Any]]:
    result = ParserRouter(format_name).parse(RawRecord(orjson.dumps(record), Origin("test", line=1)))
    assert not result.dead, result.dead[0].as_dict()
    for event in result.events:
        assert event["event.module"] == "google_workspace"
        validate_event(unflatten(event))
    return result.events


def parse(record: Any) -> dict[str, Any]:
    events = parse_all(record)
    assert len(events) == 1
    return events[0]


def test_saml_failure_to_temporal_cloud():
    event = parse(SAML_FAILURE)
    assert event["@timestamp"] == "2025-02-11T19:04:51.377000Z"
    assert event["event.id"] == "-6150394728861039291"
    assert event["event.dataset"] == "google_workspace.saml" and event["event.provider"] == "saml"
    assert event["event.action"] == "login_failure" and event["event.outcome"] == "failure"
    assert event["event.category"] == ["authentication", "session"] and event["event.type"] == ["start", "denied"]
    assert event["google_workspace.saml.application_name"] == "Temporal Cloud"
    assert event["google_workspace.saml.failure_type"] == "failure_app_not_enabled_for_user"
    assert event["google_workspace.saml.initiated_by"] == "sp"
    assert event["google_workspace.saml.status_code"] == "urn:oasis:names:tc:SAML:2.0:status:Responder"
    assert event["google_workspace.saml.second_level_status_code"] == "urn:oasis:names:tc:SAML:2.0:status:RequestDenied"
    assert event["google_workspace.saml.orgunit_path"] == "/Contractors"
    assert event["error.code"] == "failure_app_not_enabled_for_user"
    assert "RequestDenied" in event["error.message"]
    assert event["google_workspace.event.type"] == "login"
    assert event["service.name"] == "Temporal Cloud" and event["temporal.auth_method"] == "saml"
    assert event["user.email"] == event["source.user.email"] == "erin@example.com"
    assert event["user.name"] == event["source.user.name"] == "erin"
    assert event["user.domain"] == event["source.user.domain"] == "example.com"
    assert event["user.id"] == event["source.user.id"] == "108765432109876543210"
    assert event["source.ip"] == "192.0.2.150" and event["related.ip"] == ["192.0.2.150"]
    assert event["organization.id"] == "C01abcd23"
    # the activity kept with Google's spellings, narrowed to this event
    assert event["google_workspace.id.uniqueQualifier"] == "-6150394728861039291"
    assert event["google_workspace.events.name"] == "login_failure"
    assert event["google_workspace.ownerDomain"] == "example.com"


def test_saml_success():
    record = copy.deepcopy(SAML_FAILURE)
    record["events"] = [{"type": "login", "name": "login_success", "parameters": [
        {"name": "application_name", "value": "Temporal Cloud"}, {"name": "saml_status_code", "value": "SUCCESS_URI"}]}]
    event = parse(record)
    assert event["event.outcome"] == "success" and event["event.type"] == ["start"]
    assert "error.code" not in event and event["google_workspace.saml.status_code"] == "SUCCESS_URI"


def test_login_failure_parameters_typed():
    event = parse(LOGIN_FAILURE)
    assert event["event.dataset"] == "google_workspace.login"
    assert event["event.category"] == ["authentication", "session"]
    assert event["google_workspace.login.type"] == "google_password"
    assert event["google_workspace.login.challenge_method"] == ["password"]
    assert event["google_workspace.login.failure_type"] == "login_failure_invalid_password"
    assert event["google_workspace.login.is_suspicious"] is False
    assert event["google_workspace.login.timestamp"] == 1739300530123456
    assert event["event.start"] == "2025-02-11T19:02:10.123456Z"
    assert event["error.code"] == "login_failure_invalid_password" and event["error.message"] == "invalid password"


def test_int_value_as_number_and_unique_qualifier_as_number():
    record = copy.deepcopy(LOGIN_FAILURE)
    record["id"]["uniqueQualifier"] = 4411223344556677
    record["events"][0]["parameters"][-1] = {"name": "login_timestamp", "intValue": 1739300530123456}
    event = parse(record)
    assert event["event.id"] == "4411223344556677"
    assert event["event.start"] == "2025-02-11T19:02:10.123456Z"


def test_numeric_profile_id():
    record = copy.deepcopy(SAML_FAILURE)
    record["actor"]["profileId"] = 1
    record["id"]["uniqueQualifier"] = 1
    event = parse(record)
    assert event["user.id"] == "1" and event["event.id"] == "1"


def test_events_as_object_without_kind():
    record = copy.deepcopy(LOGIN_FAILURE)
    record.pop("kind")
    record["events"] = record["events"][0]
    event = parse(record)
    assert event["event.action"] == "login_failure" and event["event.id"] == "4411223344556677"


def test_multiple_events_get_distinct_ids():
    record = copy.deepcopy(LOGIN_FAILURE)
    record["events"] = [
        {"type": "login", "name": "login_challenge", "parameters": [{"name": "login_challenge_status", "value": "Challenge Passed."}]},
        {"type": "login", "name": "login_success", "parameters": [{"name": "login_type", "value": "google_password"}]},
    ]
    first, second = parse_all(record)
    assert first["event.id"] == "4411223344556677-0" and second["event.id"] == "4411223344556677-1"
    assert first["event.outcome"] == "success" and first["event.action"] == "login_challenge"
    assert second["event.outcome"] == "success" and second["event.type"] == ["start"]
    assert first["google_workspace.events.name"] == "login_challenge" and second["google_workspace.events.name"] == "login_success"
    assert "google_workspace.login.type" not in first


@pytest.mark.parametrize(("status", "outcome"), [
    ("Challenge Passed.", "success"), ("Challenge Passed", "success"), ("challenge passed.", "success"), ("passed", "success"),
    ("PASSED", "success"), ("failed", "failure"), ("Challenge Failed.", "failure"), (None, "unknown"), ("", "unknown"),
])
def test_challenge_status(status, outcome):
    assert challenge_outcome(status) == outcome


@pytest.mark.parametrize(("name", "event_type", "category", "outcome"), [
    ("suspicious_login", "account_warning", ["authentication"], "unknown"),  # Elastic: every login event is authentication
    ("account_disabled_hijacked", "account_warning", ["authentication"], "unknown"),
    ("2sv_disable", "2sv_change", ["authentication"], "unknown"),
    ("logout", "logout", ["authentication", "session"], "unknown"),
    ("risky_sensitive_action_blocked", "account_warning", ["authentication"], "failure"),
])
def test_login_application_events(name, event_type, category, outcome):
    record = copy.deepcopy(LOGIN_FAILURE)
    record["events"] = [{"type": event_type, "name": name, "parameters": [{"name": "affected_email_address", "value": "gus@example.com"}]}]
    event = parse(record)
    assert event["event.category"] == category and event["event.outcome"] == outcome
    assert event["user.target.email"] == "gus@example.com" and event["user.target.name"] == "gus"
    assert "gus@example.com" in event["related.user"]


def test_parameter_value_members():
    assert parameter_value({"name": "a", "value": "x"}) == "x"
    assert parameter_value({"name": "a", "intValue": "-12"}) == -12
    assert parameter_value({"name": "a", "intValue": "12abc"}) == "12abc"
    assert parameter_value({"name": "a", "boolValue": "true"}) is True
    assert parameter_value({"name": "a", "multiValue": ["x", "y"]}) == ["x", "y"]
    assert parameter_value({"name": "a", "multiIntValue": ["1", 2]}) == [1, 2]
    assert parameter_value({"name": "a"}) is None


def test_other_applications_generic():
    record = copy.deepcopy(LOGIN_FAILURE)
    record["id"]["applicationName"] = "admin"
    record["events"] = [{"type": "USER_SETTINGS", "name": "SUSPEND_USER", "parameters": [{"name": "USER_EMAIL", "value": "erin@example.com"}]}]
    event = parse(record)
    assert event["event.dataset"] == "google_workspace.admin" and event["event.action"] == "SUSPEND_USER"
    assert event["google_workspace.admin.USER_EMAIL"] == "erin@example.com"
    assert event["event.outcome"] == "unknown" and event["event.type"] == ["change", "user"]
    assert event["event.category"] == ["iam"]  # as Elastic's admin data stream


def test_hostile_application_name_does_not_clobber_activity_keys():
    record = copy.deepcopy(LOGIN_FAILURE)
    record["id"]["applicationName"] = "actor"
    record["events"][0]["parameters"] = [{"name": "email", "value": "spoofed@example.net"}]
    event = parse(record)
    assert event["google_workspace.actor.email"] == "erin@example.com"
    record["id"]["applicationName"] = "Weird App!"
    assert parse(record)["event.dataset"] == "google_workspace.unknown"


def test_secrets_redacted_in_parameters():
    record = copy.deepcopy(LOGIN_FAILURE)
    record["id"]["applicationName"] = "token"
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJlcmluIn0.c2lnbmF0dXJlc2ln"
    record["events"] = [{"type": "auth", "name": "authorize", "parameters": [
        {"name": "access_token", "value": "ya29.secretvalue"}, {"name": "note", "value": f"Bearer {jwt}"}]}]
    event = parse(record)
    text = orjson.dumps(event).decode()
    assert "ya29.secretvalue" not in text and jwt not in text
    assert event["google_workspace.token.access_token"] == "[REDACTED]"


def test_ipv6_and_bad_ip():
    record = copy.deepcopy(LOGIN_FAILURE)
    record["ipAddress"] = "2001:DB8:1::42"
    assert parse(record)["source.ip"] == "2001:db8:1::42"
    record["ipAddress"] = "proxy.example.com"
    event = parse(record)
    assert "source.ip" not in event and event["source.address"] == "proxy.example.com"


def test_reports_page_envelope():
    page = {"kind": "admin#reports#activities", "items": [SAML_FAILURE, LOGIN_FAILURE], "nextPageToken": "A:1"}
    events = parse_all(page)
    assert [e["event.dataset"] for e in events] == ["google_workspace.saml", "google_workspace.login"]


@pytest.mark.parametrize(("mutate", "reason"), [
    (lambda r: r["id"].update(time="soon"), "no timestamp"),
    (lambda r: r.update(id="flat"), "no timestamp"),
    (lambda r: r.update(events="nope"), "missing field"),
    (lambda r: r.update(events=[1, "x"]), "missing field"),
])
def test_dead_letters(mutate, reason):
    record = copy.deepcopy(LOGIN_FAILURE)
    mutate(record)
    result = ParserRouter("google_workspace").parse(RawRecord(orjson.dumps(record), Origin("gw.jsonl", line=4)))
    assert not result.events and result.dead[0].reason == reason and str(result.dead[0].origin) == "gw.jsonl:4"


def test_accepts():
    parser = GoogleWorkspaceParser()
    assert parser.accepts(SAML_FAILURE)
    assert parser.accepts({"id": {"applicationName": "login"}, "events": []})
    assert not parser.accepts({"id": "x", "events": []})


def test_malformed_int_values_stay_text():
    assert parameter_value({"name": "a", "intValue": "--5"}) == "--5"
    assert parameter_value({"name": "a", "intValue": "9" * 40}) == "9" * 40
