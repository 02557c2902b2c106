"""Workload identity by how the session was obtained, not by role name (issue 14 class 7)."""

from __future__ import annotations

from typing import Any

import orjson

from temporal_siem.detections.enrichment import WorkloadSessions
from temporal_siem.kernel.flatten import unflatten
from temporal_siem.kernel.records import Origin, RawRecord
from temporal_siem.kernel.schema import validate_event
from temporal_siem.parsers.router import ParserRouter

ACCOUNT = "111122223333"
KEY = f"arn:aws:kms:us-west-2:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def parse(record: dict[str, Any]) -> dict[str, Any]:
    result = ParserRouter().parse(RawRecord(orjson.dumps(record), Origin("ct", line=1)))
    assert not result.dead
    (event,) = result.events
    return event


def assume(name: str, caller: dict[str, Any], session: str, when: str, role: str = "temporal-worker") -> dict[str, Any]:
    return parse({"eventVersion": "1.08", "userIdentity": caller, "eventTime": when, "eventSource": "sts.amazonaws.com",
                  "eventName": name, "awsRegion": "us-west-2", "sourceIPAddress": "198.51.100.14", "userAgent": "aws-cli/2.15.0",
                  "requestParameters": {"roleArn": f"arn:aws:iam::{ACCOUNT}:role/{role}", "roleSessionName": session},
                  "responseElements": {"credentials": {"accessKeyId": "ASIAX", "sessionToken": "x"},
                                       "assumedRoleUser": {"arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}",
                                                           "assumedRoleId": f"AROAX:{session}"}},
                  "eventID": f"e-{session}-{when}", "eventType": "AwsApiCall", "recipientAccountId": ACCOUNT})


def decrypt(session: str, when: str, web_identity: bool = False, role: str = "temporal-worker") -> dict[str, Any]:
    context: dict[str, Any] = {"sessionIssuer": {"type": "Role", "arn": f"arn:aws:iam::{ACCOUNT}:role/{role}", "userName": role},
                               "attributes": {"creationDate": when, "mfaAuthenticated": "false"},
                               "webIdFederationData": ({"federatedProvider": f"arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/X",
                                                        "attributes": {}} if web_identity else {})}
    return parse({"eventVersion": "1.08", "userIdentity": {"type": "AssumedRole", "principalId": f"AROAX:{session}",
                                                           "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}",
                                                           "accountId": ACCOUNT, "sessionContext": context},
                  "eventTime": when, "eventSource": "kms.amazonaws.com", "eventName": "Decrypt", "awsRegion": "us-west-2",
                  "sourceIPAddress": "203.0.113.66", "userAgent": "aws-cli/2.15.0", "requestParameters": {"keyId": KEY},
                  "eventID": f"d-{session}-{when}", "eventType": "AwsApiCall", "recipientAccountId": ACCOUNT,
                  "resources": [{"type": "AWS::KMS::Key", "ARN": KEY, "accountId": ACCOUNT}]})


HUMAN = {"type": "IAMUser", "principalId": "AIDAMALLORY", "arn": f"arn:aws:iam::{ACCOUNT}:user/mallory", "accountId": ACCOUNT,
         "userName": "mallory"}


def test_web_identity_session_is_the_expected_workload_and_teaches_the_role():
    reg = WorkloadSessions()
    event = decrypt("pod-1", "2025-07-01T10:00:00Z", web_identity=True)
    reg.enrich([event])
    assert event["temporal.session.origin"] == "web_identity" and event["temporal.session.human"] is False
    assert event["temporal.session.workload_role"] is True
    validate_event(unflatten(event))


def test_human_assuming_a_workload_role_then_using_the_key_in_that_session():
    reg = WorkloadSessions()
    reg.enrich([decrypt("pod-1", "2025-07-01T10:00:00Z", web_identity=True)])  # the role is a workload's
    assumed = assume("AssumeRole", HUMAN, "temporal-worker-7d9f", "2025-07-01T11:00:00Z")
    used = decrypt("temporal-worker-7d9f", "2025-07-01T11:05:00Z")
    reg.enrich([assumed, used])
    assert assumed["temporal.session.human"] is True and assumed["temporal.session.workload_role"] is True
    assert used["temporal.session.origin"] == "assumed_by_human" and used["temporal.session.human"] is True
    assert used["temporal.session.assumed_by"] == f"arn:aws:iam::{ACCOUNT}:user/mallory"
    assert used["temporal.session.workload_role"] is True
    validate_event(unflatten(used))


def test_session_state_survives_a_restart_and_expires():
    reg = WorkloadSessions()
    reg.enrich([assume("AssumeRole", HUMAN, "s1", "2025-07-01T11:00:00Z")])
    restored = WorkloadSessions()
    restored.restore(reg.snapshot())
    used, late = decrypt("s1", "2025-07-01T12:00:00Z"), decrypt("s1", "2025-07-03T12:00:00Z")
    restored.enrich([used, late])
    assert used["temporal.session.assumed_by"].endswith("user/mallory")
    assert late["temporal.session.origin"] == "unknown"  # longer than any STS session lives
    key = f"arn:aws:sts::{ACCOUNT}:assumed-role/temporal-worker/s1"
    state = restored.session_state(key)
    assert state is not None and state["origin"] == "assumed_by_human"
    single = WorkloadSessions()
    single.restore_session(key, state)
    again = decrypt("s1", "2025-07-01T12:30:00Z")
    single.enrich([again])
    assert again["temporal.session.human"] is True


def test_role_chaining_by_a_workload_is_not_human():
    reg = WorkloadSessions()
    caller = {"type": "AssumedRole", "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/ci-runner/job-1", "accountId": ACCOUNT,
              "sessionContext": {"sessionIssuer": {"type": "Role", "userName": "ci-runner", "arn": f"arn:aws:iam::{ACCOUNT}:role/ci-runner"},
                                 "webIdFederationData": {"federatedProvider": "arn:aws:iam::111122223333:oidc-provider/token.actions.githubusercontent.com"}}}
    assumed = assume("AssumeRole", caller, "deploy", "2025-07-01T11:00:00Z")
    reg.enrich([assumed])
    assert assumed["temporal.session.human"] is False and assumed["temporal.session.origin"] == "role_chain"
    sso = {"type": "AssumedRole", "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_Admin_abc/alice@example.com",
           "accountId": ACCOUNT, "sessionContext": {"sessionIssuer": {"type": "Role", "userName": "AWSReservedSSO_Admin_abc"}}}
    by_person = assume("AssumeRole", sso, "alice", "2025-07-01T11:00:00Z")
    reg.enrich([by_person])
    assert by_person["temporal.session.human"] is True
