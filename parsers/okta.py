"""``okta``: Okta System Log LogEvent objects (log-format reference §3, ECS per §9.3).

Input shapes: one LogEvent per line, ``/api/v1/logs`` JSON array pages and the EventBridge log-streaming
wrapper (the last two are unwrapped by :mod:`parsers.envelopes`). Mapping follows Elastic's okta pipeline so
rules written for it keep working, with these deliberate differences:

* ``event.outcome``: ``SUCCESS``/``ALLOW`` → success, ``FAILURE``/``DENY`` → failure, anything else (``SKIPPED``,
  ``CHALLENGE``, ``RATE_LIMIT``, ``UNKNOWN``) → unknown; ``event.type`` gets ``denied`` for ``DENY`` and for failed
  authentication events, because ``user.authentication.sso`` fires on failed sign-ons too.
* ``debugContext.debugData`` values are strings; the pseudo-maps ``behaviors`` / ``risk`` (``{k=v, ...}``) and the
  JSON-in-a-string ``logOnlySecurityData`` are decoded into ``okta.debug_context.debug_data.*`` (``risk_level``,
  ``risk_reasons``, ``risk_behaviors``, ``threat_suspected``, ``log_only_security_data.*``); the raw strings stay in
  ``okta.debugContext.debugData.*``.
* ``service.name`` is the first ``AppInstance`` target's display name (the app signed in to, e.g. Temporal Cloud),
  as the Entra and Google parsers do, so one rule can ask "sign-in to Temporal Cloud" across identity providers.
* The whole record is kept under ``okta.*`` with Okta's own key spellings (``okta.target.type`` is the list of every
  target's type, Elasticsearch style), so rules can match app instances (``okta.target.displayName``) directly.

Redacted: any secret-named key and bearer/JWT-looking text anywhere in the record (:func:`parsers.common.redact`),
and token-bearing query parameters (``sessionToken``, ``token``, ``code``, ``id_token``, ``SAMLResponse``...) in
``debugData`` URLs such as ``url`` / ``requestUri`` / ``redirectUri``.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

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
    namespaced,
    parse_timestamp,
    redact_text,
    set_if,
    split_email,
)

SUCCESS_RESULTS = frozenset({"SUCCESS", "ALLOW"})
FAILURE_RESULTS = frozenset({"FAILURE", "DENY"})

# (eventType prefix, categories, types); the longest matching prefix wins. Types get verb refinements below.
CATEGORY_RULES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("user.session.start", ("authentication", "session"), ("start",)),
    ("user.session.end", ("authentication", "session"), ("end",)),
    ("user.session.expire", ("authentication", "session"), ("end",)),
    ("user.session.clear", ("authentication", "session"), ("end",)),
    ("user.session.impersonation", ("iam", "session"), ("admin", "info")),
    ("user.session", ("session",), ("info",)),
    ("user.authentication.slo", ("authentication", "session"), ("end",)),
    ("user.authentication.sso", ("authentication",), ("start",)),
    ("user.authentication", ("authentication",), ("info",)),
    ("user.mfa.factor", ("iam", "authentication"), ("user", "change")),
    ("user.mfa", ("authentication",), ("info",)),
    ("user.account", ("iam",), ("user", "change")),
    ("user.lifecycle", ("iam",), ("user", "change")),
    ("user.credential", ("iam",), ("user", "change")),
    ("group.user_membership", ("iam",), ("group", "change")),
    ("group.", ("iam",), ("group", "change")),
    ("application.user_membership", ("iam",), ("user", "change")),
    ("application.provision", ("iam",), ("user", "change")),
    ("application.", ("configuration",), ("change",)),
    ("app.oauth2", ("authentication",), ("info",)),
    ("app.inbound_del_auth", ("authentication",), ("start",)),
    ("app.", ("configuration",), ("change",)),
    ("policy.evaluate_sign_on", ("authentication",), ("info",)),
    ("policy.auth_reevaluate", ("authentication", "session"), ("info",)),
    ("policy.", ("configuration",), ("change",)),
    # security.* and system.api_token.* as Elastic's okta integration categorizes them.
    ("security.request.blocked", ("threat",), ("indicator",)),
    ("security.threat.detected", ("threat",), ("indicator",)),
    ("security.attack", ("threat",), ("indicator",)),
    ("security.authenticator", ("authentication",), ("info",)),
    ("security.breached_credential", ("authentication",), ("info",)),
    ("security.session", ("session",), ("info",)),
    ("security.zone", ("configuration",), ("change",)),
    ("security.behavior", ("configuration",), ("change",)),
    ("security.attack_protection", ("configuration",), ("change",)),
    ("security.threat.configuration", ("configuration",), ("change",)),
    ("security.", ("threat",), ("info",)),
    ("system.api_token", ("authentication",), ("info",)),
    ("system.idp", ("configuration",), ("change",)),
    ("system.", ("configuration",), ("change",)),
    ("device.assurance", ("configuration",), ("change",)),
    ("device.", ("host",), ("change",)),
    ("pki.", ("configuration",), ("change",)),
)
_RULES_BY_LENGTH = sorted(CATEGORY_RULES, key=lambda rule: -len(rule[0]))
_CREATION_VERBS = ("create", "add", "activate", "issue", "enroll")
_DELETION_VERBS = ("delete", "remove", "deprovision", "revoke")
_PSEUDO_MAP_SPLIT = re.compile(r",\s*(?=[A-Za-z][A-Za-z0-9 _.-]*=)")
# Credentials Okta can echo in debugData URLs (session tokens, OAuth codes and tokens, SAML responses).
_SECRET_QUERY = re.compile(
    r"(?i)([?&;](?:session_?token|token|id_token|access_token|refresh_token|code|client_secret|password|otp|passcode|"
    r"assertion|SAMLResponse|state_token|stateToken|one_time_token|recovery_token)=)[^&#;\s]+"
)



def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value and value != "null" else None


def _mask_url_secrets(record: dict[str, Any], debug_data: dict[str, Any]) -> dict[str, Any]:
    """Copy of the record with token-bearing query parameters masked in debugData strings."""
    masked = {k: _SECRET_QUERY.sub(r"\1" + REDACTED, v) if isinstance(v, str) and "=" in v else v for k, v in debug_data.items()}
    if masked == debug_data:
        return record
    context = as_mapping(record.get("debugContext"))
    return {**record, "debugContext": {**context, "debugData": masked}}



def categorize(event_type: str, result: str) -> tuple[list[str], list[str]]:
    """ECS category/type for an Okta eventType; unknown families get only ``event.type: info``."""
    categories: list[str] = []
    types: list[str] = ["info"]
    for prefix, rule_categories, rule_types in _RULES_BY_LENGTH:
        if event_type.startswith(prefix):
            categories, types = list(rule_categories), list(rule_types)
            break
    if "change" in types and "user_membership" not in event_type:
        verbs = event_type.lower().split(".")[2:] or event_type.lower().split(".")[-1:]
        if any(verb.startswith(_DELETION_VERBS) for verb in verbs):
            types[types.index("change")] = "deletion"
        elif any(verb.startswith(_CREATION_VERBS) for verb in verbs):
            types[types.index("change")] = "creation"
    if result == "DENY" or (result == "FAILURE" and "authentication" in categories):
        types.append("denied")
    elif result == "ALLOW" and categories and categories[0] in ("authentication", "threat", "network"):
        types.append("allowed")
    return categories, types


def parse_pseudo_map(text: Any) -> dict[str, str]:
    """``{New Geo-Location=NEGATIVE, New Device=POSITIVE}`` → dict; commas inside values survive."""
    if not isinstance(text, str):
        return {}
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    result: dict[str, str] = {}
    for part in _PSEUDO_MAP_SPLIT.split(body):
        key, sep, value = part.partition("=")
        if sep and key.strip():
            result[key.strip()] = value.strip()
    return result


def decode_debug_data(debug_data: dict[str, Any], event: dict[str, Any]) -> None:
    """Derived ``okta.debug_context.debug_data.*`` from Okta's stringly-typed debug map."""
    prefix = "okta.debug_context.debug_data."
    security: dict[str, Any] = {}
    raw_security = debug_data.get("logOnlySecurityData")
    if isinstance(raw_security, str) and raw_security.lstrip().startswith("{"):
        try:
            decoded = orjson.loads(raw_security)
        except orjson.JSONDecodeError:
            decoded = None
        if isinstance(decoded, dict):
            security = decoded
            namespaced(prefix + "log_only_security_data", security, event)
    elif isinstance(raw_security, dict):
        security = raw_security
    risk = parse_pseudo_map(debug_data.get("risk"))
    security_risk = as_mapping(security.get("risk"))
    level = risk.get("level") or _text(security_risk.get("level"))
    set_if(event, prefix + "risk_level", level)
    reasons = risk.get("reasons") or security_risk.get("reasons")
    if isinstance(reasons, str):
        reasons = [r.strip() for r in reasons.split(",") if r.strip()]
    if isinstance(reasons, list):
        set_if(event, prefix + "risk_reasons", [str(r) for r in reasons if isinstance(r, (str, int))])
    behaviors = parse_pseudo_map(debug_data.get("behaviors"))
    if not behaviors and isinstance(security.get("behaviors"), dict):
        behaviors = {str(k): str(v) for k, v in security["behaviors"].items()}
    positive = [name for name, verdict in behaviors.items() if verdict.upper() == "POSITIVE"]
    set_if(event, prefix + "risk_behaviors", positive)
    threat = debug_data.get("threatSuspected")
    if isinstance(threat, bool):
        event[prefix + "threat_suspected"] = threat
    elif isinstance(threat, str) and threat.lower() in ("true", "false"):
        event[prefix + "threat_suspected"] = threat.lower() == "true"


