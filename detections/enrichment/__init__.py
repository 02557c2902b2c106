"""Enrichments the detector runs on every batch before matching (see base.Enricher).

``ENRICHERS`` lists the classes, in order; each is constructed without arguments. Stateful ones
(the API-key registry) must be included in the detector's snapshot so their memory is durable.
"""

from __future__ import annotations

from collections.abc import Iterator

from temporal_siem.detections.enrichment.api_keys import ApiKeyRegistry
from temporal_siem.detections.enrichment.base import Enricher
from temporal_siem.detections.enrichment.certificates import CertificateExpiry
from temporal_siem.detections.enrichment.client_ca import ClientCaRegistry
from temporal_siem.detections.enrichment.clock_skew import ClockSkew
from temporal_siem.detections.enrichment.identity import IdentityKeys
from temporal_siem.detections.enrichment.roles import RoleRegistry
from temporal_siem.detections.enrichment.workload import WorkloadSessions

ENRICHERS: tuple[type[Enricher], ...] = (ApiKeyRegistry, CertificateExpiry, ClientCaRegistry, ClockSkew, IdentityKeys, RoleRegistry,
                                         WorkloadSessions)


class EnricherRegistry:
    """The enrichers one detector runs, in order, with their state handled as one unit.

    Snapshots are keyed by enricher name so that adding an enricher does not invalidate stored state.
    """

    def __init__(self, enrichers: list[Enricher]) -> None:
        self.enrichers = enrichers

    @classmethod
    def default(cls) -> EnricherRegistry:
        """A fresh instance of every enricher in ``ENRICHERS``."""
        return cls(build_enrichers())

    def __iter__(self) -> Iterator[Enricher]:
        return iter(self.enrichers)

    def __len__(self) -> int:
        return len(self.enrichers)

    def snapshot(self) -> dict[str, bytes]:
        """Per-enricher state keyed by name; stateless enrichers are left out."""
        return {e.name: state for e in self.enrichers if (state := e.snapshot())}

    def restore(self, states: dict[str, bytes]) -> None:
        for enricher in self.enrichers:
            if enricher.name in states:
                enricher.restore(states[enricher.name])


def build_enrichers() -> list[Enricher]:
    return [cls() for cls in ENRICHERS]


__all__ = ["ENRICHERS", "ApiKeyRegistry", "CertificateExpiry", "ClientCaRegistry", "ClockSkew", "Enricher", "EnricherRegistry", "IdentityKeys",
           "RoleRegistry", "WorkloadSessions", "build_enrichers"]
