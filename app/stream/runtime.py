"""The daemon's stream topology on Quix Streams: stateless detection, a repartition hop by scope, keyed state.

::

    input topics (any keying) --[parse, stateless enrichers + rules: rule alerts]--> sinks
          |                                   once per event, on whichever member reads the partition
          | one message per scope the event feeds (correlation group, API key, namespace, target user),
          | keyed by the scope; plus every input partition's event-time mark, sent to every scope partition
          v
    repartition__<group>--scopes (internal) --[ScopedStage over RocksDB keyed state]--> sinks
                                               correlation and enrichment state of exactly that key,
                                               changelog__<group>--repartition__<group>--scopes--default (compacted)

Why one internal topic with composite keys (``c|component|values``, ``e|enricher|entity``) and not one
``group_by`` per scope kind: every extra re-keying is another hop (measured: docs/operations.md), and all scope
kinds need the same event-time watermark, kept per scope partition in its ``__meta__`` entry.

Watermark: each input partition's mark is its latest event time minus that topic's grace; the watermark of a
scope partition is the minimum over every input partition (a silent one left out, within the limits
``marks.py`` explains), so a lagging source (CloudTrail, minutes late) holds the windows open instead of being dropped.
Events older than it are late: their single-event rules ran already; they are counted and dead-lettered
(correlations) or applied at once (enrichment registries).

Delivery: sinks are flushed at each checkpoint before offsets (and, with exactly-once, the transaction) commit;
alert ids are deterministic, so what a crash re-delivers is deduplicated by id downstream.

Batches: Quix runs one record at a time through the dataframe, and its per-record machinery (a context copy,
the dataframe's wrappers, the checkpoint and periodic checks) cost as much as parsing a small record. Input
records therefore bypass the dataframe: :class:`BatchingApplication` takes what librdkafka has already fetched
(up to ``max_poll_records``) and hands the input topics' records to the stateless stage as one batch; their
offsets are stored only after the batch's alerts are in the sink buffer (so a checkpoint flushes them before it
commits the offsets: at-least-once as before; with exactly-once the same transaction carries them). The scopes
topic keeps Quix's per-record path (its state transaction is per partition and per record).
"""

from __future__ import annotations

import logging
import re
import signal
import time
import warnings
from collections import Counter
from collections.abc import Callable
from contextvars import copy_context
from dataclasses import dataclass, field
from typing import Any

# quixstreams imports authlib's httpx client (for Quix Cloud, unused here), which forces its deprecation warning
# to "always" on import: recorded and dropped here, so stderr stays one JSON document per line.
with warnings.catch_warnings(record=True):
    import quixstreams  # noqa: F401

from quixstreams import Application, message_context
from quixstreams.context import set_message_context
from quixstreams.exceptions import PartitionAssignmentError
from quixstreams.kafka.configuration import ConnectionConfig
from quixstreams.kafka.consumer import raise_for_msg_error
from quixstreams.models.messagecontext import MessageContext
from quixstreams.models.rows import Row
from quixstreams.models.serializers.exceptions import IgnoreMessage
from quixstreams.models.topics import Topic, TopicConfig
from quixstreams.sinks.base import BaseSink, SinkBackpressureError
from quixstreams.utils import json as quix_json

from temporal_siem.detections.scoped import META_KEY, NEVER, ScopedStage, ScopeMessage, ScopePlan, StatelessStage
from temporal_siem.detections.sigma.ruleset import Ruleset
from temporal_siem.ingest.kafka.client import librdkafka_options
from temporal_siem.kernel import metrics
from temporal_siem.kernel.config import KafkaTopic, Settings
from temporal_siem.kernel.records import DeadLetter, Origin, RawRecord
from temporal_siem.parsers.router import ParseResult, ParserRouter
from temporal_siem.sinks.base import Sink, SinkError
from temporal_siem.stream.dead_letter import topic_message
from temporal_siem.stream.marks import MARKS_KEY, OwnedMarks, ScopeMarks

log = logging.getLogger("temporal_siem.stream")

TICK_KEY = b"~tick"
#: The scopes topic's messages carry the broker's time, not each member's: a scope partition's clock (marks.py: when a
#: silent flag lapses, how long a wake holds) must not depend on which member's clock runs ahead. Set when the topic
#: is created; a topic made by an earlier version keeps the members' times (docs/operations.md).
SCOPES_TOPIC_CONFIG = {"message.timestamp.type": "LogAppendTime"}
MARK_HEARTBEAT_SECONDS = 5.0
MICROS = 1_000_000


