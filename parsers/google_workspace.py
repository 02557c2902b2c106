"""``google_workspace``: Admin SDK Reports API activities (log-format reference §5, ECS per §9.5).

Input shapes: ``{"kind": "admin#reports#activities", "items": [...]}`` pages (unwrapped by
:mod:`parsers.envelopes`) and single activities, with ``events`` as the API's array or as one object (Elastic's
collector splits activities that way); activities stored **one row per event** (``name``, ``type``, ``parameters`` at
the top level beside ``id``/``actor``, as BigQuery exports and other SIEMs keep them); and Cloud Logging
**LogEntry** records (``protoPayload`` AuditLog with a ``ccc_hosted_reporting.ActivityProto`` ``metadata``, the shape a
log sink writes to Pub/Sub), whose LogEntry fields go to ``google_workspace.cloud_logging.*``. One activity yields
**one ECS event per element of ``events``**.

ECS as Elastic's integration writes it: every ``login`` event is ``event.category: authentication`` (plus
``session`` for login_success/login_failure/logout), ``saml`` events ``authentication`` + ``session``.

Choices worth knowing:

* ``event.id`` is ``id.uniqueQualifier`` (a string) when the activity has one event; with several, each event's id is
  ``<uniqueQualifier>-<index>`` so documents stay distinct in a sink that uses ``event.id`` as the document id.
* ``event.dataset`` is ``google_workspace.<applicationName>`` (``login``, ``saml``, ``admin``, ``token``...).
* Parameters become ``google_workspace.<applicationName>.<name>`` with the application prefix dropped as Elastic does
  (``login_failure_type`` → ``google_workspace.login.failure_type``, ``saml_status_code`` →
  ``google_workspace.saml.status_code``). ``intValue`` (an int64 sent as a JSON string) becomes an int, ``boolValue``
  a bool, ``multiValue`` a list; ``login_timestamp`` (µs since the epoch) also gives ``event.start``.
* Outcome: ``login_success`` → success, ``login_failure`` → failure (login and saml); ``login_challenge`` /
  ``login_verification`` → success when ``login_challenge_status`` starts with "challenge passed" or is "passed"
  (any case), failure when another status is given; ``risky_sensitive_action_blocked`` → failure; otherwise unknown.
* ``error.code`` is the failure type (``failure_type`` for saml, ``login_failure_type`` for login) and
  ``error.message`` a readable line with the SAML status codes when present.
* The activity, narrowed to the one event, is kept under ``google_workspace.*`` with Google's key spellings.

Redacted: secret-named keys and token-looking text anywhere (:func:`parsers.common.redact`), and the value of
any parameter whose *name* is secret-like (``{"name": "access_token", "value": ...}``), e.g. OAuth tokens
echoed by the ``token`` application.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from temporal_siem.kernel.records import RecordError
from temporal_siem.parsers.base import Parser
from temporal_siem.parsers.common import (
    REDACTED,
    add_related,
    as_int,
    as_mapping,
    clean_ip,
    event_id_from_raw,
    format_timestamp,
    is_secret_key,
    namespaced,
    nonempty_text,
    parse_timestamp,
    redact,
    set_if,
    split_email,
)

_APP_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
# Application names that would collide with the activity's own keys under google_workspace.*.
_RESERVED = frozenset({"kind", "etag", "id", "actor", "events", "event", "ipaddress", "ownerdomain", "networkinfo", "resourcedetails"})

ACCOUNT_WARNING_IAM = ("account_disabled",)
IAM_EVENTS = frozenset({"2sv_enroll", "2sv_disable", "password_edit", "recovery_email_edit", "recovery_phone_edit",
                        "recovery_secret_qa_edit", "titanium_enroll", "titanium_unenroll"})

SAML_FAILURES = {
    "failure_app_not_configured_for_user": "SAML app not configured for the user",
    "failure_app_not_enabled_for_user": "SAML app not enabled for the user",
    "failure_invalid_sp_id": "invalid service provider id",
    "failure_invalid_user_id_mapping": "invalid user id mapping",
    "failure_malformed_request": "malformed SAML request",
    "failure_no_passive": "passive authentication not possible",
    "failure_request_denied": "SAML request denied",
    "failure_unknown": "unknown SAML failure",
    "failure_user_id_mapping_unavailable": "user id mapping unavailable",
}
LOGIN_FAILURES = {
    "login_failure_invalid_password": "invalid password",
    "login_failure_account_disabled": "account disabled",
    "login_failure_invalid_second_factor": "invalid second factor",
    "login_failure_access_code_disallowed": "access code disallowed",
    "login_failure_unknown": "unknown login failure",
}





def parameter_value(parameter: dict[str, Any]) -> Any:
    """The one value member of a Reports API parameter, typed (int64 strings → int, "true" → True)."""
    if "value" in parameter:
        return parameter["value"]
    if "intValue" in parameter:
        number = as_int(parameter["intValue"])
        return number if number is not None else parameter["intValue"]
    if "boolValue" in parameter:
        flag = parameter["boolValue"]
        if isinstance(flag, str) and flag.lower() in ("true", "false"):
            return flag.lower() == "true"
        return flag
    if "multiValue" in parameter:
        return parameter["multiValue"]
    if "multiIntValue" in parameter:
        values = parameter["multiIntValue"]
        return [as_int(v) if as_int(v) is not None else v for v in values] if isinstance(values, list) else values
    if "messageValue" in parameter:
        return parameter["messageValue"]
    if "multiMessageValue" in parameter:
        return parameter["multiMessageValue"]
    return None


def parameters_of(event: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    raw = event.get("parameters")
    for parameter in raw if isinstance(raw, list) else []:
        if isinstance(parameter, dict) and isinstance(parameter.get("name"), str) and parameter["name"]:
            params.setdefault(parameter["name"], parameter_value(parameter))
    return params


_VALUE_MEMBERS = ("value", "intValue", "boolValue", "multiValue", "multiIntValue", "messageValue", "multiMessageValue")


def _mask_secret_parameters(record: dict[str, Any]) -> dict[str, Any]:
    """Parameters are name/value pairs, so key-name redaction cannot see ``{"name": "access_token", "value": ...}``."""
    events = record.get("events")
    items = [events] if isinstance(events, dict) else events if isinstance(events, list) else []
    if not any(isinstance(e, dict) and isinstance(e.get("parameters"), list) for e in items):
        return record
    masked_events = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("parameters"), list):
            parameters = [
                {k: (REDACTED if k in _VALUE_MEMBERS else v) for k, v in p.items()}
                if isinstance(p, dict) and isinstance(p.get("name"), str) and is_secret_key(p["name"]) else p
                for p in item["parameters"]
            ]
            item = {**item, "parameters": parameters}
        masked_events.append(item)
    return {**record, "events": masked_events[0] if isinstance(events, dict) else masked_events}


def challenge_outcome(status: Any) -> str:
    if not isinstance(status, str) or not status.strip():
        return "unknown"
    text = status.strip().lower()
    return "success" if text.startswith("challenge passed") or text == "passed" else "failure"


def admin_categories(name: str) -> tuple[list[str], list[str], str]:
    """Admin console events as Elastic's admin data stream files them: all ``iam``, settings also ``configuration``;
    the type from the verb, plus ``user`` / ``group`` for user and group objects."""
    categories = ["iam", "configuration"] if "SETTING" in name or name.startswith(("TOGGLE_", "ENABLE_", "ALLOW_")) else ["iam"]
    verb = "creation" if name.startswith("CREATE_") else "deletion" if name.startswith(("DELETE_", "REMOVE_")) else "change"
    types = [verb]
    if "USER" in name or name.endswith(("_ROLE", "_PRIVILEGE", "_PRIVILEGES")):
        types.append("user")
    if "GROUP" in name:
        types.append("group")
    return categories, types, "unknown"


def classify(application: str, name: str, event_type: str, params: dict[str, Any]) -> tuple[list[str], list[str], str]:
    """(event.category, event.type, event.outcome) for one Reports API event."""
    if application in ("login", "saml"):
        if name == "login_success":
            return ["authentication", "session"], ["start"], "success"
        if name == "login_failure":
            return ["authentication", "session"], ["start", "denied"], "failure"
    if application == "admin":
        return admin_categories(name)
    if application != "login":
        return [], ["info"], "unknown"
    if name == "logout":
        return ["authentication", "session"], ["end"], "unknown"
    if name in ("login_challenge", "login_verification"):
        outcome = challenge_outcome(params.get("login_challenge_status"))
        return ["authentication"], ["info", "denied"] if outcome == "failure" else ["info"], outcome
    # Every login-application event is authentication, as Elastic's google_workspace integration writes it (account
    # suspensions, 2SV and password changes included); the type says what kind.
    if name.startswith(ACCOUNT_WARNING_IAM):
        return ["authentication"], ["user", "change"], "unknown"
    if name in IAM_EVENTS or event_type in ("2sv_change", "password_change", "recovery_info_change", "titanium_change"):
        return ["authentication"], ["user", "change"], "unknown"
    if name == "risky_sensitive_action_blocked":
        return ["authentication"], ["info", "denied"], "failure"
    return ["authentication"], ["info"], "unknown"


_ROW_EVENT_KEYS = ("name", "type", "parameters")
_LOG_PARAMETER_VALUES = {"value": "value", "intValue": "intValue", "boolValue": "boolValue", "multiStrValue": "multiValue",
                         "multiValue": "multiValue", "multiIntValue": "multiIntValue", "messageValue": "messageValue"}


def activity_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """An activity stored one row per event (``name``, ``type``, ``parameters`` beside ``id`` / ``actor``, as BigQuery
    exports and other SIEMs keep it) in the Reports API shape, ``events`` holding the one event."""
    activity = {key: value for key, value in row.items() if key not in _ROW_EVENT_KEYS}
    activity["events"] = [{key: row[key] for key in _ROW_EVENT_KEYS if key in row}]
    return activity


def is_log_entry(record: dict[str, Any]) -> bool:
    """A Cloud Logging LogEntry carrying a Workspace activity (the shape a log sink writes to Pub/Sub or storage)."""
    payload = record.get("protoPayload")
    if not isinstance(payload, dict):
        return False
    metadata = payload.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("event"), list):
        return False
    kind = metadata.get("@type")
    return (isinstance(kind, str) and kind.endswith("ccc_hosted_reporting.ActivityProto")) or isinstance(metadata.get("activityId"), dict)


def activity_from_log_entry(entry: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the Reports API activity a LogEntry carries, the LogEntry's own fields worth keeping).

    ``protoPayload.serviceName`` ``login.googleapis.com`` is the application ``login``; ``metadata.activityId``
    gives the time (``timeUsec``, µs) and the unique qualifier; ``metadata.event[]`` are the events with
    ``eventName``/``eventType``/``parameter[]`` (``multiStrValue`` is the API's ``multiValue``);
    ``authenticationInfo.principalEmail`` the actor and ``requestMetadata.callerIp`` the address.
    """
    payload = as_mapping(entry.get("protoPayload"))
    metadata = as_mapping(payload.get("metadata"))
    service = nonempty_text(payload.get("serviceName")) or ""
    application = service.removesuffix(".googleapis.com") if service.endswith(".googleapis.com") else service or "unknown"
    activity_id = as_mapping(metadata.get("activityId"))
    micros = as_int(activity_id.get("timeUsec"))
    when = parse_timestamp(micros) if micros is not None and micros > 10**15 else parse_timestamp(entry.get("timestamp"))
    events = []
    for item in metadata.get("event") or []:
        if not isinstance(item, dict):
            continue
        parameters = []
        for parameter in item.get("parameter") or []:
            if not isinstance(parameter, dict):
                continue
            converted: dict[str, Any] = {"name": parameter.get("name")}
            for source_key, target_key in _LOG_PARAMETER_VALUES.items():
                if source_key in parameter:
                    converted[target_key] = parameter[source_key]
                    break
            parameters.append(converted)
        events.append({"type": item.get("eventType"), "name": item.get("eventName"), "parameters": parameters})
    authentication = as_mapping(payload.get("authenticationInfo"))
    request = as_mapping(payload.get("requestMetadata"))
    email = nonempty_text(authentication.get("principalEmail"))
    activity: dict[str, Any] = {
        "id": {"time": format_timestamp(when) if when else None, "uniqueQualifier": activity_id.get("uniqQualifier"),
               "applicationName": application},
        "actor": {"email": email, "callerType": "USER"} if email else {},
        "ipAddress": request.get("callerIp", request.get("callerIP")),
        "events": events,
    }
    extra: dict[str, Any] = {}
    set_if(extra, "user_agent.original", nonempty_text(request.get("callerSuppliedUserAgent")))
    for key, field in (("insertId", "insert_id"), ("logName", "log_name"), ("severity", "severity")):
        set_if(extra, f"google_workspace.cloud_logging.{field}", nonempty_text(entry.get(key)))
    set_if(extra, "google_workspace.cloud_logging.method_name", nonempty_text(payload.get("methodName")))
    set_if(extra, "google_workspace.cloud_logging.resource_name", nonempty_text(payload.get("resourceName")))
    return activity, extra


