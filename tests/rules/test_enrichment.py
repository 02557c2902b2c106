"""Enrichments: API-key ages survive restarts, certificate expiry and clock skew use the record's own time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from temporal_siem.detections.enrichment import ENRICHERS, ApiKeyRegistry, CertificateExpiry, ClockSkew, build_enrichers
from temporal_siem.detections.factory import new_detector
from temporal_siem.kernel.flatten import unflatten
from temporal_siem.kernel.schema import validate_event

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def ts(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def audit(op: str, when: datetime, **fields: object) -> dict[str, object]:
    event: dict[str, object] = {"@timestamp": ts(when), "event.id": f"{op}-{when.timestamp()}", "event.dataset": "temporal_cloud.audit",
                                "event.action": op, "temporal.operation": op.removesuffix("API"), "event.outcome": "success"}
    event.update(fields)
    return event


def test_key_age_from_creation_record() -> None:
    reg = ApiKeyRegistry()
    created = audit("CreateAPIKey", T0, **{"temporal.target.id": "key-1"})
    used = audit("UpdateNamespaceAPI", T0 + timedelta(days=120, hours=12), **{"temporal_cloud.principal.api_key_id": "key-1"})
    reg.enrich([created, used])
    assert used["temporal.api_key.id"] == "key-1"
    assert used["temporal.api_key.created_at"].startswith("2025-01-01T00:00:00")
    assert used["temporal.api_key.age_days"] == pytest.approx(120.5)
    validate_event(unflatten(used))  # the added fields are in the schema


def test_unknown_failed_or_foreign_keys_are_not_aged() -> None:
    reg = ApiKeyRegistry()
    failed = audit("CreateServiceAccountAPIKey", T0, **{"temporal.target.id": "key-2", "event.outcome": "failure"})
    used = audit("DeleteUserAPI", T0 + timedelta(days=200), **{"temporal_cloud.principal.api_key_id": "key-2"})
    other = audit("DeleteUserAPI", T0 + timedelta(days=200), **{"temporal_cloud.principal.api_key_id": "never-seen"})
    reg.enrich([failed, used, other])
    # No creation is learnt from a failed create; both keys are aged from their first sighting (0 days so far).
    assert "temporal.api_key.created_at" not in used and reg.created_at("key-2") is None
    assert used["temporal.api_key.age_days"] == 0 and used["temporal.api_key.age_source"] == "first_seen"
    assert other["temporal.api_key.age_days"] == 0


def test_caller_key_is_aged_not_the_key_acted_on() -> None:
    reg = ApiKeyRegistry()
    reg.enrich([audit("CreateAPIKey", T0, **{"temporal.target.id": ["old", "older"]}),
                audit("CreateAPIKey", T0 + timedelta(days=99), **{"temporal.target.id": "caller"})])
    delete = audit("DeleteAPIKey", T0 + timedelta(days=100), **{"temporal.target.id": "old", "temporal.api_key.id": "caller"})
    reg.enrich([delete])
    assert delete["temporal.api_key.age_days"] == pytest.approx(1)
    assert reg.created_at("older") == T0


def test_registry_survives_restart_and_replay_keeps_earliest() -> None:
    first = ApiKeyRegistry()
    first.enrich([audit("CreateAPIKey", T0, **{"temporal.target.id": "key-3"})])
    state = first.snapshot()
    second = ApiKeyRegistry()
    second.restore(state)
    # A replay re-delivers a later duplicate of the creation: the earliest time stays.
    second.enrich([audit("CreateAPIKey", T0 + timedelta(days=5), **{"temporal.target.id": "key-3"})])
    used = audit("ListNamespaces", T0 + timedelta(days=91), **{"temporal_cloud.principal.apiKeyId": "key-3"})
    second.enrich([used])
    assert used["temporal.api_key.age_days"] == pytest.approx(91)


def test_registry_rejects_corrupt_snapshot_clearly() -> None:
    with pytest.raises(ValueError, match="api_key_registry"):
        ApiKeyRegistry().restore(b"{not json")
    with pytest.raises(ValueError, match="created"):
        ApiKeyRegistry().restore(b"[]")


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=20), st.integers(min_value=0, max_value=10**9), max_size=20))
def test_snapshot_round_trip(keys: dict[str, int]) -> None:
    reg = ApiKeyRegistry()
    reg.enrich([audit("CreateAPIKey", T0 + timedelta(seconds=s), **{"temporal.target.id": k}) for k, s in keys.items()])
    copy = ApiKeyRegistry()
    copy.restore(reg.snapshot())
    for key in keys:
        if key.strip():
            assert copy.created_at(key.strip()) == reg.created_at(key.strip())


def test_key_created_before_the_retained_history_is_aged_from_first_sight() -> None:
    """Issue 14 class 3: no creation record (older than the retained history): the age is measured from the
    first time the key was seen, which survives a restart, and an older file replayed later moves it back."""
    reg = ApiKeyRegistry()
    reg.enrich([audit("ListNamespaces", T0, **{"temporal_cloud.principal.api_key_id": "legacy"})])
    restarted = ApiKeyRegistry()
    restarted.restore(reg.snapshot())
    later = audit("UpdateNamespaceAPI", T0 + timedelta(days=95), **{"temporal_cloud.principal.api_key_id": "legacy"})
    restarted.enrich([later])
    assert later["temporal.api_key.age_days"] == pytest.approx(95)
    assert later["temporal.api_key.age_source"] == "first_seen"
    assert later["temporal.api_key.first_seen"].startswith("2025-01-01T00:00:00")
    validate_event(unflatten(later))
    # An older file replayed afterwards: the earliest sighting wins.
    restarted.enrich([audit("ListNamespaces", T0 - timedelta(days=30), **{"temporal_cloud.principal.api_key_id": "legacy"})])
    again = audit("UpdateNamespaceAPI", T0 + timedelta(days=95), **{"temporal_cloud.principal.api_key_id": "legacy"})
    restarted.enrich([again])
    assert again["temporal.api_key.age_days"] == pytest.approx(125)


def test_older_of_creation_and_first_seen_is_used_and_named() -> None:
    reg = ApiKeyRegistry()
    reg.enrich([audit("CreateAPIKey", T0, **{"temporal.target.id": "k"})])
    used = audit("ListNamespaces", T0 + timedelta(days=10), **{"temporal.api_key.id": "k"})
    reg.enrich([used])
    assert used["temporal.api_key.age_source"] == "created" and used["temporal.api_key.age_days"] == pytest.approx(10)
    # A sighting older than the creation record (clock skew, a re-created id): the older time wins, and says so.
    reg.enrich([audit("ListNamespaces", T0 - timedelta(days=2), **{"temporal.api_key.id": "k"})])
    again = audit("ListNamespaces", T0 + timedelta(days=10), **{"temporal.api_key.id": "k"})
    reg.enrich([again])
    assert again["temporal.api_key.age_source"] == "first_seen" and again["temporal.api_key.age_days"] == pytest.approx(12)


def test_per_key_state_is_addressable() -> None:
    reg = ApiKeyRegistry()
    reg.enrich([audit("CreateAPIKey", T0, **{"temporal.target.id": "k1"})])
    state = reg.key_state("k1")
    assert state == {"created": "2025-01-01T00:00:00.000000Z", "first_seen": "2025-01-01T00:00:00.000000Z"}
    other = ApiKeyRegistry()
    other.restore_key("k1", state)
    assert other.created_at("k1") == T0 and other.key_state("nope") is None


def test_registry_is_bounded() -> None:
    reg = ApiKeyRegistry(max_keys=3)
    reg.enrich([audit("CreateAPIKey", T0, **{"temporal.target.id": f"k{i}"}) for i in range(10)])
    assert reg.stats()["keys_known"] == 3
    assert reg.created_at("k9") is not None and reg.created_at("k0") is None


def test_targets_that_are_not_keys_do_not_take_the_keys_places() -> None:
    """The first-seen map is bounded: a namespace, user or service account an audit record acts on is no key
    sighting, else a busy account's namespace and user operations evicted the sightings of real keys (here the
    legacy key's, which has no creation record) and its age could not be told any more."""
    reg = ApiKeyRegistry(max_keys=3)
    reg.enrich([audit("ListNamespaces", T0, **{"temporal_cloud.principal.api_key_id": "legacy"})])
    reg.enrich([audit(op, T0 + timedelta(days=1), **{"temporal.target.id": f"{kind}-{i}", "temporal.target.type": kind})
                for i in range(5) for op, kind in (("UpdateNamespaceAPI", "namespace"), ("UpdateUserAPI", "user"),
                                                   ("UpdateServiceAccountAPI", "service_account"))])
    later = audit("UpdateNamespaceAPI", T0 + timedelta(days=100), **{"temporal_cloud.principal.api_key_id": "legacy"})
    reg.enrich([later])
    assert later["temporal.api_key.age_source"] == "first_seen"
    assert later["temporal.api_key.age_days"] == pytest.approx(100)
    # A key acted on is still a sighting (its type says so, or no type at all: another producer's records).
    reg.enrich([audit("DeleteAPIKeyAPI", T0 + timedelta(days=2), **{"temporal.target.id": "k2", "temporal.target.type": "api_key"}),
                audit("DisableKey", T0 + timedelta(days=3), **{"temporal.target.id": "k3"})])
    assert reg.key_state("k2") is not None and reg.key_state("k3") is not None


