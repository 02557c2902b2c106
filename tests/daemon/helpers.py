"""Real-broker helpers: unique topics, synthetic workloads with known alerts, the daemon as a subprocess."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from temporal_siem.detections.factory import build_ruleset, new_detector
from temporal_siem.kernel.config import load_settings
from temporal_siem.kernel.records import Origin, RawRecord
from temporal_siem.parsers.router import ParserRouter

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
SAML_RULE = "Okta Inbound SAML Assertion or Signature Error"
MASS_DELETE_RULE = "Several Temporal Cloud Users Removed at Once"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        try:
            admin.create_topics([NewTopic(name, partitions, 1)])
        except TopicAlreadyExistsError:
            pass  # a consumer subscribed first and the broker auto-created it: same topic, same test
        admin.wait_for_topics([name], timeout_ms=15000)
    finally:
        admin.close()


def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]], **options: Any) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, **options)
    try:
        for key, value in messages:
            producer.send(topic, key=key, value=value)
        producer.flush(timeout=60)
    finally:
        producer.close()


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in parts])
        return {tp.partition: off for tp, off in ends.items()}
    finally:
        consumer.close()


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        found = admin.list_group_offsets(group).get(group, {})
        return {tp.partition: meta.offset for tp, meta in found.items() if tp.topic == topic}
    finally:
        admin.close()


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 20.0) -> list[Any]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None,
                             consumer_timeout_ms=1000)
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.2,
             detail: Callable[[], str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except KafkaError as exc:
            if not getattr(exc, "retriable", False):
                raise  # e.g. the group coordinator of a fresh broker: not ready yet is not a failure
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f"\n{detail()}" if detail else ""))


def all_committed(bootstrap: str, group: str, topic: str) -> Callable[[], bool]:
    def check() -> bool:
        ends = end_offsets(bootstrap, topic)
        done = committed_offsets(bootstrap, group, topic)
        return bool(ends) and all(done.get(p, 0) >= end for p, end in ends.items())
    return check


def read_jsonl(*paths: Path) -> list[dict[str, Any]]:
    """The documents of JSON Lines files, whole lines only: the file sink ends every document with a newline, and a
    test polls files that running daemons still append to, so text after the last newline is a document being
    written (read on the next poll), not a broken one."""
    docs: list[dict[str, Any]] = []
    for path in paths:
        if path.exists():
            data = path.read_bytes()
            for line in data[:data.rfind(b"\n") + 1].splitlines():
                if line.strip():
                    docs.append(orjson.loads(line))
    return docs


def alert_ids(docs: list[dict[str, Any]], rule_name: str | None = None) -> list[str]:
    return [d["alert"]["id"] for d in docs if rule_name is None or d.get("rule", {}).get("name") == rule_name]


# -- workloads with known alerts ----------------------------------------------------------------------
def _first_line(path: Path, needle: bytes) -> dict[str, Any]:
    for line in path.read_bytes().splitlines():
        if needle in line:
            parsed: dict[str, Any] = orjson.loads(line)
            return parsed
    raise LookupError(needle)


def okta_workload(count: int, users: int = 40, seed: str = "") -> list[tuple[bytes | None, bytes]]:
    """Alternating Okta SAML assertion failures (one alert each) and ordinary sign-ins, keyed by user."""
    failure = _first_line(SAMPLES / "okta" / "lifecycle_saml_errors.jsonl", b"Unable to validate incoming SAML")
    signin = _first_line(SAMPLES / "okta" / "sessions_and_mfa.jsonl", b"user.session.start")
    tag = seed or uuid.uuid4().hex[:8]
    messages: list[tuple[bytes | None, bytes]] = []
    for i in range(count):
        doc = json.loads(json.dumps(failure if i % 2 == 0 else signin))
        user = f"user{i % users}@example.com"
        doc["uuid"] = f"{tag}-{i:08d}"
        doc["published"] = f"2025-05-07T{8 + (i // 3600) % 12:02d}:{(i // 60) % 60:02d}:{i % 60:02d}.000Z"
        doc["actor"]["alternateId"] = user
        messages.append((user.encode(), orjson.dumps(doc)))
    return messages


def mass_delete_events(count: int, tag: str, actor: str = "mallory@example.com") -> list[tuple[bytes | None, bytes]]:
    """Temporal Cloud (G0 sink) DeleteUser events of one actor a minute apart: 3+ within 10 minutes correlate."""
    base = _first_line(SAMPLES / "temporal_cloud_audit" / "legacy_g0_sink.jsonl", b'"DeleteUser"')
    out: list[tuple[bytes | None, bytes]] = []
    for i in range(count):
        doc = dict(base)
        doc["user_email"] = actor
        doc["log_id"] = f"{tag}{i:08d}"
        doc["emit_time"] = f"2025-01-14T22:{40 + i:02d}:15Z"
        out.append((actor.encode(), orjson.dumps(doc)))
    return out


def expected_alert_ids(messages: list[tuple[bytes | None, bytes]], rule_name: str) -> set[str]:
    """What the shipped rules raise for these records, computed in process (no broker, same code)."""
    detection = load_settings(None).detection
    detector = new_detector(build_ruleset(detection.rules, detection.builtin_rules, detection.pipelines, detection.filters),
                            detection.model_dump())
    router = ParserRouter()
    events: list[dict[str, Any]] = []
    for i, (_, value) in enumerate(messages):
        events.extend(router.parse(RawRecord(value, Origin("expected", offset=i))).events)
    return {a["alert.id"] for a in detector.process(events) if a.get("rule.name") == rule_name}


# -- the daemon as a real subprocess --------------------------------------------------------------------
@dataclass
class Daemon:
    config: Path
    log: Path
    alerts: Path
    events: Path
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def configure(cls, tmp: Path, name: str, bootstrap: str, group: str, topics: list[dict[str, Any]], *,
                  dead_letter_topic: str | None = None, extra: dict[str, Any] | None = None,
                  kafka: dict[str, Any] | None = None) -> Daemon:
        alerts, events = tmp / f"{name}-alerts.jsonl", tmp / f"{name}-events.jsonl"
        config: dict[str, Any] = {
            "ingest": {"kafka": {
                "bootstrap_servers": [bootstrap], "group_id": group, "client_id": name, "topics": topics,
                "dead_letter_topic": dead_letter_topic, "poll_timeout_ms": 200,
                "session_timeout_ms": 6000, "max_poll_records": 100, "shutdown_timeout_seconds": 20,
                "stream": {"state_dir": str(tmp / f"{name}-state"), "commit_interval_seconds": 0.5, "tick_interval_seconds": 0.2,
                           "source_idle_seconds": 3.0},
                **(kafka or {})}},
            "sinks": {"alerts": [{"type": "file", "path": str(alerts)}], "events": [{"type": "file", "path": str(events)}],
                      "dead_letter": {"type": "file", "path": str(tmp / f"{name}-dead-letter.jsonl")}},
            "metrics": {"host": "127.0.0.1", "port": 0},
            "log_level": "INFO",
        }
        for key, value in (extra or {}).items():
            config[key] = value
        path = tmp / f"{name}.yml"
        path.write_text(yaml.safe_dump(config))
        return cls(path, tmp / f"{name}.log", alerts, events)

    def start(self, *args: str) -> Daemon:
        """``temporal-siem run --config CONFIG [args]`` (e.g. ``--workers 2``)."""
        env = {**os.environ, **self.env}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "temporal_siem", "run", "--config", str(self.config), *args],
                                         stdout=log, stderr=log, cwd=str(ROOT), env=env)
        return self

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log.read_text(errors="replace").splitlines() if self.log.exists() else []:
            try:
                lines.append(json.loads(line))
            except ValueError:
                lines.append({"unparsed": line})
        return lines

    def metrics_port(self, timeout: float = 30.0) -> int:
        found: list[int] = []

        def seen() -> bool:
            found.extend(int(m) for m in re.findall(r'"metrics_port": (\d+)', self.log.read_text(errors="replace")) if self.log.exists())
            return bool(found)
        wait_for(seen, timeout, f"{self.config.name} metrics port")
        return found[-1]

    def http(self, path: str) -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{self.metrics_port()}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def health(self) -> dict[str, Any]:
        return dict(json.loads(self.http("/healthz")[1]))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"daemon {self.config.name} did not exit within {timeout}s after signal {sig}") from None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def ensure_stopped(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:]) if self.log.exists() else ""
