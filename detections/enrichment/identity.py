"""Identity join keys: one spelling of a person across identity providers and Temporal.

Okta may log ``Carol@Example.com`` where Temporal Cloud logs ``carol@example.com``; correlation group-by
compares values exactly, so cross-source correlations would silently miss. Email addresses are
case-insensitive in every IdP we read, so the key is the lower-cased address. The original fields are left
as the vendor wrote them (alerts show what was logged).
"""

from __future__ import annotations

from typing import Any

from detections.enrichment.base import Enricher

USER_KEY = "temporal.user_key"
TARGET_USER_KEY = "temporal.target_user_key"


def _first_address(value: Any) -> str | None:
    for item in value if isinstance(value, list) else (value,):
        if isinstance(item, str) and "@" in item:
            text = item.strip().lower()
            if text:
                return text
    return None


class IdentityKeys(Enricher):
    """Sets ``temporal.user_key`` (acting user) and ``temporal.target_user_key`` (user acted upon)."""

    name = "identity_keys"

    def enrich(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            actor = _first_address(event.get("user.email")) or _first_address(event.get("user.name"))
            if actor:
                event[USER_KEY] = actor
            target = _first_address(event.get("user.target.email")) or _first_address(event.get("user.target.name"))
            if target:
                event[TARGET_USER_KEY] = target
