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
    state_datasets = frozenset({"aws.cloudtrail"})  # enrich() skips every other dataset

    def __init__(self, max_sessions: int = MAX_SESSIONS, max_roles: int = MAX_ROLES) -> None:
        self.max_sessions = max_sessions
        self.max_roles = max_roles
        # session ARN -> (origin, assumed_by or "", time the session was assumed)
        self._sessions: OrderedDict[str, tuple[str, str, datetime]] = OrderedDict()
        self._workload_roles: OrderedDict[str, datetime] = OrderedDict()  # role ARN -> first time seen as a workload

    def enrich(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            if event.get("event.dataset") != "aws.cloudtrail":
                continue
            when = event_time(event)
            if when is None:
                continue
            name = _text(event, "eventName") or ""
            assuming = name.startswith("AssumeRole") and event.get("event.outcome") != "failure"
            if _text(event, "userIdentity.type") == "AssumedRole":
                # On an AssumeRole record the fields describe the NEW session; the caller's session only teaches roles.
                self._used(event, when, stamp=not assuming)
            if assuming:
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
        return orjson.dumps({"version": 1,
                             "sessions": {k: [o, b, format_timestamp(t)] for k, (o, b, t) in self._sessions.items()},
                             "workload_roles": {k: format_timestamp(t) for k, t in self._workload_roles.items()}})

    def restore(self, state: bytes) -> None:
        sessions = read_snapshot_map(state, self.name, "sessions")
        if sessions is None:
            return
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
