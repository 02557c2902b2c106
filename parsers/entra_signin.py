"""``entra_signin``: Microsoft Entra ID sign-in logs from diagnostic settings (log-format reference §4, ECS §9.4).

Input shapes: Event Hub / storage ``{"records": [...]}`` (unwrapped by :mod:`parsers.envelopes`), single records of
every sign-in category (``SignInLogs``, ``NonInteractiveUserSignInLogs``, ``ServicePrincipalSignInLogs``,
``ManagedIdentitySignInLogs``, ``MicrosoftServicePrincipalSignInLogs``, ``ADFSSignInLogs``), and bare Graph ``signIn``
objects (the export's ``properties`` without the envelope).

Choices worth knowing:

* ``event.action`` is the ``operationName`` (``Sign-in activity``), as Elastic's integration writes it; the
  ``category`` (``SignInLogs``...), which tells interactive from non-interactive and service-principal sign-ins, is
  ``temporal.action`` (and stays in ``azure.signinlogs.category``).
* The AADSTS code is ``properties.status.errorCode`` (int) or else ``resultType`` (string); ``error.code`` is always
  the string, ``error.type`` the AADSTS name from §4.4 where known, ``error.message`` the failure reason (or the
  known meaning when the record has none). ``event.outcome`` is success for code 0 or no code at all (§9.4).
* Log Analytics style rows (``Category``, ``CreatedDateTime``, ``ResultType`` and flat PascalCase columns) are
  read too; their keys stay as they came under ``azure.signinlogs.*``.
* ``time`` comes in many styles (7/9 fractional digits, US locale ``1/9/2007 9:41:00 AM``, no zone = UTC, offsets);
  ``properties.createdDateTime`` is the fallback.
* ``service.name`` is the application signed in to (``appDisplayName``), so rules can say "sign-in to Temporal Cloud"
  without vendor fields. Conditional Access: ``azure.signinlogs.conditional_access.failed_policies`` /
  ``.report_only_failed_policies`` list the display names of policies whose result was ``failure`` /
  ``reportOnlyFailure``; ``.blocking_policies`` those of them that enforce ``Block``. The full
  ``appliedConditionalAccessPolicies`` array stays under ``azure.signinlogs.properties.*``.

Redacted: secret-named keys and token-looking text (:func:`parsers.common.redact`); sign-in records carry no secrets
by design, but ``uniqueTokenIdentifier`` is only an id and is kept.
"""

from __future__ import annotations

from typing import Any

import orjson

from temporal_siem.kernel.records import RecordError
from temporal_siem.parsers.base import Parser
from temporal_siem.parsers.common import (
    add_related,
    as_mapping,
    event_id_from_raw,
    format_timestamp,
    ip_and_port,
    namespaced,
    nonempty_text,
    parse_timestamp,
    set_if,
    split_email,
)

CATEGORIES = frozenset({
    "SignInLogs", "NonInteractiveUserSignInLogs", "ServicePrincipalSignInLogs", "MicrosoftServicePrincipalSignInLogs",
    "ManagedIdentitySignInLogs", "ADFSSignInLogs",
})
SERVICE_CATEGORIES = frozenset({"ServicePrincipalSignInLogs", "MicrosoftServicePrincipalSignInLogs", "ManagedIdentitySignInLogs"})

