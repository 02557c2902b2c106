"""Google Workspace activities stored one row per event, and delivered as Cloud Logging LogEntry records.

Property: the same activity in the Reports API shape, as rows, and as a LogEntry (raw or in a Pub/Sub push
envelope) gives the same ECS key fields; any other object with a protoPayload never crashes the router.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from temporal_siem.kernel.records import Origin, RawRecord
from temporal_siem.parsers.google_workspace import activity_from_row, is_log_entry
from temporal_siem.parsers.router import ParserRouter

KEY_FIELDS = ("@timestamp", "event.action", "event.category", "event.type", "event.outcome", "event.dataset", "source.ip",
              "user.name", "user.domain", "user.email", "user.id", "google_workspace.login.failure_type",
              "google_workspace.login.challenge_method", "google_workspace.login.is_suspicious")
ROUTER = ParserRouter()


def parse(record: Any) -> tuple[list[dict[str, Any]], list[Any]]:
    result = ROUTER.parse(RawRecord(orjson.dumps(record), Origin("shapes")))
    return result.events, result.dead


def keys(event: dict[str, Any]) -> dict[str, Any]:
    return {field: event.get(field) for field in KEY_FIELDS}


def as_log_entry(activity: dict[str, Any], application: str) -> dict[str, Any]:
    """The activity as a Workspace -> Cloud Logging LogEntry (parameter values as Cloud Logging names them)."""
    micros = 1739300530000000
    events = []
    for item in activity["events"]:
        parameters = []
        for parameter in item["parameters"]:
            converted = {k: v for k, v in parameter.items() if k != "multiValue"}
            if "multiValue" in parameter:
                converted["multiStrValue"] = parameter["multiValue"]
            parameters.append({**converted, "type": "TYPE_STRING", "label": "LABEL_OPTIONAL"})
        events.append({"eventName": item["name"], "eventType": item["type"], "parameter": parameters})
    return {"protoPayload": {"@type": "type.googleapis.com/google.cloud.audit.AuditLog",
                             "authenticationInfo": {"principalEmail": activity["actor"]["email"]},
                             "requestMetadata": {"callerIp": activity["ipAddress"]},
                             "serviceName": f"{application}.googleapis.com", "methodName": "google.login.LoginService.x",
                             "metadata": {"@type": "type.googleapis.com/ccc_hosted_reporting.ActivityProto",
                                          "activityId": {"timeUsec": str(micros), "uniqQualifier": "-42"}, "event": events}},
            "insertId": "abc", "timestamp": "2025-02-11T19:02:10Z", "severity": "NOTICE",
            "logName": "organizations/1/logs/cloudaudit.googleapis.com%2Fdata_access"}


NAMES = st.sampled_from(["login_success", "login_failure", "login_challenge", "logout", "suspicious_login", "2sv_disable",
                         "account_disabled_hijacked", "password_edit", "risky_sensitive_action_blocked"])
PARAMETERS = st.lists(st.one_of(
    st.builds(lambda v: {"name": "login_failure_type", "value": v}, st.sampled_from(["login_failure_invalid_password", "x"])),
    st.builds(lambda v: {"name": "login_challenge_method", "multiValue": v}, st.lists(st.sampled_from(["password", "backup_code"]), max_size=2)),
    st.builds(lambda v: {"name": "is_suspicious", "boolValue": v}, st.booleans()),
    st.builds(lambda v: {"name": "login_challenge_status", "value": v}, st.sampled_from(["Challenge Passed", "Challenge Failed"])),
), max_size=4, unique_by=lambda p: p["name"])
ACTIVITIES = st.builds(
    lambda name, event_type, parameters, local, ip: {
        "kind": "admin#reports#activity",
        "id": {"time": "2025-02-11T19:02:10Z", "uniqueQualifier": "-42", "applicationName": "login"},
        "actor": {"callerType": "USER", "email": f"{local}@example.com"},
        "ipAddress": ip,
        "events": [{"type": event_type, "name": name, "parameters": parameters}],
    },
    NAMES, st.sampled_from(["login", "account_warning", "2sv_change"]), PARAMETERS,
    st.from_regex(r"[a-z][a-z0-9.]{0,10}", fullmatch=True), st.ip_addresses().map(str),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ACTIVITIES)
def test_row_log_entry_and_reports_shapes_agree(activity):
    [reference], dead = parse(activity)
    assert not dead
    row = {k: v for k, v in activity.items() if k != "events"} | activity["events"][0]
    [from_row], dead = parse(row)
    assert not dead and keys(from_row) == keys(reference)
    entry = as_log_entry(activity, "login")
    assert is_log_entry(entry)
    [from_entry], dead = parse(entry)
    assert not dead
    assert {k: v for k, v in keys(from_entry).items() if k != "@timestamp"} == {k: v for k, v in keys(reference).items() if k != "@timestamp"}
    assert from_entry["@timestamp"] == "2025-02-11T19:02:10.000000Z"  # activityId.timeUsec
    push = {"message": {"data": base64.b64encode(orjson.dumps(entry)).decode()}, "subscription": "projects/p/subscriptions/s"}
    [from_push], dead = parse(push)
    assert not dead and keys(from_push) == keys(from_entry)


def test_row_shape_keeps_the_event_members_in_events():
    row = {"id": {"time": "2025-02-11T19:02:10Z", "applicationName": "login"}, "name": "logout", "type": "login", "parameters": []}
    activity = activity_from_row(row)
    assert activity["events"] == [{"name": "logout", "type": "login", "parameters": []}] and "name" not in activity


def test_log_entry_fields_are_kept():
    activity = {"id": {"time": "2025-02-11T19:02:10Z", "uniqueQualifier": "-42", "applicationName": "login"},
                "actor": {"email": "erin@example.com"}, "ipAddress": "192.0.2.150",
                "events": [{"type": "login", "name": "login_failure", "parameters": []}]}
    entry = as_log_entry(activity, "login")
    entry["protoPayload"]["requestMetadata"]["callerSuppliedUserAgent"] = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0.0.0"
    [event], dead = parse(entry)
    assert not dead
    assert event["event.id"] == "-42" and event["event.dataset"] == "google_workspace.login"
    assert event["google_workspace.cloud_logging.insert_id"] == "abc"
    assert event["google_workspace.cloud_logging.method_name"] == "google.login.LoginService.x"
    assert event["user_agent.original"].startswith("Mozilla/5.0") and event["user_agent.name"] == "Chrome"


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                    max_leaves=20),
       st.sampled_from(["event", "activityId", "@type", "serviceName"]))
def test_odd_log_entries_never_crash(value, key):
    entry = {"protoPayload": {"metadata": {"@type": "type.googleapis.com/ccc_hosted_reporting.ActivityProto", "event": [],
                                           key: value}, "serviceName": value if key == "serviceName" else "login.googleapis.com"},
             "timestamp": "2025-02-11T19:02:10Z"}
    events, dead = parse(entry)
    assert events or dead  # parsed, or dead-lettered with a reason: never an exception out of the router
    for letter in dead:
        assert letter.reason != "parser error", letter.detail


def test_admin_events_are_iam():
    def admin(name: str) -> dict[str, Any]:
        return {"kind": "admin#reports#activity", "id": {"time": "2025-02-11T20:00:00Z", "applicationName": "admin"},
                "actor": {"email": "admin@example.com"}, "events": [{"type": "USER_SETTINGS", "name": name, "parameters": []}]}
    [suspend], _ = parse(admin("SUSPEND_USER"))
    assert suspend["event.category"] == ["iam"] and suspend["event.type"] == ["change", "user"]
    [setting], _ = parse(admin("CHANGE_APPLICATION_SETTING"))
    assert setting["event.category"] == ["iam", "configuration"] and setting["event.type"] == ["change"]
    [group], _ = parse(admin("DELETE_GROUP"))
    assert group["event.type"] == ["deletion", "group"]
