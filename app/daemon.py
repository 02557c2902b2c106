"""``temporal-siem run``: the long-running Kafka daemon, one member of a consumer group.

Wiring (temporal_siem.stream.runtime): Quix Streams application. Input topics -> ParserRouter -> stateless
enrichers and single-event rules (rule alerts) -> one message per state scope the event feeds, re-keyed into the
internal scopes topic -> correlation groups and enrichment registries in RocksDB keyed state with compacted
changelogs -> alerts -> sinks. Guarantees (docs/operations.md):

- at-least-once by default: sinks are flushed at every checkpoint before offsets commit; alert ids are
  deterministic, so what a crash re-delivers is dropped downstream by id (Elasticsearch ``_id``...);
- exactly-once (``ingest.kafka.stream.processing_guarantee``) for what goes to Kafka: scope messages, state
  changelogs, ``alerts_topic`` and offsets commit in one transaction;
- state follows its key, not the input partition: any member count, any producer keying, same alerts as replay;
- bad records go to the dead-letter topic (or the dead-letter sink);
- SIGTERM/SIGINT: the checkpoint in hand is committed, the group left, exit 0 within ``shutdown_timeout_seconds``.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

from temporal_siem.detections.factory import build_ruleset
from temporal_siem.detections.sigma.files import LoadError
from temporal_siem.detections.sigma.pipelines import PipelineError
from temporal_siem.detections.sigma.ruleset import Ruleset
from temporal_siem.exit_codes import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from temporal_siem.ingest.kafka.client import KafkaAuthenticationError, authentication_error, connection_options
from temporal_siem.ingest.kafka.source import TopicFormats
from temporal_siem.kernel import metrics
from temporal_siem.kernel.backoff import Backoff
from temporal_siem.kernel.config import Settings
from temporal_siem.observability import OpsServer
from temporal_siem.pipeline import collector_for_run
from temporal_siem.sinks.base import Sink
from temporal_siem.sinks.factory import build_sinks
from temporal_siem.stream.runtime import SinkAdapter, StreamRuntime, input_partitions

log = logging.getLogger("temporal_siem.daemon")


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
    for warning in ruleset.load_warnings():  # it runs, but part of it matches nothing: never silently
        log.warning("rule loaded with a warning: %s: %s", warning.where, warning.error,
                    extra={"rule_file": warning.file, "rule_line": warning.line})
    return ruleset


class Daemon:
    def __init__(self, settings: Settings, *, metrics_port: int | None = None) -> None:
        self.settings = settings
        self.cfg = settings.ingest.kafka
        try:
            self.connection = connection_options(self.cfg)
            TopicFormats(self.cfg)
            self._check_formats()
            built = build_sinks(settings.sinks)
            self.sinks_alerts, self.sinks_events = built.alerts, built.events
            self.sink_dead_letter = None if self.cfg.dead_letter_topic else built.dead_letter
        except (KeyError, ValueError) as exc:
            raise DaemonConfigError(str(exc)) from exc
        try:
            self.ruleset: Ruleset | None = compile_rules(settings)  # before Kafka: a rule that does not load stops the start at once
        except PipelineError as exc:
            raise DaemonConfigError(str(exc)) from exc
        self.metrics_port = settings.metrics.port if metrics_port is None else metrics_port
        self.alerts = SinkAdapter(self.sinks_alerts, "alerts")
        self.events = SinkAdapter(self.sinks_events, "events") if self.sinks_events else None
        self.dead_letters = SinkAdapter([self.sink_dead_letter], "dead letters") if self.sink_dead_letter is not None else None
        self.runtime: StreamRuntime | None = None
        self.ops: OpsServer | None = None
        self._signals = 0
        self._first_signal = 0.0
        self._stop_requested = threading.Event()
        self._started = time.monotonic()
        self._handlers_installed = False
        self._done = threading.Event()

    def _check_formats(self) -> None:
        from temporal_siem.parsers.registry import get_parser

        for topic in self.cfg.topics:
            if topic.format != "auto":
                try:
                    get_parser(topic.format)
                except KeyError as exc:
                    raise DaemonConfigError(f"topic {topic.name or topic.pattern}: unknown format {topic.format!r} ({exc})") from exc

    # -- assembly -------------------------------------------------------------------------------
    def _inputs_when_kafka_answers(self) -> dict[str, int] | None:
        """Input topics and their partition counts, waiting with backoff while no broker answers (a daemon
        outlives broker restarts and starts before its brokers do); None if asked to stop meanwhile."""
        from confluent_kafka import KafkaException

        self._check_credentials()
        delays = Backoff(None, 1.0, 30.0, jitter=False).delays()
        while not self._stop_requested.is_set():
            delay = next(delays)
            try:
                found, missing = input_partitions(self.settings)
                if found and not missing:
                    return found
                # The watermark is a minimum over every input partition: all of them must be known before starting.
                log.warning("input topics not there yet (%s): retrying in %.0f s", ", ".join(missing) or "no topic matches a pattern", delay)
            except KafkaException as exc:
                self._check_credentials()  # a refused password can look like an outage
                log.warning("Kafka is not reachable (%s): retrying in %.0f s", exc, delay,
                            extra={"bootstrap_servers": self.cfg.bootstrap_servers})
            if self._stop_requested.wait(delay):
                return None
        return None

    def _check_credentials(self) -> None:
        refused = authentication_error(self.cfg)
        if refused is not None:
            raise KafkaAuthenticationError(
                f"the Kafka brokers refused the SASL credentials of ingest.kafka (sasl_username {self.cfg.sasl_username!r}, "
                f"{self.cfg.sasl_mechanism} over {self.cfg.security_protocol}): {refused}")

    def _build(self, partitions: dict[str, int]) -> StreamRuntime:
        if self.ruleset is None:
            self.ruleset = compile_rules(self.settings)
        return StreamRuntime(self.settings, self.ruleset, alerts=self.alerts, events=self.events, dead_letters=self.dead_letters,
                             input_partitions=partitions, on_loop=self._on_loop, on_signal=self.request_stop)

    def _on_loop(self) -> None:
        # Quix installs its own SIGTERM/SIGINT handlers when it starts: ours (watchdog, forced second signal) go back on top.
        if not self._handlers_installed and threading.current_thread() is threading.main_thread():
            self._handlers_installed = True
            self.install_signal_handlers()

    # -- health -----------------------------------------------------------------------------------
    def health(self) -> tuple[bool, dict[str, Any]]:
        runtime = self.runtime
        now = time.monotonic()
        loop_age = now - runtime.stats.last_loop if runtime is not None else now - self._started
        stale_after = max(30.0, 6 * self.cfg.poll_timeout_ms / 1000)
        ok = runtime is not None and loop_age < stale_after and not self._stop_requested.is_set()
        stats = runtime.stats if runtime is not None else None
        detail: dict[str, Any] = {
            "seconds_since_poll": round(loop_age, 3),
            "assigned": [f"{s.rpartition(':')[0]}[{s.rpartition(':')[2]}]" for s in runtime.assigned] if runtime else [],
            "stopping": self._stop_requested.is_set(),
            "records_read": stats.records if stats else 0,
            "events": stats.events if stats else 0,
            "scope_messages": stats.scope_messages if stats else 0,
            "alerts": stats.alerts if stats else 0,
            "late_or_dead_lettered": stats.dead_lettered if stats else 0,
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
        log.info("stop requested (signal %d): committing the checkpoint in hand", signum)
        self._stop_requested.set()
        if self.runtime is not None:
            self.runtime.stop()
        threading.Thread(target=self._watchdog, name="shutdown-watchdog", daemon=True).start()

    def _watchdog(self) -> None:
        if self._done.wait(self.cfg.shutdown_timeout_seconds):
            return  # run() returned in time (an embedding caller goes on living)
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
        restarts = Backoff(None, 1.0, 30.0, jitter=False).delays()
        try:
            while not self._stop_requested.is_set():
                try:
                    partitions = self._inputs_when_kafka_answers()
                except KafkaAuthenticationError as exc:
                    log.error("configuration error: %s", exc)  # nothing was consumed
                    code = EXIT_USAGE
                    break
                if partitions is None:
                    log.info("stopped before Kafka answered")
                    break
                self.runtime = self._build(partitions)
                self._handlers_installed = False  # every application run installs Quix's handlers anew
                if self._stop_requested.is_set():
                    break
                log.info("consuming", extra={"group_id": self.cfg.group_id, "topics": sorted(partitions),
                                             "scope_partitions": self.runtime.scope_partitions})
                try:
                    with collector_for_run(freeze=False):  # no freeze: a long-lived process collects old rule sets
                        self.runtime.run()
                except Exception as exc:
                    if self._stop_requested.is_set():
                        log.exception("the stream failed while stopping: what was not committed is read again by the next member")
                        code = EXIT_FAILURE
                        break
                    # A broker restart can cost the group membership (the next commit is refused): state and offsets
                    # are in Kafka, so a new application rejoins and resumes at the last commit.
                    delay = next(restarts)
                    log.error("the stream failed (%s: %s): restarting it in %.0f s", type(exc).__name__, exc, delay,
                              exc_info=log.isEnabledFor(logging.DEBUG))
                    if self._stop_requested.wait(delay):
                        break
                    continue
                if not self._stop_requested.is_set():
                    log.warning("the stream ended without a stop request: restarting it")
                    continue
                log.info("stopped", extra={"summary": self.runtime.stats.__dict__})
        except Exception:
            log.exception("daemon failed")
            code = EXIT_FAILURE
        finally:
            self._close()
            self._done.set()
        return code

    def _close(self) -> None:
        metrics.UP.set(0)
        for adapter in (self.alerts, self.events, self.dead_letters):
            if adapter is not None:
                adapter.close()
        if self.ops is not None:
            self.ops.stop()

    @property
    def sinks(self) -> list[Sink]:
        return [*self.sinks_alerts, *self.sinks_events]
