"""API-key registry: remembers when each Temporal Cloud API key was created, and when it was first seen.

An audit record made with a key carries only the key id, never its age, so "a key used more than
90 days after creation" needs durable memory of creation records (``CreateAPIKey``,
``CreateServiceAccountAPIKey``). A key created before the retained history has no creation record, and
those old keys are exactly the ones the rule exists for: so the registry also keeps the first time each key
id was seen at all (as the caller's key, or as a key a record acts on; a namespace, user or service account
a record acts on is no key: it would take a real key's place in the bounded map). The age is measured from
the older of the two, and ``temporal.api_key.age_source`` says which (``created`` or ``first_seen``); a
first-seen age is a lower bound of the true age. The registry is part of the detector snapshot, so it survives restarts, and a
replay of older files moves both times back (the earliest wins), never forward.

State is per key id (:meth:`key_state` / :meth:`restore_key`), so it can live in keyed state stores.

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
#: ``temporal.target.type`` values whose ``temporal.target.id`` is a key (None: a record without a type, from a
#: producer other than our parser, may name one). A namespace, user or service account acted on is no sighting.
KEY_TARGET_TYPES = (None, "api_key")
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


def sighted_targets(event: dict[str, Any]) -> list[str]:
    """The keys a record acts on that count as sightings: of a successful call (the key a failed call names may
    not exist, e.g. a failed create) whose target is a key (:data:`KEY_TARGET_TYPES`)."""
    if event.get("event.outcome") == "failure" or event.get("temporal.target.type") not in KEY_TARGET_TYPES:
        return []
    return _key_ids(event.get("temporal.target.id"))


class ApiKeyRegistry(Enricher):
    """Learns creation times from creation records; stamps the caller's key with its creation time and age.

    Sets ``temporal.api_key.created_at`` and ``temporal.api_key.age_days`` (days from creation to the
    record's own ``@timestamp``, so replays give the same answer as the live run).
    """

    name = "api_key_registry"
    datasets = frozenset({None, "temporal_cloud.audit"})  # enrich() skips every other dataset

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self.max_keys = max_keys
        self._created: OrderedDict[str, datetime] = OrderedDict()
        self._first_seen: OrderedDict[str, datetime] = OrderedDict()
        self._enriched = 0

    def reads_state(self, event: dict[str, Any]) -> bool:
        """An audit record that names a key: the one its caller used, or a target (a created key, or a sighting)."""
        dataset = event.get("event.dataset")
        if dataset is not None and dataset != "temporal_cloud.audit":
            return False
        if any(_key_ids(event.get(name)) for name in USED_KEY_FIELDS):  # an empty api_key_id is no key
            return True
        return bool(_key_ids(event.get("temporal.target.id"))) and (
            event.get("temporal.target.type") in KEY_TARGET_TYPES or _operation(event) in CREATE_OPERATIONS)

    def enrich(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            dataset = event.get("event.dataset")
            if dataset is not None and dataset != "temporal_cloud.audit":
                continue
            if "temporal.target.id" in event and _operation(event) in CREATE_OPERATIONS:
                self._learn(event)
            when = event_time(event)
            key = None
            for name in USED_KEY_FIELDS:
                value = event.get(name)
                if value is not None:
                    ids = _key_ids(value)
                    if ids:
                        key = ids[0]
                        break
            if when is not None:
                for seen in (*([key] if key else []), *sighted_targets(event)):
                    self._sight(seen, when)
            if key is None or when is None:
                continue
            created = self._created.get(key)
            first_seen = self._first_seen.get(key)
            if first_seen is None:
                continue
            if created is not None:
                self._created.move_to_end(key)
                event["temporal.api_key.created_at"] = format_timestamp(created)
            event.setdefault("temporal.api_key.id", key)
            event["temporal.api_key.first_seen"] = format_timestamp(first_seen)
            if created is not None and created <= first_seen:
                since, source = created, "created"
            else:
                since, source = first_seen, "first_seen"
            event["temporal.api_key.age_source"] = source
            event["temporal.api_key.age_days"] = round(max(0.0, (when - since).total_seconds()) / SECONDS_PER_DAY, 3)
            self._enriched += 1

    def _sight(self, key: str, when: datetime) -> None:
        known = self._first_seen.get(key)
        if known is None or when < known:
            self._first_seen[key] = when
        self._first_seen.move_to_end(key)
        while len(self._first_seen) > self.max_keys:
            self._first_seen.popitem(last=False)

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

    def first_seen(self, key_id: str) -> datetime | None:
        return self._first_seen.get(key_id)

    def key_state(self, key_id: str) -> dict[str, str] | None:
        """The state of one key id (for keyed state stores): its creation and first-seen times, or None."""
        state = {name: format_timestamp(table[key_id]) for name, table in (("created", self._created), ("first_seen", self._first_seen))
                 if key_id in table}
        return state or None

    def restore_key(self, key_id: str, state: dict[str, Any]) -> None:
        """Merge one key's state (earliest wins), as written by :meth:`key_state`."""
        for name, table in (("created", self._created), ("first_seen", self._first_seen)):
            when = as_datetime(state.get(name))
            if when is not None and (key_id not in table or when < table[key_id]):
                table[key_id] = when

    def snapshot(self) -> bytes:
        return orjson.dumps({"version": 2, "created": {k: format_timestamp(v) for k, v in self._created.items()},
                             "first_seen": {k: format_timestamp(v) for k, v in self._first_seen.items()}})

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
                self._sight(key, when)  # a version-1 snapshot knows creations only: each is also a sighting
        first_seen = orjson.loads(state).get("first_seen")
        for key, text in (first_seen if isinstance(first_seen, dict) else {}).items():
            when = as_datetime(text)
            if isinstance(key, str) and when is not None:
                self._sight(key, when)

    def stats(self) -> dict[str, Any]:
        return {"keys_known": len(self._created), "keys_seen": len(self._first_seen), "events_enriched": self._enriched}
