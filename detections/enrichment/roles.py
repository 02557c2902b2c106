"""Role registry: which roles did this update actually grant?

``UpdateUser`` carries the user's whole role set, so an update that changes a display name re-sends "admin" for an
existing admin. Escalation means a role the user did not have before; this enricher remembers the last role set
per target user (durable through the detector snapshot) and lists the newly granted ones. The first update seen
for a user counts every role as new: without history, a fresh admin looks exactly like that.
"""

from __future__ import annotations

from typing import Any

from temporal_siem.detections.enrichment.base import Enricher, SetRegistry

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
    datasets = frozenset({None, "temporal_cloud.audit"})  # enrich() skips every other dataset

    def __init__(self, max_users: int = MAX_USERS) -> None:
        self._roles = SetRegistry(self.name, "roles", max_users)

    def reads_state(self, event: dict[str, Any]) -> bool:
        """A successful audit record granting roles."""
        return (event.get("user.changes.roles") is not None and event.get("event.outcome") != "failure"
                and event.get("event.dataset") in (None, "temporal_cloud.audit"))

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
            changed, added = self._roles.update(target, granted)
            event[CHANGED] = changed
            if added:
                event[ADDED] = added

    def snapshot(self) -> bytes:
        return self._roles.snapshot()

    def restore(self, state: bytes) -> None:
        self._roles.restore(state)

    def stats(self) -> dict[str, Any]:
        return {"users_known": len(self._roles)}
