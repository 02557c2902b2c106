"""The normalized event and alert schema: the contract between parsers, detections and sinks.

Field names are Elastic Common Schema (ECS 8.x). What ECS lacks for Temporal security lives in one
namespace of our own, ``temporal.*`` (documented on :class:`Temporal`). Vendor leftovers stay under
their vendor namespace (``okta.*``, ``azure.*``, ``google_workspace.*``, ``aws.*``, ``hashicorp_vault.*``,
``temporal_cloud.*``) so nothing in a record is lost; those are allowed as extra keys.

The hot path carries flat dotted dicts (see :mod:`temporal_siem.kernel.flatten`) for speed; these models
validate the nested form in tests and in ``temporal-siem parse --validate``, and generate the JSON
Schema in ``docs/schema.json`` and the field reference in ``docs/schema.md``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from temporal_siem.kernel.levels import SEVERITY_BY_LEVEL as SEVERITY_BY_LEVEL  # re-exported: the table lives in kernel.levels


class _Open(BaseModel):
    """ECS objects accept fields we do not model, as ECS itself is extensible."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class _Closed(BaseModel):
    """Our own namespaces are closed so that a typo in a parser fails validation."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


EventCategory = Literal[
    "api", "authentication", "configuration", "database", "driver", "email", "file", "host", "iam",
    "intrusion_detection", "library", "malware", "network", "package", "process", "registry", "session",
    "threat", "vulnerability", "web",
]
EventType = Literal[
    "access", "admin", "allowed", "change", "connection", "creation", "deletion", "denied", "device", "end",
    "error", "group", "indicator", "info", "installation", "protocol", "start", "user",
]


class EventFields(_Open):
    """ECS ``event.*``. ``id`` is the record's native unique id, else sha256(raw record)[:32]."""

    id: str | None = Field(None, description="Native unique id of the record, else the first 32 hex digits of SHA-256 of the raw record bytes.")
    kind: Literal["event", "alert", "metric", "state", "pipeline_error", "signal", "enrichment"] | None = None
    category: list[EventCategory] | None = None
    type: list[EventType] | None = None
    action: str | None = Field(None, description="The vendor's own action name, as recorded (e.g. CreateAPIKey, user.session.start).")
    outcome: Literal["success", "failure", "unknown"] | None = None
    dataset: str | None = Field(None, description="Source dataset, e.g. temporal_cloud.audit, okta.system, aws.cloudtrail.")
    module: str | None = None
    provider: str | None = None
    reason: str | None = None
    severity: int | None = Field(None, description="Alerts: Sigma level as a number (informational 1, low 21, medium 47, high 73, critical 99).")
    risk_score: float | None = None
    ingested: datetime | None = None
    created: datetime | None = None
    start: datetime | None = None
    end: datetime | None = None
    duration: int | None = Field(None, description="Nanoseconds.")
    original: str | None = Field(None, description="The raw record, only when asked for (--keep-original); secrets redacted.")


class Geo(_Open):
    city_name: str | None = None
    continent_name: str | None = None
    country_name: str | None = None
    country_iso_code: str | None = None
    region_name: str | None = None
    region_iso_code: str | None = None
    location: dict[str, float] | None = None


class Group(_Open):
    id: str | None = None
    name: str | None = None


class UserBase(_Open):
    """ECS fields may hold arrays: one record can act on several users (``user.target.email`` list)."""

    id: str | list[str] | None = None
    name: str | list[str] | None = None
    email: str | list[str] | None = None
    full_name: str | None = None
    domain: str | None = None
    roles: list[str] | None = None
    group: Group | None = None


class User(UserBase):
    target: UserBase | None = Field(None, description="The user acted upon (invited, deleted, role changed).")
    changes: UserBase | None = Field(None, description="New values set on the target user (e.g. roles granted).")
    effective: UserBase | None = None


class AutonomousSystem(_Open):
    number: int | None = None
    organization: dict[str, Any] | None = None


class Endpoint(_Open):
    """``source.*``, ``client.*``, ``destination.*``: ``ip`` holds only valid IPs, else ``address``."""

    ip: str | None = None
    port: int | None = None
    address: str | None = None
    domain: str | None = None
    geo: Geo | None = None
    user: UserBase | None = None
    as_: AutonomousSystem | None = Field(None, alias="as")


class UserAgentOS(_Open):
    name: str | None = None
    version: str | None = None
    full: str | None = None


