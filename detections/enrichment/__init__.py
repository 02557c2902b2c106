"""Enrichments the detector runs on every batch before matching (see base.Enricher).

``ENRICHERS`` lists the classes, in order; each is constructed without arguments. Stateful ones
(the API-key registry) must be included in the detector's snapshot so their memory is durable.
"""

from __future__ import annotations

from detections.enrichment.api_keys import ApiKeyRegistry
from detections.enrichment.base import Enricher
from detections.enrichment.certificates import CertificateExpiry
from detections.enrichment.client_ca import ClientCaRegistry
from detections.enrichment.clock_skew import ClockSkew
from detections.enrichment.identity import IdentityKeys
from detections.enrichment.roles import RoleRegistry

ENRICHERS: tuple[type[Enricher], ...] = (ApiKeyRegistry, CertificateExpiry, ClientCaRegistry, ClockSkew, IdentityKeys, RoleRegistry)


def build_enrichers() -> list[Enricher]:
    return [cls() for cls in ENRICHERS]


def snapshot_all(enrichers: list[Enricher]) -> dict[str, bytes]:
    """Per-enricher state keyed by name, for the detector to store beside its own."""
    return {e.name: e.snapshot() for e in enrichers if e.snapshot()}


def restore_all(enrichers: list[Enricher], states: dict[str, bytes]) -> None:
    for enricher in enrichers:
        if enricher.name in states:
            enricher.restore(states[enricher.name])


__all__ = ["ENRICHERS", "ApiKeyRegistry", "CertificateExpiry", "ClientCaRegistry", "ClockSkew", "Enricher", "IdentityKeys", "RoleRegistry", "build_enrichers",
           "restore_all", "snapshot_all"]