def scopes_topic_name(group_id: str) -> str:
    return f"repartition__{group_id}--scopes"


class BatchingApplication(Application):
    """A Quix application whose main loop hands each poll's input-topic records to ``batch_handler`` at once.

    Everything else (rebalances, recovery, checkpoints, backpressure, the scopes topic's stateful dataframe) is
    Quix's own. ``batch_handler(messages)`` processes the records and returns nothing; this class then stores
    their offsets in the checkpoint: for each partition the batch's first offset (where a sink's backpressure
    rewinds to) and its last.
    """

    def __init__(self, *args: Any, batch_topics: frozenset[str], batch_size: int,
                 batch_handler: Callable[[list[Any]], None], on_partitions: Callable[[list[tuple[str, int]]], None] | None = None,
                 on_signal: Callable[[int, Any], None] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batch_topics = batch_topics
        self._batch_size = max(1, batch_size)
        self._batch_handler = batch_handler
        self._on_partitions = on_partitions
        self._on_signal = on_signal

    # Quix installs these as the SIGTERM/SIGINT handlers each time the application runs. They stopped the
    # application and nothing else: a signal that came before the daemon put its own handlers back (its first loop)
    # ended the stream "without a stop request", and the daemon started it again. With ``on_signal`` (the daemon's
    # stop request, which stops the application through the runtime) a signal means the same whenever it comes.
    def _on_sigterm(self, *args: Any) -> None:
        if self._on_signal is None:
            super()._on_sigterm(*args)
        else:
            self._on_signal(signal.SIGTERM, None)

    def _on_sigint(self, *args: Any) -> None:
        if self._on_signal is None:
            super()._on_sigint(*args)
        else:
            self._on_signal(signal.SIGINT, None)

    # A partition assigned, revoked or lost: ``on_partitions`` hears of it after Quix has done its part.
    def _on_assign(self, consumer: Any, topic_partitions: list[Any]) -> None:
        super()._on_assign(consumer, topic_partitions)
        self._partitions_moved(topic_partitions)

    def _on_revoke(self, consumer: Any, topic_partitions: list[Any]) -> None:
        super()._on_revoke(consumer, topic_partitions)
        self._partitions_moved(topic_partitions)

    def _on_lost(self, consumer: Any, topic_partitions: list[Any]) -> None:
        super()._on_lost(consumer, topic_partitions)
        self._partitions_moved(topic_partitions)

    def _partitions_moved(self, topic_partitions: list[Any]) -> None:
        if self._on_partitions is not None:
            self._on_partitions([(tp.topic, tp.partition) for tp in topic_partitions])

    def _poll_batch(self) -> list[Any]:
        """What is already fetched, waiting up to the poll timeout only for the first record (low latency when
        the stream is quiet, whole batches under load)."""
        consumer = self._consumer
        try:
            first = consumer.poll(timeout=self._config.consumer_poll_timeout)
            if first is None:
                return []
            messages = [first]
            if self._batch_size > 1:
                messages.extend(consumer.consume(num_messages=self._batch_size - 1, timeout=0))
            return messages
        except PartitionAssignmentError:
            raise
        except Exception as exc:
            if consumer._on_error(exc, None, logging.getLogger("quixstreams")):
                return []
            raise

    def _process_message(self, dataframe_composed: Any) -> None:  # Quix 3.28's loop step, one poll batch at a time
        self._producer.poll(self._config.producer_poll_timeout)
        messages = self._poll_batch()
        if not messages:
            self._run_tracker.set_message_consumed(False)
            return
        run: list[Any] = []
        for raw in messages:
            try:
                message = raise_for_msg_error(raw)
            except Exception as exc:
                if self._consumer._on_error(exc, raw, logging.getLogger("quixstreams")):
                    continue
                raise
            if message.topic() in self._batch_topics:
                run.append(message)
                continue
            if run:  # keep the poll's order across topics
                self._process_batch(run)
                run = []
            self._process_row_message(message, dataframe_composed)
        if run:
            self._process_batch(run)
        self._run_tracker.set_message_consumed(True)
        self._producer._broker_available()
        self._consumer._broker_available()

    def _process_batch(self, messages: list[Any]) -> None:
        self._batch_handler(messages)
        first: dict[tuple[str, int], int] = {}
        last: dict[tuple[str, int], int] = {}
        for message in messages:
            tp = (message.topic(), message.partition())
            first.setdefault(tp, message.offset())
            last[tp] = message.offset()
        store = self._processing_context.store_offset
        for tp, offset in first.items():
            store(topic=tp[0], partition=tp[1], offset=offset)
            if last[tp] != offset:
                store(topic=tp[0], partition=tp[1], offset=last[tp])

    def _process_row_message(self, message: Any, dataframe_composed: Any) -> None:
        """Quix's own per-record path (``InternalConsumer.poll_row`` and ``Application._process_message``)."""
        topic_name = message.topic()
        try:
            rows = self._consumer._topics[topic_name].row_deserialize(message=message)
        except IgnoreMessage:
            return
        except Exception as exc:
            if self._consumer._on_error(exc, message, logging.getLogger("quixstreams")):
                return
            raise
        if rows is None:
            return
        rows = rows if isinstance(rows, list) else [rows]
        if not rows:
            return
        for row in rows:
            context = copy_context()
            context.run(set_message_context, row.context)
            try:
                context.run(dataframe_composed[topic_name], row.value, row.key, row.timestamp, row.headers)
            except Exception as exc:
                if not self._on_processing_error(exc, row, logging.getLogger("quixstreams")):
                    raise
        self._processing_context.store_offset(topic=topic_name, partition=message.partition(), offset=message.offset())


@dataclass
class _Original:
    """The consumed record behind a dead letter (what the dead-letter message copies)."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] | None


class SinkAdapter(BaseSink):
    """Our sinks behind Quix's sink protocol: documents are buffered, written and flushed at each checkpoint,
    before the offsets commit (so a crash re-delivers what was not flushed: at-least-once)."""

    def __init__(self, sinks: list[Sink], name: str, on_written: Callable[[list[dict[str, Any]]], None] | None = None) -> None:
        super().__init__()
        self.sinks = sinks
        self.name = name
        self.on_written = on_written
        self._buffer: list[dict[str, Any]] = []
        self._retry = 0.5
        self._opened = False

    def setup(self) -> None:
        if not self._opened:  # once per process: the daemon restarts the application, not the sinks
            self._opened = True
            for sink in self.sinks:
                sink.open()

    def add(self, value: Any, key: Any, timestamp: int, headers: Any, topic: str, partition: int, offset: int) -> None:
        self._buffer.append(value)

    def flush(self) -> None:
        documents, self._buffer = self._buffer, []
        if not documents:
            return
        for sink in self.sinks:
            try:
                sink.write(documents)
                sink.flush()
            except SinkError as exc:
                metrics.SINK_FAILURES.labels(sink.name).inc()
                log.warning("sink %s refused %d %s (%s); pausing %.1fs, then re-reading from the last commit",
                            sink.name, len(documents), self.name, exc, self._retry)
                retry, self._retry = self._retry, min(self._retry * 2, 30.0)
                raise SinkBackpressureError(retry_after=retry) from exc
            rejected = sink.take_rejected()
            if rejected:
                metrics.SINK_REJECTED.labels(sink.name).inc(len(rejected))
                log.warning("sink %s rejected %d documents: %s", sink.name, len(rejected), rejected[0][1])
        self._retry = 0.5
        if self.on_written is not None:
            self.on_written(documents)

    def on_paused(self) -> None:
        self._buffer.clear()

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


class TxState:
    """:class:`KeyedState` over the Quix partition transaction in hand: one entry per scope, prefixed by its key.

    With a ``memo`` (one per partition, kept by the runtime across messages), the partition's ``__meta__`` entry is
    decoded only when its bytes changed. That entry lists every scope with work due, so it grows with the partition's
    open state, and every scope message read it (a fifth of a member's time on the mixed corpus). What ``get``
    returns is always a fresh object equal to the stored bytes, as Quix's own ``get`` gives: the stage edits meta in
    place and writes it back only when it must, and the stored bytes are compared on every read, so a value another
    member wrote (a rebalance) or a rolled-back one is decoded as before. A write of the content already stored
    (most scope messages leave every due time as it was) is skipped: the store and what it changelogs are the same.
    """

    __slots__ = ("memo", "tx")

    def __init__(self, tx: Any, memo: dict[str, tuple[bytes, dict[str, Any]]] | None = None) -> None:
        self.tx = tx
        self.memo = memo

    def get(self, key: str) -> Any | None:
        if self.memo is None or key != META_KEY:
            return self.tx.get("v", prefix=key.encode())
        raw = self.tx.get_bytes("v", prefix=key.encode())
        if raw is None:
            self.memo.pop(key, None)
            return None
        seen = self.memo.get(key)
        if seen is not None and seen[0] == raw:
            return {name: (member.copy() if type(member) is dict else member) for name, member in seen[1].items()}
        value = quix_json.loads(raw)  # what Quix's get decodes with
        self._remember(key, raw, value)
        return value

    def set(self, key: str, value: Any) -> None:
        if self.memo is None or key != META_KEY:
            self.tx.set("v", value, prefix=key.encode())
            return
        seen = self.memo.get(key)
        if seen is not None and seen[1] == value and self.tx.get_bytes("v", prefix=key.encode()) == seen[0]:
            return  # that very content is stored already: most scope messages leave every due time as it was
        raw = quix_json.dumps(value)  # what Quix's set encodes with
        self.tx.set_bytes("v", raw, prefix=key.encode())
        self._remember(key, raw, value)

    def _remember(self, key: str, raw: bytes, value: Any) -> None:
        """The stored bytes with a copy of their value, for the next read or write to compare with."""
        assert self.memo is not None
        kept = _flat_copy(value)
        if kept is None:
            self.memo.pop(key, None)
        else:
            self.memo[key] = (raw, kept)

    def delete(self, key: str) -> None:
        if self.memo is not None:
            self.memo.pop(key, None)
        self.tx.delete("v", prefix=key.encode())


def _flat_copy(value: Any) -> dict[str, Any] | None:
    """A copy of a dict whose members are scalars or dicts of scalars (the shape of ``__meta__``), independent of
    ``value`` for every edit the stage makes; None for any other shape (not memoised)."""
    if type(value) is not dict:
        return None
    copy: dict[str, Any] = {}
    for name, member in value.items():
        kind = type(member)
        if kind is dict:
            if not all(map(_SCALARS.__contains__, map(type, member.values()))):  # in C: ``due`` has an entry per scope
                return None
            copy[name] = member.copy()
        elif kind in _SCALARS:
            copy[name] = member
        else:
            return None
    return copy


_SCALARS = frozenset({str, int, float, bool, type(None)})


@dataclass
class StreamStats:
    records: int = 0
    events: int = 0
    alerts: int = 0
    scope_messages: int = 0
    scoped_in: int = 0
    late: int = 0
    dead_lettered: int = 0
    last_loop: float = field(default_factory=time.monotonic)


class StreamRuntime:
    """Builds the Quix application for a :class:`Settings` and runs it (see the module docstring)."""

    def __init__(self, settings: Settings, ruleset: Ruleset, *, alerts: SinkAdapter, events: SinkAdapter | None = None,
                 dead_letters: SinkAdapter | None = None, input_partitions: dict[str, int],
                 on_loop: Callable[[], None] | None = None, on_signal: Callable[[int, Any], None] | None = None) -> None:
        """``alerts``/``events``/``dead_letters``: our sinks behind Quix's protocol, made once per process and handed to
        every application the daemon starts (a restart re-creates the application, not the sinks); ``dead_letters``
        is used only without a dead-letter topic. ``on_signal``: what a SIGTERM/SIGINT that reaches the application's
        own handlers does (the daemon's stop request), instead of stopping the application alone."""
        self.settings = settings
        self.cfg = settings.ingest.kafka
        self.stream_cfg = self.cfg.stream
        self.router = ParserRouter(settings.parsing.format, settings.parsing.max_record_bytes, keep_original=settings.parsing.keep_original,
                                   geoip=settings.parsing.geoip)
        self.plan = ScopePlan.build(ruleset, settings.detection.model_dump())
        self.stateless = StatelessStage(self.plan)
        self.scoped = ScopedStage(self.plan)
        self.stats = StreamStats()
        self.input_partitions = dict(input_partitions)
        self.sources = sorted(f"{topic}:{p}" for topic, count in self.input_partitions.items() for p in range(count))
        default_grace = settings.detection.correlation.allowed_lateness_seconds
        self.grace: dict[str, int] = {}
        for topic in self.input_partitions:
            spec = _topic_spec(self.cfg.topics, topic)
            grace = spec.grace_seconds if spec is not None and spec.grace_seconds is not None else default_grace
            self.grace[topic] = int(max(0.0, float(grace)) * MICROS)
        self.max_future_us = int(float(settings.detection.correlation.max_future_seconds) * MICROS)
        self.on_loop = on_loop
        self.on_signal = on_signal
        self.assigned: list[str] = []
        self.scope_marks: dict[int, ScopeMarks] = {}  # per scope partition, loaded from its store (see marks.py)
        self.meta_memo: dict[int, dict[str, tuple[bytes, dict[str, Any]]]] = {}  # see TxState
        self.owned = OwnedMarks(self.stream_cfg.source_idle_seconds, MARK_HEARTBEAT_SECONDS)
        self._formats: dict[str, str | None] = {}
        self._source_names: dict[tuple[str, int], str] = {}
        self._last_tick = 0.0
        self._last_lag = 0.0
        self.scope_partitions = self.stream_cfg.scope_partitions or max(self.input_partitions.values())
        self.alert_adapter = alerts
        self.alert_adapter.on_written = self._count_alerts
        self.event_adapter = events
        self.dead_letter_adapter = dead_letters
        self.app = self._application()
        self._topology()

    # -- assembly ------------------------------------------------------------------------------------
    def _application(self) -> Application:
        cfg, stream = self.cfg, self.stream_cfg
        options = librdkafka_options(cfg)
        connection = ConnectionConfig.from_librdkafka_dict({k: v for k, v in options.items() if k not in ("client.id", "reconnect.backoff.max.ms")},
                                                           ignore_extras=True)
        return BatchingApplication(
            batch_topics=frozenset(self.input_partitions), batch_size=cfg.max_poll_records, batch_handler=self._stateless_batch,
            on_partitions=self._partitions_moved, on_signal=self.on_signal,
            broker_address=connection, consumer_group=cfg.group_id, auto_offset_reset=cfg.auto_offset_reset,
            processing_guarantee=stream.processing_guarantee, state_dir=stream.state_dir,
            commit_interval=stream.commit_interval_seconds, consumer_poll_timeout=cfg.poll_timeout_ms / 1000,
            consumer_extra_config={"session.timeout.ms": cfg.session_timeout_ms, "client.id": cfg.client_id,
                                   "reconnect.backoff.max.ms": 5000},
            producer_extra_config={"client.id": cfg.client_id, "linger.ms": 5, "reconnect.backoff.max.ms": 5000},
            loglevel=None, auto_create_topics=True, use_changelog_topics=True)

    def _topology(self) -> None:
        app = self.app
        replication = self.stream_cfg.replication_factor
        if replication is None:
            replication = 1
        self.scopes_topic: Topic = app.topic(scopes_topic_name(self.cfg.group_id), key_deserializer="bytes", value_deserializer="bytes",
                                             key_serializer="bytes", value_serializer="bytes",
                                             config=TopicConfig(num_partitions=self.scope_partitions, replication_factor=replication,
                                                                extra_config=SCOPES_TOPIC_CONFIG))
        self.dead_letter_topic = (app.topic(self.cfg.dead_letter_topic, value_serializer="bytes", key_serializer="bytes",
                                            value_deserializer="bytes", key_deserializer="bytes")
                                  if self.cfg.dead_letter_topic else None)
        self.alerts_topic = (app.topic(self.stream_cfg.alerts_topic, value_serializer="json", key_serializer="str")
                             if self.stream_cfg.alerts_topic else None)
        for name in sorted(self.input_partitions):
            topic = app.topic(name, key_deserializer="bytes", value_deserializer="bytes")
            sdf = app.dataframe(topic)
            sdf = sdf.apply(self._stateless, metadata=True, expand=True)
            self._deliver(sdf)
        scoped = app.dataframe(self.scopes_topic)
        scoped = scoped.apply(self._scoped, stateful=True, metadata=True, expand=True)
        self._deliver(scoped)
        app._dataframe_registry.register_periodic_task(self._periodic)  # Quix 3.28: runs after every poll, before commits

    def _deliver(self, sdf: Any) -> None:
        if self.alerts_topic is not None:
            sdf.to_topic(self.alerts_topic, key=lambda alert: str(alert.get("alert.id", "")))
        sdf.sink(self.alert_adapter)

    def _partitions_moved(self, partitions: list[tuple[str, int]]) -> None:
        """A scope partition assigned or taken away: its marks are read again from its store when next used (another
        member may have owned it meanwhile; the store holds what that member stored, restored from the changelog)."""
        for topic, partition in partitions:
            if topic == self.scopes_topic.name:
                self.scope_marks.pop(partition, None)

    @property
    def producer(self) -> Any:
        return self.app._processing_context.producer

    # -- stage 1: stateless, on the input partitions ---------------------------------------------------
    def _stateless_batch(self, messages: list[Any]) -> None:
        """One poll's input records (see :class:`BatchingApplication`), in order: alerts into the alert sink's
        buffer (and ``alerts_topic``), scope messages produced, before the caller stores the offsets.

        What :meth:`_record` does record by record, with the per-record costs paid once a poll: the records are
        parsed in one ``parse_batch`` (one ``event.ingested`` stamp) and the stateless enrichers, which look at each
        event alone, run over all their events in one call. Matching, marks and scope messages stay per record, in
        order, so each scope message carries its partition's mark as it stands after its own record."""
        adapter, alerts_topic = self.alert_adapter, self.alerts_topic
        horizon = time.time_ns() // 1000 + self.max_future_us
        now = time.monotonic()
        producer = self.producer if alerts_topic is not None else None
        formats = self._formats
        records = []
        for message in messages:
            topic, value = message.topic(), message.value()
            fmt = formats.get(topic, "")
            if fmt == "":
                fmt = self._format_of(topic)
            records.append(RawRecord(value if value is not None else b"",
                                     Origin("kafka", offset=message.offset(), topic=topic, partition=message.partition()), fmt))
        result = ParseResult()
        ends: list[tuple[int, int]] = []
        self.router.parse_batch(records, result, ends)
        events, dead = result.events, result.dead
        self.stats.records += len(messages)
        self.stats.events += len(events)
        if dead or self.event_adapter is not None:  # what parsing gave, before any enrichment (as record by record)
            start_event = start_dead = 0
            for message, (end_event, end_dead) in zip(messages, ends, strict=True):
                if end_dead > start_dead:
                    self._dead_letter(dead[start_dead:end_dead], _Original(message.key(), message.value(), message.headers()),
                                      (message.topic(), message.partition(), message.offset()))
                if self.event_adapter is not None:
                    for event in events[start_event:end_event]:
                        self.event_adapter.add(dict(event), None, 0, None, message.topic(), message.partition(), message.offset())
                start_event, start_dead = end_event, end_dead
        if events:
            self.stateless.enrich(events)
        start_event = 0
        for message, (end_event, _) in zip(messages, ends, strict=True):
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            alerts = self._match_record(events[start_event:end_event] if end_event > start_event else [], topic, partition, horizon, now)
            start_event = end_event
            if not alerts:
                continue
            key, headers = message.key(), message.headers()
            if producer is not None and alerts_topic is not None:
                timestamp = message.timestamp()[1]
                context = MessageContext(topic=topic, partition=partition, offset=offset, size=len(message), leader_epoch=message.leader_epoch())
                for alert in alerts:
                    row = Row(value=alert, key=key, timestamp=timestamp, context=context, headers=headers)
                    producer.produce_row(row=row, topic=alerts_topic, key=str(alert.get("alert.id", "")), timestamp=timestamp)
            for alert in alerts:
                adapter.add(alert, key, 0, headers, topic, partition, offset)
        metrics.RECORDS_CONSUMED.labels("kafka").inc(len(messages))

    def _stateless(self, value: bytes | None, key: Any, timestamp: int, headers: Any) -> list[dict[str, Any]]:
        """The same work as a dataframe step, one record (Quix's per-record path; input records normally come
        through :meth:`_stateless_batch`)."""
        ctx = message_context()
        metrics.RECORDS_CONSUMED.labels("kafka").inc()
        return self._record(value, key, headers, ctx.topic, ctx.partition, ctx.offset, time.time_ns() // 1000 + self.max_future_us,
                            time.monotonic())

    def _format_of(self, topic: str) -> str | None:
        """The topic's configured format (None: auto-detect per record), remembered per topic."""
        hint = _topic_spec(self.cfg.topics, topic)
        fmt = self._formats[topic] = hint.format if hint is not None and hint.format != "auto" else None
        return fmt

    def _record(self, value: bytes | None, key: Any, headers: Any, topic: str, partition: int, offset: int,
                horizon: int, now: float) -> list[dict[str, Any]]:
        """Parse one record, run the stateless stage on its events, move its partition's mark, produce the scope
        messages (each carrying the mark as it stands after this record); returns the rule alerts."""
        fmt = self._formats.get(topic, "")
        if fmt == "":
            fmt = self._format_of(topic)
        result = self.router.parse(RawRecord(value if value is not None else b"", Origin("kafka", offset=offset, topic=topic, partition=partition), fmt))
        self.stats.records += 1
        if result.dead:
            self._dead_letter(result.dead, _Original(key, value, headers), (topic, partition, offset))
        events = result.events
        self.stats.events += len(events)
        if events:
            if self.event_adapter is not None:
                for event in events:
                    self.event_adapter.add(dict(event), None, 0, None, topic, partition, offset)
            self.stateless.enrich(events)
        return self._match_record(events, topic, partition, horizon, now)

    def _match_record(self, events: list[dict[str, Any]], topic: str, partition: int, horizon: int, now: float) -> list[dict[str, Any]]:
        """One record's enriched events: mark its partition active, match, move the mark to the latest event time
        (less the topic's grace, never past ``horizon``), produce the scope messages; returns the rule alerts."""
        source = self._source_names.get((topic, partition))
        if source is None:
            source = self._source_names[(topic, partition)] = f"{topic}:{partition}"
        mark = self.owned.active(source, now)
        if not events:
            return []
        alerts, messages, latest = self.stateless.match(events)
        if NEVER < latest <= horizon and latest - self.grace[topic] > mark.mark:
            mark.mark = latest - self.grace[topic]
        if messages:
            headers_out = [("src", source.encode()), ("wm", str(mark.mark).encode())]
            produce, name = self.producer.produce, self.scopes_topic.name
            for message in messages:
                produce(name, key=message.key.encode(), value=message.to_bytes(), headers=headers_out)
            self.stats.scope_messages += len(messages)
        return alerts

    def _periodic(self) -> None:
        """Send each input partition's mark to every scope partition (and say when a partition went idle)."""
        now = time.monotonic()
        self.stats.last_loop = now
        if self.on_loop is not None:
            self.on_loop()
        if now - self._last_tick < self.stream_cfg.tick_interval_seconds:
            return
        self._last_tick = now
        try:
            tps = [tp for tp in self.app._consumer.assignment() if tp.topic in self.input_partitions]
        except Exception:  # not subscribed yet, or a rebalance in progress
            return
        assigned = {f"{tp.topic}:{tp.partition}" for tp in tps}
        if now - self._last_lag >= 5.0:
            self._last_lag = now
            self._publish_lag(tps)
        self.assigned = sorted(assigned)
        producer = self.producer
        for source, mark, idle in self.owned.due(assigned, now):
            headers = [("src", source.encode()), ("wm", str(mark).encode())]
            if idle:
                headers.append(("idle", b"1"))
            for partition in range(self.scope_partitions):
                producer.produce(self.scopes_topic.name, key=TICK_KEY, value=b"", headers=headers, partition=partition)

    def _publish_lag(self, tps: list[Any]) -> None:
        """``tsiem_consumer_lag`` per assigned input partition, from librdkafka's cached high watermarks."""
        consumer = self.app._consumer
        try:
            positions = {(tp.topic, tp.partition): tp.offset for tp in consumer.position(tps)}
            for tp in tps:
                _, high = consumer.get_watermark_offsets(tp, cached=True)
                position = positions.get((tp.topic, tp.partition), -1)
                if high >= 0 and position >= 0:
                    metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(high - position, 0))
        except Exception as exc:  # a metric must never stop the stream
            log.debug("consumer lag: %s", exc)

    # -- stage 2: where the scope's state lives ------------------------------------------------------------
    def _scoped(self, value: bytes | None, key: bytes, timestamp: int, headers: Any, state: Any) -> list[dict[str, Any]]:
        # The partition's transaction: scope entries and __meta__ live side by side.
        store = TxState(state._transaction, self.meta_memo.setdefault(message_context().partition, {}))
        meta = self.scoped.meta(store)
        self.scoped.dirty = False
        head = dict(headers or ())
        source = head.get("src")
        partition = message_context().partition
        marks = self.scope_marks.get(partition)
        if marks is None:  # first message since the partition was assigned: the marks its last owner stored
            marks = self.scope_marks[partition] = ScopeMarks.from_state(store.get(MARKS_KEY), self.stream_cfg.source_idle_seconds)
        if source is not None:
            marks.observe(source.decode(), _int_header(head.get("wm")), head.get("idle") == b"1", timestamp)
            if key == TICK_KEY:  # stored with each tick (at most a tick behind the marks in memory: only lower)
                store.set(MARKS_KEY, marks.to_state())
        else:
            marks.tick(timestamp)
        alerts: list[dict[str, Any]] = []
        dead: list[DeadLetter] = []
        forward: list[ScopeMessage] = []
        if key != TICK_KEY and value is not None:
            self.stats.scoped_in += 1
            result = self.scoped.observe(store, meta, ScopeMessage.from_bytes(key.decode(), value))
            alerts.extend(result.alerts)
            dead.extend(result.dead)
            forward.extend(result.forward)
        watermark = marks.watermark(self.sources)
        if watermark > meta["w"]:
            result = self.scoped.advance(store, meta, watermark)
            alerts.extend(result.alerts)
            dead.extend(result.dead)
            forward.extend(result.forward)
        if self.scoped.dirty:
            store.set(META_KEY, meta)
        for message in forward:
            self.producer.produce(self.scopes_topic.name, key=message.key.encode(), value=message.to_bytes())
        if dead:
            self.stats.late += len(dead)
            self._dead_letter(dead, None)
        return alerts

    # -- outputs ---------------------------------------------------------------------------------------------
    def _dead_letter(self, dead: list[DeadLetter], original: _Original | None, where: tuple[str, int, int] | None = None) -> None:
        """``where``: the consumed record's (topic, partition, offset), from the message context when not given."""
        for item in dead:
            self.stats.dead_lettered += 1
            metrics.DEAD_LETTERS.labels(item.reason, item.stage).inc()
        if self.dead_letter_topic is not None:
            for item in dead:
                message = topic_message(item.as_dict(), original)
                self.producer.produce(self.dead_letter_topic.name, value=message["value"], key=message["key"], headers=message["headers"])
        elif self.dead_letter_adapter is not None:
            if where is None:
                ctx = message_context()
                where = (ctx.topic, ctx.partition, ctx.offset)
            for item in dead:
                self.dead_letter_adapter.add(item.as_dict(), None, 0, None, *where)

    def _count_alerts(self, alerts: list[dict[str, Any]]) -> None:
        self.stats.alerts += len(alerts)
        counts = Counter((str(a.get("rule.id")), str(a.get("rule.name", "")), str(a.get("alert.level", ""))) for a in alerts)
        for labels, n in counts.items():  # one labelled-child lookup per rule, not per alert
            metrics.ALERTS.labels(*labels).inc(n)

    # -- run -------------------------------------------------------------------------------------------------
    def run(self) -> None:
        manager = self.app._processing_context.sink_manager
        for adapter in (self.event_adapter, self.dead_letter_adapter):
            if adapter is not None:  # fed by hand, not by a dataframe: registered so checkpoints flush them
                manager.register(adapter)
        self.app.run()

    def adapters(self) -> list[SinkAdapter]:
        return [a for a in (self.alert_adapter, self.event_adapter, self.dead_letter_adapter) if a is not None]

    def stop(self) -> None:
        self.app.stop()


def _int_header(value: bytes | None) -> int:
    """A mark header; anything that is not an integer counts as no mark (it would only hold the watermark back)."""
    try:
        return int(value) if value else NEVER
    except ValueError:
        return NEVER


def _topic_spec(topics: list[KafkaTopic], name: str) -> KafkaTopic | None:
    for spec in topics:
        if spec.name == name or (spec.pattern and re.fullmatch(spec.pattern, name)):
            return spec
    return None


def input_partitions(settings: Settings, timeout: float = 10.0) -> tuple[dict[str, int], list[str]]:
    """(input topic -> partition count, named topics that do not exist yet). Patterns are resolved against the
    cluster now: a topic created later that matches needs a restart. Raises ``KafkaException`` while no broker answers."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(dict(librdkafka_options(settings.ingest.kafka)))
    found = admin.list_topics(timeout=timeout).topics
    wanted: dict[str, int] = {}
    missing = []
    for spec in settings.ingest.kafka.topics:
        if spec.name:
            if spec.name in found and found[spec.name].partitions:
                wanted[spec.name] = len(found[spec.name].partitions)
            else:
                missing.append(spec.name)
        elif spec.pattern:
            for name, meta in found.items():
                if not name.startswith("__") and re.fullmatch(spec.pattern, name):
                    wanted[name] = len(meta.partitions)
    return wanted, missing