class UserAgentDevice(_Open):
    name: str | None = None


class UserAgent(_Open):
    """Parsed from ``original`` with ua-parser (uap-core rules, as Elasticsearch's user_agent processor)."""

    original: str | None = None
    name: str | None = Field(None, description="Browser or client family; Other when the rules do not know it.")
    version: str | None = None
    os: UserAgentOS | None = None
    device: UserAgentDevice | None = Field(None, description="device.name: Other when the rules do not know it.")


class DistinguishedName(_Open):
    common_name: list[str] | None = None
    organization: list[str] | None = None
    organizational_unit: list[str] | None = None
    country: list[str] | None = None
    distinguished_name: str | None = None


class X509(_Open):
    """ECS x509 field set. Times are UTC; serial is upper-case hex without colons."""

    serial_number: str | None = None
    not_before: datetime | None = None
    not_after: datetime | None = None
    subject: DistinguishedName | None = None
    issuer: DistinguishedName | None = None
    alternative_names: list[str] | None = None
    signature_algorithm: str | None = None
    public_key_algorithm: str | None = None
    public_key_size: int | None = None
    version_number: str | None = None


class Hashes(_Open):
    md5: str | None = None
    sha1: str | None = None
    sha256: str | None = None


class TLSPeer(_Open):
    server_name: str | None = None
    x509: X509 | None = None
    hash: Hashes | None = None
    issuer: str | None = None
    subject: str | None = None
    not_after: datetime | None = None
    not_before: datetime | None = None
    certificate: str | None = None
    certificate_chain: list[str] | None = None


class TLS(_Open):
    version: str | None = None
    version_protocol: str | None = None
    cipher: str | None = None
    established: bool | None = None
    client: TLSPeer | None = None
    server: TLSPeer | None = None


class Error(_Open):
    code: str | None = Field(None, description="Always a string: gRPC code name, AADSTS number, AWS error code...")
    message: str | None = None
    type: str | None = None
    id: str | None = None
    stack_trace: str | None = None


class Cloud(_Open):
    provider: str | None = None
    region: str | None = None
    account: dict[str, Any] | None = None
    service: dict[str, Any] | None = None


class Related(_Open):
    ip: list[str] | None = None
    user: list[str] | None = None
    hash: list[str] | None = None
    hosts: list[str] | None = None


class LogOrigin(_Open):
    file: dict[str, Any] | None = None
    function: str | None = None


class Log(_Open):
    level: str | None = None
    logger: str | None = None
    origin: LogOrigin | None = None


class Service(_Open):
    name: str | None = None
    type: str | None = None


class TemporalPrincipal(_Closed):
    type: str | None = Field(None, description="user | serviceaccount (service-account normalized to serviceaccount).")
    id: str | None = None
    name: str | None = None


class TemporalApiKey(_Closed):
    id: str | None = Field(None, description="API key id (never the key value, which is redacted).")
    name: str | None = None
    owner_type: str | None = Field(None, description="user | serviceaccount.")
    owner_id: str | None = None
    disabled: bool | None = None
    expiry_time: datetime | None = None
    created_at: datetime | None = Field(None, description="Creation time, from durable state, when an enrichment knows it.")
    age_days: float | None = Field(None, description="Days from the older of created_at and first_seen to this record's time (enrichment: API-key registry).")
    first_seen: datetime | None = Field(None, description="First time the key id was seen in any record, from durable state (earliest wins).")
    age_source: Literal["created", "first_seen"] | None = Field(
        None, description="Which time age_days counts from: the creation record, or the first sighting (a lower bound of the age).")


class TemporalTarget(_Open):
    """The object acted upon when it is not a user. Open: a parser may add what a new object type carries, and
    ``rules validate`` still knows these names (and suggests them for near misses)."""

    type: str | None = Field(None, description="api_key | service_account | user_group | export_sink | connectivity_rule | pki_role | certificate ...")
    id: str | list[str] | None = Field(None, description="Object id (API key id, certificate serial...); a list when a record names several.")
    name: str | None = Field(None, description="Display name (service account, sink, PKI role...).")
    owner_type: str | None = Field(None, description="API keys: user | serviceaccount.")
    owner_id: str | None = Field(None, description="API keys: the owner's id.")
    disabled: bool | None = Field(None, description="API keys: the key is disabled.")
    expiry_time: datetime | None = Field(None, description="API keys: when the key expires.")
    common_name: str | None = Field(None, description="Vault PKI: the certificate's common name.")


