"""The detector protocol: events in, alerts out, with snapshot-able state for correlations."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from temporal_siem.kernel.records import DeadLetter


class Detector(ABC):
    """Consumes flat normalized events, returns flat alert documents (see detections.alerts)."""

    @abstractmethod
    def process(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Alerts raised by this batch (single-event rules, and correlations whose condition is met now)."""

    def finish(self) -> list[dict[str, Any]]:
        """End of stream: close open windows and return what fires at window close."""
        return []

    def snapshot(self) -> bytes:
        """Serialized state (correlation windows) to store beside the source position."""
        return b""

    def restore(self, state: bytes) -> None:  # noqa: B027 - stateless detectors ignore it
        """Load state written by :meth:`snapshot`."""

    def stats(self) -> dict[str, Any]:
        """Counters for the summary and metrics (per-rule routed/evaluated/matched...)."""
        return {}

    def take_dead_letters(self) -> list[DeadLetter]:
        """Events the detector refused (late for correlation windows, unusable timestamps) since the last call."""
        return []

    def rule_titles(self) -> dict[str, str]:
        return {}
