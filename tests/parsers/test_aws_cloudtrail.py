"""CloudTrail / KMS parser: identities, key fields, errors, envelopes and hostile variants."""

from __future__ import annotations

import copy
import json
from typing import Any

import orjson
import pytest

from temporal_siem.kernel.flatten import unflatten
from temporal_siem.kernel.records import Origin, RawRecord
from temporal_siem.kernel.schema import validate_event
from temporal_siem.parsers.aws_cloudtrail import CloudTrailParser, categorize, split_key_reference, summarize_policy
from temporal_siem.parsers.router import ParserRouter

KEY_ARN = "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
DENIED_DECRYPT: dict[str, Any] = {
    "eventVersion": "1.11",
    "userIdentity": {"type": "AssumedRole", "principalId": "AROAEXAMPLE:temporal-worker",
                     "arn": "arn:aws:sts::111122223333:assumed-role/temporal-worker/worker-session", "accountId": "111122223333",
                     "accessKeyId": "ASIAEXAMPLE",
                     "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLE", "arn": "arn:aws:iam::111122223333:role/temporal-worker",
                                                          "accountId": "111122223333", "userName": "temporal-worker"},
                                        "attributes": {"creationDate": "2025-07-01T10:00:00Z", "mfaAuthenticated": "false"}}},
    "eventTime": "2025-07-01T10:04:17Z", "eventSource": "kms.amazonaws.com", "eventName": "Decrypt", "awsRegion": "us-west-2",
    "sourceIPAddress": "198.51.100.14", "userAgent": "aws-sdk-go-v2/1.30.0",
    "errorCode": "AccessDeniedException",
    "errorMessage": ("User: arn:aws:sts::111122223333:assumed-role/temporal-worker/worker-session is not authorized to perform: "
                     f"kms:Decrypt on resource: {KEY_ARN}"),
    "requestParameters": {"encryptionAlgorithm": "SYMMETRIC_DEFAULT", "keyId": KEY_ARN, "encryptionContext": {"temporal-namespace": "payments-prod"}},
    "responseElements": None, "requestID": "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b", "eventID": "a1b2c3d4-e5f6-4789-8abc-def012345678", "readOnly": True,
    "resources": [{"accountId": "111122223333", "type": "AWS::KMS::Key", "ARN": KEY_ARN}],
    "eventType": "AwsApiCall", "managementEvent": True, "recipientAccountId": "111122223333", "eventCategory": "Management",
    "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256", "clientProvidedHostHeader": "kms.us-west-2.amazonaws.com"},
}


def parse(record: Any) -> dict[str, Any]:
    result = ParserRouter("auto").parse(RawRecord(orjson.dumps(record), Origin("test", line=1)))
    assert not result.dead, result.dead[0].as_dict()
    assert len(result.events) == 1
    event = result.events[0]
    assert event["event.dataset"] == "aws.cloudtrail"
    validate_event(unflatten(event))
    return event


def variant(**changes: Any) -> dict[str, Any]:
    record = copy.deepcopy(DENIED_DECRYPT)
    for key, value in changes.items():
        if value is None:
            record.pop(key, None)
        else:
            record[key] = value
    return record