def test_certificate_days_use_event_time_and_soonest_certificate() -> None:
    event = {"@timestamp": ts(T0), "temporal.certificates.not_after": [ts(T0 + timedelta(days=400)), ts(T0 + timedelta(days=12)), None],
             "tls.server.x509.not_after": ts(T0 + timedelta(days=40))}
    expired = {"@timestamp": ts(T0), "x509.not_after": "2024-12-30T00:00:00Z"}
    garbage = {"@timestamp": ts(T0), "x509.not_after": "not a date", "tls.client.x509.not_after": {"nested": 1}}
    CertificateExpiry().enrich([event, expired, garbage])
    assert event["temporal.certificate_days_to_expiry"] == pytest.approx(12)
    assert expired["temporal.certificate_days_to_expiry"] == pytest.approx(-2)
    assert "temporal.certificate_days_to_expiry" not in garbage


def test_clock_skew_ignores_replay_ingest_time_by_default() -> None:
    now = datetime.now(UTC)
    replayed = {"@timestamp": ts(T0), "event.ingested": ts(now)}  # our stamp on an old record: the file's age
    shipped = {"@timestamp": ts(T0), "event.created": ts(T0 + timedelta(minutes=7))}
    ecs_input = {"@timestamp": ts(T0), "event.ingested": ts(T0 + timedelta(minutes=-6))}  # brought by the record
    live = {"@timestamp": ts(now - timedelta(minutes=9)), "event.ingested": ts(now)}  # our stamp on a live stream
    ClockSkew().enrich([replayed, shipped, ecs_input, live])
    assert "temporal.clock_skew_seconds" not in replayed
    assert shipped["temporal.clock_skew_seconds"] == pytest.approx(420)
    assert ecs_input["temporal.clock_skew_seconds"] == pytest.approx(-360)
    assert live["temporal.clock_skew_seconds"] == pytest.approx(540, abs=5)


