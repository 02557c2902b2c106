"""Golden comparisons with Elastic's integration outputs, one per disagreement issue 17 lists.

Each record is composed for this test in the shape of the vendor's documentation and of Elastic's pipeline-test
inputs (no Elastic test file is copied); ``ELASTIC`` is what Elastic's pipeline writes in the key fields for it,
read off the pipeline's processors. Our own finer values stay available in ``temporal.action``.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from temporal_siem.kernel.records import Origin, RawRecord
from temporal_siem.parsers.aws_cloudtrail import arn_user_name
from temporal_siem.parsers.router import ParserRouter
from tests.parsers import elastic_reference
from tests.parsers.test_elastic_agreement import same


def parse(record: dict[str, Any]) -> list[dict[str, Any]]:
    result = ParserRouter().parse(RawRecord(orjson.dumps(record), Origin("vector")))
    assert not result.dead, result.dead
    return result.events


def key_fields(event: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    got = {field: event.get(field) for field in expected}
    for field, value in expected.items():
        if isinstance(value, list) and isinstance(got[field], list):
            got[field] = sorted(got[field])
            expected[field] = sorted(value)
    return got


ENTRA_NON_INTERACTIVE = {
    "time": "2025-04-10T10:05:00.1234567Z", "resourceId": "/tenants/11111111-2222-3333-4444-555555555555/providers/Microsoft.aadiam",
    "operationName": "Sign-in activity", "operationVersion": "1.0", "category": "NonInteractiveUserSignInLogs",
    "tenantId": "11111111-2222-3333-4444-555555555555", "resultType": "0", "callerIpAddress": "198.51.100.61",
    "correlationId": "aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb", "identity": "Dan Ortiz", "Level": 4,
    "properties": {"id": "cccccccc-3333-4444-5555-dddddddddddd", "createdDateTime": "2025-04-10T10:05:00.1234567+00:00",
                   "userDisplayName": "Dan Ortiz", "userPrincipalName": "dan@example.com",
                   "userId": "eeeeeeee-6666-7777-8888-ffffffffffff", "ipAddress": "198.51.100.61",
                   "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)", "status": {"errorCode": 0},
                   "isInteractive": False},
}


def test_entra_action_is_the_operation_name_and_the_category_stays_ours():
    [event] = parse(ENTRA_NON_INTERACTIVE)
    expected = {"event.action": "Sign-in activity", "event.category": ["authentication"], "event.outcome": "success",
                "user.name": "dan", "user.domain": "example.com", "user.id": "eeeeeeee-6666-7777-8888-ffffffffffff",
                "user.full_name": "Dan Ortiz", "source.ip": "198.51.100.61"}
    assert key_fields(event, expected) == expected
    assert event["temporal.action"] == "NonInteractiveUserSignInLogs"


def google_login(name: str, event_type: str, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": "admin#reports#activity", "id": {"time": "2025-02-11T19:10:00Z", "uniqueQualifier": "99887766",
                                                     "applicationName": "login", "customerId": "C01abcd23"},
            "actor": {"callerType": "USER", "email": "erin@example.com", "profileId": "108765432109876543210"},
            "ipAddress": "203.0.113.200", "events": [{"type": event_type, "name": name, "parameters": parameters}]}


@pytest.mark.parametrize(("name", "event_type"), [
    ("suspicious_login", "account_warning"),
    ("account_disabled_password_leak", "account_warning"),
    ("account_disabled_hijacked", "account_warning"),
    ("2sv_disable", "2sv_change"),
    ("password_edit", "password_change"),
])
def test_google_workspace_login_events_are_authentication(name, event_type):
    [event] = parse(google_login(name, event_type, [{"name": "affected_email_address", "value": "erin@example.com"}]))
    expected = {"event.action": name, "event.category": ["authentication"], "user.name": "erin",
                "user.domain": "example.com", "user.id": "108765432109876543210", "source.ip": "203.0.113.200"}
    assert key_fields(event, expected) == expected


def test_google_workspace_login_success_is_authentication_and_session():
    [event] = parse(google_login("login_success", "login", [{"name": "login_type", "value": "google_password"}]))
    assert sorted(event["event.category"]) == ["authentication", "session"] and event["event.outcome"] == "success"


def cloudtrail(name: str, identity: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"eventVersion": "1.08", "userIdentity": identity, "eventTime": "2025-07-01T09:05:00Z",
            "eventSource": "signin.amazonaws.com" if name == "ConsoleLogin" else "sts.amazonaws.com", "eventName": name,
            "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.14", "userAgent": "aws-sdk-go-v2/1.30.0",
            "requestID": "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b", "eventID": "a1b2c3d4-e5f6-4789-8abc-def012345678",
            "eventType": "AwsApiCall", "recipientAccountId": "111122223333", **extra}


ASSUMED = {"type": "AssumedRole", "principalId": "AROAEXAMPLE:deployer", "arn": "arn:aws:sts::111122223333:assumed-role/ci/deployer",
           "accountId": "111122223333", "accessKeyId": "ASIAEXAMPLE",
           "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLE", "arn": "arn:aws:iam::111122223333:role/ci",
                                                "accountId": "111122223333", "userName": "ci"},
                              "attributes": {"creationDate": "2025-07-01T09:00:00Z", "mfaAuthenticated": "false"}}}


@pytest.mark.parametrize("name", ["AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity"])
def test_cloudtrail_assume_role_is_authentication(name):
    [event] = parse(cloudtrail(name, ASSUMED, requestParameters={"roleArn": "arn:aws:iam::111122223333:role/admin",
                                                                 "roleSessionName": "deployer"}))
    expected = {"event.action": name, "event.category": ["authentication"], "event.outcome": "success",
                "user.name": "ci", "user.id": "AROAEXAMPLE:deployer", "cloud.account.id": "111122223333"}
    assert key_fields(event, expected) == expected


IDENTITY_CENTER = {"type": "IdentityCenterUser", "accountId": "111122223333",
                   "onBehalfOf": {"userId": "94d00cd8-e9e6-4810-b177-b08e84775435",
                                  "identityStoreArn": "arn:aws:identitystore::111122223333:identitystore/d-1234567890"},
                   "credentialId": "EXAMPLEcredentialId"}


def test_cloudtrail_console_login_by_an_identity_center_user_names_the_user():
    record = cloudtrail("ConsoleLogin", IDENTITY_CENTER, responseElements={"ConsoleLogin": "Success"},
                        additionalEventData={"UserName": "alice@example.com", "MFAUsed": "Yes", "MobileVersion": "No"})
    [event] = parse(record)
    assert event["user.name"] == "alice@example.com"
    assert event["user.id"] == "94d00cd8-e9e6-4810-b177-b08e84775435"
    assert event["event.category"] == ["authentication"] and event["event.outcome"] == "success"


@pytest.mark.parametrize(("identity", "name"), [
    ({"type": "IAMUser", "principalId": "AIDAEXAMPLE", "arn": "arn:aws:iam::111122223333:user/ops/mallory", "accountId": "111122223333"}, "mallory"),
    ({"type": "AssumedRole", "principalId": "AROAEXAMPLE:s1", "arn": "arn:aws:sts::111122223333:assumed-role/worker/s1",
      "accountId": "111122223333"}, "worker"),
    ({"type": "FederatedUser", "principalId": "111122223333:bob", "arn": "arn:aws:sts::111122223333:federated-user/bob",
      "accountId": "111122223333"}, "bob"),
    ({"type": "Root", "principalId": "111122223333", "arn": "arn:aws:iam::111122223333:root", "accountId": "111122223333"}, "root"),
])
def test_cloudtrail_user_name_from_the_arn_when_no_user_name_is_given(identity, name):
    [event] = parse(cloudtrail("Decrypt", identity))
    assert event["user.name"] == name


def test_cloudtrail_user_name_is_never_the_invoking_service():
    [event] = parse(cloudtrail("Decrypt", {"accountId": "111122223333", "invokedBy": "AWS Internal"}))
    assert "user.name" not in event
    [event] = parse(cloudtrail("Decrypt", {"type": "AWSService", "invokedBy": "s3.amazonaws.com"}))
    assert "user.name" not in event


def test_cloudtrail_email_session_name_is_the_user_email():
    identity = {**ASSUMED, "arn": "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Admin_0123/alice@example.com",
                "principalId": "AROAEXAMPLE:alice@example.com"}
    [event] = parse(cloudtrail("ListBuckets", identity))
    assert event["user.email"] == "alice@example.com" and event["user.name"] == "ci"


def vault(entry_type: str, error: str | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "time": "2025-08-12T09:00:00.000000Z", "type": entry_type,
        "auth": {"display_name": "kubernetes-temporal-worker", "entity_id": "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9",
                 "policies": ["default"], "metadata": {"email": "worker@example.com"}},
        "request": {"id": "3c1f0d2e-1111-2222-3333-444455556666", "operation": "update", "mount_type": "pki",
                    "mount_point": "pki/", "path": "pki/issue/temporal-worker", "remote_address": "10.42.3.17"},
    }
    if entry_type == "response":
        record["response"] = {"mount_type": "pki"}
    if error:
        record["error"] = error
    return record


@pytest.mark.parametrize("entry_type", ["request", "response"])
def test_vault_entries_follow_elastic(entry_type):
    [event] = parse(vault(entry_type))
    expected = {"event.action": "update", "event.category": ["authentication"], "event.outcome": "success",
                "source.ip": "10.42.3.17", "user.email": "worker@example.com"}
    assert key_fields(event, expected) == expected
    assert event["temporal.action"] == "pki.issue"


def test_vault_error_is_failure():
    [event] = parse(vault("response", "1 error occurred:\n\t* permission denied\n\n"))
    assert event["event.outcome"] == "failure" and event["event.category"] == ["authentication"]
    assert event["temporal.action"] == "pki.issue" and event["event.action"] == "update"


def test_vectors_agree_with_the_reference_model():
    """The reference model restates the same behaviour: it must say the same on these records."""
    for record, fmt in ((ENTRA_NON_INTERACTIVE, "entra_signin"), (vault("request"), "vault_audit"),
                        (cloudtrail("AssumeRole", ASSUMED), "aws_cloudtrail"),
                        (google_login("suspicious_login", "account_warning", []), "google_workspace")):
        [expected] = elastic_reference.REFERENCE[fmt](record)
        [event] = parse(record)
        differing = {field: (event.get(field), value) for field, value in expected.items() if not same(field, event.get(field), value)}
        assert not differing, (fmt, differing)


def test_vault_user_id_is_the_oidc_account_id_when_there_is_one():
    record = vault("response")
    record["auth"]["metadata"]["account_id"] = "acct-7"
    [event] = parse(record)
    assert event["user.id"] == "acct-7"
    [event] = parse(vault("response"))
    assert event["user.id"] == "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"  # no account id: Vault's entity id


IAM_NAME = st.from_regex(r"[A-Za-z0-9+=,.@_-]{1,32}", fullmatch=True)
ACCOUNT = st.from_regex(r"[0-9]{12}", fullmatch=True)
PATHS = st.lists(st.from_regex(r"[A-Za-z0-9_-]{1,8}", fullmatch=True), max_size=3).map(lambda parts: "".join(p + "/" for p in parts))


@settings(max_examples=200, deadline=None)
@given(ACCOUNT, PATHS, IAM_NAME, IAM_NAME, st.sampled_from(["aws", "aws-us-gov", "aws-cn"]))
def test_arn_names_property(account, path, name, session, partition):
    assert arn_user_name(f"arn:{partition}:iam::{account}:user/{path}{name}") == name
    assert arn_user_name(f"arn:{partition}:iam::{account}:role/{path}{name}") == name
    assert arn_user_name(f"arn:{partition}:sts::{account}:assumed-role/{name}/{session}") == name
    assert arn_user_name(f"arn:{partition}:sts::{account}:federated-user/{name}") == name
    assert arn_user_name(f"arn:{partition}:iam::{account}:root") == "root"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_arn_names_of_any_text_never_raise(text):
    result = arn_user_name(text)
    assert result is None or (result and ":" not in result)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([None, "AWSService", "AWSAccount", "Unknown"]), st.from_regex(r"[a-z0-9-]{1,20}\.amazonaws\.com", fullmatch=True))
def test_service_identities_never_become_the_user(identity_type, service):
    identity = {"accountId": "111122223333", "invokedBy": service}
    if identity_type:
        identity["type"] = identity_type
    [event] = parse(cloudtrail("Decrypt", identity))
    assert event.get("user.name") != service and "user.name" not in event
