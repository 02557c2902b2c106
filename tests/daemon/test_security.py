"""The daemon over the broker's mutual-TLS listener and over SASL_SSL (SCRAM-SHA-512 over TLS, as managed
Kafka services run it), records produced over SASL (PLAIN, SCRAM), and the refusals that prove the
listeners really check: no client certificate, a wrong password (the daemon: a clear error, exit 2,
nothing consumed).

scripts/services/kafka.sh generates the CA, certificates and SASL password into its state folder."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from kafka import KafkaProducer
from kafka.errors import KafkaError

from temporal_siem.ingest.kafka.client import connection_options
from temporal_siem.kernel.config import KafkaConfig
from tests.daemon.helpers import (
    ROOT,
    SAML_RULE,
    Daemon,
    alert_ids,
    all_committed,
    committed_offsets,
    create_topic,
    okta_workload,
    produce,
    read_jsonl,
    read_topic,
    unique,
    wait_for,
)

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def broker_files(kafka_bootstrap: str) -> dict[str, object]:
    home = Path(os.environ.get("TSIEM_KAFKA_HOME", ROOT / ".services" / "kafka"))
    tls, sasl = home / "tls", home / "sasl.env"
    if not (tls / "ca.pem").exists() or not sasl.exists():
        pytest.fail(f"the broker's generated TLS/SASL files are missing under {home} (started by scripts/services/kafka.sh?)", pytrace=False)
    env = dict(line.split("=", 1) for line in sasl.read_text().splitlines() if "=" in line)
    port = int(kafka_bootstrap.rsplit(":", 1)[1])
    return {"tls": tls, "user": env["KAFKA_SASL_USERNAME"], "password": env["KAFKA_SASL_PASSWORD"],
            "ssl": f"127.0.0.1:{port + 2}", "sasl": f"127.0.0.1:{port + 3}", "sasl_ssl": f"127.0.0.1:{port + 4}"}


def _sasl(files: dict[str, object], mechanism: str, password: str | None = None) -> dict[str, object]:
    return connection_options(KafkaConfig(bootstrap_servers=[str(files["sasl"])], security_protocol="SASL_PLAINTEXT",
                                          sasl_mechanism=mechanism, sasl_username=str(files["user"]),
                                          sasl_password=password or str(files["password"])))


def test_daemon_over_mutual_tls_with_records_produced_over_sasl(kafka_bootstrap: str, broker_files: dict[str, object], tmp_path: Path) -> None:
    topic, group = unique("tls"), unique("tls-group")
    create_topic(kafka_bootstrap, topic, 1)
    workload = okta_workload(30)
    for i, mechanism in enumerate(("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")):
        producer = KafkaProducer(**_sasl(broker_files, mechanism), acks="all")
        try:
            for key, value in workload[i * 10:(i + 1) * 10]:
                producer.send(topic, key=key, value=value).get(timeout=30)
        finally:
            producer.close()
    tls = broker_files["tls"]
    assert isinstance(tls, Path)
    daemon = Daemon.configure(tmp_path, "tls", str(broker_files["ssl"]), group, [{"name": topic}], dead_letter_topic=unique("tls-dlq"),
                              kafka={"security_protocol": "SSL", "ssl_cafile": str(tls / "ca.pem"), "ssl_certfile": str(tls / "client.crt"),
                                     "ssl_keyfile": str(tls / "client.key")})
    daemon.start()
    try:
        wait_for(all_committed(kafka_bootstrap, group, topic), 60, "offsets committed over TLS")
    finally:
        assert daemon.stop() == 0, daemon.tail()
    assert len(set(alert_ids(read_jsonl(daemon.alerts), SAML_RULE))) == 15


def test_listeners_refuse_bad_credentials(broker_files: dict[str, object]) -> None:
    tls = broker_files["tls"]
    assert isinstance(tls, Path)
    no_client_cert = connection_options(KafkaConfig(bootstrap_servers=[str(broker_files["ssl"])], security_protocol="SSL",
                                                    ssl_cafile=str(tls / "ca.pem")))
    with pytest.raises(KafkaError):
        KafkaProducer(**no_client_cert, bootstrap_timeout_ms=4000).close()
    with pytest.raises(KafkaError):
        KafkaProducer(**_sasl(broker_files, "SCRAM-SHA-256", password="wrong-password"), bootstrap_timeout_ms=4000).close()


def _sasl_ssl(files: dict[str, object], password: str | None = None) -> dict[str, object]:
    """The daemon's ingest.kafka security settings for the SASL_SSL listener."""
    tls = files["tls"]
    assert isinstance(tls, Path)
    return {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": str(files["user"]),
            "sasl_password": password or str(files["password"]), "ssl_cafile": str(tls / "ca.pem")}