def test_access_denied_decrypt():
    event = parse(DENIED_DECRYPT)
    assert event["@timestamp"] == "2025-07-01T10:04:17.000000Z"
    assert event["event.id"] == "a1b2c3d4-e5f6-4789-8abc-def012345678"
    assert event["event.action"] == "Decrypt" and event["event.provider"] == "kms.amazonaws.com"
    assert event["event.module"] == "aws"
    assert event["event.outcome"] == "failure"
    assert event["event.category"] == ["api"] and event["event.type"] == ["access", "denied"]
    assert event["error.code"] == "AccessDeniedException" and event["error.message"].startswith("User: arn:aws:sts::")
    assert event["user.name"] == "temporal-worker"
    assert event["user.id"] == "AROAEXAMPLE:temporal-worker"  # principalId, as Elastic; the ARN stays in aws.cloudtrail.userIdentity.arn
    assert event["aws.cloudtrail.userIdentity.arn"] == "arn:aws:sts::111122223333:assumed-role/temporal-worker/worker-session"
    assert event["user.effective.name"] == "worker-session"
    assert event["related.user"] == ["temporal-worker", "worker-session"]
    assert event["source.ip"] == "198.51.100.14" and event["related.ip"] == ["198.51.100.14"]
    assert event["cloud.provider"] == "aws" and event["cloud.region"] == "us-west-2"
    assert event["cloud.account.id"] == "111122223333" and event["cloud.service.name"] == "kms"
    assert event["user_agent.original"] == "aws-sdk-go-v2/1.30.0"
    assert event["tls.version"] == "1.3" and event["tls.version_protocol"] == "tls" and event["tls.cipher"] == "TLS_AES_128_GCM_SHA256"
    assert event["tls.client.server_name"] == "kms.us-west-2.amazonaws.com"
    assert event["temporal.key.id"] == KEY_ID and event["temporal.key.arn"] == KEY_ARN
    # vendor namespace keeps CloudTrail spellings for SigmaHQ rules
    assert event["aws.cloudtrail.eventName"] == "Decrypt"
    assert event["aws.cloudtrail.userIdentity.type"] == "AssumedRole"
    assert event["aws.cloudtrail.requestParameters.encryptionContext.temporal-namespace"] == "payments-prod"
    assert event["aws.cloudtrail.resources.ARN"] == [KEY_ARN]


@pytest.mark.parametrize(("code", "last_type"), [
    ("KMSInvalidStateException", "denied"), ("DisabledException", "denied"), ("KMSInvalidSignatureException", "denied"),
    ("IncorrectKeyException", "denied"), ("AccessDenied", "denied"), ("ThrottlingException", "error"), ("ValidationException", "error"),
])
def test_error_codes(code, last_type):
    event = parse(variant(errorCode=code, errorMessage=None))
    assert event["event.outcome"] == "failure" and event["error.code"] == code
    assert event["event.type"][-1] == last_type
    assert "error.message" not in event


def test_numeric_error_code_is_a_string():
    assert parse(variant(errorCode=500))["error.code"] == "500"


def test_success_has_no_error():
    event = parse(variant(errorCode=None, errorMessage=None))
    assert event["event.outcome"] == "success" and event["event.type"] == ["access"]
    assert "error.code" not in event


@pytest.mark.parametrize("identity,name,user_id", [
    ({"type": "IAMUser", "principalId": "AIDA1", "arn": "arn:aws:iam::111122223333:user/mallory", "accountId": "111122223333", "userName": "mallory"},
     "mallory", "AIDA1"),
    ({"type": "Root", "principalId": "111122223333", "arn": "arn:aws:iam::111122223333:root", "accountId": "111122223333"},
     "root", "111122223333"),
    ({"type": "AWSService", "invokedBy": "s3.amazonaws.com"}, None, None),  # a service acting is not a user
    ({"accountId": "111122223333", "invokedBy": "AWS Internal"}, None, None),
    ({}, None, None),
])
def test_identity_types(identity, name, user_id):
    event = parse(variant(userIdentity=identity))
    assert event.get("user.name") == name
    assert event.get("user.id") == user_id
    assert event["cloud.account.id"] == "111122223333"  # falls back to recipientAccountId


def test_identity_not_an_object():
    event = parse(variant(userIdentity="weird"))
    assert "user.name" not in event


@pytest.mark.parametrize("address", ["AWS Internal", "kms.amazonaws.com"])
def test_service_source_address(address):
    event = parse(variant(sourceIPAddress=address))
    assert "source.ip" not in event and event["source.address"] == address
    assert "related.ip" not in event


def test_ipv6_source():
    assert parse(variant(sourceIPAddress="2001:DB8::A11:5"))["source.ip"] == "2001:db8::a11:5"


