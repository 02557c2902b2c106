"""Days until the soonest certificate expiry carried by a record, relative to the record's own time.

Relative to ``@timestamp`` (not the wall clock) so a replay of last year's logs says what was true
then, and the same input always gives the same alerts.
"""

from __future__ import annotations

from typing import Any

from temporal_siem.detections.enrichment.base import Enricher, as_datetime, event_time

NOT_AFTER_FIELDS = (
    "x509.not_after",
    "tls.client.x509.not_after",
    "tls.server.x509.not_after",
    "tls.client.not_after",
    "tls.server.not_after",
    "temporal.certificates.not_after",
)
_NOT_AFTER_SET = frozenset(NOT_AFTER_FIELDS)
OUTPUT_FIELD = "temporal.certificate_days_to_expiry"
SECONDS_PER_DAY = 86_400.0


class CertificateExpiry(Enricher):
    """Sets ``temporal.certificate_days_to_expiry`` (negative: already expired) on records carrying certificates."""

    name = "certificate_expiry"
    deferrable = True
    written = "number"
    writes = frozenset({OUTPUT_FIELD})

    def enrich(self, events: list[dict[str, Any]]) -> None:
        fields = NOT_AFTER_FIELDS
        present = _NOT_AFTER_SET
        for event in events:
            if event.keys().isdisjoint(present):  # most events carry no certificate: one C test
                continue
            soonest = None
            for field in fields:
                value = event.get(field)
                if value is None:
                    continue
                for item in value if isinstance(value, list) else (value,):
                    not_after = as_datetime(item)
                    if not_after is not None and (soonest is None or not_after < soonest):
                        soonest = not_after
            if soonest is None:
                continue
            when = event_time(event)
            if when is None:
                continue
            event[OUTPUT_FIELD] = round((soonest - when).total_seconds() / SECONDS_PER_DAY, 3)