def test_daemon_end_to_end_over_sasl_ssl(kafka_bootstrap: str, broker_files: dict[str, object], tmp_path: Path) -> None:
    """Records produced and consumed over SCRAM-SHA-512 + TLS; poison records to a dead-letter topic over
    the same listener; every offset committed; the alerts the rules raise, once each."""
    topic, group, dlq = unique("saslssl"), unique("saslssl-group"), unique("saslssl-dlq")
    create_topic(kafka_bootstrap, topic, 2)
    security = _sasl_ssl(broker_files)
    producer_options = connection_options(KafkaConfig(bootstrap_servers=[str(broker_files["sasl_ssl"])], **security))  # type: ignore[arg-type]
    producer_options.pop("bootstrap_servers")
    workload = okta_workload(40)
    produce(str(broker_files["sasl_ssl"]), topic, [*workload, (b"poison", b'{"uuid": "broken", ')], **producer_options)
    daemon = Daemon.configure(tmp_path, "saslssl", str(broker_files["sasl_ssl"]), group, [{"name": topic}],
                              dead_letter_topic=dlq, kafka=security)
    daemon.start()
    try:
        wait_for(all_committed(kafka_bootstrap, group, topic), 90, "offsets committed over SASL_SSL", detail=daemon.tail)
    finally:
        assert daemon.stop() == 0, daemon.tail()
    assert sorted(alert_ids(read_jsonl(daemon.alerts), SAML_RULE)) == sorted(set(alert_ids(read_jsonl(daemon.alerts), SAML_RULE)))
    assert len(alert_ids(read_jsonl(daemon.alerts), SAML_RULE)) == 20
    dead = read_topic(kafka_bootstrap, dlq, expected=1)
    assert len(dead) == 1 and dead[0].key == b"poison"
    assert str(broker_files["password"]) not in daemon.log.read_text(), "the password never reaches the log"


def test_wrong_password_over_sasl_ssl_exits_2_and_consumes_nothing(kafka_bootstrap: str, broker_files: dict[str, object],
                                                                   tmp_path: Path) -> None:
    topic, group = unique("saslssl-bad"), unique("saslssl-bad-group")
    create_topic(kafka_bootstrap, topic, 1)
    produce(kafka_bootstrap, topic, okta_workload(6))
    daemon = Daemon.configure(tmp_path, "saslssl-bad", str(broker_files["sasl_ssl"]), group, [{"name": topic}],
                              kafka=_sasl_ssl(broker_files, password="not-the-password"))
    started = time.monotonic()
    daemon.start()
    assert daemon.proc is not None
    try:
        code = daemon.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        daemon.ensure_stopped()
        raise AssertionError(f"a refused password should end the daemon, not wait for Kafka:\n{daemon.tail()}") from None
    assert code == 2, daemon.tail()
    assert time.monotonic() - started < 30
    errors = [line for line in daemon.log_lines() if line.get("level") == "error"]
    assert len(errors) == 1, daemon.tail()
    message = errors[0]["msg"]
    assert message.startswith("configuration error: the Kafka brokers refused the SASL credentials of ingest.kafka")
    assert "sasl_username 'tsiem'" in message or f"sasl_username {broker_files['user']!r}" in message
    assert "SCRAM-SHA-512 over SASL_SSL" in message and "invalid credentials" in message
    assert "not-the-password" not in daemon.log.read_text()
    # Nothing consumed: no offsets for the group, no alerts, no events.
    assert committed_offsets(kafka_bootstrap, group, topic) == {}
    assert read_jsonl(daemon.alerts, daemon.events) == []