class TemporalSession(_Closed):
    """How an AWS role session was obtained (enrichment: workload sessions), so workloads are not trusted by role name."""

    origin: Literal["web_identity", "aws_service", "role_chain", "assumed_by_human", "unknown"] | None = None
    human: bool | None = Field(None, description="A person assumed the role (IAM user, root, Identity Center, SSO session, SAML).")
    assumed_by: str | None = Field(None, description="Who assumed it (ARN), or the web-identity provider, when known.")
    workload_role: bool | None = Field(None, description="The role's sessions were seen coming from web identity or an AWS service.")


class TemporalKey(_Closed):
    """An encryption key used by a payload codec: a KMS key, a Vault transit key."""

    id: str | None = Field(None, description="KMS key id/ARN or Vault transit key name.")
    name: str | None = None
    arn: str | None = None
    type: str | None = None
    state: str | None = None
    version: int | None = None
    deletion_date: datetime | None = None
    pending_window_days: int | None = None
    exportable: bool | None = None
    deletion_allowed: bool | None = None


class TemporalCertificate(_Open):
    subject: str | None = None
    issuer: str | None = None
    serial_number: str | None = None
    not_before: datetime | None = None
    not_after: datetime | None = None
    sha256: str | None = None
    is_ca: bool | None = None
    expires_in_days: int | None = Field(None, description="Whole days from the record's @timestamp to not_after; negative = already expired then.")


class TemporalCertificateColumns(_Open):
    """``temporal.certificates`` as the flat hot path carries it (Elasticsearch-style arrays of objects:
    one list per field, one entry per certificate), which is what unflatten gives back."""

    subject: list[str | None] | None = None
    issuer: list[str | None] | None = None
    serial_number: list[str | None] | None = None
    not_before: list[datetime | None] | None = None
    not_after: list[datetime | None] | None = None
    sha256: list[str | None] | None = None
    is_ca: list[bool | None] | None = None
    expires_in_days: list[int | None] | None = None


class Temporal(_Closed):
    """Our namespace: what ECS has no field for, across every source."""

    namespace: str | None = Field(None, description="Temporal namespace (Cloud: name.account-id).")
    namespace_id: str | None = None
    operation: str | None = Field(
        None,
        description="Normalized operation: Temporal Cloud operation without trailing 'API' "
        "(UpdateNamespaceAPI -> UpdateNamespace), or the server RPC name.",
    )
    action: str | None = Field(
        None,
        description="Our finer action where event.action follows Elastic's value: Vault transit.decrypt, pki.issue, "
        "<method>.login (event.action is Vault's operation); Entra the sign-in category, SignInLogs... "
        "(event.action is the operation name).",
    )
    service: str | None = Field(None, description="Temporal server role: frontend, history, matching, worker, internal-frontend.")
    principal: TemporalPrincipal | None = None
    api_key: TemporalApiKey | None = None
    session: TemporalSession | None = None
    key: TemporalKey | None = None
    async_operation_id: str | None = None
    request_id: str | None = None
    record_version: int | None = Field(None, description="Audit record 'version' (bumped on backfill in the legacy format).")
    record_generation: Literal["legacy", "transitional", "current"] | None = Field(None, description="Temporal Cloud audit record shape.")
    client_ca_fingerprints: list[str] | None = None
    client_ca_digest: str | None = Field(
        None, description="sha256 of a CA bundle's text (whitespace removed) when it did not decode to certificates.")
    client_ca_unparsed: bool | None = Field(None, description="The CA bundle was present but not decoded: compare it by client_ca_digest.")
    certificates: list[TemporalCertificate] | TemporalCertificateColumns | None = Field(
        None, description="Every certificate parsed from a PEM bundle carried in the record (flat form: one list per field)."
    )
    auth_method: str | None = Field(None, description="mtls | api_key | jwt | saml | password, where known.")
    workflow_id: str | None = None
    run_id: str | None = None
    target: TemporalTarget | None = Field(None, description="Object acted upon when not a user: service account, user group, sink, connectivity rule.")
    clock_skew_seconds: float | None = Field(
        None, description="Receive time minus @timestamp, when a trustworthy receive time exists (enrichment, docs/rule-authoring.md).")
    certificate_days_to_expiry: float | None = Field(
        None, description="Days from @timestamp to the soonest not_after of any certificate in the record; negative if expired (enrichment).")
    user_key: str | None = Field(None, description="Lower-cased email of the acting user: a join key across identity providers (enrichment).")
    target_user_key: str | None = Field(None, description="Lower-cased email of the user acted upon (enrichment).")
    client_ca_changed: bool | None = Field(None, description="The namespace's accepted client CA set differs from the last one seen (enrichment).")
    client_ca_added: list[str] | None = Field(None, description="CA fingerprints not in the namespace's previous bundle (enrichment).")
    roles_changed: bool | None = Field(None, description="The target user's granted roles differ from the last set seen (enrichment).")
    roles_added: list[str] | None = Field(None, description="Roles the target user did not have before this record (enrichment, lower-cased).")


