"""Workload sessions: how an AWS role session was obtained, so rules stop trusting role names (issue 14 class 7).

Exempting "temporal-worker" by name exempts everyone allowed to assume that role. A workload is defined by how
its session came to be instead:

* ``web_identity``: the session came from web-identity federation (EKS IRSA, GitHub OIDC): CloudTrail writes the
  provider into every call of the session (``sessionContext.webIdFederationData.federatedProvider``), or the
  session was created by ``AssumeRoleWithWebIdentity``;
* ``aws_service``: assumed by an AWS service (``invokedBy``);
* ``role_chain``: assumed by another role session that is not a person's;
* ``assumed_by_human``: assumed (``AssumeRole``/``AssumeRoleWithSAML``) by an IAM user, the root user, an IAM Identity
  Center user or an ``AWSReservedSSO_`` session: a person now holds the role's credentials;
* ``unknown``: the session's start is not in the retained history and its calls carry no federation data.

A role whose sessions were seen to come from web identity or a service is remembered as a **workload role**
(durable, keyed by role ARN); sessions are remembered by session ARN (``assumed-role/ROLE/SESSION``) for
:data:`SESSION_TTL` (the longest an STS session lives). Events get ``temporal.session.origin``,
``temporal.session.human``, ``temporal.session.assumed_by`` (who assumed it, when known) and
``temporal.session.workload_role``. A human assuming a workload role and then using a key in that session is then
one field comparison for a rule.

In the daemon's keyed state the registry is split by role (:func:`workload_scopes`, ``only_role``): a session ARN
names its role, so each role's sessions and workload flag are one bounded value instead of one value for all.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Any

import orjson

from temporal_siem.detections.enrichment.base import Enricher, as_datetime, event_time, read_snapshot_map
from temporal_siem.kernel.timestamps import format_timestamp

P = "aws.cloudtrail."
SESSION_TTL = timedelta(hours=36)  # 12 h maximum role session; chained/extended sessions stay well under this
MAX_SESSIONS = 200_000
MAX_ROLES = 50_000
# One role's scope in the daemon's keyed state is one value (one Kafka changelog message, 1 MB at most by default):
# its sessions are capped by count and by an estimate of their encoded size, its role map by count.
SCOPE_MAX_SESSIONS = 1_000
SCOPE_MAX_BYTES = 160 * 1024
SCOPE_MAX_ROLES = 64
FALLBACK_SCOPE = "*"  # events whose role cannot be read from an ARN
HUMAN_ORIGINS = frozenset({"assumed_by_human"})
WORKLOAD_ORIGINS = frozenset({"web_identity", "aws_service"})


def _text(event: dict[str, Any], key: str) -> str | None:
    value = event.get(P + key)
    return value if isinstance(value, str) and value.strip() else None


def _role_arn_of_session(session_arn: str) -> str | None:
    """``arn:aws:sts::ACCT:assumed-role/ROLE/SESSION`` -> ``arn:aws:iam::ACCT:role/ROLE``."""
    parts = session_arn.split(":", 5)
    if len(parts) < 6 or not parts[5].startswith("assumed-role/"):
        return None
    role = parts[5].split("/")[1] if parts[5].count("/") >= 2 else None
    return f"arn:{parts[1]}:iam::{parts[4]}:role/{role}" if role else None


def role_scope(arn: str | None) -> str:
    """The one scope key of a role: its ARN without the IAM path (role names are unique in an account whatever their
    path), lowercased (so are they, whatever their case). Takes a session ARN (``assumed-role/ROLE/SESSION``, which
    CloudTrail writes without the path) or a role ARN (``role/PATH/ROLE`` in ``sessionIssuer.arn``); anything else
    is :data:`FALLBACK_SCOPE`."""
    if not arn:
        return FALLBACK_SCOPE
    parts = arn.split(":", 5)
    if len(parts) < 6:
        return FALLBACK_SCOPE
    resource = parts[5]
    if resource.startswith("assumed-role/"):
        pieces = resource.split("/")
        name = pieces[1] if len(pieces) >= 3 else ""
    elif resource.startswith("role/"):
        name = resource.rsplit("/", 1)[1]
    else:
        return FALLBACK_SCOPE
    return f"arn:{parts[1]}:iam::{parts[4]}:role/{name}".lower() if name else FALLBACK_SCOPE


def caller_scope(event: dict[str, Any]) -> str:
    """The scope of the session an ``AssumedRole`` caller uses: where that session and its role are remembered."""
    session = _text(event, "userIdentity.arn")
    return role_scope(session if session is not None else _text(event, "userIdentity.sessionContext.sessionIssuer.arn"))


def new_session(event: dict[str, Any]) -> str | None:
    """The session a successful ``AssumeRole*`` record creates (None for any other record)."""
    if not (_text(event, "eventName") or "").startswith("AssumeRole") or event.get("event.outcome") == "failure":
        return None
    return _text(event, "responseElements.assumedRoleUser.arn")


def workload_scopes(event: dict[str, Any]) -> list[str]:
    """The role scopes a CloudTrail record touches, the one that stamps it first (empty: the enricher ignores it).

    A successful ``AssumeRole*`` is stamped by its new session's role; if its caller is a role session too, the
    caller's role learns from it (a second scope, no stamp). Any other call in a role session is stamped by the
    caller's role.
    """
    if event.get("event.dataset") != "aws.cloudtrail":
        return []
    scopes: list[str] = []
    session = new_session(event)
    if session is not None:
        scopes.append(role_scope(session))
    if _text(event, "userIdentity.type") == "AssumedRole":
        caller = caller_scope(event)
        if caller not in scopes:
            scopes.append(caller)
    return scopes


def _caller_is_human(event: dict[str, Any]) -> bool:
    kind = _text(event, "userIdentity.type")
    if kind in ("IAMUser", "Root", "IdentityCenterUser"):
        return True
    if kind == "AssumedRole":
        issuer = _text(event, "userIdentity.sessionContext.sessionIssuer.userName") or ""
        return issuer.startswith("AWSReservedSSO_") and not _federated(event)
    return False


def _federated(event: dict[str, Any]) -> bool:
    return _text(event, "userIdentity.sessionContext.webIdFederationData.federatedProvider") is not None


class WorkloadSessions(Enricher):
    """Stamps CloudTrail events with how their role session was obtained (see the module docstring)."""

    name = "workload_sessions"
    datasets = frozenset({"aws.cloudtrail"})  # enrich() skips every other dataset

    def __init__(self, max_sessions: int = MAX_SESSIONS, max_roles: int = MAX_ROLES, only_role: str | None = None) -> None:
        """``only_role``: act only for the role with this :func:`role_scope` key, as one scope of the daemon's keyed
        state does (its sessions, its workload flag; stamps only the records that scope stamps). Its snapshot then
        keeps only what can still matter and fits one value: sessions older than :data:`SESSION_TTL` before the
        newest record the scope saw are dropped, then the least recently used, people's sessions last, down to
        :data:`SCOPE_MAX_SESSIONS` and :data:`SCOPE_MAX_BYTES`."""
        self.only_role = only_role
        self.max_sessions = max_sessions if only_role is None else min(max_sessions, SCOPE_MAX_SESSIONS * 4)
        self.max_roles = max_roles if only_role is None else min(max_roles, SCOPE_MAX_ROLES)
        self._newest: datetime | None = None
        # session ARN -> (origin, assumed_by or "", time the session was assumed)
        self._sessions: OrderedDict[str, tuple[str, str, datetime]] = OrderedDict()
        self._workload_roles: OrderedDict[str, datetime] = OrderedDict()  # role ARN -> first time seen as a workload

    def reads_state(self, event: dict[str, Any]) -> bool:
        """A CloudTrail record made with an assumed-role session, or one that assumes a role."""
        return event.get("event.dataset") == "aws.cloudtrail" and (
            _text(event, "userIdentity.type") == "AssumedRole" or (_text(event, "eventName") or "").startswith("AssumeRole"))

    def enrich(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            if event.get("event.dataset") != "aws.cloudtrail":
                continue
            when = event_time(event)
            if when is None:
                continue
            name = _text(event, "eventName") or ""
            assuming = name.startswith("AssumeRole") and event.get("event.outcome") != "failure"
            only = self.only_role
            used = _text(event, "userIdentity.type") == "AssumedRole" and (only is None or caller_scope(event) == only)
            assumed = assuming and (only is None or role_scope(_text(event, "responseElements.assumedRoleUser.arn")) == only)
            if only is not None and (used or assumed) and (self._newest is None or when > self._newest):
                self._newest = when
            if used:
                # On an AssumeRole record the fields describe the NEW session; the caller's session only teaches roles.
                self._used(event, when, stamp=not assuming)
            if assumed:
                self._assumed(event, name, when)

    def _assumed(self, event: dict[str, Any], name: str, when: datetime) -> None:
        session = _text(event, "responseElements.assumedRoleUser.arn")
        if session is None:
            return
        if name == "AssumeRoleWithWebIdentity":
            origin, by = "web_identity", _text(event, "userIdentity.identityProvider") or ""
        elif _text(event, "userIdentity.invokedBy") or _text(event, "userIdentity.type") == "AWSService":
            origin, by = "aws_service", _text(event, "userIdentity.invokedBy") or ""
        elif name == "AssumeRoleWithSAML" or _caller_is_human(event):
            origin, by = "assumed_by_human", _text(event, "userIdentity.arn") or _text(event, "userIdentity.userName") or ""
        else:
            origin, by = "role_chain", _text(event, "userIdentity.arn") or ""
        self._remember(session, origin, by, when)
        role = _role_arn_of_session(session)
        self._stamp(event, origin, by, role)

    def _used(self, event: dict[str, Any], when: datetime, stamp: bool = True) -> None:
        session = _text(event, "userIdentity.arn")
        role = _text(event, "userIdentity.sessionContext.sessionIssuer.arn") or (_role_arn_of_session(session) if session else None)
        if _federated(event):
            origin, by = "web_identity", _text(event, "userIdentity.sessionContext.webIdFederationData.federatedProvider") or ""
        else:
            known = self._sessions.get(session) if session else None
            if known is not None and timedelta(0) <= when - known[2] <= SESSION_TTL:
                origin, by = known[0], known[1]
                self._sessions.move_to_end(session)  # type: ignore[arg-type]
            else:
                origin, by = "unknown", ""
        if origin in WORKLOAD_ORIGINS and role:
            self._learn_role(role, when)
        if stamp:
            self._stamp(event, origin, by, role)

    def _stamp(self, event: dict[str, Any], origin: str, by: str, role: str | None) -> None:
        event["temporal.session.origin"] = origin
        event["temporal.session.human"] = origin in HUMAN_ORIGINS
        if by:
            event["temporal.session.assumed_by"] = by
        if role:
            event["temporal.session.workload_role"] = role in self._workload_roles

    def _remember(self, session: str, origin: str, by: str, when: datetime) -> None:
        self._sessions[session] = (origin, by, when)
        self._sessions.move_to_end(session)
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)
        if origin in WORKLOAD_ORIGINS:
            role = _role_arn_of_session(session)
            if role:
                self._learn_role(role, when)

    def _learn_role(self, role: str, when: datetime) -> None:
        known = self._workload_roles.get(role)
        if known is None or when < known:
            self._workload_roles[role] = when
        self._workload_roles.move_to_end(role)
        while len(self._workload_roles) > self.max_roles:
            self._workload_roles.popitem(last=False)

    # -- state: per key (session ARN, role ARN), so it fits keyed state stores ------------------------------------
    def session_state(self, session_arn: str) -> dict[str, str] | None:
        known = self._sessions.get(session_arn)
        return {"origin": known[0], "assumed_by": known[1], "at": format_timestamp(known[2])} if known else None

    def restore_session(self, session_arn: str, state: dict[str, Any]) -> None:
        """Load one session's state as written by :meth:`session_state`."""
        when = as_datetime(state.get("at"))
        if when is not None:
            self._remember(session_arn, str(state.get("origin", "unknown")), str(state.get("assumed_by", "")), when)

    def snapshot(self) -> bytes:
        doc: dict[str, Any] = {"version": 1}
        if self.only_role is not None:
            self._bound()
            if self._newest is not None:
                doc["newest"] = format_timestamp(self._newest)
        doc["sessions"] = {k: [o, b, format_timestamp(t)] for k, (o, b, t) in self._sessions.items()}
        doc["workload_roles"] = {k: format_timestamp(t) for k, t in self._workload_roles.items()}
        return orjson.dumps(doc)

    def _bound(self) -> None:
        """One scope's sessions: what a later record can still find (not expired), within one value's size."""
        if self._newest is not None:
            horizon = self._newest - SESSION_TTL
            for key in [k for k, (_, _, t) in self._sessions.items() if t < horizon]:
                del self._sessions[key]
        size = sum(_encoded_size(k, b) for k, (_, b, _) in self._sessions.items())
        count = len(self._sessions)
        if count <= SCOPE_MAX_SESSIONS and size <= SCOPE_MAX_BYTES:
            return
        # Least recently used first, people's sessions last: forgetting a workload's session only turns its later
        # calls' origin to "unknown" (not human either), forgetting a person's would hide what they do with it.
        order = [k for k, v in self._sessions.items() if v[0] not in HUMAN_ORIGINS]
        order += [k for k, v in self._sessions.items() if v[0] in HUMAN_ORIGINS]
        for key in order:
            if count <= SCOPE_MAX_SESSIONS and size <= SCOPE_MAX_BYTES:
                break
            size -= _encoded_size(key, self._sessions.pop(key)[1])
            count -= 1

    def restore(self, state: bytes) -> None:
        sessions = read_snapshot_map(state, self.name, "sessions")
        if sessions is None:
            return
        if self.only_role is not None:
            newest = as_datetime(orjson.loads(state).get("newest"))
            if newest is not None and (self._newest is None or newest > self._newest):
                self._newest = newest
        for key, value in sessions.items():
            if isinstance(key, str) and isinstance(value, list) and len(value) == 3:
                when = as_datetime(value[2])
                if when is not None:
                    self._remember(key, str(value[0]), str(value[1]), when)
        roles = read_snapshot_map(state, self.name, "workload_roles") or {}
        for key, text in roles.items():
            when = as_datetime(text)
            if isinstance(key, str) and when is not None:
                self._learn_role(key, when)

    def stats(self) -> dict[str, Any]:
        return {"sessions_known": len(self._sessions), "workload_roles_known": len(self._workload_roles)}


def _encoded_size(session: str, by: str) -> int:
    """About what one session costs in a snapshot, escaped once more inside the keyed-state value."""
    return len(session) + len(by) + 64
