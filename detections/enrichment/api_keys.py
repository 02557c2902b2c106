"""API-key registry: remembers when each Temporal Cloud API key was created.

An audit record that *uses* a key carries only the key id, never its age, so "a key used more than
90 days after creation" needs durable memory of creation records (``CreateAPIKey``,
``CreateServiceAccountAPIKey``). The registry is part of the detector snapshot, so it survives
restarts and a replay of the same history rebuilds the same state (the earliest creation wins).
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from typing import Any

import orjson

from detections.enrichment.base import Enricher, as_datetime, event_time
from parsers.common import format_timestamp

CREATE_OPERATIONS = frozenset({"createapikey", "createserviceaccountapikey"})
# Operations that act on a key (temporal.api_key.* then describes that key, not the caller's credential).
KEY_OPERATIONS = CREATE_OPERATIONS | frozenset({"updateapikey", "deleteapikey", "updateserviceaccountapikey",
                                                 "deleteserviceaccountapikey"})
# Where the key a caller authenticated with can appear (parser spelling first, then vendor leftovers).
USED_KEY_FIELDS = ("temporal_cloud.principal.api_key_id", "temporal_cloud.principal.apiKeyId")
MAX_KEYS = 200_000
SECONDS_PER_DAY = 86_400.0


def _operation(event: dict[str, Any]) -> str:
    op = event.get("temporal.operation") or event.get("event.action") or ""
    if not isinstance(op, str):
        return ""
    op = op.lower()
    return op[:-3] if op.endswith("api") else op


def _key_id(value: Any) -> str | None:
    if isinstance(value, list):
        value = next((v for v in value if isinstance(v, str) and v), None)
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return None


class ApiKeyRegistry(Enricher):
    """Learns creation times from creation records; stamps ``temporal.api_key.created_at``/``age_days``."""

    name = "api_key_registry"

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self.max_keys = max_keys
        self._created: OrderedDict[str, datetime] = OrderedDict()
        self._enriched = 0

    def enrich(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            if event.get("event.dataset") not in (None, "temporal_cloud.audit"):
                continue
            op = _operation(event)
            if op in CREATE_OPERATIONS:
                self._learn(event)
            if op in KEY_OPERATIONS:
                key = _key_id(event.get("temporal.api_key.id"))  # the key acted upon
            else:
                key = next((k for k in (_key_id(event.get(f)) for f in USED_KEY_FIELDS) if k), None)
                key = key or _key_id(event.get("temporal.api_key.id"))  # the caller's credential
            if key is None:
                continue
            created = self._created.get(key)
            when = event_time(event)
            if created is None or when is None:
                continue
            self._created.move_to_end(key)
            event.setdefault("temporal.api_key.id", key)
            if event.get("temporal.api_key.id") != key:
                continue  # the record already describes another key: do not mix two keys' facts
            event["temporal.api_key.created_at"] = format_timestamp(created)
            event["temporal.api_key.age_days"] = round((when - created).total_seconds() / SECONDS_PER_DAY, 3)
            self._enriched += 1

    def _learn(self, event: dict[str, Any]) -> None:
        if event.get("event.outcome") == "failure":
            return
        key = _key_id(event.get("temporal.api_key.id"))
        created = as_datetime(event.get("temporal.api_key.created_at")) or event_time(event)
        if key is None or created is None:
            return
        known = self._created.get(key)
        if known is None or created < known:
            self._created[key] = created
        self._created.move_to_end(key)
        while len(self._created) > self.max_keys:
            self._created.popitem(last=False)

    def created_at(self, key_id: str) -> datetime | None:
        return self._created.get(key_id)

    def snapshot(self) -> bytes:
        return orjson.dumps({"version": 1, "created": {k: format_timestamp(v) for k, v in self._created.items()}})

    def restore(self, state: bytes) -> None:
        """Merge a snapshot (earliest creation wins), so restoring over live state never loses keys."""
        if not state:
            return
        try:
            data = orjson.loads(state)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"api_key_registry snapshot is not JSON: {exc}") from exc
        created = data.get("created") if isinstance(data, dict) else None
        if not isinstance(created, dict):
            raise ValueError("api_key_registry snapshot has no 'created' map")
        for key, text in created.items():
            when = as_datetime(text)
            if isinstance(key, str) and when is not None:
                known = self._created.get(key)
                if known is None or when < known:
                    self._created[key] = when

    def stats(self) -> dict[str, Any]:
        return {"keys_known": len(self._created), "events_enriched": self._enriched}
