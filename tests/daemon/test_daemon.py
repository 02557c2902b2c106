"""The daemon end to end against the real broker: samples in, alerts out, offsets committed, clean stop;
poison records to the dead-letter topic; correlation state restored from its changelog by the next member."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.daemon.helpers import (
    MASS_DELETE_RULE,
    ROOT,
    SAML_RULE,
    Daemon,
    alert_ids,
    all_committed,
    committed_offsets,
    create_topic,
    end_offsets,
    expected_alert_ids,
    mass_delete_events,
    okta_workload,
    produce,
    read_jsonl,
    read_topic,
    unique,
    wait_for,
)

pytestmark = pytest.mark.services


def test_samples_end_to_end(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic, group = unique("e2e"), unique("e2e-group")
    create_topic(kafka_bootstrap, topic, 2)
    config = tmp_path / "producer.yml"
    config.write_text(json.dumps({"ingest": {"kafka": {"bootstrap_servers": [kafka_bootstrap]}}}))
    produced = subprocess.run([sys.executable, "-m", "temporal_siem", "replay", str(ROOT / "samples"), "--to-kafka", topic,
                               "--config", str(config)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert produced.returncode == 0, produced.stderr
    assert "produced" in produced.stderr
    tag = unique("w")
    workload = okta_workload(200, seed=tag)
    produce(kafka_bootstrap, topic, workload)
    total = sum(end_offsets(kafka_bootstrap, topic).values())
    daemon = Daemon.configure(tmp_path, "e2e", kafka_bootstrap, group, [{"name": topic}], dead_letter_topic=unique("e2e-dlq"))
    daemon.start()
    try:
        wait_for(all_committed(kafka_bootstrap, group, topic), 90, "every offset committed")
        health = daemon.health()
        assert health["status"] == "ok"
        assert health["records_read"] == total
        status, body = daemon.http("/metrics")
        metrics = body.decode()
        assert status == 200
        assert f'tsiem_records_consumed_total{{source="kafka"}} {float(total)}' in metrics
        assert "tsiem_alerts_total{" in metrics
        assert "\ntsiem_up 1.0" in metrics
        assert daemon.http("/nope")[0] == 404
    finally:
        code = daemon.stop(signal.SIGTERM)
    assert code == 0, daemon.tail()
    alerts = read_jsonl(daemon.alerts)
    expected = expected_alert_ids(workload, SAML_RULE)
    assert len(expected) == 100
    ours = [a for a in alerts if a["alert"]["source_event_ids"][0].startswith(tag)]
    assert set(alert_ids(ours, SAML_RULE)) == expected
    assert len(alerts) > len(expected), "the samples raise alerts of other rules too"
    assert len(read_jsonl(daemon.events)) >= total
    lines = daemon.log_lines()
    assert lines and all("unparsed" not in line for line in lines), "every log line is JSON"
    assert any(line.get("msg") == "stopped" for line in lines)


def test_poison_records_go_to_the_dead_letter_topic(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic, group, dlq = unique("poison"), unique("poison-group"), unique("poison-dlq")
    create_topic(kafka_bootstrap, topic, 1)
    good = okta_workload(4)
    poison: list[tuple[bytes | None, bytes]] = [
        (b"k-json", b'{"uuid": "broken", "published": '),
        (b"k-binary", b"\x00\x01\x02binary\xff\xfe"),
        (b"k-utf8", b"\xff\xfe{not utf-8}"),
        (None, b"hello world, no log format at all"),
        (b"k-envelope", b'{"Records": []}'),
        (b"k-big", b'{"uuid": "' + b"x" * 70_000 + b'"}'),
        (b"k-empty", b""),
    ]
    produce(kafka_bootstrap, topic, [good[0], *poison[:3], good[1], *poison[3:], good[2], good[3]])
    daemon = Daemon.configure(tmp_path, "poison", kafka_bootstrap, group, [{"name": topic}], dead_letter_topic=dlq,
                              extra={"parsing": {"max_record_bytes": 65536}})
    daemon.start()
    try:
        wait_for(all_committed(kafka_bootstrap, group, topic), 60, "poison records committed")
        dead = read_topic(kafka_bootstrap, dlq, len(poison))
    finally:
        assert daemon.stop() == 0, daemon.tail()
    assert len(dead) == len(poison)
    by_key = {record.key: record for record in dead}
    offsets = {key: i for i, (key, _) in enumerate([good[0], *poison[:3], good[1], *poison[3:], good[2], good[3]])}
    for key, value in poison:
        record = by_key[key]
        headers = dict(record.headers)
        assert headers["tsiem.origin.topic"] == topic.encode()
        assert headers["tsiem.origin.partition"] == b"0"
        assert int(headers["tsiem.origin.offset"]) == offsets[key]
        assert headers["tsiem.reason"] and headers["tsiem.stage"] in (b"decode", b"parse")
        assert record.value == value, f"the dead-letter value is the original record ({key!r})"
    assert dict(by_key[b"k-big"].headers)["tsiem.reason"] == b"record too large"
    assert dict(by_key[b"k-binary"].headers)["tsiem.reason"] == b"binary data"
    assert len(alert_ids(read_jsonl(daemon.alerts), SAML_RULE)) == 2, "good records around the poison still alert"


def test_correlation_state_comes_back_from_the_changelog(kafka_bootstrap: str, tmp_path: Path) -> None:
    """Two DeleteUser events go to the first member, two to the next, which starts with an empty local state
    directory: the mass-deletion correlation needs all four (the fourth moves the watermark past the third), so it
    fires only if the second member restored the first one's state from the changelog topic."""
    topic, group = unique("handoff"), unique("handoff-group")
    create_topic(kafka_bootstrap, topic, 1)
    events = mass_delete_events(4, unique("t").replace("-", ""))
    extra = {"detection": {"correlation": {"allowed_lateness_seconds": 0}}}
    first = Daemon.configure(tmp_path, "first", kafka_bootstrap, group, [{"name": topic}], extra=extra)
    produce(kafka_bootstrap, topic, events[:2])
    first.start()
    try:
        wait_for(all_committed(kafka_bootstrap, group, topic), 60, "first half committed")
    finally:
        assert first.stop() == 0, first.tail()
    produce(kafka_bootstrap, topic, events[2:])
    second = Daemon.configure(tmp_path, "second", kafka_bootstrap, group, [{"name": topic}], extra=extra)
    assert not (tmp_path / "second-state").exists()
    second.start()
    try:
        wait_for(all_committed(kafka_bootstrap, group, topic), 60, "second half committed")
        wait_for(lambda: bool(alert_ids(read_jsonl(second.alerts), MASS_DELETE_RULE)), 30, "the correlation from the restored state")
    finally:
        assert second.stop() == 0, second.tail()
    fired = alert_ids(read_jsonl(first.alerts, second.alerts), MASS_DELETE_RULE)
    assert len(set(fired)) == 1, second.tail()
    assert committed_offsets(kafka_bootstrap, group, topic) == {0: 4}