class Rule(_Open):
    id: str | None = None
    name: str | None = None
    description: str | None = None
    ruleset: str | None = None
    reference: str | None = None
    author: list[str] | str | None = None
    category: str | None = None
    version: str | None = None
    license: str | None = None


class AlertFields(_Closed):
    """Our alert metadata (``alert.*``)."""

    id: str = Field(description="Deterministic: sha256 of rule id + contributing event ids (rule) or rule id + group + window (correlation), 32 hex digits.")
    type: Literal["rule", "correlation"]
    source_event_ids: list[str]
    source_event_count: int | None = Field(None, description="Total contributing events; source_event_ids is capped.")
    level: str | None = None
    group_by: dict[str, Any] | None = None
    window: dict[str, Any] | None = None
    correlation_type: str | None = None
    rules: list[str] | None = Field(None, description="Correlation: ids of the rules it references.")
    value: float | None = Field(None, description="Correlation: the aggregated value that met the condition.")
    related_alert_ids: list[str] | None = Field(
        None, description="Chained correlation: alert ids of the inner correlations; their events are in source_event_ids.")


class NormalizedEvent(_Open):
    """One normalized event. Vendor namespaces are allowed as extra top-level keys."""

    timestamp: datetime = Field(alias="@timestamp")
    event: EventFields
    message: str | None = None
    tags: list[str] | None = None
    labels: dict[str, str] | None = None
    user: User | None = None
    source: Endpoint | None = None
    client: Endpoint | None = None
    destination: Endpoint | None = None
    user_agent: UserAgent | None = None
    tls: TLS | None = None
    x509: X509 | None = Field(None, description="A certificate carried by the record outside a TLS handshake (the one expiring first).")
    error: Error | None = None
    cloud: Cloud | None = None
    related: Related | None = None
    log: Log | None = None
    service: Service | None = None
    organization: dict[str, Any] | None = None
    trace: dict[str, Any] | None = None
    temporal: Temporal | None = None


class Alert(NormalizedEvent):
    """An alert document: the triggering event's fields plus rule and alert metadata."""

    rule: Rule
    alert: AlertFields


def validate_event(nested: dict[str, Any]) -> NormalizedEvent:
    """Validate one nested event document; raises pydantic.ValidationError."""
    return NormalizedEvent.model_validate(nested)


def json_schema() -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "temporal-siem documents",
        "oneOf": [{"$ref": "#/$defs/NormalizedEvent"}, {"$ref": "#/$defs/Alert"}],
        "$defs": _defs(),
    }


def _defs() -> dict[str, Any]:
    from pydantic.json_schema import models_json_schema

    _, schema = models_json_schema([(NormalizedEvent, "validation"), (Alert, "validation")], ref_template="#/$defs/{model}")
    defs: dict[str, Any] = schema.get("$defs", {})
    return defs


def field_reference() -> list[tuple[str, str, str]]:
    """(dotted field, type, description) for every modelled field: the generated docs/schema.md."""
    rows: list[tuple[str, str, str]] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            key = info.alias or name
            dotted = f"{prefix}{key}"
            annotation = info.annotation
            nested = _model_in(annotation)
            if nested is not None:
                walk(nested, dotted + ".")
            else:
                rows.append((dotted, _type_name(annotation), info.description or ""))

    walk(Alert, "")
    return rows


def _model_in(annotation: Any) -> type[BaseModel] | None:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _type_name(annotation: Any) -> str:
    text = str(annotation).replace("typing.", "").replace("datetime.datetime", "datetime")
    text = text.replace("<class '", "").replace("'>", "")
    return text.replace(" | None", "")
