"""``temporal-siem run``: the long-running Kafka consumer-group daemon.

Wiring: KafkaSource (one batch per partition) -> ParserRouter -> PartitionedDetector (a detector per
partition from one compiled ruleset) -> sinks -> offsets committed. Guarantees (docs/operations.md):

- at-least-once: a partition's offsets are committed only after every sink returned from ``write`` and
  was flushed; alert ids are deterministic, so re-delivered batches duplicate nothing downstream that
  dedupes by id (Elasticsearch ``_id``, Splunk/syslog consumers by ``alert.id``);
- bad records go to the dead-letter topic (or the configured dead-letter sink) and are committed;
- SIGTERM/SIGINT: the batch in hand is finished and committed, state snapshotted, the group left, exit 0
  within ``shutdown_timeout_seconds`` (a watchdog ends the process with 1 if anything hangs).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from kafka.errors import KafkaConnectionError, KafkaTimeoutError
from temporal_siem.detections.base import Detector
from temporal_siem.detections.factory import build_ruleset, new_detector
from temporal_siem.detections.sigma.loader import LoadError
from temporal_siem.detections.sigma.pipelines import PipelineError
from temporal_siem.detections.sigma.ruleset import Ruleset
from temporal_siem.ingest.kafka.client import KafkaAuthenticationError, authentication_error, connection_options, ensure_topic
from temporal_siem.ingest.kafka.source import KafkaSource, TopicFormats
from temporal_siem.kernel import metrics
from temporal_siem.kernel.config import Settings
from temporal_siem.kernel.records import RawRecord
from temporal_siem.observability import OpsServer
from temporal_siem.parsers.router import ParserRouter
from temporal_siem.pipeline import Pipeline, RunStats
from temporal_siem.sinks.base import Sink, SinkError
from temporal_siem.sinks.factory import build_sink
from temporal_siem.stream.dead_letter import DeadLetterTopicSink
from temporal_siem.stream.partitions import Partition, PartitionedDetector
from temporal_siem.stream.state import StateStore

log = logging.getLogger("temporal_siem.daemon")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class DaemonConfigError(ValueError):
    """The configuration cannot run (exit 2)."""


class RuleLoadErrors(DaemonConfigError):
    """Rules named in the configuration failed to load: the daemon does not start (exit 3) unless
    ``detection.allow_rule_errors``, so a rule believed to be running never silently is not."""

    def __init__(self, errors: list[LoadError]) -> None:
        super().__init__(f"{len(errors)} rule load error(s): " + "; ".join(f"{e.where}: {e.error}" for e in errors))
        self.errors = errors


def compile_rules(settings: Settings) -> Ruleset:
    """The shared ruleset; load errors are logged with file:line and stop the start unless allowed."""
    detection = settings.detection
    ruleset = build_ruleset(detection.rules, detection.builtin_rules, detection.pipelines, detection.filters)
    for error in ruleset.errors:
        (log.warning if detection.allow_rule_errors else log.error)(
            "rule failed to load: %s: %s", error.where, error.error, extra={"rule_file": error.file, "rule_line": error.line})
    if ruleset.errors and not detection.allow_rule_errors:
        raise RuleLoadErrors(list(ruleset.errors))
    return ruleset


def detector_factory(settings: Settings, ruleset: Ruleset | None = None) -> Callable[[], Detector]:
    """Compile the rules once; every partition gets a fresh detector over the shared ruleset."""
    options = settings.detection.model_dump()
    compiled = ruleset if ruleset is not None else compile_rules(settings)
    return lambda: new_detector(compiled, options)


class Daemon:
    def __init__(self, settings: Settings, *, metrics_port: int | None = None) -> None:
        self.settings = settings
        self.cfg = settings.ingest.kafka
        try:
            self.connection = connection_options(self.cfg)
            TopicFormats(self.cfg)
            self._check_formats()
            self.router = ParserRouter(settings.parsing.format, settings.parsing.max_record_bytes,
                                       keep_original=settings.parsing.keep_original, geoip=settings.parsing.geoip)
            self.sinks_alerts = [build_sink(c, "alerts", f"sinks.alerts[{i}]") for i, c in enumerate(settings.sinks.alerts)]
            self.sinks_events = [build_sink(c, "events", f"sinks.events[{i}]") for i, c in enumerate(settings.sinks.events)]
            self.sink_dead_letter = None if self.cfg.dead_letter_topic else build_sink(settings.sinks.dead_letter, "dead_letter", "sinks.dead_letter")
        except (KeyError, ValueError) as exc:
            raise DaemonConfigError(str(exc)) from exc
        try:
            self.ruleset = compile_rules(settings)  # before Kafka: a rule that does not load stops the start at once
        except PipelineError as exc:
            raise DaemonConfigError(str(exc)) from exc
        self.metrics_port = settings.metrics.port if metrics_port is None else metrics_port
        self.source: KafkaSource | None = None
        self.store: StateStore | None = None
        self.delivery_sinks: list[Sink] = []
        self.pipeline: Pipeline | None = None
        self.detector: PartitionedDetector | None = None
        self.ops: OpsServer | None = None
        self._signals = 0
        self._first_signal = 0.0
        self._stop_requested = threading.Event()
        self._last_batch = time.monotonic()
        self._started = time.monotonic()

    def _check_formats(self) -> None:
        from temporal_siem.parsers.registry import get_parser

        for topic in self.cfg.topics:
            if topic.format != "auto":
                try:
                    get_parser(topic.format)
                except KeyError as exc:
                    raise DaemonConfigError(f"topic {topic.name or topic.pattern}: unknown format {topic.format!r} ({exc})") from exc

    # -- assembly -------------------------------------------------------------------------------
    def _build(self) -> Pipeline:
        settings, cfg = self.settings, self.cfg
        store = StateStore(cfg.state_topic, cfg.group_id, self.connection) if cfg.state_topic else None
        if store is not None:
            store.ensure_topic()
        if cfg.dead_letter_topic:
            ensure_topic(self.connection, cfg.dead_letter_topic)
        self.store = store
        make_detector = detector_factory(settings, self.ruleset)
        sinks_alerts, sinks_events = self.sinks_alerts, self.sinks_events
        self.delivery_sinks = [*sinks_alerts, *sinks_events]
        source_class: type[KafkaSource] = KafkaSource
        if cfg.client == "confluent-kafka":
            from temporal_siem.ingest.kafka.confluent import ConfluentKafkaSource

            source_class = ConfluentKafkaSource
        source = source_class(cfg, self.connection, before_commit=self._flush_sinks)
        detector = PartitionedDetector(make_detector, source.batch_position, store=store,
                                       committed_offsets=self._committed_offsets, snapshot_interval=cfg.snapshot_interval_seconds,
                                       max_replay_records=cfg.max_state_replay_records)
        source.listener = detector
        dead_letter: Sink
        if cfg.dead_letter_topic:
            dead_letter = DeadLetterTopicSink(cfg.dead_letter_topic, self.connection, lookup=source.record)
        else:
            assert self.sink_dead_letter is not None
            dead_letter = self.sink_dead_letter
        self.source, self.detector = source, detector
        return Pipeline(source, self.router, detector, alert_sinks=sinks_alerts, event_sinks=sinks_events,
                        dead_letter=dead_letter, on_batch=self._on_batch)

    def _build_when_kafka_answers(self) -> Pipeline | None:
        """Build the pipeline, waiting with backoff while no broker answers (a daemon outlives broker restarts
        and starts before its brokers do); None if asked to stop meanwhile."""
        delay = 1.0
        self._check_credentials()
        while True:
            try:
                return self._build()
            except (KafkaConnectionError, KafkaTimeoutError) as exc:
                if self.store is not None:
                    self.store.close()
                    self.store = None
                self._check_credentials()  # a refused password looks like an outage to kafka-python
                log.warning("Kafka is not reachable (%s): retrying in %.0f s", exc, delay,
                            extra={"bootstrap_servers": self.cfg.bootstrap_servers})
                if self._stop_requested.wait(delay):
                    return None
                delay = min(delay * 2, 30.0)

    def _check_credentials(self) -> None:
        refused = authentication_error(self.cfg)
        if refused is not None:
            raise KafkaAuthenticationError(
                f"the Kafka brokers refused the SASL credentials of ingest.kafka (sasl_username {self.cfg.sasl_username!r}, "
                f"{self.cfg.sasl_mechanism} over {self.cfg.security_protocol}): {refused}")

    def _flush_sinks(self) -> None:
        for sink in self.delivery_sinks:
            sink.flush()

    def _committed_offsets(self, partitions: list[Partition]) -> dict[Partition, int]:
        from kafka import KafkaAdminClient, TopicPartition

        admin = KafkaAdminClient(**self.connection)
        try:
            wanted = [TopicPartition(t, p) for t, p in partitions]
            found = admin.list_group_offsets({self.cfg.group_id: wanted}).get(self.cfg.group_id, {})
            return {(tp.topic, tp.partition): meta.offset for tp, meta in found.items() if meta.offset >= 0}
        finally:
            admin.close()

    def _on_batch(self, stats: RunStats, batch: list[RawRecord]) -> None:
        self._last_batch = time.monotonic()

    # -- health -----------------------------------------------------------------------------------
    def health(self) -> tuple[bool, dict[str, Any]]:
        source = self.source
        now = time.monotonic()
        poll_age = now - source.last_poll if source is not None else now - self._started
        stale_after = max(30.0, 6 * self.cfg.poll_timeout_ms / 1000)
        ok = source is not None and poll_age < stale_after and not self._stop_requested.is_set()
        stats = self.pipeline.stats if self.pipeline is not None else None
        detail: dict[str, Any] = {
            "seconds_since_poll": round(poll_age, 3),
            "seconds_since_batch": round(now - self._last_batch, 3),
            "assigned": sorted(f"{t}[{p}]" for t, p in (source.assignment if source else set())),
            "last_error": source.last_error if source else None,
            "stopping": self._stop_requested.is_set(),
            "records_read": stats.records_read if stats else 0,
            "alerts": stats.alerts if stats else 0,
            "commits": source.commits if source else 0,
        }
        metrics.UP.set(1 if ok else 0)
        return ok, detail

    # -- run ----------------------------------------------------------------------------------------
    def request_stop(self, signum: int = signal.SIGTERM, frame: Any = None) -> None:
        self._signals += 1
        if self._signals > 1:
            # A process-group signal (Ctrl-C, `timeout`) arrives twice at once; only a deliberate second one forces.
            if time.monotonic() - self._first_signal > 2.0:
                log.error("second stop signal: exiting now without a clean shutdown")
                os._exit(EXIT_FAILURE)
            return
        self._first_signal = time.monotonic()
        log.info("stop requested (signal %d): finishing the batch in hand", signum)
        self._stop_requested.set()
        if self.pipeline is not None:
            self.pipeline.stop()
        if self.source is not None:
            self.source.stop()
        threading.Thread(target=self._watchdog, name="shutdown-watchdog", daemon=True).start()

    def _watchdog(self) -> None:
        time.sleep(self.cfg.shutdown_timeout_seconds)
        log.error("shutdown took longer than %.0fs: exiting without a clean shutdown", self.cfg.shutdown_timeout_seconds)
        logging.shutdown()
        os._exit(EXIT_FAILURE)

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def run(self) -> int:
        if self.settings.metrics.enabled:
            try:
                self.ops = OpsServer(self.settings.metrics.host, self.metrics_port, self.health).start()
            except OSError as exc:
                log.error("cannot serve metrics on %s:%d: %s (set metrics.port, or 0 for a free port)",
                          self.settings.metrics.host, self.metrics_port, exc)
                return EXIT_FAILURE
            log.info("metrics and health on http://%s:%d/metrics /healthz", self.ops.host, self.ops.port,
                     extra={"metrics_port": self.ops.port})
        code = EXIT_OK
        try:
            try:
                pipeline = self._build_when_kafka_answers()
            except KafkaAuthenticationError as exc:
                log.error("configuration error: %s", exc)  # nothing was consumed
                return EXIT_USAGE
            if pipeline is None:
                log.info("stopped before Kafka answered")
                return EXIT_OK
            self.pipeline = pipeline
            if self._stop_requested.is_set():
                self.pipeline.stop()
                assert self.source is not None
                self.source.stop()
            log.info("consuming", extra={"group_id": self.cfg.group_id, "topics": [t.name or t.pattern for t in self.cfg.topics]})
            stats = self.pipeline.run()
            log.info("stopped", extra={"summary": stats.as_dict()})
        except SinkError as exc:
            log.error("a sink refused the last batch while stopping (%s): it stays uncommitted and is re-delivered", exc)
            if self.detector is not None:
                self.detector.abandon()
            code = EXIT_FAILURE
        except Exception:
            log.exception("daemon failed")
            if self.detector is not None:
                self.detector.abandon()
            code = EXIT_FAILURE
        finally:
            self._close()
        return code

    def _close(self) -> None:
        metrics.UP.set(0)
        if self.source is not None:
            self.source.close()  # leaves the group: the revoke callback snapshots state
        if self.store is not None:
            self.store.close()
        if self.ops is not None:
            self.ops.stop()
