"""API-key registry: remembers when each Temporal Cloud API key was created.

An audit record made with a key carries only the key id, never its age, so "a key used more than
90 days after creation" needs durable memory of creation records (``CreateAPIKey``,
``CreateServiceAccountAPIKey``). The registry is part of the detector snapshot, so it survives
restarts, and a replay of the same history rebuilds the same state (the earliest creation wins).

Field convention (parsers/temporal_cloud_audit.py): ``temporal.api_key.*`` is the key the caller
authenticated with; the key a CreateAPIKey/UpdateAPIKey/DeleteAPIKey acts on is ``temporal.target.*``.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from typing import Any

import orjson
from temporal_siem.detections.enrichment.base import Enricher, as_datetime, event_time, read_snapshot_map
from temporal_siem.kernel.timestamps import format_timestamp

CREATE_OPERATIONS = frozenset({"createapikey", "createserviceaccountapikey"})
CREATED_KEY_FIELDS = ("temporal.target.id",)
USED_KEY_FIELDS = ("temporal.api_key.id", "temporal_cloud.principal.api_key_id", "temporal_cloud.principal.apiKeyId")
MAX_KEYS = 200_000
SECONDS_PER_DAY = 86_400.0


def _operation(event: dict[str, Any]) -> str:
    op = event.get("temporal.operation") or event.get("event.action") or ""
    if not isinstance(op, str):
        return ""
    op = op.lower()
    return op[:-3] if op.endswith("api") else op


def _key_ids(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [v.strip() for v in items if isinstance(v, str) and v.strip()]


class ApiKeyRegistry(Enricher):
    """Learns creation times from creation records; stamps the caller's key with its creation time and age.

    Sets ``temporal.api_key.created_at`` and ``temporal.api_key.age_days`` (days from creation to the
    record's own ``@timestamp``, so replays give the same answer as the live run).
    """

    name = "api_key_registry"

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self.max_keys = max_keys
        self._created: OrderedDict[str, datetime] = OrderedDict()
        self._enriched = 0

    def enrich(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            dataset = event.get("event.dataset")
            if dataset is not None and dataset != "temporal_cloud.audit":
                continue
            if "temporal.target.id" in event and _operation(event) in CREATE_OPERATIONS:
                self._learn(event)
            key = None
            for name in USED_KEY_FIELDS:
                value = event.get(name)
                if value is not None:
                    ids = _key_ids(value)
                    if ids:
                        key = ids[0]
                        break
            if key is None or not self._created:
                continue
            created = self._created.get(key)
            when = event_time(event)
            if created is None or when is None:
                continue
            self._created.move_to_end(key)
            event.setdefault("temporal.api_key.id", key)
            event["temporal.api_key.created_at"] = format_timestamp(created)
            event["temporal.api_key.age_days"] = round((when - created).total_seconds() / SECONDS_PER_DAY, 3)
            self._enriched += 1

    def _learn(self, event: dict[str, Any]) -> None:
        if event.get("event.outcome") == "failure":
            return
        created = event_time(event)
        if created is None:
            return
        for key in (k for f in CREATED_KEY_FIELDS for k in _key_ids(event.get(f))):
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
        created = read_snapshot_map(state, self.name, "created")
        if created is None:
            return
        for key, text in created.items():
            when = as_datetime(text)
            if isinstance(key, str) and when is not None:
                known = self._created.get(key)
                if known is None or when < known:
                    self._created[key] = when

    def stats(self) -> dict[str, Any]:
        return {"keys_known": len(self._created), "events_enriched": self._enriched}
