"""Client CA registry: did this update actually change the namespace's accepted CA bundle?

Temporal Cloud ``UpdateNamespace`` records can carry the whole namespace spec, CA bundle included, even when
only the retention changed. A rule cannot tell "bundle replaced" from "bundle re-sent" without remembering the
previous bundle, so this enricher keeps the last known set of CA fingerprints per namespace (durable through
the detector snapshot) and marks records whose set differs. The first bundle seen for a namespace counts as a
change: without history, an unknown bundle is what an attacker's would look like too.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import orjson

from detections.enrichment.base import Enricher

FINGERPRINT_FIELDS = ("temporal.client_ca_fingerprints", "temporal.certificates.sha256")
CHANGED = "temporal.client_ca_changed"
ADDED = "temporal.client_ca_added"
MAX_NAMESPACES = 50_000


def _fingerprints(event: dict[str, Any]) -> frozenset[str] | None:
    for field in FINGERPRINT_FIELDS:
        value = event.get(field)
        items = value if isinstance(value, list) else [value]
        found = frozenset(v.strip().lower().replace(":", "") for v in items if isinstance(v, str) and v.strip())
        if found:
            return found
    return None


class ClientCaRegistry(Enricher):
    """Sets ``temporal.client_ca_changed`` (and ``temporal.client_ca_added``) on records carrying a namespace's CA bundle."""

    name = "client_ca_registry"

    def __init__(self, max_namespaces: int = MAX_NAMESPACES) -> None:
        self.max_namespaces = max_namespaces
        self._bundles: OrderedDict[str, frozenset[str]] = OrderedDict()

    def enrich(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            if event.get("event.dataset") not in (None, "temporal_cloud.audit") or event.get("event.outcome") == "failure":
                continue
            namespace = event.get("temporal.namespace")
            if not isinstance(namespace, str) or not namespace:
                continue
            bundle = _fingerprints(event)
            if bundle is None:
                continue
            key = namespace.lower()
            previous = self._bundles.get(key)
            event[CHANGED] = previous != bundle
            added = sorted(bundle - previous) if previous is not None else sorted(bundle)
            if added:
                event[ADDED] = added
            self._bundles[key] = bundle
            self._bundles.move_to_end(key)
            while len(self._bundles) > self.max_namespaces:
                self._bundles.popitem(last=False)

    def snapshot(self) -> bytes:
        return orjson.dumps({"version": 1, "bundles": {k: sorted(v) for k, v in self._bundles.items()}})

    def restore(self, state: bytes) -> None:
        if not state:
            return
        try:
            data = orjson.loads(state)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"client_ca_registry snapshot is not JSON: {exc}") from exc
        bundles = data.get("bundles") if isinstance(data, dict) else None
        if not isinstance(bundles, dict):
            raise ValueError("client_ca_registry snapshot has no 'bundles' map")
        for key, values in bundles.items():
            if isinstance(key, str) and isinstance(values, list):
                self._bundles[key] = frozenset(str(v) for v in values)

    def stats(self) -> dict[str, Any]:
        return {"namespaces_known": len(self._bundles)}
