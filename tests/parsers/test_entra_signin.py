"""Entra ID sign-in parser: codes, time formats, addresses, Conditional Access and categories."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from temporal_siem.kernel.flatten import unflatten
from temporal_siem.kernel.records import Origin, RawRecord
from temporal_siem.kernel.schema import validate_event
from temporal_siem.parsers.entra_signin import EntraSigninParser, conditional_access_summary
from temporal_siem.parsers.router import ParserRouter

TENANT = "11111111-2222-3333-4444-555555555555"
BLOCKED: dict[str, Any] = {
    "time": "2025-04-10T08:31:22.5123456Z", "resourceId": f"/tenants/{TENANT}/providers/Microsoft.aadiam",
    "operationName": "Sign-in activity", "operationVersion": "1.0", "category": "SignInLogs", "tenantId": TENANT,
    "resultType": "53003", "resultSignature": "None", "resultDescription": "Access has been blocked by Conditional Access policies.",
    "durationMs": 0, "callerIpAddress": "198.51.100.61", "correlationId": "aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb", "identity": "Dan Ortiz",
    "Level": 4, "location": "DE",
    "properties": {
        "id": "cccccccc-3333-4444-5555-dddddddddddd", "createdDateTime": "2025-04-10T08:31:22.5123456+00:00",
        "userDisplayName": "Dan Ortiz", "userPrincipalName": "dan@example.com", "userId": "eeeeeeee-6666-7777-8888-ffffffffffff",
        "appId": "99999999-aaaa-bbbb-cccc-000000000000", "appDisplayName": "Temporal Cloud", "ipAddress": "198.51.100.61",
        "status": {"errorCode": 53003, "failureReason": "Access has been blocked by Conditional Access policies."},
        "clientAppUsed": "Browser", "isInteractive": True, "authenticationProtocol": "saml20",
        "authenticationRequirement": "singleFactorAuthentication", "conditionalAccessStatus": "failure",
        "appliedConditionalAccessPolicies": [
            {"id": "1212", "displayName": "Block non-compliant devices for SaaS", "enforcedGrantControls": ["Block"],
             "enforcedSessionControls": [], "result": "failure"},
            {"id": "2323", "displayName": "Require MFA", "enforcedGrantControls": ["Mfa"], "enforcedSessionControls": [], "result": "notApplied"},
            {"id": "3434", "displayName": "Report-only legacy", "enforcedGrantControls": ["Block"], "result": "reportOnlyFailure"}],
        "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
        "location": {"city": "Berlin", "state": "Berlin", "countryOrRegion": "DE", "geoCoordinates": {"latitude": 52.52, "longitude": 13.40}},
    },
}


def parse(record: Any) -> dict[str, Any]:
    result = ParserRouter("auto").parse(RawRecord(orjson.dumps(record), Origin("test", line=1)))
    assert not result.dead, result.dead[0].as_dict()
    assert len(result.events) == 1
    event = result.events[0]
    assert event["event.dataset"] == "azure.signinlogs"
    validate_event(unflatten(event))
    return event


def with_(**changes: Any) -> dict[str, Any]:
    record = copy.deepcopy(BLOCKED)
    for key, value in changes.items():
        target = record["properties"] if key.startswith("p_") else record
        name = key.removeprefix("p_")
        if value is None:
            target.pop(name, None)
        else:
            target[name] = value
    return record


def test_conditional_access_block():
    event = parse(BLOCKED)
    assert event["@timestamp"] == "2025-04-10T08:31:22.512345Z"
    assert event["event.id"] == "cccccccc-3333-4444-5555-dddddddddddd"
    assert event["event.action"] == "Sign-in activity" and event["event.provider"] == "Microsoft.aadiam"
    assert event["temporal.action"] == "SignInLogs"
    assert event["event.category"] == ["authentication"] and event["event.type"] == ["info", "denied"]
    assert event["event.outcome"] == "failure"
    assert event["error.code"] == "53003" and event["error.type"] == "BlockedByConditionalAccess"
    assert event["error.message"] == "Access has been blocked by Conditional Access policies."
    assert event["user.name"] == "dan" and event["user.domain"] == "example.com" and event["user.email"] == "dan@example.com"
    assert event["user.id"] == "eeeeeeee-6666-7777-8888-ffffffffffff" and event["user.full_name"] == "Dan Ortiz"
    assert event["source.ip"] == event["client.ip"] == "198.51.100.61" and event["related.ip"] == ["198.51.100.61"]
    assert event["source.geo.city_name"] == "Berlin" and event["source.geo.country_iso_code"] == "DE"
    assert event["source.geo.location"] == {"lat": 52.52, "lon": 13.4}
    assert event["cloud.provider"] == "azure" and event["cloud.account.id"] == TENANT
    assert event["log.level"] == "4" and event["event.duration"] == 0
    assert event["service.name"] == "Temporal Cloud" and event["temporal.auth_method"] == "saml"
    assert event["user_agent.original"] == "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"
    assert event["azure.signinlogs.conditional_access.failed_policies"] == ["Block non-compliant devices for SaaS"]
    assert event["azure.signinlogs.conditional_access.blocking_policies"] == ["Block non-compliant devices for SaaS"]
    assert event["azure.signinlogs.conditional_access.report_only_failed_policies"] == ["Report-only legacy"]
    assert event["azure.signinlogs.properties.appDisplayName"] == "Temporal Cloud"
    assert event["azure.signinlogs.properties.appliedConditionalAccessPolicies.result"] == ["failure", "notApplied", "reportOnlyFailure"]
    assert event["azure.signinlogs.properties.conditionalAccessStatus"] == "failure"
    assert event["azure.signinlogs.resultType"] == "53003"


@pytest.mark.parametrize(("time", "expected"), [
    ("2025-04-10T08:31:22.5123456Z", "2025-04-10T08:31:22.512345Z"),
    ("2025-04-10T08:31:22.512345678Z", "2025-04-10T08:31:22.512345Z"),
    ("2025-04-10T08:31:22", "2025-04-10T08:31:22.000000Z"),
    ("2025-04-10T08:31:22.1+00:00", "2025-04-10T08:31:22.100000Z"),
    ("2025-04-10T03:31:22-05:00", "2025-04-10T08:31:22.000000Z"),
    ("01/09/2007 09:41:00", "2007-01-09T09:41:00.000000Z"),
    ("1/9/2007 9:41:00 AM", "2007-01-09T09:41:00.000000Z"),
    ("1/9/2007 9:41:00 PM", "2007-01-09T21:41:00.000000Z"),
    ("1/9/2007 10:41:00 AM +01:00", "2007-01-09T09:41:00.000000Z"),
])
def test_time_formats(time, expected):
    assert parse(with_(time=time))["@timestamp"] == expected


def test_created_date_time_fallback_and_no_time():
    assert parse(with_(time="garbage"))["@timestamp"] == "2025-04-10T08:31:22.512345Z"
    record = with_(time=None, p_createdDateTime=None)
    result = ParserRouter("entra_signin").parse(RawRecord(orjson.dumps(record), Origin("x.jsonl", line=9)))
    assert not result.events and result.dead[0].reason == "no timestamp" and str(result.dead[0].origin) == "x.jsonl:9"


@pytest.mark.parametrize(("status", "result_type", "outcome", "code"), [
    ({"errorCode": 0}, "0", "success", None),
    ({"errorCode": 50126}, "50126", "failure", "50126"),
    ({"errorCode": "50126"}, "0", "failure", "50126"),  # status wins over resultType
    ({}, "50057", "failure", "50057"),
    ({}, "0", "success", None),
    ({}, None, "success", None),  # no code at all counts as success (log-format reference §9.4)
    ({"errorCode": True}, "AADSTS50105", "failure", "50105"),
])
def test_result_codes(status, result_type, outcome, code):
    record = with_(p_status=status or {"x": 1}, resultType=result_type)  # None removes resultType
    event = parse(record)
    assert event["event.outcome"] == outcome
    assert event.get("error.code") == code
    assert ("denied" in event["event.type"]) == (outcome == "failure")


def test_message_from_code_table_when_reason_missing():
    event = parse(with_(p_status={"errorCode": 50140, "failureReason": "Other."}, resultDescription=None))
    assert event["error.type"] == "KmsiInterrupt" and "Keep me signed in" in event["error.message"]
    unknown = parse(with_(p_status={"errorCode": 9999999}, resultDescription=None))
    assert unknown["error.code"] == "9999999" and "error.type" not in unknown and "error.message" not in unknown


@pytest.mark.parametrize(("caller", "ip", "port"), [
    ("198.51.100.61", "198.51.100.61", None),
    ("203.0.113.9:50322", "203.0.113.9", 50322),
    ("[2001:db8:4::1f]:50122", "2001:db8:4::1f", 50122),
    ("2001:DB8:4::1F", "2001:db8:4::1f", None),
])
def test_caller_ip_with_ports(caller, ip, port):
    event = parse(with_(callerIpAddress=caller))
    assert event["source.ip"] == ip and event.get("source.port") == port


def test_caller_ip_missing_falls_back_to_properties():
    event = parse(with_(callerIpAddress="", p_ipAddress="192.0.2.5"))
    assert event["source.ip"] == "192.0.2.5"
    event = parse(with_(callerIpAddress="not-an-ip", p_ipAddress=None))
    assert "source.ip" not in event and event["source.address"] == "not-an-ip"


def test_level_string_and_duration_string():
    event = parse(with_(Level="4", durationMs="12"))
    assert event["log.level"] == "4" and event["event.duration"] == 12_000_000


def test_guid_upn_and_service_principal():
    guid = "eeeeeeee-6666-7777-8888-ffffffffffff"
    event = parse(with_(category="NonInteractiveUserSignInLogs", p_userPrincipalName=guid))
    assert event["temporal.action"] == "NonInteractiveUserSignInLogs"
    assert event["user.name"] == guid and "user.email" not in event and "user.domain" not in event
    sp = with_(category="ServicePrincipalSignInLogs", resultType="7000222", callerIpAddress="203.0.113.9:50322",
               p_status={"errorCode": 7000222}, p_userPrincipalName=None, p_userId=None, p_userDisplayName=None,
               p_servicePrincipalId="abab", p_servicePrincipalName="temporal-ci-deployer")
    event = parse(sp)
    assert event["user.name"] == "temporal-ci-deployer" and event["user.id"] == "abab"
    assert event["error.type"] == "InvalidClientSecretExpiredKeysProvided"


def test_bare_graph_signin_object():
    graph = copy.deepcopy(BLOCKED["properties"])
    event = parse(graph)
    assert event["event.id"] == graph["id"] and event["error.code"] == "53003"
    assert event["azure.signinlogs.properties.userPrincipalName"] == "dan@example.com"


def test_log_analytics_pascal_case_row():
    row = {"Category": "ServicePrincipalSignInLogs", "CorrelationId": "83d4", "CreatedDateTime": "2025-07-01T10:45:17.5824212Z",
           "DurationMs": 0, "OperationName": "Sign-in activity", "TenantId": TENANT, "ResultType": "7000222",
           "IPAddress": "203.0.113.9", "ServicePrincipalName": "temporal-ci", "ServicePrincipalId": "abab", "Id": "row-1"}
    event = parse(row)
    assert event["@timestamp"] == "2025-07-01T10:45:17.582421Z"
    assert event["temporal.action"] == "ServicePrincipalSignInLogs" and event["event.id"] == "row-1"
    assert event["error.code"] == "7000222" and event["source.ip"] == "203.0.113.9"
    assert event["user.name"] == "temporal-ci" and event["cloud.account.id"] == TENANT
    assert event["azure.signinlogs.Category"] == "ServicePrincipalSignInLogs"  # vendor spelling kept


def test_null_island_coordinates_dropped():
    record = with_()
    record["properties"]["location"] = {"city": "", "countryOrRegion": "", "geoCoordinates": {"latitude": 0, "longitude": 0}}
    event = parse(record)
    assert "source.geo.location" not in event and "source.geo.city_name" not in event


def test_records_envelope():
    second = with_(p_id="second")
    result = ParserRouter("auto").parse(RawRecord(orjson.dumps({"records": [BLOCKED, second]}), Origin("eh.json")))
    assert [e["event.id"] for e in result.events] == [BLOCKED["properties"]["id"], "second"]
    assert [d.origin.index for d in result.dead] == []


def test_wrong_types_survive():
    record = with_(properties="not an object", Level=True, durationMs="fast")
    event = parse(record)
    assert event["event.outcome"] == "failure" and event["error.code"] == "53003"
    assert "log.level" not in event and "event.duration" not in event and "user.name" not in event


def test_conditional_access_summary_ignores_junk():
    assert conditional_access_summary("x") == {"failed_policies": [], "report_only_failed_policies": [], "blocking_policies": []}
    assert conditional_access_summary([None, {"result": "failure"}, {"id": "p1", "result": "failure", "enforcedGrantControls": "Block"}]) == {
        "failed_policies": ["p1"], "report_only_failed_policies": [], "blocking_policies": []}


def test_accepts():
    parser = EntraSigninParser()
    assert parser.accepts(BLOCKED)
    assert not parser.accepts({"category": "AuditLogs", "time": "2025-01-01T00:00:00Z"})
    assert not parser.accepts({"category": ["SignInLogs"]})


def test_malformed_codes_are_not_codes():
    from temporal_siem.parsers.entra_signin import _code

    assert [_code(v) for v in ("--5", "-5", "AADSTS53003", " 53003 ", "1" * 40, True, 5.0)] == [None, None, "53003", "53003", None, None, "5"]
