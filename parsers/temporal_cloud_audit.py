"""``temporal_cloud_audit``: Temporal Cloud control-plane audit records (log-format reference §1, §9.1).

Accepts all three record generations (legacy ``details``/``user_email``, transitional ``principal`` +
``request_id``, current ``x_forwarded_for``/``async_operation_id``/``raw_details``), the sink's snake_case
and the UI/API export's lowerCamelCase, ``emit_time`` as RFC 3339 or ``{seconds, nanos}`` (seconds as
string or number), and ``raw_details`` as an object or a JSON-encoded string (an earlier proto typed it so).

Where things go (rules rely on this):

* ``temporal.api_key.id`` is the API key the caller **authenticated with** (``principal.api_key_id``), and
  then ``temporal.auth_method`` is ``api_key``.
* The **object acted upon** when it is not a user goes to ``temporal.target``: ``type`` (``api_key``,
  ``service_account``, ``user_group``, ``namespace``, ``account``, ``connectivity_rule``, ``export_sink``,
  ``nexus_endpoint``), ``id`` (a list when several), ``name``, and for API keys ``owner_type`` (normalized),
  ``owner_id``, ``disabled``, ``expiry_time``. So CreateAPIKey/UpdateAPIKey/DeleteAPIKey describe their key in
  ``temporal.target.*``, never in ``temporal.api_key.*``.
* Target users (legacy ``details.target_users``, current ``user_id``/``spec.email``) go to ``user.target.email``
  / ``user.target.id``; granted roles/permissions to ``user.changes.roles``.
* CA bundles (``accepted_client_ca`` as PEM text or base64 PEM, wherever it appears in the details) are parsed
  into ``x509.*`` (the certificate expiring first) and ``temporal.certificates.*`` (all of them).

Redacted: any key named like a secret (``token``, ``api_key``, ``secret``...) and bearer/JWT text, everywhere,
including ``temporal_cloud.*`` and ``third_party_details.raw_message``.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any

import orjson

from temporal_siem.kernel.records import RecordError
from temporal_siem.parsers.base import Parser
from temporal_siem.parsers.common import (
    add_related,
    as_str,
    client_ip_from_chain,
    event_id_from_raw,
    format_timestamp,
    forwarded_chain,
    namespaced,
    parse_timestamp,
    redact_text,
    set_if,
)
from temporal_siem.parsers.x509 import add_certificates, certificates_in, looks_like_certificate_text, may_carry_certificate

PREFIX = "temporal_cloud"
ADMIN_ROLES = frozenset({"admin", "owner", "account_admin", "accountadmin", "account admin", "global_admin", "role_admin"})

# Operation (normalized, without the trailing 'API') -> (category, target type) when not derivable from the name.
_OPERATION_AREAS: tuple[tuple[str, str, str | None], ...] = (
    # (substring in the operation, ECS category, temporal.target.type)
    ("ServiceAccountAPIKey", "iam", "api_key"),
    ("APIKey", "iam", "api_key"),
    ("ApiKey", "iam", "api_key"),
    ("ServiceAccount", "iam", "service_account"),
    ("UserGroup", "iam", "user_group"),
    ("User", "iam", None),
    ("Identity", "iam", None),
    ("ExportSink", "configuration", "export_sink"),
    ("NexusEndpoint", "configuration", "nexus_endpoint"),
    ("ConnectivityRule", "configuration", "connectivity_rule"),
    ("Namespace", "configuration", "namespace"),
    ("SearchAttribute", "configuration", "namespace"),
    ("Account", "configuration", "account"),
)
_VERBS: tuple[tuple[str, str], ...] = (
    ("Create", "creation"), ("Invite", "creation"), ("Add", "creation"), ("Delete", "deletion"), ("Remove", "deletion"),
    ("Update", "change"), ("Set", "change"), ("Change", "change"), ("Rename", "change"), ("Failover", "change"),
    ("Rotate", "change"), ("Validate", "info"), ("Get", "access"), ("List", "access"),
)


def normalize_operation(operation: str) -> str:
    """``UpdateNamespaceAPI`` → ``UpdateNamespace``; ``FailoverNamespacesAPI`` → ``FailoverNamespace``."""
    name = operation[:-3] if operation.endswith("API") and len(operation) > 3 else operation
    if name == "FailoverNamespaces":
        return "FailoverNamespace"
    return name


def normalize_principal_type(value: Any) -> str | None:
    text = as_str(value)
    if not text:
        return None
    compact = text.strip().lower().replace("-", "").replace("_", "").replace(" ", "")
    if compact in ("serviceaccount", "ownertypeserviceaccount"):
        return "serviceaccount"
    if compact in ("user", "ownertypeuser"):
        return "user"
    return text.strip().lower()


def _get(record: dict[str, Any], snake: str, camel: str) -> Any:
    value = record.get(snake)
    return record.get(camel) if value is None else value


def _details_object(value: Any) -> Any:
    """``raw_details`` may be a Struct (object) or, in an earlier proto, a JSON-encoded string."""
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


class TemporalCloudAuditParser(Parser):
    name = "temporal_cloud_audit"
    dataset = "temporal_cloud.audit"
    accept_keys = frozenset({"operation"})  # accepts() says no without one
    logsource = {"product": "temporal", "service": "cloud_audit"}

    def accepts(self, record: dict[str, Any]) -> bool:
        return "operation" in record and ("log_id" in record or "logId" in record)

    def parse(self, record: dict[str, Any] | str, raw: bytes) -> list[dict[str, Any]]:
        if not isinstance(record, dict):
            raise RecordError("not a JSON object", "Temporal Cloud audit records are JSON objects")
        operation = record.get("operation")
        if not isinstance(operation, str) or not operation.strip():
            raise RecordError("missing operation", f"operation is {type(operation).__name__}: {str(operation)[:60]}")
        operation = operation.strip()
        emitted = parse_timestamp(_get(record, "emit_time", "emitTime"))
        if emitted is None:
            raise RecordError("no timestamp", f"emit_time/emitTime unparseable: {str(_get(record, 'emit_time', 'emitTime'))[:80]}")

        details = record.get("details")
        details = details if isinstance(details, dict) else {}
        raw_details = _details_object(_get(record, "raw_details", "rawDetails"))
        spec_source = raw_details if isinstance(raw_details, dict) else {}
        principal = record.get("principal")
        principal = principal if isinstance(principal, dict) else {}

        normalized = normalize_operation(operation)
        event: dict[str, Any] = {
            "@timestamp": format_timestamp(emitted),
            "event.id": as_str(_get(record, "log_id", "logId")) or event_id_from_raw(raw),
            "event.kind": "event",
            "event.dataset": self.dataset,
            "event.module": PREFIX,
            "event.provider": "temporal-cloud",
            "event.action": operation,
            "temporal.operation": normalized,
            "temporal.record_generation": self._generation(record),
        }
        self._outcome(record, details, spec_source, event)
        self._principal(record, principal, event)
        self._addresses(record, event)
        target_type = self._categories(normalized, event)
        self._namespace(details, spec_source, event)
        self._users(details, spec_source, event)
        self._target(normalized, target_type, spec_source, event)
        if _details_may_carry_certificate(details, raw_details):
            self._certificates(details, raw_details, event)
        self._unparsed_ca(details, raw_details, event)

        version = _get(record, "version", "version")
        if isinstance(version, int) and not isinstance(version, bool):
            event["temporal.record_version"] = version
        elif isinstance(version, str) and version.strip().isdigit():
            event["temporal.record_version"] = int(version)
        set_if(event, "temporal.async_operation_id", as_str(_get(record, "async_operation_id", "asyncOperationId")))
        set_if(event, "temporal.request_id", as_str(_get(record, "request_id", "requestId")))
        set_if(event, "log.level", as_str(record.get("level")))
        fingerprints = details.get("client_ca_fingerprints", details.get("clientCaFingerprints"))
        if isinstance(fingerprints, list):
            set_if(event, "temporal.client_ca_fingerprints", [str(f) for f in fingerprints if isinstance(f, (str, int))])

        vendor = dict(record)
        if "raw_details" in vendor or "rawDetails" in vendor:
            vendor["raw_details" if "raw_details" in vendor else "rawDetails"] = raw_details
        namespaced(PREFIX, vendor, event)
        return [event]

    # -- pieces ---------------------------------------------------------------------------------

    @staticmethod
    def _generation(record: dict[str, Any]) -> str:
        if any(k in record for k in ("x_forwarded_for", "xForwardedFor", "async_operation_id", "asyncOperationId")):
            return "current"
        if "principal" in record or "raw_details" in record or "rawDetails" in record:
            return "transitional"
        return "legacy"

    @staticmethod
    def _outcome(record: dict[str, Any], details: dict[str, Any], spec: dict[str, Any], event: dict[str, Any]) -> None:
        status = as_str(record.get("status"))
        level = as_str(record.get("level")) or ""
        if status is None or not status.strip():
            event["event.outcome"] = "failure" if level in ("LOG_LEVEL_ERROR", "LOG_LEVEL_FATAL") else "unknown"
            return
        if status.strip().upper() == "OK":
            event["event.outcome"] = "success"
            return
        event["event.outcome"] = "failure"
        event["error.code"] = status.strip()
        message = details.get("additional_message") or spec.get("error") or spec.get("message")
        if isinstance(message, str) and message:
            event["error.message"] = redact_text(message)

    @staticmethod
    def _principal(record: dict[str, Any], principal: dict[str, Any], event: dict[str, Any]) -> None:
        ptype = normalize_principal_type(principal.get("type"))
        name = as_str(principal.get("name")) or None
        pid = as_str(principal.get("id")) or None
        email = as_str(_get(record, "user_email", "userEmail")) or None
        if name is None and email:
            name = email
            ptype = ptype or "user"
        set_if(event, "temporal.principal.type", ptype)
        set_if(event, "temporal.principal.id", pid)
        set_if(event, "temporal.principal.name", name)
        set_if(event, "user.name", name)
        set_if(event, "user.id", pid)
        if name and "@" in name and ptype != "serviceaccount":
            event["user.email"] = name
            event["user.domain"] = name.rpartition("@")[2]
        elif email:
            event["user.email"] = email
        add_related(event, "user", name, email if email != name else None)
        key_id = as_str(_get(principal, "api_key_id", "apiKeyId"))
        if key_id:
            event["temporal.api_key.id"] = key_id
            event["temporal.auth_method"] = "api_key"
            if ptype in ("user", "serviceaccount"):
                event["temporal.api_key.owner_type"] = ptype
                set_if(event, "temporal.api_key.owner_id", pid)

    @staticmethod
    def _addresses(record: dict[str, Any], event: dict[str, Any]) -> None:
        chain_text = _get(record, "x_forwarded_for", "xForwardedFor")
        if not isinstance(chain_text, str) or not chain_text.strip():
            chain_text = _get(record, "caller_ip_address", "callerIpAddress")
        if not isinstance(chain_text, str) or not chain_text.strip():
            return
        chain, client = _chain(chain_text)
        if client:
            event["source.ip"] = client
        else:  # "IP address or server name": a name goes to source.address
            set_if(event, "source.address", chain_text.split(",", 1)[0].strip()[:255])
        add_related(event, "ip", *chain)

    @staticmethod
    def _categories(normalized: str, event: dict[str, Any]) -> str | None:
        if normalized == "UserLogin":
            event["event.category"] = ["authentication", "session"]
            event["event.type"] = ["start"]
            return None
        category, target_type = "api", None
        for needle, area, ttype in _OPERATION_AREAS:
            if needle in normalized:
                category, target_type = area, ttype
                break
        verb = next((etype for prefix, etype in _VERBS if normalized.startswith(prefix)), "info")
        types = [verb]
        if category == "iam":
            if target_type is None:
                types.append("user")
            elif target_type == "user_group":
                types.append("group")
            elif target_type == "service_account":
                types.append("user")
        event["event.category"] = [category]
        event["event.type"] = types
        return target_type

    @staticmethod
    def _namespace(details: dict[str, Any], spec: dict[str, Any], event: dict[str, Any]) -> None:
        namespace = details.get("namespace") or spec.get("namespace")
        inner = spec.get("spec")
        if not namespace and isinstance(inner, dict):
            namespace = inner.get("name") if "name" in inner and ("regions" in inner or "retention_days" in inner or "retentionDays" in inner) else None
        if isinstance(namespace, str) and namespace:
            event["temporal.namespace"] = namespace
        namespaces = spec.get("namespaces")
        if not namespace and isinstance(namespaces, list):
            names = [n for n in namespaces if isinstance(n, str)]
            if names:
                event["temporal.namespace"] = names[0]

    @staticmethod
    def _users(details: dict[str, Any], spec: dict[str, Any], event: dict[str, Any]) -> None:
        emails: list[str] = []
        ids: list[str] = []
        targets: list[Any] = []
        for key in ("target_users", "targetUsers"):
            if isinstance(details.get(key), list):
                targets.extend(details[key])
        for key in ("user_id", "userId", "user_ids", "userIds"):
            value = spec.get(key)
            targets.extend(value if isinstance(value, list) else [value])
        inner = _inner_spec(spec)
        for source in (spec, inner):
            value = source.get("email")
            if isinstance(value, str):
                targets.append(value)
        for item in targets:
            text = as_str(item)
            if not text:
                continue
            bucket = emails if "@" in text else ids
            if text not in bucket:
                bucket.append(text)
        set_if(event, "user.target.email", emails)
        set_if(event, "user.target.id", ids)
        add_related(event, "user", *emails)

        roles: list[str] = []
        legacy_roles = details.get("roles")
        if isinstance(legacy_roles, list):
            roles.extend(str(r) for r in legacy_roles if isinstance(r, (str, int)))
        access = inner.get("access") if isinstance(inner.get("access"), dict) else spec.get("access")
        if isinstance(access, dict):
            account = access.get("account_access", access.get("accountAccess"))
            if isinstance(account, dict):
                role = account.get("role")
                if isinstance(role, str) and role:
                    roles.append(role)
                for extra in account.get("roles") or []:
                    if isinstance(extra, str):
                        roles.append(extra)
            permission = access.get("permission")
            if isinstance(permission, str) and permission:
                roles.append(f"{spec.get('namespace')}:{permission}" if spec.get("namespace") else permission)
            ns_access = access.get("namespace_accesses", access.get("namespaceAccesses"))
            if isinstance(ns_access, dict):
                for ns, grant in ns_access.items():
                    if isinstance(grant, dict) and isinstance(grant.get("permission"), str):
                        roles.append(f"{ns}:{grant['permission']}")
        if roles:
            event["user.changes.roles"] = list(dict.fromkeys(roles))
            if any(r.strip().lower().replace("-", "_") in ADMIN_ROLES for r in roles) and "admin" not in event["event.type"]:
                event["event.type"].append("admin")

    @staticmethod
    def _target(normalized: str, target_type: str | None, spec: dict[str, Any], event: dict[str, Any]) -> None:
        if target_type is None:
            return
        target: dict[str, Any] = {"type": target_type}
        inner = _inner_spec(spec)
        id_keys = {
            "api_key": ("key_id", "keyId", "key_ids", "keyIds", "api_key_id", "apiKeyId"),
            "service_account": ("service_account_id", "serviceAccountId"),
            "user_group": ("group_id", "groupId"),
            "connectivity_rule": ("connectivity_rule_id", "connectivityRuleId"),
            "nexus_endpoint": ("endpoint_id", "endpointId"),
            "namespace": ("namespace",),
        }.get(target_type, ())
        ids: list[str] = []
        for key in id_keys:
            value = spec.get(key)
            for item in value if isinstance(value, list) else [value]:
                text = as_str(item)
                if text and text not in ids:
                    ids.append(text)
        if not ids and target_type == "namespace" and event.get("temporal.namespace"):
            ids.append(event["temporal.namespace"])
        if ids:
            target["id"] = ids[0] if len(ids) == 1 else ids
        name = inner.get("display_name", inner.get("displayName", inner.get("name")))
        if target_type == "export_sink" and not name:
            name = spec.get("sink_name", spec.get("sinkName"))
        if isinstance(name, str) and name:
            target["name"] = name
        if target_type == "api_key":
            owner_type = normalize_principal_type(inner.get("owner_type", inner.get("ownerType")))
            set_if(target, "owner_type", owner_type)
            set_if(target, "owner_id", as_str(inner.get("owner_id", inner.get("ownerId"))))
            disabled = inner.get("disabled")
            if isinstance(disabled, bool):
                target["disabled"] = disabled
            elif isinstance(disabled, str) and disabled.lower() in ("true", "false"):
                target["disabled"] = disabled.lower() == "true"
            expiry = parse_timestamp(inner.get("expiry_time", inner.get("expiryTime")))
            if expiry is not None:
                target["expiry_time"] = format_timestamp(expiry)
            if normalized == "CreateServiceAccountAPIKey" and "owner_type" not in target:
                target["owner_type"] = "serviceaccount"
        for key, value in target.items():
            event[f"temporal.target.{key}"] = value

    @staticmethod
    def _certificates(details: dict[str, Any], raw_details: Any, event: dict[str, Any]) -> None:
        texts: list[str] = []
        _collect_certificate_texts(details, texts, 0)
        _collect_certificate_texts(raw_details, texts, 0)
        if texts:
            add_certificates(event, certificates_in(texts), at=parse_timestamp(event["@timestamp"]))


    @staticmethod
    def _unparsed_ca(details: dict[str, Any], raw_details: Any, event: dict[str, Any]) -> None:
        """A CA bundle that yielded no certificate (truncated, redacted, an unusual encoding) is still a value that
        changed: its digest (whitespace removed, so re-wrapping PEM lines is no change) goes to
        ``temporal.client_ca_digest`` with ``temporal.client_ca_unparsed``, for the client-CA registry (issue 14 class 4)."""
        if "temporal.certificates.sha256" in event or "temporal.client_ca_fingerprints" in event:
            return
        values: list[str] = []
        _collect_named(details, CA_KEYS, values, 0)
        _collect_named(raw_details, CA_KEYS, values, 0)
        if values:
            event["temporal.client_ca_digest"] = value_digest(values)
            event["temporal.client_ca_unparsed"] = True


CA_KEYS = frozenset({"accepted_client_ca", "acceptedclientca", "client_ca", "clientca", "ca_certificates", "cacertificates"})


def value_digest(values: list[str]) -> str:
    """sha256 of the values with all whitespace removed, in order: the same bundle gives the same digest however
    its PEM lines were wrapped or indented."""
    normalized = "\x1f".join("".join(value.split()) for value in values)
    return hashlib.sha256(normalized.encode("utf-8", "surrogatepass")).hexdigest()


def _collect_named(value: Any, keys: frozenset[str], out: list[str], depth: int) -> None:
    """Non-empty strings (or lists of strings) under the given key names (case-insensitive), bounded in depth and count."""
    if depth > 12 or len(out) >= 16:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and key.lower() in keys:
                for text in item if isinstance(item, list) else [item]:
                    if isinstance(text, str) and text.strip() and len(out) < 16:
                        out.append(text)
            else:
                _collect_named(item, keys, out, depth + 1)
    elif isinstance(value, list):
        for item in value[:256]:
            _collect_named(item, keys, out, depth + 1)


MAX_CHAIN_CHARS = 2048  # ~50 hops; a longer X-Forwarded-For is hostile or broken, its tail is not evaluated


def _chain(text: str) -> tuple[list[str], str | None]:
    """Valid IPs of a forwarded chain and the client among them. Read-only result."""
    if len(text) > 256:  # only short, repeating chains are worth a cache slot (and cannot bloat it)
        return _parse_chain(text[:MAX_CHAIN_CHARS])
    return _cached_chain(text)


def _parse_chain(text: str) -> tuple[list[str], str | None]:
    chain = forwarded_chain(text)
    return chain, client_ip_from_chain(chain)


@lru_cache(maxsize=4096)
def _cached_chain(text: str) -> tuple[list[str], str | None]:
    return _parse_chain(text)


def _details_may_carry_certificate(details: Any, raw_details: Any) -> bool:
    """Cheap gate before walking the details: one orjson dump and a byte search (not ``raw``, which for a
    Pub/Sub or Kinesis delivery is the base64 envelope)."""
    try:
        blob = orjson.dumps([details, raw_details])
    except (TypeError, orjson.JSONEncodeError):
        return True
    return may_carry_certificate(blob)


def _inner_spec(spec: dict[str, Any]) -> dict[str, Any]:
    inner = spec.get("spec")
    return inner if isinstance(inner, dict) else {}


def _collect_certificate_texts(value: Any, out: list[str], depth: int) -> None:
    """Every string in the details that carries a certificate (PEM or base64 PEM), bounded in depth and count."""
    if depth > 12 or len(out) >= 16:
        return
    if isinstance(value, dict):
        for item in value.values():
            _collect_certificate_texts(item, out, depth + 1)
    elif isinstance(value, list):
        for item in value[:256]:
            _collect_certificate_texts(item, out, depth + 1)
    elif looks_like_certificate_text(value):
        out.append(value)
