"""Failures the daemon must survive without losing an alert: kill -9 and restart, a group member stopping
mid-stream, and the broker itself restarting under load."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from tests.daemon.helpers import (
    ROOT,
    SAML_RULE,
    Daemon,
    alert_ids,
    all_committed,
    committed_offsets,
    create_topic,
    expected_alert_ids,
    okta_workload,
    produce,
    read_jsonl,
    unique,
    wait_for,
)

pytestmark = pytest.mark.services


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_kill_9_then_restart_loses_nothing(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic, group = unique("kill9"), unique("kill9-group")
    create_topic(kafka_bootstrap, topic, 2)
    workload = okta_workload(6000)
    expected = expected_alert_ids(workload, SAML_RULE)
    daemon = Daemon.configure(tmp_path, "kill9", kafka_bootstrap, group, [{"name": topic}], kafka={"max_poll_records": 50})

    # Fed in slices so the kill lands mid-stream however fast the daemon is: produced all at once, a fast
    # daemon reached the kill point before its first checkpoint, and everything it had read was (rightly)
    # read again, which says nothing about the checkpoint.
    def feed() -> None:
        for i in range(0, len(workload), 250):
            produce(kafka_bootstrap, topic, workload[i:i + 250])
            time.sleep(0.25)

    feeder = threading.Thread(target=feed)
    daemon.start()
    feeder.start()
    try:
        def checkpointed_half() -> bool:
            return (_lines(daemon.alerts) >= len(expected) // 2
                    and sum(committed_offsets(kafka_bootstrap, group, topic).values()) > 0)

        wait_for(checkpointed_half, 90, "half of the alerts and a checkpoint")
        daemon.kill9()
        before = _lines(daemon.alerts)
        assert before < len(expected), "killed mid-stream"
        daemon.start()
        feeder.join()
        wait_for(all_committed(kafka_bootstrap, group, topic), 120, "every offset committed after the restart")
    finally:
        feeder.join()
        assert daemon.stop() == 0, daemon.tail()
    ids = alert_ids(read_jsonl(daemon.alerts), SAML_RULE)
    assert set(ids) == expected, "every expected alert, nothing else"
    duplicates = sum(n - 1 for n in Counter(ids).values())
    # At-least-once: only what was read after the last checkpoint (0.5 s, input and scopes stage, plus the
    # time to see the checkpoint and kill) is read again, not everything read before the kill.
    assert duplicates < before, (duplicates, before)


def test_two_daemons_share_four_partitions_and_one_takes_over(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic, group = unique("pair"), unique("pair-group")
    create_topic(kafka_bootstrap, topic, 4)
    workload = okta_workload(4000)
    expected = expected_alert_ids(workload, SAML_RULE)
    first = Daemon.configure(tmp_path, "a", kafka_bootstrap, group, [{"name": topic}], kafka={"max_poll_records": 50})
    second = Daemon.configure(tmp_path, "b", kafka_bootstrap, group, [{"name": topic}], kafka={"max_poll_records": 50})
    first.start()
    second.start()
    def feed() -> None:
        for i in range(0, len(workload), 250):
            produce(kafka_bootstrap, topic, workload[i:i + 250])
            time.sleep(0.25)

    feeder = threading.Thread(target=feed)
    def state() -> str:
        return "\n".join(f"{d.config.name}: {d.health() if d.proc and d.proc.poll() is None else 'exited'}\n{d.tail(15)}"
                         for d in (first, second))

    try:
        wait_for(lambda: len(first.health()["assigned"]) == 2 and len(second.health()["assigned"]) == 2, 90,
                 "both members own two partitions", detail=state)
        feeder.start()
        wait_for(lambda: _lines(first.alerts) > 100 and _lines(second.alerts) > 100, 90, "both members alerting", detail=state)
        assert first.stop() == 0, first.tail()
        feeder.join(timeout=120)
        wait_for(lambda: len(second.health()["assigned"]) == 4, 90, "the survivor owns all four partitions", detail=state)
        wait_for(all_committed(kafka_bootstrap, group, topic), 120, "every offset committed by the survivor", detail=state)
    finally:
        first.ensure_stopped()
        assert second.stop() == 0, second.tail()
    ids = alert_ids(read_jsonl(first.alerts, second.alerts), SAML_RULE)
    assert set(ids) == expected
    assert set(alert_ids(read_jsonl(first.alerts), SAML_RULE)) and set(alert_ids(read_jsonl(second.alerts), SAML_RULE))


def _broker(cmd: str, home: Path, port: int) -> None:
    env = {**os.environ, "TSIEM_KAFKA_HOME": str(home), "TSIEM_KAFKA_PORT": str(port), "TSIEM_KAFKA_HEAP": "384m"}
    result = subprocess.run(["bash", str(ROOT / "scripts" / "services" / "kafka.sh"), cmd], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"kafka.sh {cmd}: {result.stdout}\n{result.stderr}"


def test_broker_restart_under_load(kafka_bootstrap: str, tmp_path: Path) -> None:
    """A private broker (own port and folder, the shared one stays up for everybody else) is restarted
    while the daemon consumes and a producer keeps writing; the daemon reconnects and loses nothing."""
    home, port = tmp_path / "broker", 19192
    shared_lib = ROOT / ".services" / "kafka" / "lib"
    if shared_lib.is_dir():  # same jars: skip the Maven step
        shutil.copytree(shared_lib, home / "lib")
    _broker("up", home, port)
    bootstrap = f"127.0.0.1:{port}"
    try:
        topic, group = unique("restart"), unique("restart-group")
        create_topic(bootstrap, topic, 2)
        first, rest = okta_workload(1000, seed="r1"), okta_workload(3000, seed="r2")
        expected = expected_alert_ids(first + rest, SAML_RULE)
        produce(bootstrap, topic, first)
        failures: list[BaseException] = []

        def feed() -> None:
            # Writes all through the restart: the producer buffers and retries (idempotent, so no duplicates).
            producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", delivery_timeout_ms=180000, reconnect_backoff_max_ms=2000)
            try:
                futures: list[Any] = []
                for i in range(0, len(rest), 100):
                    futures.extend(producer.send(topic, key=key, value=value) for key, value in rest[i:i + 100])
                    time.sleep(0.2)
                producer.flush(timeout=180)
                for future in futures:
                    future.get(timeout=1)
            except BaseException as exc:
                failures.append(exc)
            finally:
                producer.close(timeout=10)

        daemon = Daemon.configure(tmp_path, "restart", bootstrap, group, [{"name": topic}], dead_letter_topic=unique("restart-dlq"),
                                  kafka={"max_poll_records": 50})
        daemon.start()
        feeder = threading.Thread(target=feed)
        try:
            wait_for(lambda: _lines(daemon.alerts) > 50, 60, "alerts before the restart")
            feeder.start()
            time.sleep(1.0)
            _broker("down", home, port)
            _broker("up", home, port)
            feeder.join(timeout=240)
            assert not failures, failures
            wait_for(all_committed(bootstrap, group, topic), 180, "every offset committed after the broker restart")
            assert daemon.health()["status"] == "ok"
        finally:
            if feeder.is_alive():
                feeder.join(timeout=60)
            assert daemon.stop() == 0, daemon.tail()
        assert set(alert_ids(read_jsonl(daemon.alerts), SAML_RULE)) == expected
    finally:
        _broker("down", home, port)



def test_daemon_started_before_its_broker_waits_and_then_consumes(kafka_bootstrap: str, tmp_path: Path) -> None:
    """No broker at start: the daemon logs, backs off and stays up; once a broker answers it consumes."""
    home, port = tmp_path / "late-broker", 19292
    bootstrap = f"127.0.0.1:{port}"
    topic, group = unique("late"), unique("late-group")
    daemon = Daemon.configure(tmp_path, "late", bootstrap, group, [{"name": topic, "format": "okta"}]).start()
    try:
        wait_for(lambda: any("not reachable" in str(line.get("msg", "")) for line in daemon.log_lines()), 60,
                 "the 'Kafka is not reachable' warning", detail=lambda: daemon.log.read_text(errors="replace")[-2000:])
        assert daemon.proc is not None and daemon.proc.poll() is None, "the daemon gave up instead of waiting"
        shared_lib = ROOT / ".services" / "kafka" / "lib"
        if shared_lib.is_dir():
            shutil.copytree(shared_lib, home / "lib")
        _broker("up", home, port)
        create_topic(bootstrap, topic, 1)
        messages = okta_workload(200, seed="late")
        produce(bootstrap, topic, messages)
        expected = expected_alert_ids(messages, SAML_RULE)
        assert expected
        wait_for(lambda: expected <= set(alert_ids(read_jsonl(daemon.alerts), SAML_RULE)), 120, "alerts after the broker came up",
                 detail=lambda: daemon.log.read_text(errors="replace")[-3000:])
        assert daemon.stop() == 0
    finally:
        daemon.ensure_stopped()
        _broker("down", home, port)