def test_schedule_key_deletion_non_iso_date():
    record = variant(eventName="ScheduleKeyDeletion", errorCode=None, errorMessage=None,
                     requestParameters={"keyId": KEY_ID, "pendingWindowInDays": 7},
                     responseElements={"keyId": KEY_ARN, "keyState": "PendingDeletion", "deletionDate": "Jul 8, 2025 11:20:45 PM", "pendingWindowInDays": 7})
    event = parse(record)
    assert event["event.category"] == ["configuration"] and event["event.type"] == ["deletion"]
    assert event["temporal.key.state"] == "PendingDeletion"
    assert event["temporal.key.deletion_date"] == "2025-07-08T23:20:45.000000Z"
    assert event["temporal.key.pending_window_days"] == 7
    assert event["temporal.key.id"] == KEY_ID and event["temporal.key.arn"] == KEY_ARN
    record["responseElements"]["deletionDate"] = "Apr 12, 2021 18:58:30 PM"  # 24-hour clock with a stray PM
    assert parse(record)["temporal.key.deletion_date"] == "2021-04-12T18:58:30.000000Z"


def test_failed_disable_key_sets_no_state():
    event = parse(variant(eventName="DisableKey", errorCode="AccessDeniedException", requestParameters={"keyId": KEY_ID}))
    assert event["event.type"] == ["change", "denied"]
    assert "temporal.key.state" not in event
    ok = parse(variant(eventName="DisableKey", errorCode=None, errorMessage=None, requestParameters={"keyId": KEY_ID}))
    assert ok["temporal.key.state"] == "Disabled"


def test_put_key_policy_parses_policy_string():
    policy = {"Version": "2012-10-17", "Statement": [
        {"Sid": "root", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},
        {"Sid": "anyone", "Effect": "Allow", "Principal": "*", "Action": ["kms:Decrypt"], "Resource": "*"},
        {"Sid": "deny", "Effect": "Deny", "Principal": {"AWS": "arn:aws:iam::444455556666:root"}, "Action": "kms:*", "Resource": "*"}]}
    event = parse(variant(eventName="PutKeyPolicy", errorCode=None, errorMessage=None,
                          requestParameters={"keyId": KEY_ID, "policyName": "default", "policy": json.dumps(policy)}))
    assert event["event.category"] == ["configuration"] and event["event.type"] == ["change"]
    assert event["aws.cloudtrail.requestParameters.policy"] == json.dumps(policy)
    assert event["aws.cloudtrail.key_policy.allows_any_principal"] is True
    assert event["aws.cloudtrail.key_policy.allowed_principals"] == ["arn:aws:iam::111122223333:root", "*"]
    assert event["aws.cloudtrail.key_policy.allowed_actions"] == ["kms:*", "kms:Decrypt"]
    assert event["aws.cloudtrail.key_policy.document.Statement.Sid"] == ["root", "anyone", "deny"]
    broken = parse(variant(eventName="PutKeyPolicy", requestParameters={"keyId": KEY_ID, "policy": "{not json"}))
    assert "aws.cloudtrail.key_policy.allows_any_principal" not in broken


def test_policy_summary_conditions_and_single_statement():
    summary = summarize_policy({"Statement": {"Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": "kms:Decrypt",
                                              "Condition": {"StringEquals": {"kms:CallerAccount": "111122223333"}}}})
    assert summary == {"allowed_principals": ["*"], "allowed_actions": ["kms:Decrypt"], "allows_any_principal": False}
    assert summarize_policy({"Statement": "junk"})["allowed_principals"] == []