def test_clock_skew_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    ahead = {"@timestamp": ts(T0 + timedelta(minutes=6)), "event.ingested": ts(T0)}
    ClockSkew("ingested").enrich([ahead])
    assert ahead["temporal.clock_skew_seconds"] == pytest.approx(-360)
    only_created = {"@timestamp": ts(T0), "event.ingested": ts(T0 + timedelta(hours=2))}
    ClockSkew("created").enrich([only_created])
    assert "temporal.clock_skew_seconds" not in only_created
    monkeypatch.setenv("TSIEM_CLOCK_SKEW_REFERENCE", "off")
    quiet = {"@timestamp": ts(T0), "event.created": ts(T0 + timedelta(hours=1))}
    ClockSkew().enrich([quiet])
    assert "temporal.clock_skew_seconds" not in quiet
    with pytest.raises(ValueError, match="clock skew reference"):
        ClockSkew("sometimes")


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(["@timestamp", "event.created", "event.ingested", "x509.not_after", "temporal.certificates.not_after",
                                        "temporal.operation", "temporal.api_key.id", "temporal.target.id", "event.dataset", "user.email", "user.target.email",
                                        "temporal.namespace", "temporal.client_ca_fingerprints", "temporal.certificates.sha256",
                                        "user.changes.roles", "user.target.id", "temporal.client_ca_digest",
                                        "aws.cloudtrail.userIdentity.type", "aws.cloudtrail.eventName", "aws.cloudtrail.userIdentity.arn",
                                        "aws.cloudtrail.responseElements.assumedRoleUser.arn",
                                        "aws.cloudtrail.userIdentity.sessionContext.webIdFederationData.federatedProvider"]),
                       st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30),
                                 st.lists(st.one_of(st.text(max_size=30), st.integers(), st.none()), max_size=3),
                                 st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))))
