"""The workload-sessions registry in the daemon's keyed state: bounded per key, and the same stamps and alerts as replay.

Found while benchmarking: all role sessions lived in one scope (``e|workload_sessions|*``), one value that grew
past Kafka's 1 MB message limit (the changelog produce failed, the daemon stopped) and was restored and rewritten
whole for every event.
"""

from __future__ import annotations

import copy
import random
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from temporal_siem.detections.enrichment import WorkloadSessions
from temporal_siem.detections.factory import build_ruleset, new_detector
from temporal_siem.detections.scoped import META_KEY, ScopedDetector, ScopeMessage, enrichment_messages
from temporal_siem.detections.sigma.ruleset import Ruleset
from tests.rules.test_workload_sessions import ACCOUNT, KEY, parse

BOUND = 256 * 1024  # well under Kafka's default 1 MB message limit
BASE = datetime(2025, 7, 1, tzinfo=UTC)
STAMPS = ("temporal.session.origin", "temporal.session.human", "temporal.session.assumed_by", "temporal.session.workload_role")
WORKLOAD_RULES = {"Person Assumed an AWS Workload Role", "Key Used in a Workload Role Session That a Person Assumed"}
PROVIDER = f"arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/X"
HUMAN = {"type": "IAMUser", "principalId": "AIDAMALLORY", "arn": f"arn:aws:iam::{ACCOUNT}:user/mallory", "accountId": ACCOUNT,
         "userName": "mallory"}
#: role name -> IAM path: a role with a path is written with it in sessionIssuer.arn, without it in session ARNs.
ROLES = {"temporal-worker": "/", "ci-runner": "/", "temporal-codec": "/service/codec/", "ops-admin": "/"}
SSO = "AWSReservedSSO_Admin_0123456789abcdef"  # a person's Identity Center session: only ever a caller here
PATHS = {**ROLES, SSO: "/aws-reserved/sso.amazonaws.com/"}