def test_automatic_rotation_service_event():
    record = {"eventVersion": "1.11", "userIdentity": {"accountId": "111122223333", "invokedBy": "AWS Internal"},
              "eventTime": "2025-10-01T00:00:12Z", "eventSource": "kms.amazonaws.com", "eventName": "RotateKey", "awsRegion": "us-west-2",
              "sourceIPAddress": "AWS Internal", "userAgent": "AWS Internal", "requestParameters": None, "responseElements": None,
              "eventID": "rot-1", "readOnly": False, "resources": [{"accountId": "111122223333", "ARN": KEY_ARN}],
              "eventType": "AwsServiceEvent", "recipientAccountId": "111122223333",
              "serviceEventDetails": {"rotationType": "AUTOMATIC", "keyOrigin": "AWS_KMS", "previousKeyMaterialId": "a", "currentKeyMaterialId": "b"}}
    event = parse(record)
    assert event["event.category"] == ["configuration"] and event["event.type"] == ["change"]
    assert event["temporal.key.arn"] == KEY_ARN and event["temporal.key.id"] == KEY_ID
    assert event["aws.cloudtrail.serviceEventDetails.rotationType"] == "AUTOMATIC"
    assert event["source.address"] == "AWS Internal"
    old = copy.deepcopy(record)
    old.pop("resources")
    old["serviceEventDetails"] = {"rotationType": "AUTOMATIC", "keyId": KEY_ID}
    assert parse(old)["temporal.key.id"] == KEY_ID


def test_alias_references():
    assert split_key_reference("alias/temporal-codec") == (None, None, "alias/temporal-codec")
    assert split_key_reference("arn:aws:kms:us-west-2:111122223333:alias/x") == (None, None, "alias/x")
    assert split_key_reference(KEY_ARN) == (KEY_ID, KEY_ARN, None)
    event = parse(variant(eventName="CreateAlias", errorCode=None, requestParameters={"aliasName": "alias/temporal-codec", "targetKeyId": KEY_ID},
                          resources=[{"ARN": "arn:aws:kms:us-west-2:111122223333:alias/temporal-codec"}, {"ARN": KEY_ARN}]))
    assert event["temporal.key.name"] == "alias/temporal-codec" and event["temporal.key.id"] == KEY_ID
    assert event["event.type"] == ["creation"]


@pytest.mark.parametrize(("name", "categories", "types"), [
    ("CreateGrant", ["iam"], ["creation"]), ("RetireGrant", ["iam"], ["deletion"]), ("RevokeGrant", ["iam"], ["deletion"]),
    ("CreateKey", ["configuration"], ["creation"]), ("EnableKey", ["configuration"], ["change"]),
    ("CancelKeyDeletion", ["configuration"], ["change"]), ("DeleteAlias", ["configuration"], ["deletion"]),
    ("UpdateAlias", ["configuration"], ["change"]), ("GenerateDataKeyWithoutPlaintext", ["api"], ["access"]),
    ("ReEncrypt", ["api"], ["access"]), ("EnableKeyRotation", ["configuration"], ["change"]),
])
def test_kms_categories(name, categories, types):
    assert categorize("kms.amazonaws.com", name, None) == (categories, types)


def test_non_kms_events_parse_generically():
    console = {"eventVersion": "1.09", "userIdentity": {"type": "IAMUser", "userName": "mallory", "accountId": "111122223333"},
               "eventTime": "2025-07-01T09:00:00Z", "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin",
               "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.66", "responseElements": {"ConsoleLogin": "Failure"},
               "errorMessage": "Failed authentication", "eventID": "c0ffee"}
    event = parse(console)
    assert event["event.category"] == ["authentication"] and event["event.outcome"] == "failure"
    assert "denied" in event["event.type"] and "temporal.key.id" not in event
    assert event["aws.cloudtrail.responseElements.ConsoleLogin"] == "Failure"
    iam = parse({"eventTime": "2025-07-01T09:10:00Z", "eventSource": "iam.amazonaws.com", "eventName": "DeleteUser", "eventID": "x"})
    assert iam["event.category"] == ["iam"] and iam["event.type"] == ["user", "deletion"]


def test_sts_credentials_redacted():
    record = {"eventTime": "2025-07-01T09:05:00Z", "eventSource": "sts.amazonaws.com", "eventName": "AssumeRole", "eventID": "sts-1",
              "responseElements": {"credentials": {"accessKeyId": "ASIAX", "sessionToken": "IQoJb3JpZ2luX2VjSECRETVALUE", "expiration": "x"}}}
    event = parse(record)
    assert "IQoJb3JpZ2luX2VjSECRETVALUE" not in orjson.dumps(event).decode()
    assert event["aws.cloudtrail.responseElements.credentials"] == "[REDACTED]"


