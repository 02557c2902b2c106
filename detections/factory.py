"""Builds the detector the pipeline runs: one place that wires the compiled ruleset, the enricher registry
and the correlation engine together, so no caller probes for optional parts."""

from __future__ import annotations

from typing import Any

from temporal_siem.detections.base import Detector
from temporal_siem.detections.correlation import CorrelationEngine
from temporal_siem.detections.enrichment import EnricherRegistry
from temporal_siem.detections.sigma.cache import default_cache
from temporal_siem.detections.sigma.detector import SigmaDetector
from temporal_siem.detections.sigma.ruleset import Ruleset


class NullDetector(Detector):
    """Raises nothing; used when no rules are loaded (parse-only runs)."""

    def process(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return []


def build_ruleset(rule_dirs: list[str], builtin_rules: bool = True, pipelines: list[str] | None = None,
                  filters: list[str] | None = None, *, use_cache: bool = True) -> Ruleset:
    """The compiled, shareable ruleset: compiled once, then one detector per consumer (``new_detector``).

    Uses the compiled-ruleset cache (``detections/sigma/cache.py``; ``TSIEM_CACHE_DIR=off`` disables it). A rule
    loaded from the cache carries no pySigma rule object (``CompiledRule.rule is None``): callers that read the
    rules' detections (``rules health --coverage``) pass ``use_cache=False``.
    """
    return Ruleset.from_paths(rule_dirs, builtin_rules=builtin_rules, pipelines=pipelines or [], filters=filters or [],
                              cache=default_cache() if use_cache else None)


def new_detector(ruleset: Ruleset, options: dict[str, Any] | None = None) -> SigmaDetector:
    """A detector with its own state (enrichment registries, correlation groups) over a shared ruleset.

    ``options["correlation"]`` is the correlation engine's options (``CorrelationConfig`` as a dict).
    """
    options = options or {}
    correlation = None
    if ruleset.compiled_correlations:
        correlation = CorrelationEngine(ruleset.compiled_correlations, dict(options.get("correlation") or {}))
    return SigmaDetector(ruleset, EnricherRegistry.default(), correlation, options)


def build_detector(rule_dirs: list[str], builtin_rules: bool = True, pipelines: list[str] | None = None,
                   filters: list[str] | None = None, options: dict[str, Any] | None = None, *, use_cache: bool = True) -> SigmaDetector:
    """The Sigma engine over the given rule directories (plus detections/rules unless disabled).

    Broken rule files do not stop the build: they are listed in ``detector.stats()["load_errors"]``.
    A broken pipeline file raises ``temporal_siem.detections.sigma.pipelines.PipelineError`` (a configuration error).
    """
    return new_detector(build_ruleset(rule_dirs, builtin_rules, pipelines, filters, use_cache=use_cache), options)
