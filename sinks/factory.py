"""Builds the configured sinks (``sinks:`` in the config) and applies each one's failure policy.

``required: true`` (the default): a SinkError propagates to the pipeline, which holds the batch and
retries with backoff, so nothing more is read until the sink takes it (backpressure, bounded memory).
``required: false``: the sink is wrapped in OptionalSink, which drops a batch it cannot deliver, counts
it in ``tsiem_sink_failures_total`` and stops trying for a cool-down, so a dead optional sink costs
the stream neither data nor time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from temporal_siem.kernel import metrics
from temporal_siem.kernel.config import SinkConfig, SinksConfig
from temporal_siem.sinks.base import Sink, SinkError
from temporal_siem.sinks.registry import SINKS, sink_config

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


def build_sink(config: SinkConfig, role: str = "alerts", where: str = "sinks") -> Sink:
    """One sink from its config entry; ``role`` (alerts/events/dead_letter) picks defaults like index or topic.

    The entry is normally typed already (settings loaded by the application validate every sink entry);
    a kernel envelope (``SinkConfig``, library use) is validated here, a bad one raising ValueError with ``where``.
    """
    try:
        typed = sink_config(config)
    except ValidationError as exc:
        raise ValueError(describe_errors(exc, where)) from None
    try:
        sink = SINKS[typed.type].sink(typed, role=role)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where} ({typed.type}): {exc}") from exc
    return sink if typed.required else OptionalSink(sink)


def build_sinks(config: SinksConfig) -> BuiltSinks:
    """Every configured sink; raises ValueError naming the config entry at fault."""
    return BuiltSinks(
        alerts=[build_sink(item, "alerts", f"sinks.alerts[{i}]") for i, item in enumerate(config.alerts)],
        events=[build_sink(item, "events", f"sinks.events[{i}]") for i, item in enumerate(config.events)],
        dead_letter=build_sink(config.dead_letter, "dead_letter", "sinks.dead_letter"),
    )


def describe_errors(exc: ValidationError, where: str = "") -> str:
    """Each error on one line with the path of the key at fault (``sinks.alerts[0].bulk_sizee: unknown key``)."""
    return "; ".join(f"{error_path(where, error['loc'])}: {error_message(error)}" for error in exc.errors())


def error_path(prefix: str, loc: tuple[Any, ...]) -> str:
    """``sinks.alerts[0].hosts`` from a pydantic location, leaving out the tag the sink union inserts after an entry."""
    path = prefix
    for position, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
        elif not _union_tag(prefix, loc, position):
            path = f"{path}.{part}" if path else str(part)
    return path


def _union_tag(prefix: str, loc: tuple[Any, ...], position: int) -> bool:
    """Is ``loc[position]`` the sink type pydantic names after a sink entry (``sinks.alerts.0.<type>.option``)?"""
    if loc[position] not in SINKS:
        return False
    if position == 0:
        return bool(prefix)  # the location of one entry validated by build_sink
    head = loc[:position]
    return head[0] == "sinks" and (head == ("sinks", "dead_letter") or (len(head) == 3 and isinstance(head[2], int)))


def error_message(error: Any) -> str:
    kind = error.get("type")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag = (error.get("ctx") or {}).get("tag")
        return f"unknown sink type {tag!r}; known: {', '.join(sorted(SINKS))}" if tag else f"a sink needs a type; known: {', '.join(sorted(SINKS))}"
    return str(error.get("msg", "invalid"))