class GoogleWorkspaceParser(Parser):
    name = "google_workspace"
    dataset = "google_workspace"
    accept_keys = frozenset({"kind", "id", "protoPayload"})  # accepts() says no without one
    logsource = {"product": "google_workspace", "service": "google_workspace.admin"}

    def accepts(self, record: dict[str, Any]) -> bool:
        if record.get("kind") == "admin#reports#activity":
            return True
        identity = record.get("id")
        if isinstance(identity, dict) and "applicationName" in identity:
            return "events" in record or isinstance(record.get("name"), str)
        return is_log_entry(record)

    def parse(self, record: dict[str, Any] | str, raw: bytes) -> list[dict[str, Any]]:
        if not isinstance(record, dict):
            raise RecordError("not a JSON object", "Reports API activity must be an object")
        if is_log_entry(record):
            activity, extra = activity_from_log_entry(record)
            events = self._parse_activity(activity, raw)
            for event in events:
                for key, value in extra.items():
                    event.setdefault(key, value)
            return events
        if "events" not in record and isinstance(record.get("name"), str):
            record = activity_from_row(record)
        return self._parse_activity(record, raw)

    def _parse_activity(self, record: dict[str, Any], raw: bytes) -> list[dict[str, Any]]:
        identity = as_mapping(record.get("id"))
        when = parse_timestamp(identity.get("time"))
        if when is None:
            raise RecordError("no timestamp", f"Reports API 'id.time' unparseable: {str(identity.get('time'))[:80]!r}")
        application = str(identity.get("applicationName") or "unknown").lower()
        raw_events = record.get("events")
        if isinstance(raw_events, dict):
            raw_events = [raw_events]
        if not isinstance(raw_events, list):
            raise RecordError("missing field", "Reports API activity without 'events'")
        events = [e for e in raw_events if isinstance(e, dict)]
        if not events:
            raise RecordError("missing field", "Reports API activity with no event objects in 'events'")
        qualifier = identity.get("uniqueQualifier")
        qualifier_text = str(qualifier) if isinstance(qualifier, (str, int)) and not isinstance(qualifier, bool) and qualifier != "" else None
        base_id = qualifier_text or event_id_from_raw(raw)
        masked = _mask_secret_parameters(record)  # namespaced() redacts the rest
        out = []
        for index, item in enumerate(events):
            event_id = base_id if len(events) == 1 else f"{base_id}-{index}"
            out.append(self._event(record, masked, item, index, application, when, event_id))
        return out

    def _event(self, record: dict[str, Any], masked: dict[str, Any], item: dict[str, Any], index: int,
               application: str, when: datetime, event_id: str) -> dict[str, Any]:
        name = nonempty_text(item.get("name")) or "unknown"
        event_type = nonempty_text(item.get("type")) or ""
        params = parameters_of(item)
        categories, types, outcome = classify(application, name, event_type, params)
        event: dict[str, Any] = {
            "@timestamp": format_timestamp(when),
            "event.id": event_id,
            "event.kind": "event",
            "event.dataset": f"google_workspace.{application}" if _APP_NAME.match(application) else "google_workspace.unknown",
            "event.module": "google_workspace",
            "event.provider": application,
            "event.action": name,
            "event.type": types,
            "event.outcome": outcome,
        }
        set_if(event, "event.category", categories)
        set_if(event, "google_workspace.event.type", event_type)
        set_if(event, "google_workspace.event.name", name)
        identity = as_mapping(record.get("id"))
        set_if(event, "organization.id", nonempty_text(identity.get("customerId")))
        self._actor(as_mapping(record.get("actor")), event)
        ip = clean_ip(record.get("ipAddress"))
        if ip:
            event["source.ip"] = ip
            add_related(event, "ip", ip)
        else:
            set_if(event, "source.address", nonempty_text(record.get("ipAddress")))
        self._parameters(application, params, event)
        narrowed = dict(masked)
        masked_events = masked.get("events")
        if isinstance(masked_events, list):
            kept = [e for e in masked_events if isinstance(e, dict)]
            narrowed["events"] = kept[index] if index < len(kept) else item
        namespaced("google_workspace", narrowed, event)
        return event

    @staticmethod
    def _actor(actor: dict[str, Any], event: dict[str, Any]) -> None:
        email = nonempty_text(actor.get("email"))
        local, domain = split_email(email)
        if email:
            event["user.email"] = event["source.user.email"] = email
            for prefix in ("user", "source.user"):
                set_if(event, f"{prefix}.name", local)
                set_if(event, f"{prefix}.domain", domain)
            add_related(event, "user", email, local)
        profile = actor.get("profileId")
        if isinstance(profile, (str, int)) and not isinstance(profile, bool) and profile != "":
            event["user.id"] = event["source.user.id"] = str(profile)
        if not email and nonempty_text(actor.get("key")):
            event["user.name"] = str(actor["key"])
            add_related(event, "user", event["user.name"])

    @staticmethod
    def _parameters(application: str, params: dict[str, Any], event: dict[str, Any]) -> None:
        if not _APP_NAME.match(application) or application.replace("_", "") in _RESERVED:
            return
        prefix = f"google_workspace.{application}."
        strip = application + "_"
        for param_name, value in params.items():
            key = param_name[len(strip):] if param_name.startswith(strip) and len(param_name) > len(strip) else param_name
            redacted_value = redact({param_name: value})[param_name]
            if isinstance(redacted_value, dict):
                namespaced(prefix + key, redacted_value, event)
            else:
                set_if(event, prefix + key, redacted_value)
        affected = nonempty_text(params.get("affected_email_address"))
        if affected:
            local, domain = split_email(affected)
            event["user.target.email"] = affected
            set_if(event, "user.target.name", local)
            set_if(event, "user.target.domain", domain)
            add_related(event, "user", affected)
        stamp = as_int(params.get("login_timestamp"))
        if stamp is not None:
            try:
                event["event.start"] = format_timestamp(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=stamp))
            except OverflowError:
                pass
        if application == "saml":
            event["temporal.auth_method"] = "saml"
            set_if(event, "service.name", nonempty_text(params.get("application_name")))
        if event.get("event.outcome") != "failure":
            return
        failure = nonempty_text(params.get("failure_type")) or nonempty_text(params.get("login_failure_type"))
        set_if(event, "error.code", failure)
        status = nonempty_text(params.get("saml_status_code"))
        second = nonempty_text(params.get("saml_second_level_status_code"))
        parts = [SAML_FAILURES.get(failure) or LOGIN_FAILURES.get(failure) or failure] if failure else []
        if status:
            parts.append(f"status {status}" + (f" / {second}" if second else ""))
        set_if(event, "error.message", "; ".join(p for p in parts if p))
