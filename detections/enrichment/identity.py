"""Identity join keys: one spelling of a person across identity providers and Temporal.

Okta may log ``Carol@Example.com`` where Temporal Cloud logs ``carol@example.com``; correlation group-by
compares values exactly, so cross-source correlations would silently miss. Email addresses are
case-insensitive in every IdP we read, so the key is the lower-cased address. The original fields are left
as the vendor wrote them (alerts show what was logged).
"""

from __future__ import annotations

from typing import Any

from temporal_siem.detections.enrichment.base import Enricher

USER_KEY = "temporal.user_key"
TARGET_USER_KEY = "temporal.target_user_key"
#: Where each address is read from, email field first (IdPs put the login in either).
_ACTOR_FIELDS = ("user.email", "user.name")
_TARGET_FIELDS = ("user.target.email", "user.target.name")
_FIELDS = frozenset(_ACTOR_FIELDS + _TARGET_FIELDS)


def _first_address(value: Any) -> str | None:
    if value.__class__ is str:
        return value.strip().lower() or None if "@" in value else None
    if isinstance(value, list):
        for item in value:
            if isinstance(item, str) and "@" in item and item.strip():
                return item.strip().lower()
    return None


class IdentityKeys(Enricher):
    """Sets ``temporal.user_key`` (acting user) and ``temporal.target_user_key`` (user acted upon)."""

    name = "identity_keys"
    deferrable = True
    written = "folded"
    writes = frozenset({USER_KEY, TARGET_USER_KEY})

    def enrich(self, events: list[dict[str, Any]]) -> None:
        fields = _FIELDS
        for event in events:
            if event.keys().isdisjoint(fields):  # most events (Windows, server logs) name no user: one C test
                continue
            actor = _address(event, *_ACTOR_FIELDS)
            if actor:
                event[USER_KEY] = actor
            target = _address(event, *_TARGET_FIELDS)
            if target:
                event[TARGET_USER_KEY] = target


def _address(event: dict[str, Any], email_field: str, name_field: str) -> str | None:
    """The folded address from the email field, else from the name field (IdPs put the login in either)."""
    for field in (email_field, name_field):
        value = event.get(field)
        found = _first_address(value) if value is not None else None
        if found is not None:
            return found
    return None