# AADSTS code -> (name, meaning), from log-format reference §4.4 (meanings paraphrased there).
AADSTS: dict[str, tuple[str, str]] = {
    "50053": ("IdsLocked", "Account locked, or sign-in blocked from a malicious IP address."),
    "50055": ("InvalidPasswordExpiredPassword", "The password has expired."),
    "50057": ("UserDisabled", "The user account is disabled."),
    "50058": ("UserInformationNotProvided", "No single sign-on session (normal for silent sign-in)."),
    "50074": ("UserStrongAuthClientAuthNRequiredInterrupt", "Strong authentication (MFA) is required."),
    "50076": ("UserStrongAuthClientAuthNRequired", "Multi-factor authentication is required and was not passed."),
    "50079": ("UserStrongAuthEnrollmentRequired", "The user must register for multi-factor authentication."),
    "50105": ("EntitlementGrantsNotFound", "The user is not assigned to the application."),
    "50126": ("InvalidUserNameOrPassword", "Invalid username or password."),
    "50131": ("ConditionalAccessFailed", "Conditional Access failed (device state, suspicious activity or policy)."),
    "50140": ("KmsiInterrupt", "'Keep me signed in' interrupt."),
    "50155": ("DeviceAuthenticationFailed", "Device authentication failed."),
    "50158": ("ExternalSecurityChallenge", "An external security challenge was not satisfied."),
    "50097": ("DeviceAuthenticationRequired", "Device authentication is required."),
    "53000": ("DeviceNotCompliant", "Conditional Access requires a compliant device."),
    "53001": ("DeviceNotDomainJoined", "Conditional Access requires a domain-joined device."),
    "53002": ("ApplicationUsedIsNotAnApprovedApp", "Conditional Access requires an approved client app."),
    "53003": ("BlockedByConditionalAccess", "Access blocked by Conditional Access policies."),
    "530032": ("BlockedByConditionalAccessOnSecurityPolicy", "Blocked by a tenant security policy."),
    "530035": ("BlockedBySecurityDefaults", "Blocked by security defaults."),
    "53004": ("ProofUpBlockedDueToRisk", "MFA registration blocked due to risk."),
    "53011": ("", "User blocked due to risk on the home tenant."),
    "50006": ("InvalidSignature", "Signature verification failed."),
    "50008": ("InvalidSamlToken", "SAML assertion is missing or misconfigured."),
    "50012": ("AuthenticationFailed", "Authentication failed (signing certificate or client assertion not authorized)."),
    "50013": ("InvalidAssertion", "The assertion is invalid or expired."),
    "500133": ("InvalidAssertion", "The assertion is invalid or expired."),
    "50017": ("CertificateValidationFailed", "Certificate validation failed."),
    "50192": ("RawCredentialExpectedNotFound", "Certificate-based authentication without a certificate."),
    "50011": ("InvalidReplyTo", "The reply URL does not match the application's."),
    "50146": ("MissingCustomSigningKey", "The application-specific signing key is missing or expired."),
    "75001": ("BindingSerializationError", "SAML message binding error."),
    "75003": ("UnsupportedBindingError", "Unsupported SAML binding."),
    "75005": ("Saml2MessageInvalid", "The SAML request from the application is not supported."),
    "7500514": ("", "No supported SAML response type found."),
    "750054": ("", "SAMLRequest or SAMLResponse missing from the redirect binding query string."),
    "75008": ("RequestDeniedError", "The SAML request had an unexpected destination."),
    "75011": ("NoMatchedAuthnContextInOutputClaims", "The authentication method does not match the requested AuthnContext."),
    "75016": ("Saml2AuthenticationRequestInvalidNameIDPolicy", "Invalid NameID policy in the SAML request."),
    "76021": ("ApplicationRequiresSignedRequests", "The application requires signed SAML requests."),
    "76026": ("RequestIssueTimeExpired", "The SAML AuthnRequest IssueInstant has expired."),
    "90123": ("IdentityProviderAccessDenied", "The identity provider denied access."),
    "700027": ("", "Client assertion failed signature validation."),
    "700030": ("", "Certificate subject name not authorized."),
    "7000215": ("", "Invalid client secret."),
    "7000222": ("InvalidClientSecretExpiredKeysProvided", "The client secret has expired."),
    "50173": ("FreshTokenNeeded", "Tokens were revoked; a fresh sign-in is needed."),
    "70043": ("BadTokenDueToSignInFrequency", "Conditional Access sign-in frequency requires re-authentication."),
    "65001": ("DelegationDoesNotExist", "Consent is missing."),
    "500011": ("InvalidResourceServicePrincipalNotFound", "The resource application is not in the tenant."),
    "700016": ("UnauthorizedClient_DoesNotMatchRequest", "The application is not in the tenant."),
}




