"""The stream daemon against replay: one workload (samples/, sorted by event time, split over two topics), the
replay reference, daemons as subprocesses with a file and an Elasticsearch sink."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from temporal_siem.commands.to_kafka import correlation_key, split_record
from temporal_siem.ingest.replay import ReplaySource
from temporal_siem.kernel.records import Origin, RawRecord
from temporal_siem.parsers.router import ParserRouter
from tests.daemon.helpers import Daemon, read_jsonl, wait_for

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
#: Identity-provider records go to one topic, everything else to the other: SSO bursts correlate across both.
IDP_DATASETS = ("okta.", "entra", "google_workspace.")
MARKER_DATASET = "tsiem.end_of_test"


@dataclass
class Message:
    value: bytes
    user_key: bytes | None
    time: str
    idp: bool


def workload() -> list[Message]:
    """Every record of samples/ as it arrives on Kafka (envelopes split), in event-time order.

    Sorted because the daemon and replay must decide lateness alike: in order, neither drops anything.
    """
    router = ParserRouter()
    messages: list[Message] = []
    for batch in ReplaySource([str(SAMPLES)], batch_size=500, max_record_bytes=8 * 1024 * 1024).batches():
        for record in batch:
            for value in split_record(record):
                events = router.parse(RawRecord(value, Origin("workload"))).events
                when = min((str(e.get("@timestamp")) for e in events if e.get("@timestamp")), default="0")
                dataset = str(events[0].get("event.dataset", "")) if events else ""
                messages.append(Message(value, correlation_key(router, value), when, dataset.startswith(IDP_DATASETS)))
    messages.sort(key=lambda m: m.time)
    return messages


def marker(when: str) -> bytes:
    """An ECS record no rule matches, far later than the workload: moves each partition's event time past
    every window (a live stream does this by itself; a test stream has to end somewhere)."""
    return orjson.dumps({"@timestamp": when, "event": {"dataset": MARKER_DATASET, "kind": "event", "id": uuid.uuid4().hex},
                         "message": "end of test stream"})


def end_time(messages: list[Message]) -> str:
    """Four hours after the last record: past the longest window (1 h) plus any grace."""
    from datetime import datetime, timedelta

    last = datetime.fromisoformat(max(m.time for m in messages).replace("Z", "+00:00"))
    return (last + timedelta(hours=4)).strftime("%Y-%m-%dT%H:%M:%SZ")


def replay_alert_ids(messages: list[Message], tmp: Path) -> set[str]:
    """The reference: `temporal-siem replay` over the same records (one file, the same order)."""
    data = tmp / "workload.jsonl"
    data.write_bytes(b"".join(m.value.replace(b"\n", b" ") + b"\n" for m in messages))
    alerts = tmp / "replay-alerts.jsonl"
    run = subprocess.run([sys.executable, "-m", "temporal_siem", "replay", str(data), "--alerts", str(alerts),
                          "--dead-letter", str(tmp / "replay-dead.jsonl")], capture_output=True, cwd=str(ROOT), timeout=300)
    assert run.returncode == 0, run.stderr.decode(errors="replace")[-2000:]
    return {doc["alert"]["id"] for doc in read_jsonl(alerts)}


def create_topics(bootstrap: str, partitions: dict[str, int]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, count, 1) for name, count in partitions.items()])
        admin.wait_for_topics(list(partitions), timeout_ms=15000)
    finally:
        admin.close()


def produce_workload(bootstrap: str, messages: list[Message], idp_topic: str, other_topic: str, *, keying: str,
                     seed: int = 7, pause_after: int | None = None, pause: float = 0.0) -> None:
    """Produce in order; ``keying``: ``user`` (the correlation key), ``random``, ``none`` or ``mixed`` (each in turn)."""
    rng = random.Random(seed)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        for i, message in enumerate(messages):
            mode = ("user", "random", "none")[i % 3] if keying == "mixed" else keying
            key = message.user_key if mode == "user" else (rng.randbytes(8).hex().encode() if mode == "random" else None)
            producer.send(idp_topic if message.idp else other_topic, key=key, value=message.value)
            if pause_after is not None and i == pause_after:
                producer.flush(timeout=60)
                time.sleep(pause)
        producer.flush(timeout=60)
    finally:
        producer.close()


def produce_markers(bootstrap: str, topics: dict[str, int], when: str) -> None:
    """One end marker on every partition of every input topic."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for topic, count in topics.items():
            for partition in range(count):
                producer.send(topic, value=marker(when), partition=partition)
        producer.flush(timeout=60)
    finally:
        producer.close()


def configure(tmp: Path, name: str, bootstrap: str, group: str, topics: list[str], *, guarantee: str = "at-least-once",
              elasticsearch: tuple[str, str] | None = None, dead_letter_topic: str | None = None,
              stream: dict[str, Any] | None = None) -> Daemon:
    alerts, events = tmp / f"{name}-alerts.jsonl", tmp / f"{name}-events.jsonl"
    sinks: list[dict[str, Any]] = [{"type": "file", "path": str(alerts)}]
    if elasticsearch is not None:
        sinks.append({"type": "elasticsearch", "hosts": [elasticsearch[0]], "index": elasticsearch[1]})
    config: dict[str, Any] = {
        "ingest": {"kafka": {
            "bootstrap_servers": [bootstrap], "group_id": group, "client_id": name,
            "topics": [{"name": t, "format": "auto"} for t in topics], "dead_letter_topic": dead_letter_topic,
            "poll_timeout_ms": 200, "session_timeout_ms": 6000, "shutdown_timeout_seconds": 30,
            "stream": {"processing_guarantee": guarantee, "state_dir": str(tmp / f"{name}-state"), "commit_interval_seconds": 0.5,
                       "tick_interval_seconds": 0.2, "source_idle_seconds": 3.0, **(stream or {})}}},
        "sinks": {"alerts": sinks, "dead_letter": {"type": "file", "path": str(tmp / f"{name}-dead-letter.jsonl")}},
        "metrics": {"host": "127.0.0.1", "port": 0},
        "log_level": "INFO",
    }
    path = tmp / f"{name}.yml"
    path.write_text(yaml.safe_dump(config))
    daemon = Daemon(path, tmp / f"{name}.log", alerts, events)
    daemon.env = {"PYTHONWARNINGS": "ignore"}
    return daemon


def alert_ids_of(*daemons: Daemon) -> set[str]:
    return {doc["alert"]["id"] for doc in read_jsonl(*(d.alerts for d in daemons))}


def wait_for_alerts(daemons: list[Daemon], expected: set[str], timeout: float) -> None:
    def done() -> bool:
        for daemon in daemons:
            if daemon.proc is not None and daemon.proc.poll() is not None and daemon.proc.returncode not in (0, -9):
                raise AssertionError(f"{daemon.config.name} exited {daemon.proc.returncode}:\n{daemon.tail()}")
        return expected <= alert_ids_of(*daemons)

    wait_for(done, timeout, "every replay alert from the daemons",
             detail=lambda: f"missing {len(expected - alert_ids_of(*daemons))} of {len(expected)}\n" + daemons[0].tail(15))


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")