def _ts(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _session(role: str, name: str) -> str:
    return f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{name}"


def _caller(role: str, name: str, federated: bool) -> dict[str, Any]:
    issuer = {"type": "Role", "arn": f"arn:aws:iam::{ACCOUNT}:role{PATHS[role]}{role}", "userName": role}
    return {"type": "AssumedRole", "principalId": f"AROAX:{name}", "arn": _session(role, name), "accountId": ACCOUNT,
            "sessionContext": {"sessionIssuer": issuer, "attributes": {"mfaAuthenticated": "false"},
                               "webIdFederationData": {"federatedProvider": PROVIDER, "attributes": {}} if federated else {}}}


def _assume(name: str, caller: dict[str, Any], role: str, session: str, when: datetime, tag: str) -> dict[str, Any]:
    return parse({"eventVersion": "1.08", "userIdentity": caller, "eventTime": _ts(when), "eventSource": "sts.amazonaws.com",
                  "eventName": name, "awsRegion": "us-west-2", "sourceIPAddress": "198.51.100.14", "userAgent": "aws-cli/2.15.0",
                  "requestParameters": {"roleArn": f"arn:aws:iam::{ACCOUNT}:role{PATHS[role]}{role}", "roleSessionName": session},
                  "responseElements": {"credentials": {"accessKeyId": "ASIAX", "sessionToken": "x"},
                                       "assumedRoleUser": {"arn": _session(role, session), "assumedRoleId": f"AROAX:{session}"}},
                  "eventID": f"a-{tag}", "eventType": "AwsApiCall", "recipientAccountId": ACCOUNT})


def _decrypt(role: str, session: str, when: datetime, federated: bool, tag: str) -> dict[str, Any]:
    return parse({"eventVersion": "1.08", "userIdentity": _caller(role, session, federated), "eventTime": _ts(when),
                  "eventSource": "kms.amazonaws.com", "eventName": "Decrypt", "awsRegion": "us-west-2",
                  "sourceIPAddress": "203.0.113.66", "userAgent": "aws-cli/2.15.0", "requestParameters": {"keyId": KEY},
                  "eventID": f"d-{tag}", "eventType": "AwsApiCall", "recipientAccountId": ACCOUNT,
                  "resources": [{"type": "AWS::KMS::Key", "ARN": KEY, "accountId": ACCOUNT}]})


def corpus(sessions: int, spacing: timedelta, seed: int = 7) -> list[dict[str, Any]]:
    """Thousands of distinct role sessions over several roles and days, in event-time order: web-identity pods,
    people assuming workload roles (and decrypting in those sessions), workloads chaining into another role, calls
    in sessions whose start is older than an STS session lives, and roles with an IAM path."""
    rng = random.Random(seed)
    events: list[tuple[datetime, dict[str, Any]]] = []
    names = list(ROLES)
    for i in range(sessions):
        role = names[i % len(names)]
        start = BASE + spacing * i
        name = f"s{i}"
        kind = rng.random()
        if kind < 0.55 and role != "ops-admin":  # a pod: web identity
            caller = {"type": "WebIdentityUser", "principalId": f"{PROVIDER}:sub", "userName": "system:serviceaccount:t:w",
                      "identityProvider": PROVIDER}
            events.append((start, _assume("AssumeRoleWithWebIdentity", caller, role, name, start, name)))
            federated = True
        elif kind < 0.8:  # a person
            events.append((start, _assume("AssumeRole", HUMAN, role, name, start, name)))
            federated = False
        else:  # a workload's session (its own role or another) chaining into this role
            source = rng.choice(["temporal-worker", "ci-runner", "temporal-codec", role, SSO, SSO])
            by = _caller(source, f"{name}-src", federated=source != SSO)
            events.append((start, _assume("AssumeRole", by, role, name, start, name)))
            federated = False
        for n, later in enumerate((timedelta(minutes=rng.randint(1, 50)), timedelta(hours=rng.choice([2, 20, 40])))):
            events.append((start + later, _decrypt(role, name, start + later, federated, f"{name}-{n}")))
    events.sort(key=lambda pair: (pair[0], pair[1]["event.id"]))
    return [event for _, event in events]


@pytest.fixture(scope="module")
def ruleset() -> Ruleset:
    return build_ruleset([])


def _replay_stamps(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    reference = WorkloadSessions()
    copies = copy.deepcopy(events)
    reference.enrich(copies)
    return {e["event.id"]: {k: e.get(k) for k in STAMPS} for e in copies}


def _largest_workload_value(detector: ScopedDetector) -> int:
    return max((len(orjson.dumps(v)) for k, v in detector.store.data.items() if k.startswith("e|workload_sessions|")), default=0)


def test_thousands_of_sessions_stay_bounded_per_key_and_stamp_like_replay(ruleset: Ruleset) -> None:
    events = corpus(4000, timedelta(minutes=2))  # ~5.5 days; a few hundred live sessions per role at a time
    expected = _replay_stamps(events)
    whole = new_detector(ruleset, {"correlation": {"allowed_lateness_seconds": 300.0}})
    want = Counter((a["alert.id"], a["rule.name"]) for a in whole.process(copy.deepcopy(events)) + whole.finish())
    scoped = ScopedDetector(ruleset, {"correlation": {"allowed_lateness_seconds": 300.0}})
    copies: dict[str, list[dict[str, Any]]] = defaultdict(list)
    observe = scoped.scoped.observe

    def like_the_daemon(store: Any, meta: dict[str, Any], message: ScopeMessage) -> Any:
        """In the daemon each scope gets its own copy of the event (a message on the scopes topic)."""
        message = ScopeMessage.from_bytes(message.key, message.to_bytes())
        if message.key.startswith("e|workload_sessions|"):
            copies[message.event["event.id"]].append(message.event)
        return observe(store, meta, message)

    scoped.scoped.observe = like_the_daemon  # type: ignore[method-assign]
    fed = copy.deepcopy(events)
    got: Counter[tuple[str, str]] = Counter()  # each alert once: the rules reading the stamps run in one scope
    largest = 0
    for start in range(0, len(fed), 200):
        got.update((a["alert.id"], a["rule.name"]) for a in scoped.process(fed[start:start + 200]))
        largest = max(largest, _largest_workload_value(scoped))
        assert largest < BOUND, f"one workload_sessions state value is {largest} bytes after {start + 200} events"
    got.update((a["alert.id"], a["rule.name"]) for a in scoped.finish())
    stamped = {i: [c for c in found if "temporal.session.origin" in c] for i, found in copies.items()}
    assert all(len(found) <= 1 for found in stamped.values())  # one scope stamps an event, never two
    stamps = {e["event.id"]: {k: (stamped.get(e["event.id"]) or [{}])[0].get(k) for k in STAMPS} for e in fed}
    assert stamps == expected
    assert sum(1 for found in copies.values() if len(found) == 2) > 100  # role chains: two scopes, one stamp
    assert got == want
    assert sum(n for (_, name), n in got.items() if name in WORKLOAD_RULES) > 100  # the rules reading the stamps did fire
    assert sum(1 for k in scoped.store.data if k.startswith("e|workload_sessions|")) >= len(ROLES)
    assert META_KEY in scoped.store.data


def test_one_role_flooded_with_sessions_stays_bounded(ruleset: Ruleset) -> None:
    """Hostile or just busy: 3,000 sessions of one role within an hour; no value passes the bound, nothing stops."""
    events = corpus(3000, timedelta(seconds=1))
    for event in events:  # every session in one role
        for field in list(event):
            if isinstance(event[field], str):
                event[field] = event[field].replace("/ci-runner/", "/temporal-worker/").replace("/temporal-codec/", "/temporal-worker/")
    scoped = ScopedDetector(ruleset, {"correlation": {"allowed_lateness_seconds": 300.0}})
    for start in range(0, len(events), 500):
        scoped.process(events[start:start + 500])
        assert _largest_workload_value(scoped) < BOUND
    scoped.finish()
    assert _largest_workload_value(scoped) < BOUND


def test_an_assume_role_by_a_role_session_feeds_both_roles_and_stamps_once() -> None:
    """The new session's role stamps the event (and runs the rules reading the stamps); the caller's role learns
    from it: two scopes, one stamp."""
    caller = _caller("ci-runner", "job-1", federated=True)
    event = _assume("AssumeRole", caller, "temporal-codec", "deploy", BASE, "chain")
    keys = [m.key for m in enrichment_messages(event, 0)]
    assert keys == [f"e|workload_sessions|arn:aws:iam::{ACCOUNT}:role/temporal-codec",
                    f"e|workload_sessions|arn:aws:iam::{ACCOUNT}:role/ci-runner"]
    used = _decrypt("temporal-codec", "x", BASE, federated=True, tag="path")  # issuer ARN with the path: same scope
    assert [m.key for m in enrichment_messages(used, 0)] == [f"e|workload_sessions|arn:aws:iam::{ACCOUNT}:role/temporal-codec"]


ASSUMED_RULES = """
title: Role assumed by someone other than a person
id: 9d1c7e52-3a4b-4c8d-9e0f-1a2b3c4d5e01
logsource: {product: aws, service: cloudtrail}
detection:
  selection: {event.action: AssumeRole}
  person: {temporal.session.human: true}
  condition: selection and not person
level: low
---
title: Role assumed by a person
id: 9d1c7e52-3a4b-4c8d-9e0f-1a2b3c4d5e02
logsource: {product: aws, service: cloudtrail}
detection:
  selection: {event.action: AssumeRole, temporal.session.origin: assumed_by_human}
  condition: selection
level: low
"""


@pytest.mark.parametrize("lateness", [300.0, -1.0], ids=["lateness-300s", "unbounded"])
def test_rules_reading_the_stamps_run_once_in_the_stamping_scope(lateness: float) -> None:
    """A person's SSO session assumes a role: the event goes to two role scopes; the rules reading the stamps see it
    once, stamped (in the caller's scope it is not stamped: a negated stamp would match there)."""
    ruleset = Ruleset.from_yaml(ASSUMED_RULES)
    events = [_assume("AssumeRole", _caller(SSO, "alice@example.com", federated=False), role, f"alice-{n}",
                      BASE + timedelta(minutes=n), f"sso-{n}") for n, role in enumerate(["temporal-worker", "ops-admin", SSO])]
    options = {"correlation": {"allowed_lateness_seconds": lateness}}
    whole = new_detector(ruleset, options)
    want = Counter(a["alert.id"] for a in whole.process(copy.deepcopy(events)) + whole.finish())
    scoped = ScopedDetector(ruleset, options)
    got = Counter(a["alert.id"] for a in scoped.process(copy.deepcopy(events)) + scoped.finish())
    assert got == want
    assert sum(want.values()) == 3  # "by a person", once per event


def test_one_scope_key_per_role_whatever_the_arn_says() -> None:
    from temporal_siem.detections.enrichment.workload import FALLBACK_SCOPE, role_scope

    key = f"arn:aws:iam::{ACCOUNT}:role/temporal-codec"
    assert role_scope(f"arn:aws:iam::{ACCOUNT}:role/service/codec/temporal-codec") == key  # sessionIssuer.arn, with path
    assert role_scope(f"arn:aws:sts::{ACCOUNT}:assumed-role/temporal-codec/pod-1") == key  # session ARN, never a path
    assert role_scope(f"arn:aws:iam::{ACCOUNT}:role/Temporal-Codec") == key  # role names are unique ignoring case
    assert role_scope(f"arn:aws:iam::{ACCOUNT}:user/mallory") == role_scope("garbage") == role_scope(None) == FALLBACK_SCOPE
    assert role_scope(f"arn:aws:sts::{ACCOUNT}:assumed-role/") == FALLBACK_SCOPE


def test_a_role_scope_forgets_expired_sessions_then_workloads_before_people() -> None:
    from temporal_siem.detections.enrichment.workload import SCOPE_MAX_BYTES, SCOPE_MAX_SESSIONS, role_scope

    role = "temporal-worker"
    scope = WorkloadSessions(only_role=role_scope(_session(role, "x")))
    pod = {"type": "WebIdentityUser", "principalId": f"{PROVIDER}:sub", "identityProvider": PROVIDER}
    scope.enrich([_assume("AssumeRole", HUMAN, role, "expired", BASE, "expired")])
    later = BASE + timedelta(hours=40)
    scope.enrich([_assume("AssumeRole", HUMAN, role, f"person-{n}", later, f"p{n}") for n in range(5)])
    scope.enrich([_assume("AssumeRoleWithWebIdentity", pod, role, f"pod-{n}", later + timedelta(seconds=n), f"w{n}")
                  for n in range(SCOPE_MAX_SESSIONS + 500)])
    scope.enrich([_assume("AssumeRole", HUMAN, "ops-admin", "elsewhere", later, "other")])  # another role's: not here
    kept = orjson.loads(scope.snapshot())["sessions"]
    assert 500 < len(kept) <= SCOPE_MAX_SESSIONS  # by count or by bytes (SCOPE_MAX_BYTES), whichever comes first
    assert all(_session(role, f"person-{n}") in kept for n in range(5))  # people's sessions last to go
    assert len(orjson.dumps(kept)) < SCOPE_MAX_BYTES
    assert _session(role, "expired") not in kept  # older than an STS session lives before the newest record
    assert _session("ops-admin", "elsewhere") not in kept
    assert _session(role, f"pod-{SCOPE_MAX_SESSIONS + 499}") in kept  # the most recent workloads stay
    restored = WorkloadSessions(only_role=role_scope(_session(role, "x")))
    restored.restore(scope.snapshot())
    used = _decrypt(role, "person-3", later + timedelta(hours=1), federated=False, tag="u")
    restored.enrich([used])
    assert used["temporal.session.human"] is True and used["temporal.session.workload_role"] is True


def test_a_registry_scope_applies_early_when_its_wait_passes_the_budget() -> None:
    """In event-time order, 2,000 calls of one session within the grace: the wait never holds them all, and the
    stamps are replay's."""
    from temporal_siem.detections.scoped import PENDING_MAX_BYTES

    ruleset = Ruleset.from_yaml(ASSUMED_RULES)
    events = [_assume("AssumeRole", HUMAN, "ops-admin", "busy", BASE, "busy")]
    events += [_decrypt("ops-admin", "busy", BASE + timedelta(milliseconds=50 * n), federated=False, tag=f"b{n}") for n in range(2000)]
    expected = _replay_stamps(events)
    scoped = ScopedDetector(ruleset, {"correlation": {"allowed_lateness_seconds": 300.0}})
    fed = copy.deepcopy(events)
    largest = 0
    for start in range(0, len(fed), 100):
        scoped.process(fed[start:start + 100])
        waiting = [v.get("p") or [] for k, v in scoped.store.data.items() if k.startswith("e|")]
        largest = max([largest] + [len(orjson.dumps(p)) for p in waiting])
    scoped.finish()
    assert largest < 2 * PENDING_MAX_BYTES
    assert scoped.scoped.early > 1000
    assert {e["event.id"]: {k: e.get(k) for k in STAMPS} for e in fed} == expected
