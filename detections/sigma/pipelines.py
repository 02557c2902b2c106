"""Processing pipelines as data: our built-in pySigma YAML plus the user's ``--pipeline FILE`` files.

Routing is expressed in the pipeline too: a ``set_custom_attribute`` item sets ``tsiem.dataset`` (a list of
``event.dataset`` values, a trailing ``*`` allowed) on the rules of a logsource. See docs/engine.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sigma.processing.pipeline import ProcessingPipeline

BUILTIN_PIPELINE = Path(__file__).resolve().parents[1] / "pipelines" / "temporal_siem.yml"
DATASET_ATTRIBUTE = "tsiem.dataset"


class PipelineError(ValueError):
    """A pipeline file cannot be read or is not a valid pySigma pipeline (message names the file)."""


def load_pipeline(path: str | Path) -> ProcessingPipeline:
    """Imports pySigma's processing modules on first use (~50 ms, with jinja2): a load from the warm
    compiled-ruleset cache applies no pipeline (tests/architecture/test_lazy_imports.py)."""
    from sigma.processing.pipeline import ProcessingPipeline

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PipelineError(f"{path}: cannot read: {exc}") from exc
    try:
        return ProcessingPipeline.from_yaml(text)
    except Exception as exc:  # pySigma raises many kinds for a bad pipeline; all mean "this file is wrong"
        raise PipelineError(f"{path}: invalid pipeline: {type(exc).__name__}: {exc}") from exc


def build_pipeline(extra: Iterable[str | Path] = (), builtin: bool = True) -> ProcessingPipeline:
    """The built-in pipeline and the user's, ordered by their ``priority`` (lowest first)."""
    pipelines = ([load_pipeline(BUILTIN_PIPELINE)] if builtin else []) + [load_pipeline(p) for p in extra]
    if not pipelines:
        from sigma.processing.pipeline import ProcessingPipeline

        return ProcessingPipeline()
    return _resolve(pipelines)


def _resolve(pipelines: list[ProcessingPipeline]) -> ProcessingPipeline:
    ordered = sorted(pipelines, key=lambda p: p.priority)
    result = ordered[0]
    for pipeline in ordered[1:]:
        result = result + pipeline
    return result


def dataset_patterns(value: object) -> tuple[str, ...] | None:
    """The ``tsiem.dataset`` attribute as a tuple of patterns (None: unrouted)."""
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    return (str(value),)


def dataset_matches(pattern: str, dataset: str) -> bool:
    if pattern.endswith("*"):
        return dataset.startswith(pattern[:-1])
    return pattern == dataset


def pipeline_datasets(pipeline: ProcessingPipeline) -> tuple[str, ...]:
    """Every dataset pattern the pipeline can route to: events of these datasets never run unrouted rules."""
    from sigma.processing.transformations import SetCustomAttributeTransformation

    patterns: set[str] = set()
    for item in pipeline.items:
        transformation = item.transformation
        if isinstance(transformation, SetCustomAttributeTransformation) and transformation.attribute == DATASET_ATTRIBUTE:
            patterns.update(dataset_patterns(transformation.value) or ())
    return tuple(sorted(patterns))