def test_hostile_values_never_raise(event: dict[str, object]) -> None:
    for enricher in build_enrichers():
        enricher.enrich([dict(event)])
        enricher.enrich([{**event, "event.dataset": "aws.cloudtrail", "@timestamp": "2025-01-01T00:00:00Z"}])
    assert [cls.__name__ for cls in ENRICHERS] == ["ApiKeyRegistry", "CertificateExpiry", "ClientCaRegistry", "ClockSkew", "IdentityKeys",
                                                   "RoleRegistry", "WorkloadSessions"]


def test_identity_keys_fold_case_for_cross_source_joins() -> None:
    from temporal_siem.detections.enrichment import IdentityKeys

    okta = {"user.name": "admin", "user.target.email": ["Carol@Example.COM"]}
    cloud = {"user.email": "carol@example.com", "user.name": "carol@example.com"}
    service = {"user.name": "ci-deployer"}
    IdentityKeys().enrich([okta, cloud, service])
    assert okta["temporal.target_user_key"] == cloud["temporal.user_key"] == "carol@example.com"
    assert "temporal.user_key" not in okta and "temporal.user_key" not in service
    assert okta["user.target.email"] == ["Carol@Example.COM"]  # what was logged stays as logged


@pytest.mark.parametrize(("field", "output"), [("user.email", "temporal.user_key"), ("user.name", "temporal.user_key"),
                                               ("user.target.email", "temporal.target_user_key"),
                                               ("user.target.name", "temporal.target_user_key")])
def test_identity_keys_from_each_field_alone(field: str, output: str) -> None:
    """The enricher skips an event naming none of its fields in one test: each field alone must still count."""
    from temporal_siem.detections.enrichment import IdentityKeys

    event = {field: "Dave@Example.com", "other": 1}
    IdentityKeys().enrich([event, {"other": 2}])
    assert event[output] == "dave@example.com"


@pytest.mark.parametrize("field", ["x509.not_after", "tls.client.x509.not_after", "tls.server.x509.not_after",
                                   "tls.client.not_after", "tls.server.not_after", "temporal.certificates.not_after"])
def test_certificate_expiry_from_each_field_alone(field: str) -> None:
    event = {field: "2025-01-11T00:00:00Z", "@timestamp": "2025-01-01T00:00:00Z"}
    CertificateExpiry().enrich([event, {"@timestamp": "2025-01-01T00:00:00Z"}])
    assert event["temporal.certificate_days_to_expiry"] == 10.0


def test_key_age_survives_a_detector_restart_and_raises_the_stale_key_rule() -> None:
    """The registry rides in the detector snapshot: creation seen before a restart, use seen after it."""
    from temporal_siem.detections.sigma.ruleset import Ruleset

    ruleset = Ruleset.from_paths([], builtin_rules=True)
    first = new_detector(ruleset, {})
    first.process([audit("CreateAPIKey", T0, **{"temporal.target.id": "key-9", "temporal.target.type": "api_key"})])
    state = first.snapshot()
    second = new_detector(ruleset, {})
    second.restore(state)
    alerts = second.process([audit("UpdateNamespaceAPI", T0 + timedelta(days=100), **{"temporal.api_key.id": "key-9"})])
    assert [a["rule.name"] for a in alerts] == ["Temporal Cloud API Key Used More Than 90 Days After Creation"]
    assert alerts[0]["temporal.api_key.age_days"] == pytest.approx(100)
    fresh = new_detector(ruleset, {})  # without the snapshot the key's age is unknown: no alert
    assert fresh.process([audit("UpdateNamespaceAPI", T0 + timedelta(days=100), **{"temporal.api_key.id": "key-9"})]) == []


