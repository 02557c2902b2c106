"""``aws_cloudtrail``: AWS CloudTrail records, KMS in depth (log-format reference §6, ECS per §9.6).

Input shapes: ``{"Records": [...]}`` trail files, single records (one per line, CloudWatch Logs subscription
messages) and EventBridge ``AWS API Call via CloudTrail`` events (``detail``); envelopes are unwrapped by
:mod:`parsers.envelopes`. KMS's own EventBridge events (``KMS CMK Rotation``, ``KMS CMK Deletion``,
``KMS Imported Key Material Expiration``) are kept whole, since only the wrapper has the time and key ARN; they
become ``event.action`` = the ``detail-type`` in the same dataset. CloudTrail digest files become one
``CloudTrailDigest`` event each (``file.path`` = the digest object), so a gap in delivered digests can be seen.
Every CloudTrail record parses: non-KMS events get the ECS basics and the full record under ``aws.cloudtrail.*``
with CloudTrail's own key spellings, so SigmaHQ AWS rules run with a prefix mapping.

KMS specifics: ``temporal.key.*`` (key id, ARN, alias name, state, deletion date, pending window, key spec) from
``requestParameters`` / ``responseElements`` / ``resources[].ARN`` / ``serviceEventDetails``; the ``PutKeyPolicy``
policy document (a JSON string) is decoded to ``aws.cloudtrail.key_policy.*`` with a summary of who it lets in;
``ScheduleKeyDeletion``'s free-text ``deletionDate`` (``Jul 8, 2025 11:20:45 AM``) becomes a UTC timestamp.

ECS as Elastic's ``aws`` integration writes it: ``user.name`` = ``userIdentity.userName``, else the session issuer's
(the assumed role), ``user.id`` = ``principalId``, ``AssumeRole*`` and ``ConsoleLogin`` are ``authentication``; where
Elastic leaves ``user.name`` empty we take the name in the ARN or an IAM Identity Center user's sign-in name, never
the ``invokedBy`` service (see :func:`arn_user_name`, docs/schema.md).

``event.type`` gets ``denied`` for authorization refusals and for KMS refusing to use a key (disabled, pending
deletion, wrong key, bad signature/MAC: :data:`DENIAL_CODES`), ``error`` for any other error code.

Redacted: secret-named keys anywhere (``credentials`` in STS responses, ``password``, ``secretAccessKey``,
``sessionToken``...), bearer/JWT-looking text (:func:`parsers.common.redact`).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from temporal_siem.kernel.records import RecordError
from temporal_siem.parsers.base import Parser
from temporal_siem.parsers.common import (
    add_related,
    as_int,
    as_mapping,
    clean_ip,
    event_id_from_raw,
    format_timestamp,
    namespaced,
    nonempty_text,
    parse_timestamp,
    set_if,
    timestamp_or_none,
)

KMS_SOURCE = "kms.amazonaws.com"

CRYPTO_OPERATIONS = frozenset({
    "Decrypt", "Encrypt", "ReEncrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext", "GenerateRandom", "GenerateMac", "VerifyMac", "Sign", "Verify", "Decapsulate",
    "DeriveSharedSecret",
})
# KMS admin calls: (categories, types).
KMS_ADMIN: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    **{name: (("configuration",), ("change",)) for name in (
        "DisableKey", "EnableKey", "CancelKeyDeletion", "PutKeyPolicy", "EnableKeyRotation", "DisableKeyRotation", "RotateKey",
        "RotateKeyOnDemand", "UpdateKeyDescription", "TagResource", "UntagResource", "UpdatePrimaryRegion",
        "SynchronizeMultiRegionKey", "ImportKeyMaterial", "UpdateAlias", "UpdateCustomKeyStore", "ConnectCustomKeyStore",
        "DisconnectCustomKeyStore")},
    **{name: (("configuration",), ("deletion",)) for name in (
        "ScheduleKeyDeletion", "DeleteKey", "DeleteImportedKeyMaterial", "DeleteExpiredKeyMaterial", "DeleteAlias",
        "DeleteCustomKeyStore")},
    **{name: (("configuration",), ("creation",)) for name in ("CreateKey", "CreateAlias", "ReplicateKey", "CreateCustomKeyStore")},
    "CreateGrant": (("iam",), ("creation",)),
    "RetireGrant": (("iam",), ("deletion",)),
    "RevokeGrant": (("iam",), ("deletion",)),
}
# Key state a successful call leaves the key in, when the response does not say.
STATE_AFTER = {"DisableKey": "Disabled", "EnableKey": "Enabled", "CancelKeyDeletion": "Disabled", "ScheduleKeyDeletion": "PendingDeletion"}

DENIAL_CODES = frozenset({
    "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "Client.UnauthorizedOperation", "UnauthorizedAccess",
    "KMSInvalidStateException", "DisabledException", "KMSInvalidSignatureException", "KMSInvalidMacException",
    "IncorrectKeyException", "InvalidCiphertextException", "InvalidGrantTokenException", "InvalidKeyUsageException",
    "KeyUnavailableException",
})

IAM_SOURCES = frozenset({"iam.amazonaws.com", "sts.amazonaws.com", "sso.amazonaws.com", "identitystore.amazonaws.com",
                         "sso-directory.amazonaws.com", "organizations.amazonaws.com"})
_VERB_TYPES = (
    (("Create", "Put", "Add", "Attach", "Run", "Import", "Register", "Allocate", "Issue", "Upload", "Replicate", "Copy"), "creation"),
    (("Delete", "Remove", "Detach", "Terminate", "Deregister", "Release", "Revoke", "Retire", "Disassociate", "Schedule"), "deletion"),
    (("Update", "Modify", "Set", "Enable", "Disable", "Change", "Reset", "Rotate", "Tag", "Untag", "Associate", "Cancel",
      "Start", "Stop", "Reboot", "Restore", "Assume"), "change"),
)
_KEY_ID = re.compile(r"^arn:aws[a-z-]*:kms:[^:]*:[^:]*:key/(.+)$")
_ALIAS = re.compile(r"^(?:arn:aws[a-z-]*:kms:[^:]*:[^:]*:)?(alias/.+)$")





def arn_user_name(arn: str | None) -> str | None:
    """The principal's name in an IAM/STS ARN: ``user/[path/]NAME``, ``assumed-role/ROLE/session`` (the role, as
    Elastic names assumed roles), ``federated-user/NAME``, ``role/[path/]NAME``, ``root``."""
    if not arn or not arn.startswith("arn:"):
        return None
    resource = arn.split(":", 5)[-1] if arn.count(":") >= 5 else ""
    if resource == "root":
        return "root"
    kind, _, rest = resource.partition("/")
    if not rest:
        return None
    if kind == "assumed-role":
        return rest.split("/", 1)[0] or None
    if kind in ("user", "federated-user", "role"):
        return rest.rsplit("/", 1)[-1] or None
    return None


def categorize(source: str, name: str, error_code: str | None) -> tuple[list[str], list[str]]:
    """ECS category/type for a CloudTrail call: KMS by name, others by service and verb."""
    if source == KMS_SOURCE and name in CRYPTO_OPERATIONS:
        categories, types = ["api"], ["access"]
    elif source == KMS_SOURCE and name in KMS_ADMIN:
        rule_categories, rule_types = KMS_ADMIN[name]
        categories, types = list(rule_categories), list(rule_types)
    elif name == "ConsoleLogin" or source == "signin.amazonaws.com":
        categories, types = ["authentication"], ["start"]
    elif name.startswith("AssumeRole"):  # AssumeRole, ...WithSAML, ...WithWebIdentity, ...Root: Elastic's authentication
        categories, types = ["authentication"], ["info"]
    else:
        categories = ["iam"] if source in IAM_SOURCES else ["api"]
        types = ["info"] if name.startswith(("Get", "List", "Describe", "Lookup", "Head", "Search", "Batch")) else ["access"]
        for verbs, verb_type in _VERB_TYPES:
            if name.startswith(verbs):
                types = [verb_type]
                break
        if categories == ["iam"] and types != ["info"]:
            types.insert(0, "group" if "Group" in name else "user" if "User" in name or "LoginProfile" in name else "admin")
    if error_code:
        types.append("denied" if error_code in DENIAL_CODES or "AccessDenied" in error_code or "Unauthorized" in error_code else "error")
    return categories, types


def split_key_reference(reference: str) -> tuple[str | None, str | None, str | None]:
    """(key id, key ARN, alias name) from what a caller passed as ``keyId``: id, key ARN, alias or alias ARN."""
    match = _KEY_ID.match(reference)
    if match:
        return match.group(1), reference, None
    match = _ALIAS.match(reference)
    if match:
        return None, None, match.group(1)
    return reference, None, None


def summarize_policy(document: dict[str, Any]) -> dict[str, Any]:
    """Who an ``Allow`` statement lets in and with what actions; ``allows_any_principal`` flags ``*`` principals."""
    statements = document.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    principals: list[str] = []
    actions: list[str] = []
    anyone = False
    for statement in statements if isinstance(statements, list) else []:
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal")
        values: list[Any] = []
        if isinstance(principal, str):
            values = [principal]
        elif isinstance(principal, dict):
            for member in principal.values():
                values.extend(member if isinstance(member, list) else [member])
        for value in values:
            if isinstance(value, str) and value not in principals:
                principals.append(value)
            if value == "*" and not statement.get("Condition"):
                anyone = True
        action = statement.get("Action")
        for value in action if isinstance(action, list) else [action]:
            if isinstance(value, str) and value not in actions:
                actions.append(value)
    return {"allowed_principals": principals, "allowed_actions": actions, "allows_any_principal": anyone}


class CloudTrailParser(Parser):
    name = "aws_cloudtrail"
    dataset = "aws.cloudtrail"
    accept_keys = frozenset({"eventSource", "digestEndTime", "source"})  # accepts() says no without one
    logsource = {"product": "aws", "service": "cloudtrail"}

    def accepts(self, record: dict[str, Any]) -> bool:
        if "eventSource" in record and "eventName" in record and ("eventTime" in record or "eventVersion" in record):
            return True
        if "digestEndTime" in record and "logFiles" in record:
            return True
        return record.get("source") == "aws.kms" and "detail-type" in record

    def parse(self, record: dict[str, Any] | str, raw: bytes) -> list[dict[str, Any]]:
        if not isinstance(record, dict):
            raise RecordError("not a JSON object", "CloudTrail record must be an object")
        if "eventName" not in record and record.get("source") == "aws.kms" and "detail-type" in record:
            return [self._kms_service_event(record, raw)]
        if "eventName" not in record and "digestEndTime" in record:
            return [self._digest(record, raw)]
        when = parse_timestamp(record.get("eventTime"))
        if when is None:
            raise RecordError("no timestamp", f"CloudTrail 'eventTime' unparseable: {str(record.get('eventTime'))[:80]!r}")
        name = record.get("eventName")
        source = record.get("eventSource")
        if not isinstance(name, str) or not name or not isinstance(source, str) or not source:
            raise RecordError("missing field", "CloudTrail 'eventName'/'eventSource' must be non-empty strings")
        error_code = record.get("errorCode")
        error_code = str(error_code) if isinstance(error_code, (str, int)) and not isinstance(error_code, bool) and error_code != "" else None
        categories, types = categorize(source, name, error_code)
        event_id = record.get("eventID")
        event: dict[str, Any] = {
            "@timestamp": format_timestamp(when),
            "event.id": event_id if isinstance(event_id, str) and event_id else event_id_from_raw(raw),
            "event.kind": "event",
            "event.dataset": self.dataset,
            "event.module": "aws",
            "event.provider": source,
            "event.action": name,
            "event.category": categories,
            "event.type": types,
            "event.outcome": "failure" if error_code else "success",
            "cloud.provider": "aws",
        }
        response = as_mapping(record.get("responseElements"))
        if name == "ConsoleLogin" and response.get("ConsoleLogin") == "Failure":
            event["event.outcome"] = "failure"
            event["event.type"] = [*types, "denied"] if "denied" not in types else types
        if error_code:
            event["error.code"] = error_code
        set_if(event, "error.message", nonempty_text(record.get("errorMessage")))
        set_if(event, "cloud.region", nonempty_text(record.get("awsRegion")))
        service = source.removesuffix(".amazonaws.com")
        set_if(event, "cloud.service.name", service if service != source or "." not in source else None)
        self._identity(as_mapping(record.get("userIdentity")), record, event)
        self._source(record, event)
        self._tls(as_mapping(record.get("tlsDetails")), event)
        if source == KMS_SOURCE:
            self._kms(name, error_code, record, event)
        namespaced("aws.cloudtrail", record, event)
        return [event]

    def _digest(self, record: dict[str, Any], raw: bytes) -> dict[str, Any]:
        """A CloudTrail digest file: proof of which log files a trail delivered (a gap in them is tampering or loss)."""
        when = parse_timestamp(record.get("digestEndTime"))
        if when is None:
            raise RecordError("no timestamp", f"CloudTrail digest 'digestEndTime' unparseable: {str(record.get('digestEndTime'))[:80]!r}")
        event: dict[str, Any] = {
            "@timestamp": format_timestamp(when),
            "event.id": event_id_from_raw(raw),
            "event.kind": "event",
            "event.dataset": self.dataset,
            "event.module": "aws",
            "event.provider": "cloudtrail.amazonaws.com",
            "event.action": "CloudTrailDigest",
            "event.category": ["file"],
            "event.type": ["info"],
            "event.outcome": "unknown",
            "cloud.provider": "aws",
            "cloud.service.name": "cloudtrail",
        }
        set_if(event, "cloud.account.id", nonempty_text(record.get("awsAccountId")))
        set_if(event, "file.path", nonempty_text(record.get("digestS3Object")))
        set_if(event, "event.start", timestamp_or_none(record.get("digestStartTime")))
        set_if(event, "event.end", format_timestamp(when))
        namespaced("aws.cloudtrail", record, event)
        return event

    def _kms_service_event(self, record: dict[str, Any], raw: bytes) -> dict[str, Any]:
        """KMS's own EventBridge events (``KMS CMK Rotation``, ``KMS CMK Deletion``, ``KMS Imported Key Material Expiration``)."""
        when = parse_timestamp(record.get("time"))
        if when is None:
            raise RecordError("no timestamp", f"KMS EventBridge 'time' unparseable: {str(record.get('time'))[:80]!r}")
        detail_type = str(record.get("detail-type"))
        detail = as_mapping(record.get("detail"))
        event_id = record.get("id")
        event: dict[str, Any] = {
            "@timestamp": format_timestamp(when),
            "event.id": event_id if isinstance(event_id, str) and event_id else event_id_from_raw(raw),
            "event.kind": "event",
            "event.dataset": self.dataset,
            "event.module": "aws",
            "event.provider": KMS_SOURCE,
            "event.action": detail_type,
            "event.category": ["configuration"],
            "event.type": ["change"] if "Rotation" in detail_type else ["deletion"],
            "event.outcome": "success",
            "cloud.provider": "aws",
            "cloud.service.name": "kms",
        }
        set_if(event, "cloud.account.id", nonempty_text(record.get("account")))
        set_if(event, "cloud.region", nonempty_text(record.get("region")))
        resources = record.get("resources")
        arns = [r for r in resources if isinstance(r, str) and ":key/" in r] if isinstance(resources, list) else []
        key_id = nonempty_text(detail.get("key-id"))
        key_arn = arns[0] if arns else None
        if key_id is None and key_arn:
            key_id = split_key_reference(key_arn)[0]
        set_if(event, "temporal.key.id", key_id)
        set_if(event, "temporal.key.arn", key_arn)
        if detail_type == "KMS CMK Deletion":
            event["temporal.key.state"] = "Deleted"  # not a KMS key state name: the key no longer exists
        elif detail_type == "KMS Imported Key Material Expiration":
            event["temporal.key.state"] = "PendingImport"
        namespaced("aws.cloudtrail", record, event)
        return event

    @staticmethod
    def _identity(identity: dict[str, Any], record: dict[str, Any], event: dict[str, Any]) -> None:
        """``user.*`` as Elastic writes it (``userName``, else the session issuer's; ``user.id`` = ``principalId``), then
        what Elastic leaves empty: the name in the ARN, an IAM Identity Center user's sign-in name and id. Never the
        ``invokedBy`` service: a service acting is not a user."""
        identity_type = nonempty_text(identity.get("type"))
        issuer = as_mapping(as_mapping(identity.get("sessionContext")).get("sessionIssuer"))
        arn = nonempty_text(identity.get("arn"))
        on_behalf = as_mapping(identity.get("onBehalfOf"))
        name = nonempty_text(identity.get("userName")) or nonempty_text(issuer.get("userName")) or arn_user_name(arn)
        if name is None and identity_type == "IdentityCenterUser":
            # AWS's documented sign-in name for Identity Center users ("Username in sign-in CloudTrail events"):
            # additionalEventData.UserName on the successful CredentialChallenge / UserAuthentication / ConsoleLogin.
            name = nonempty_text(as_mapping(record.get("additionalEventData")).get("UserName"))
        set_if(event, "user.name", name)
        set_if(event, "user.id", nonempty_text(identity.get("principalId")) or nonempty_text(on_behalf.get("userId")))
        session = arn.rsplit("/", 1)[-1] if identity_type in ("AssumedRole", "FederatedUser") and arn and "/" in arn else None
        if session:
            # The session name (often the workload or person behind the role) is the last ARN segment.
            event["user.effective.name"] = session
            if "@" in session:
                event["user.email"] = session
        elif name and "@" in name and identity_type == "IdentityCenterUser":
            event["user.email"] = name
        add_related(event, "user", name, session)
        account = nonempty_text(identity.get("accountId")) or nonempty_text(record.get("recipientAccountId"))
        set_if(event, "cloud.account.id", account)

    @staticmethod
    def _source(record: dict[str, Any], event: dict[str, Any]) -> None:
        source_address = record.get("sourceIPAddress")
        ip = clean_ip(source_address)
        if ip:
            event["source.ip"] = ip
            add_related(event, "ip", ip)
        elif nonempty_text(source_address):
            text = str(source_address)[:256]
            event["source.address"] = text
            if text.endswith(".amazonaws.com"):
                event["source.domain"] = text
        set_if(event, "user_agent.original", nonempty_text(record.get("userAgent")))

    @staticmethod
    def _tls(details: dict[str, Any], event: dict[str, Any]) -> None:
        version = nonempty_text(details.get("tlsVersion"))
        if version:
            event["tls.version"] = version.removeprefix("TLSv").removeprefix("TLS").strip() or version
            event["tls.version_protocol"] = "tls"
        set_if(event, "tls.cipher", nonempty_text(details.get("cipherSuite")))
        set_if(event, "tls.client.server_name", nonempty_text(details.get("clientProvidedHostHeader")))

    @staticmethod
    def _kms(name: str, error_code: str | None, record: dict[str, Any], event: dict[str, Any]) -> None:
        request = as_mapping(record.get("requestParameters"))
        response = as_mapping(record.get("responseElements"))
        metadata = as_mapping(response.get("keyMetadata"))
        details = as_mapping(record.get("serviceEventDetails"))
        key_id: str | None = None
        key_arn: str | None = None
        alias: str | None = None
        for reference in (request.get("keyId"), request.get("targetKeyId"), request.get("destinationKeyId"), response.get("keyId"),
                          metadata.get("arn"), metadata.get("keyId"), details.get("keyId")):
            if not isinstance(reference, str) or not reference:
                continue
            found_id, found_arn, found_alias = split_key_reference(reference)
            key_id = key_id or found_id
            key_arn = key_arn or found_arn
            alias = alias or found_alias
        resources = record.get("resources")
        for resource in resources if isinstance(resources, list) else []:
            resource_arn = nonempty_text(as_mapping(resource).get("ARN")) or nonempty_text(as_mapping(resource).get("arn"))
            if resource_arn and ":key/" in resource_arn:
                found_id, found_arn, _ = split_key_reference(resource_arn)
                key_arn = key_arn or found_arn
                key_id = key_id or found_id
        if key_arn and (key_id is None or key_id.startswith("arn:")):
            key_id = split_key_reference(key_arn)[0]
        alias = alias or nonempty_text(request.get("aliasName"))
        set_if(event, "temporal.key.id", key_id)
        set_if(event, "temporal.key.arn", key_arn)
        set_if(event, "temporal.key.name", alias)
        set_if(event, "temporal.key.type", nonempty_text(request.get("keySpec")) if name == "CreateKey" else None)
        set_if(event, "temporal.key.type", nonempty_text(metadata.get("keySpec")) or nonempty_text(metadata.get("customerMasterKeySpec")))
        if not error_code:
            state = nonempty_text(response.get("keyState")) or nonempty_text(metadata.get("keyState")) or STATE_AFTER.get(name)
            set_if(event, "temporal.key.state", state)
            set_if(event, "temporal.key.deletion_date", timestamp_or_none(response.get("deletionDate")))
        window = as_int(response.get("pendingWindowInDays"))
        set_if(event, "temporal.key.pending_window_days", window if window is not None else as_int(request.get("pendingWindowInDays")))
        policy = request.get("policy")
        if name == "PutKeyPolicy" and isinstance(policy, str) and policy.lstrip().startswith("{"):
            try:
                document = orjson.loads(policy)
            except orjson.JSONDecodeError:
                document = None
            if isinstance(document, dict):
                namespaced("aws.cloudtrail.key_policy.document", document, event)
                for field, value in summarize_policy(document).items():
                    set_if(event, f"aws.cloudtrail.key_policy.{field}", value if value != [] else None)
        if name == "CreateGrant":
            grantee = nonempty_text(request.get("granteePrincipal"))
            add_related(event, "user", grantee, nonempty_text(request.get("retiringPrincipal")))
