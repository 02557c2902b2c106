"""Client CA registry: did this update actually change the namespace's accepted CA bundle?

Temporal Cloud ``UpdateNamespace`` records can carry the whole namespace spec, CA bundle included, even when
only the retention changed. A rule cannot tell "bundle replaced" from "bundle re-sent" without remembering the
previous bundle, so this enricher keeps the last known set of CA fingerprints per namespace (durable through
the detector snapshot) and marks records whose set differs. The first bundle seen for a namespace counts as a
change: without history, an unknown bundle is what an attacker's would look like too. A bundle the parser could not
decode (truncated, redacted) is remembered by the digest of its normalized text (``temporal.client_ca_digest``).
"""

from __future__ import annotations

from typing import Any

from temporal_siem.detections.enrichment.base import Enricher, SetRegistry

FINGERPRINT_FIELDS = ("temporal.client_ca_fingerprints", "temporal.certificates.sha256")
DIGEST_FIELD = "temporal.client_ca_digest"  # parser fallback for a bundle that did not decode (marked unparsed)
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
    digest = event.get(DIGEST_FIELD)
    if isinstance(digest, str) and digest:
        # The bundle did not decode: its normalized digest stands for it, so a different unparsed bundle is a change.
        return frozenset({f"unparsed-sha256:{digest.lower()}"})
    return None


class ClientCaRegistry(Enricher):
    """Sets ``temporal.client_ca_changed`` (and ``temporal.client_ca_added``) on records carrying a namespace's CA bundle."""

    name = "client_ca_registry"
    datasets = frozenset({None, "temporal_cloud.audit"})  # enrich() skips every other dataset

    def __init__(self, max_namespaces: int = MAX_NAMESPACES) -> None:
        self._bundles = SetRegistry(self.name, "bundles", max_namespaces)

    def reads_state(self, event: dict[str, Any]) -> bool:
        """A successful audit record naming a namespace and carrying a CA bundle."""
        namespace = event.get("temporal.namespace")
        return (isinstance(namespace, str) and namespace != "" and event.get("event.outcome") != "failure"
                and event.get("event.dataset") in (None, "temporal_cloud.audit") and _fingerprints(event) is not None)

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
            changed, added = self._bundles.update(namespace.lower(), bundle)
            event[CHANGED] = changed
            if added:
                event[ADDED] = added

    def snapshot(self) -> bytes:
        return self._bundles.snapshot()

    def restore(self, state: bytes) -> None:
        self._bundles.restore(state)

    def stats(self) -> dict[str, Any]:
        return {"namespaces_known": len(self._bundles)}