def test_client_ca_registry_flags_only_real_bundle_changes() -> None:
    from temporal_siem.detections.enrichment import ClientCaRegistry

    def update(fingerprints: list[str], namespace: str = "payments-prod.a1b2c", **extra: object) -> dict[str, object]:
        return audit("UpdateNamespaceAPI", T0, **{"temporal.namespace": namespace, "temporal.client_ca_fingerprints": fingerprints}, **extra)

    reg = ClientCaRegistry()
    first, same, added, other_ns, failed = (update(["AA:BB"]), update(["aabb"]), update(["aabb", "ccdd"]),
                                            update(["aabb"], namespace="orders.a1b2c"), update(["eeff"], **{"event.outcome": "failure"}))
    reg.enrich([first, same, added, other_ns, failed])
    assert first["temporal.client_ca_changed"] is True and first["temporal.client_ca_added"] == ["aabb"]
    assert same["temporal.client_ca_changed"] is False and "temporal.client_ca_added" not in same
    assert added["temporal.client_ca_changed"] is True and added["temporal.client_ca_added"] == ["ccdd"]
    assert other_ns["temporal.client_ca_changed"] is True  # per namespace
    assert "temporal.client_ca_changed" not in failed  # a refused update changed nothing
    restored = ClientCaRegistry()
    restored.restore(reg.snapshot())
    again = update(["aabb", "ccdd"])
    restored.enrich([again])
    assert again["temporal.client_ca_changed"] is False
    with pytest.raises(ValueError, match="client_ca_registry"):
        ClientCaRegistry().restore(b"\xff")


def test_role_registry_lists_only_newly_granted_roles() -> None:
    from temporal_siem.detections.enrichment import RoleRegistry

    def grant(roles: list[str], target: str = "mallory@example.com", **extra: object) -> dict[str, object]:
        return audit("UpdateUserAPI", T0, **{"user.target.email": [target], "user.changes.roles": roles}, **extra)

    reg = RoleRegistry()
    first, raised, renamed, refused = grant(["developer"]), grant(["Admin"]), grant(["admin"], target="Mallory@Example.com"), \
        grant(["owner"], **{"event.outcome": "failure"})
    reg.enrich([first, raised, renamed, refused])
    assert first["temporal.roles_added"] == ["developer"]
    assert raised["temporal.roles_changed"] is True and raised["temporal.roles_added"] == ["admin"]
    assert renamed["temporal.roles_changed"] is False and "temporal.roles_added" not in renamed
    assert "temporal.roles_changed" not in refused
    copy = RoleRegistry()
    copy.restore(reg.snapshot())
    again = grant(["admin"])
    copy.enrich([again])
    assert "temporal.roles_added" not in again


def test_unparsed_ca_bundle_changes_are_seen_through_a_digest() -> None:
    """Issue 14 class 4: a truncated or redacted CA bundle yields no fingerprints; its normalized digest feeds the
    registry, so a different unparsed bundle is a change and a re-sent one is not."""
    from temporal_siem.detections.enrichment import ClientCaRegistry

    reg = ClientCaRegistry()

    def update(day: int, digest: str) -> dict[str, object]:
        return audit("UpdateNamespace", T0 + timedelta(days=day), **{"temporal.namespace": "payments", "temporal.client_ca_digest": digest,
                                                                     "temporal.client_ca_unparsed": True})

    first, same, other = update(0, "aa"), update(1, "aa"), update(2, "bb")
    reg.enrich([first, same, other])
    assert first["temporal.client_ca_changed"] is True and same["temporal.client_ca_changed"] is False
    assert other["temporal.client_ca_changed"] is True
    validate_event(unflatten(other))