def _code(value: Any) -> str | None:
    """An AADSTS code as a string, from an int or a numeric string ('53003', 53003, 'AADSTS53003')."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        text = value.strip().upper().removeprefix("AADSTS")
        if text.isascii() and text.isdigit() and len(text) <= 12:
            return str(int(text))
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def camel_case_columns(record: dict[str, Any]) -> dict[str, Any]:
    """Log Analytics style rows (``Category``, ``CreatedDateTime``, ``ResultType``, flat columns) in export spelling.

    The columns are the Graph ``signIn`` properties at top level, so the row doubles as its own ``properties``.
    """
    renamed: dict[str, Any] = {}
    for key, value in record.items():
        name = str(key)
        if name in ("IPAddress", "Level"):
            name = "ipAddress" if name == "IPAddress" else name
        elif name[:1].isupper():
            name = name[:1].lower() + name[1:]
        renamed.setdefault(name, value)
    if "time" not in renamed and "timeGenerated" in renamed:
        renamed["time"] = renamed["timeGenerated"]
    properties = dict(renamed)
    if isinstance(renamed.get("properties"), dict):
        properties.update(renamed["properties"])
    if isinstance(renamed.get("status"), str):  # Log Analytics serializes the status object as a JSON string
        try:
            decoded = orjson.loads(renamed["status"])
            if isinstance(decoded, dict):
                properties["status"] = decoded
        except ValueError:
            pass
    renamed["properties"] = properties
    return renamed


def conditional_access_summary(policies: Any) -> dict[str, list[str]]:
    """Display names of policies that failed, failed in report-only mode, or failed with a Block grant control."""
    failed: list[str] = []
    report_only: list[str] = []
    blocking: list[str] = []
    for policy in policies if isinstance(policies, list) else []:
        if not isinstance(policy, dict):
            continue
        name = nonempty_text(policy.get("displayName")) or nonempty_text(policy.get("id"))
        result = policy.get("result")
        if not name:
            continue
        if result == "failure":
            failed.append(name)
            controls = policy.get("enforcedGrantControls")
            if isinstance(controls, list) and any(isinstance(c, str) and c.lower() == "block" for c in controls):
                blocking.append(name)
        elif result == "reportOnlyFailure":
            report_only.append(name)
    return {"failed_policies": failed, "report_only_failed_policies": report_only, "blocking_policies": blocking}


class EntraSigninParser(Parser):
    name = "entra_signin"
    dataset = "azure.signinlogs"
    accept_keys = frozenset({"category", "Category", "createdDateTime"})  # accepts() says no without one
    logsource = {"product": "azure", "service": "signinlogs"}

    def accepts(self, record: dict[str, Any]) -> bool:
        category = record.get("category", record.get("Category"))
        if isinstance(category, str) and category in CATEGORIES:
            return True
        # A bare Graph signIn object (properties without the export envelope).
        return "createdDateTime" in record and "status" in record and ("userPrincipalName" in record or "appId" in record)

    def parse(self, record: dict[str, Any] | str, raw: bytes) -> list[dict[str, Any]]:
        if not isinstance(record, dict):
            raise RecordError("not a JSON object", "Entra sign-in record must be an object")
        original = record
        if "category" not in record and isinstance(record.get("Category"), str):
            record = camel_case_columns(record)
        bare_graph = not isinstance(record.get("category"), str) and "createdDateTime" in record
        envelope: dict[str, Any] = {} if bare_graph else record
        properties = record if bare_graph else as_mapping(record.get("properties"))
        when = parse_timestamp(envelope.get("time")) or parse_timestamp(properties.get("createdDateTime"))
        if when is None:
            raise RecordError("no timestamp", f"Entra 'time' unparseable: {str(envelope.get('time'))[:80]!r}")
        category = nonempty_text(envelope.get("category"))
        status = as_mapping(properties.get("status"))
        code = _code(status.get("errorCode"))
        if code is None:
            code = _code(envelope.get("resultType"))
        failed = code is not None and code != "0"
        sign_in_id = nonempty_text(properties.get("id"))
        event: dict[str, Any] = {
            "@timestamp": format_timestamp(when),
            "event.id": sign_in_id or event_id_from_raw(raw),
            "event.kind": "event",
            "event.dataset": self.dataset,
            "event.module": "azure",
            "event.provider": "Microsoft.aadiam",
            "event.action": nonempty_text(envelope.get("operationName")) or "Sign-in activity",
            "event.category": ["authentication"],
            "event.type": ["info", "denied"] if failed else ["info"],
            "event.outcome": "failure" if failed else "success",  # §9.4: success iff the code is 0 or absent
            "cloud.provider": "azure",
        }
        set_if(event, "temporal.action", category)
        if failed and code is not None:
            name, meaning = AADSTS.get(code, ("", ""))
            event["error.code"] = code
            set_if(event, "error.type", name)
            reason = nonempty_text(status.get("failureReason")) or nonempty_text(envelope.get("resultDescription"))
            set_if(event, "error.message", reason if reason and reason.lower() != "other." else meaning or reason)
        tenant = (nonempty_text(envelope.get("tenantId")) or nonempty_text(properties.get("homeTenantId"))
                  or nonempty_text(properties.get("resourceTenantId")))
        set_if(event, "cloud.account.id", tenant)
        level = envelope.get("Level", envelope.get("level"))
        set_if(event, "log.level", str(level) if isinstance(level, (int, str)) and not isinstance(level, bool) and level != "" else None)
        duration = _number(envelope.get("durationMs"))
        if duration is not None and 0 <= duration < 1e12:
            event["event.duration"] = int(duration * 1_000_000)
        self._user(properties, envelope, category, event)
        self._network(properties, envelope, event)
        set_if(event, "user_agent.original", nonempty_text(properties.get("userAgent")))
        set_if(event, "service.name", nonempty_text(properties.get("appDisplayName")) or nonempty_text(properties.get("resourceDisplayName")))
        protocol = str(properties.get("authenticationProtocol") or "").lower()
        if protocol == "saml20" or str(properties.get("incomingTokenType") or "").lower() == "saml20":
            event["temporal.auth_method"] = "saml"
        summary = conditional_access_summary(properties.get("appliedConditionalAccessPolicies"))
        for field, names in summary.items():
            set_if(event, f"azure.signinlogs.conditional_access.{field}", names)
        if bare_graph:
            namespaced("azure.signinlogs.properties", original, event)
        else:
            namespaced("azure.signinlogs", original, event)
        return [event]

    @staticmethod
    def _user(properties: dict[str, Any], envelope: dict[str, Any], category: str | None, event: dict[str, Any]) -> None:
        upn = nonempty_text(properties.get("userPrincipalName"))
        if upn:
            local, domain = split_email(upn)
            set_if(event, "user.name", local)
            if domain:
                event["user.domain"] = domain
                event["user.email"] = upn
            add_related(event, "user", upn, local)
        set_if(event, "user.id", nonempty_text(properties.get("userId")))
        set_if(event, "user.full_name", nonempty_text(properties.get("userDisplayName")) or (nonempty_text(envelope.get("identity")) if upn else None))
        if category in SERVICE_CATEGORIES or (not upn and nonempty_text(properties.get("servicePrincipalId"))):
            sp_name = (nonempty_text(properties.get("servicePrincipalName")) or nonempty_text(properties.get("appDisplayName"))
                       or nonempty_text(envelope.get("identity")))
            if "user.name" not in event:
                set_if(event, "user.name", sp_name)
                add_related(event, "user", sp_name)
            if "user.id" not in event:
                set_if(event, "user.id", nonempty_text(properties.get("servicePrincipalId")) or nonempty_text(properties.get("appId")))

    @staticmethod
    def _network(properties: dict[str, Any], envelope: dict[str, Any], event: dict[str, Any]) -> None:
        ip, port = ip_and_port(envelope.get("callerIpAddress"))
        if ip is None:
            ip, port = ip_and_port(properties.get("ipAddress"))
        if ip:
            event["source.ip"] = event["client.ip"] = ip
            add_related(event, "ip", ip)
            if port is not None and 0 < port < 65536:
                event["source.port"] = port
        else:
            set_if(event, "source.address", nonempty_text(envelope.get("callerIpAddress")) or nonempty_text(properties.get("ipAddress")))
        location = as_mapping(properties.get("location"))
        set_if(event, "source.geo.city_name", nonempty_text(location.get("city")))
        set_if(event, "source.geo.region_name", nonempty_text(location.get("state")))
        set_if(event, "source.geo.country_iso_code", nonempty_text(location.get("countryOrRegion")) or nonempty_text(envelope.get("location")))
        coordinates = as_mapping(location.get("geoCoordinates"))
        lat, lon = _number(coordinates.get("latitude")), _number(coordinates.get("longitude"))
        if lat is not None and lon is not None and -90 <= lat <= 90 and -180 <= lon <= 180 and (lat, lon) != (0.0, 0.0):
            event["source.geo.location"] = {"lat": lat, "lon": lon}
        as_number = properties.get("autonomousSystemNumber")
        if isinstance(as_number, int) and not isinstance(as_number, bool) and 0 <= as_number < 2**32:
            event["source.as.number"] = as_number
