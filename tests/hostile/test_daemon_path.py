"""The hostile classes of issue 15 through the daemon against the real broker: records nested past any encoder
do not stop it (it commits past them and keeps every alert), and no secret reaches the alerts, the events,
the dead-letter topic (values and headers) or the logs."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.daemon.helpers import Daemon, all_committed, create_topic, produce, read_jsonl, read_topic, unique, wait_for
from tests.hostile.records import ALERTING, deep_records
from tests.hostile.secret_corpus import leaks, secret_payload

pytestmark = pytest.mark.services


def test_daemon_survives_deep_records_and_leaks_no_secret(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic, group, dlq = unique("hostile"), unique("hostile-group"), unique("hostile-dlq")
    create_topic(kafka_bootstrap, topic, 1)
    secret_cloud = orjson.dumps({**ALERTING, "log_id": "secret-cloud", "raw_details": secret_payload()})
    broken = orjson.dumps(secret_payload())[:-3]  # dead-lettered: its value is masked too
    big_broken = b'{"password": "LEAKpassword0012", "pad": "' + b"x" * 6000 + b'", ' + orjson.dumps(secret_payload())[1:-3]
    values = [orjson.dumps(ALERTING), *deep_records("daemon"), secret_cloud, broken, big_broken, orjson.dumps(ALERTING)]
    produce(kafka_bootstrap, topic, [(f"k{i}".encode(), value) for i, value in enumerate(values)])
    daemon = Daemon.configure(tmp_path, "hostile", kafka_bootstrap, group, [{"name": topic}], dead_letter_topic=dlq)
    daemon.start()
    try:
        wait_for(all_committed(kafka_bootstrap, group, topic), 90, "every hostile record committed")
        assert daemon.proc is not None and daemon.proc.poll() is None, daemon.log.read_text()[-3000:]
        dead = read_topic(kafka_bootstrap, dlq, 2)
    finally:
        assert daemon.stop() == 0, daemon.log.read_text()[-3000:]
    alerts = read_jsonl(daemon.alerts)
    alerted = {a["event"]["id"] for a in alerts}
    assert len(alerted) >= 6, "the good records and every deep one alert"
    assert len(read_jsonl(daemon.events)) == 8
    for record in dead:
        assert leaks(record.value) == [], record.value[:300]
        assert leaks(repr(record.headers)) == []
    for path in (daemon.alerts, daemon.events, daemon.log):
        assert leaks(path.read_bytes()) == [], path.name
