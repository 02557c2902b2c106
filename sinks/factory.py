"""Builds the configured sinks (``sinks:`` in the config) and applies each one's failure policy.

``required: true`` (the default): a SinkError propagates to the pipeline, which holds the batch and
retries with backoff, so nothing more is read until the sink takes it (backpressure, bounded memory).
``required: false``: the sink is wrapped in OptionalSink, which drops a batch it cannot deliver, counts
it in ``tsiem_sink_failures_total`` and stops trying for a cool-down, so a dead optional sink costs
the stream neither data nor time.
"""

from __future__ import annotations

import inspect
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from temporal_siem.kernel import metrics
from temporal_siem.kernel.config import SinkConfig, SinksConfig
from temporal_siem.sinks.base import Sink, SinkError
from temporal_siem.sinks.registry import SINKS, create_sink

log = logging.getLogger("temporal_siem.sinks")


class OptionalSink(Sink):
    """Best-effort delivery: failures are counted and dropped, never block the pipeline."""

    def __init__(self, inner: Sink, cooldown: float = 30.0) -> None:
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]
        self.cooldown = cooldown
        self.dropped_batches = 0
        self.dropped_documents = 0
        self._skip_until = 0.0

    def _drop(self, documents: list[dict[str, Any]], reason: str) -> None:
        self.dropped_batches += 1
        self.dropped_documents += len(documents)
        metrics.SINK_FAILURES.labels(self.name).inc()
        log.warning("optional sink %s dropped %d documents: %s", self.name, len(documents), reason)

    def open(self) -> None:
        try:
            self.inner.open()
        except SinkError as exc:
            log.warning("optional sink %s could not open: %s", self.name, exc)
            self._skip_until = time.monotonic() + self.cooldown

    def write(self, documents: list[dict[str, Any]]) -> None:
        if not documents:
            return
        if time.monotonic() < self._skip_until:
            self._drop(documents, "cooling down after a failure")
            return
        try:
            self.inner.write(documents)
        except SinkError as exc:
            self._skip_until = time.monotonic() + self.cooldown
            self._drop(documents, str(exc))

    def flush(self) -> None:
        try:
            self.inner.flush()
        except SinkError as exc:
            log.warning("optional sink %s flush failed: %s", self.name, exc)

    def close(self) -> None:
        try:
            self.inner.close()
        except SinkError as exc:
            log.warning("optional sink %s close failed: %s", self.name, exc)

    def take_rejected(self) -> list[tuple[dict[str, Any], str]]:
        return self.inner.take_rejected()


@dataclass
class BuiltSinks:
    alerts: list[Sink] = field(default_factory=list)
    events: list[Sink] = field(default_factory=list)
    dead_letter: Sink | None = None

    def all(self) -> list[Sink]:
        return [*self.alerts, *self.events, *([self.dead_letter] if self.dead_letter else [])]


def build_sink(config: SinkConfig, role: str = "alerts", where: str = "sinks") -> Sink:
    """One sink from its config; ``role`` (alerts/events/dead_letter) picks defaults like index or topic.

    File sinks built from a config append unless told otherwise: a restarted service must not
    truncate what it delivered before.
    """
    options: dict[str, Any] = dict(config.model_extra or {})
    kind = config.type
    if kind in ("file", "lazy_file"):
        options.setdefault("append", True)
    if kind not in SINKS:
        raise ValueError(f"{where}: unknown sink type {kind!r}; known: {', '.join(sorted(SINKS))}")
    module_name, _, class_name = SINKS[kind].partition(":")
    sink_class = getattr(__import__(module_name, fromlist=[class_name]), class_name)
    parameters = inspect.signature(sink_class).parameters
    if "role" in parameters and "role" not in options:
        options["role"] = role
    unknown = sorted(name for name in options if name not in parameters)
    if unknown and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        raise ValueError(f"{where} ({kind}): unknown option(s) {', '.join(unknown)}; "
                         f"accepted: {', '.join(name for name in parameters if name != 'self')}")
    try:
        sink = create_sink(kind, **options)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where} ({kind}): {exc}") from exc
    return sink if config.required else OptionalSink(sink)


def build_sinks(config: SinksConfig) -> BuiltSinks:
    """Every configured sink; raises ValueError naming the config entry at fault."""
    return BuiltSinks(
        alerts=[build_sink(item, "alerts", f"sinks.alerts[{i}]") for i, item in enumerate(config.alerts)],
        events=[build_sink(item, "events", f"sinks.events[{i}]") for i, item in enumerate(config.events)],
        dead_letter=build_sink(config.dead_letter, "dead_letter", "sinks.dead_letter"),
    )
