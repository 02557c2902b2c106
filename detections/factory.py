"""Builds the detector the pipeline runs, from the detection config."""

from __future__ import annotations

from typing import Any

from detections.base import Detector


class NullDetector(Detector):
    """Raises nothing; used when no rules are loaded (parse-only runs)."""

    def process(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return []


def build_ruleset(rule_dirs: list[str], builtin_rules: bool = True, pipelines: list[str] | None = None,
                  filters: list[str] | None = None) -> Any:
    """The compiled, shareable ruleset (the daemon builds one and a detector per partition from it)."""
    from detections.sigma.engine import Ruleset

    return Ruleset.from_paths(rule_dirs, builtin_rules=builtin_rules, pipelines=pipelines or [], filters=filters or [])


def build_detector(rule_dirs: list[str], builtin_rules: bool = True, pipelines: list[str] | None = None,
                   filters: list[str] | None = None, options: dict[str, Any] | None = None) -> Detector:
    """The Sigma engine over the given rule directories (plus detections/rules unless disabled).

    Broken rule files do not stop the build: they are listed in ``detector.stats()["load_errors"]``.
    A broken pipeline file raises ``detections.sigma.pipelines.PipelineError`` (a configuration error).
    """
    ruleset = build_ruleset(rule_dirs, builtin_rules, pipelines, filters)
    detector: Detector = ruleset.new_detector(options or {})
    return detector