def test_envelopes():
    records = {"Records": [DENIED_DECRYPT, variant(eventID="second")]}
    result = ParserRouter("auto").parse(RawRecord(orjson.dumps(records), Origin("trail.json")))
    assert [e["event.id"] for e in result.events] == [DENIED_DECRYPT["eventID"], "second"]
    bridge = {"version": "0", "id": "1", "detail-type": "AWS API Call via CloudTrail", "source": "aws.kms", "time": "2025-07-01T10:04:18Z",
              "detail": DENIED_DECRYPT}
    assert parse(bridge)["event.id"] == DENIED_DECRYPT["eventID"]


def test_missing_event_id_hashes_the_record():
    event = parse(variant(eventID=None))
    assert len(event["event.id"]) == 32


@pytest.mark.parametrize("time", [None, "", "not a time", 12.5e30])
def test_bad_time_is_dead_lettered(time):
    record = variant(eventTime=time) if time is not None else variant(eventTime=None, eventVersion="1.08")
    result = ParserRouter("aws_cloudtrail").parse(RawRecord(orjson.dumps(record), Origin("bad.jsonl", line=3)))
    assert not result.events and result.dead[0].reason == "no timestamp"
    assert str(result.dead[0].origin) == "bad.jsonl:3"


def test_accepts():
    parser = CloudTrailParser()
    assert parser.accepts(DENIED_DECRYPT)
    assert not parser.accepts({"eventName": "x", "eventTime": "y"})


def test_kms_service_events_from_eventbridge_keep_their_wrapper():
    rotation = {"version": "0", "id": "6a7e8feb", "detail-type": "KMS CMK Rotation", "source": "aws.kms", "account": "111122223333",
                "time": "2025-05-23T03:11:54Z", "region": "us-west-2", "resources": [KEY_ARN],
                "detail": {"key-id": KEY_ID, "key-origin": "AWS_KMS", "rotation-type": "ON_DEMAND"}}
    event = parse(rotation)
    assert event["@timestamp"] == "2025-05-23T03:11:54.000000Z" and event["event.id"] == "6a7e8feb"
    assert event["event.action"] == "KMS CMK Rotation" and event["event.provider"] == "kms.amazonaws.com"
    assert event["event.category"] == ["configuration"] and event["event.type"] == ["change"]
    assert event["temporal.key.id"] == KEY_ID and event["temporal.key.arn"] == KEY_ARN
    assert event["cloud.account.id"] == "111122223333" and event["cloud.region"] == "us-west-2"
    assert event["aws.cloudtrail.detail.rotation-type"] == "ON_DEMAND"
    deletion = {**rotation, "detail-type": "KMS CMK Deletion", "detail": {}}
    event = parse(deletion)
    assert event["event.type"] == ["deletion"] and event["temporal.key.id"] == KEY_ID and event["temporal.key.state"] == "Deleted"
    no_time = {**rotation, "time": "later"}
    result = ParserRouter("auto").parse(RawRecord(orjson.dumps(no_time), Origin("eb.jsonl", line=2)))
    assert not result.events and result.dead[0].reason == "no timestamp"


def test_digest_file():
    digest = {"awsAccountId": "111122223333", "digestStartTime": "2025-07-01T11:00:00Z", "digestEndTime": "2025-07-01T12:00:00Z",
              "digestS3Bucket": "trail", "digestS3Object": "AWSLogs/111122223333/CloudTrail-Digest/x.json.gz",
              "logFiles": [{"s3Bucket": "trail", "s3Object": "a.json.gz", "hashValue": "00", "hashAlgorithm": "SHA-256"}]}
    event = parse(digest)
    assert event["@timestamp"] == "2025-07-01T12:00:00.000000Z" and event["event.start"] == "2025-07-01T11:00:00.000000Z"
    assert event["event.action"] == "CloudTrailDigest" and event["cloud.account.id"] == "111122223333"
    assert event["file.path"] == "AWSLogs/111122223333/CloudTrail-Digest/x.json.gz"
    assert event["aws.cloudtrail.logFiles.s3Object"] == ["a.json.gz"]