#: ``client.*`` and ``source.*`` geo and network fields, in the order they are set (the values of ``_client``).
_GEO_KEYS = tuple(tuple(f"{side}.{name}" for name in ("geo.city_name", "geo.region_name", "geo.country_name",
                                                        "geo.postal_code", "geo.location", "as.number",
                                                        "as.organization.name", "domain"))
                  for side in ("client", "source"))


class OktaParser(Parser):
    name = "okta"
    dataset = "okta.system"
    accept_keys = frozenset({"uuid"})  # accepts() says no without one
    logsource = {"product": "okta", "service": "okta"}

    def accepts(self, record: dict[str, Any]) -> bool:
        return "uuid" in record and "eventType" in record and "published" in record

    def parse(self, record: dict[str, Any] | str, raw: bytes) -> list[dict[str, Any]]:
        if not isinstance(record, dict):
            raise RecordError("not a JSON object", "okta LogEvent must be an object")
        when = parse_timestamp(record.get("published"))
        if when is None:
            raise RecordError("no timestamp", f"okta 'published' unparseable: {str(record.get('published'))[:80]!r}")
        event_type = record.get("eventType")
        if not isinstance(event_type, str) or not event_type:
            raise RecordError("missing field", "okta 'eventType' is not a non-empty string")
        outcome = as_mapping(record.get("outcome"))
        result = str(outcome.get("result") or "").upper()
        categories, types = categorize(event_type, result)
        uuid = record.get("uuid")
        event: dict[str, Any] = {
            "@timestamp": format_timestamp(when),
            "event.id": str(uuid) if isinstance(uuid, (str, int)) and uuid != "" else event_id_from_raw(raw),
            "event.kind": "event",
            "event.dataset": self.dataset,
            "event.module": "okta",
            "event.provider": "okta",
            "event.action": event_type,
            "event.type": types,
            "event.outcome": "success" if result in SUCCESS_RESULTS else "failure" if result in FAILURE_RESULTS else "unknown",
        }
        set_if(event, "event.category", categories)
        reason = _text(outcome.get("reason"))
        set_if(event, "event.reason", reason)
        if reason and event["event.outcome"] == "failure":
            event["error.message"] = reason
        set_if(event, "message", _text(record.get("displayMessage")))
        severity = _text(record.get("severity"))
        set_if(event, "log.level", severity)  # ECS log.level is the original level text
        self._actor(as_mapping(record.get("actor")), event)
        self._client(as_mapping(record.get("client")), as_mapping(record.get("securityContext")), as_mapping(record.get("request")), event)
        self._targets(record.get("target"), event)
        debug_data = as_mapping(as_mapping(record.get("debugContext")).get("debugData"))
        decode_debug_data(debug_data, event)
        if "SAML" in str(debug_data.get("signOnMode") or "").upper():
            event["temporal.auth_method"] = "saml"
        namespaced("okta", _mask_url_secrets(record, debug_data), event, drop_nulls=True)
        return [event]

    @staticmethod
    def _actor(actor: dict[str, Any], event: dict[str, Any]) -> None:
        alternate = _text(actor.get("alternateId"))
        local, domain = split_email(alternate)
        set_if(event, "user.name", local)
        if domain:
            event["user.email"] = alternate
            event["user.domain"] = domain
        actor_id = _text(actor.get("id"))
        full_name = _text(actor.get("displayName"))
        for prefix in ("user", "client.user", "source.user"):
            set_if(event, f"{prefix}.id", actor_id)
            set_if(event, f"{prefix}.full_name", full_name)
        add_related(event, "user", local, alternate if domain else None)

    @staticmethod
    def _client(client: dict[str, Any], security: dict[str, Any], request: dict[str, Any], event: dict[str, Any]) -> None:
        raw_ip = client.get("ipAddress")
        ip = clean_ip(raw_ip)
        chain = [hop for hop in request.get("ipChain") or [] if isinstance(hop, dict)] if isinstance(request.get("ipChain"), list) else []
        chain_ips = [found for found in (clean_ip(hop.get("ip")) for hop in chain) if found]
        if ip is None and chain_ips:
            ip = chain_ips[0]
        if ip:
            event["client.ip"] = event["source.ip"] = ip
        elif _text(raw_ip):
            event["source.address"] = str(raw_ip)[:256]
        add_related(event, "ip", ip, *chain_ips)
        geo = as_mapping(client.get("geographicalContext"))
        point = as_mapping(geo.get("geolocation"))
        lat, lon = point.get("lat"), point.get("lon")
        location = ({"lat": float(lat), "lon": float(lon)}
                    if isinstance(lat, (int, float)) and isinstance(lon, (int, float)) and not isinstance(lat, bool)
                    and not isinstance(lon, bool) else None)
        values = (_text(geo.get("city")), _text(geo.get("state")), _text(geo.get("country")), _text(geo.get("postalCode")),
                  location, as_int(security.get("asNumber")), _text(security.get("asOrg")), _text(security.get("domain")))
        for keys in _GEO_KEYS:  # the same values under client.* and source.*, read once (the location dict each its own)
            for key, value in zip(keys, values, strict=True):
                set_if(event, key, dict(value) if type(value) is dict else value)
        user_agent = as_mapping(client.get("userAgent"))
        raw_agent = _text(user_agent.get("rawUserAgent"))
        set_if(event, "user_agent.original", redact_text(raw_agent) if raw_agent else None)
        set_if(event, "user_agent.os.name", _text(user_agent.get("os")))

    @staticmethod
    def _targets(targets: Any, event: dict[str, Any]) -> None:
        if not isinstance(targets, list):
            return
        for target in targets:
            if not isinstance(target, dict):
                continue
            target_type = str(target.get("type") or "")
            alternate = _text(target.get("alternateId"))
            if target_type == "User" and "user.target.id" not in event:
                local, domain = split_email(alternate)
                set_if(event, "user.target.id", _text(target.get("id")))
                set_if(event, "user.target.full_name", _text(target.get("displayName")))
                set_if(event, "user.target.name", local)
                if domain:
                    event["user.target.email"] = alternate
                    event["user.target.domain"] = domain
                add_related(event, "user", local, alternate if domain else None)
            elif target_type == "AppInstance" and "service.name" not in event:
                set_if(event, "service.name", _text(target.get("displayName")) or alternate)
            elif "group" in target_type.lower() and "user.target.group.id" not in event:
                set_if(event, "user.target.group.id", _text(target.get("id")))
                set_if(event, "user.target.group.name", _text(target.get("displayName")))
