"""Role registry: which roles did this update actually grant?

``UpdateUser`` carries the user's whole role set, so an update that changes a display name re-sends "admin" for an
existing admin. Escalation means a role the user did not have before; this enricher remembers the last role set
per target user (durable through the detector snapshot) and lists the newly granted ones. The first update seen
for a user counts every role as new: without history, a fresh admin looks exactly like that.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import orjson

from detections.enrichment.base import Enricher

CHANGED = "temporal.roles_changed"
ADDED = "temporal.roles_added"
MAX_USERS = 200_000


def _target(event: dict[str, Any]) -> str | None:
    for field in ("user.target.email", "user.target.id"):
        value = event.get(field)
        for item in value if isinstance(value, list) else (value,):
            if isinstance(item, str) and item.strip():
                return item.strip().lower()
    return None


class RoleRegistry(Enricher):
    """Sets ``temporal.roles_changed`` and ``temporal.roles_added`` on Temporal Cloud records granting roles."""

    name = "role_registry"

    def __init__(self, max_users: int = MAX_USERS) -> None:
        self.max_users = max_users
        self._roles: OrderedDict[str, frozenset[str]] = OrderedDict()

    def enrich(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            roles = event.get("user.changes.roles")
            if roles is None or event.get("event.dataset") not in (None, "temporal_cloud.audit") or event.get("event.outcome") == "failure":
                continue
            items = roles if isinstance(roles, list) else [roles]
            granted = frozenset(r.strip().lower() for r in items if isinstance(r, str) and r.strip())
            target = _target(event)
            if not granted or target is None:
                continue
            previous = self._roles.get(target)
            added = sorted(granted - previous) if previous is not None else sorted(granted)
            event[CHANGED] = previous != granted
            if added:
                event[ADDED] = added
            self._roles[target] = granted
            self._roles.move_to_end(target)
            while len(self._roles) > self.max_users:
                self._roles.popitem(last=False)

    def snapshot(self) -> bytes:
        return orjson.dumps({"version": 1, "roles": {k: sorted(v) for k, v in self._roles.items()}})

    def restore(self, state: bytes) -> None:
        if not state:
            return
        try:
            data = orjson.loads(state)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"role_registry snapshot is not JSON: {exc}") from exc
        roles = data.get("roles") if isinstance(data, dict) else None
        if not isinstance(roles, dict):
            raise ValueError("role_registry snapshot has no 'roles' map")
        for key, values in roles.items():
            if isinstance(key, str) and isinstance(values, list):
                self._roles[key] = frozenset(str(v) for v in values)

    def stats(self) -> dict[str, Any]:
        return {"users_known": len(self._roles)}
