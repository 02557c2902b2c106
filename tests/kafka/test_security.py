"""The daemon over the broker's mutual-TLS listener, records produced over SASL (PLAIN, SCRAM), and the
refusals that prove the listeners really check: no client certificate, a wrong password.

scripts/services/kafka.sh generates the CA, certificates and SASL password into its state folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kafka import KafkaProducer
from kafka.errors import KafkaError
from temporal_siem.ingest.kafka.client import connection_options
from temporal_siem.kernel.config import KafkaConfig

from tests.kafka.helpers import ROOT, SAML_RULE, Daemon, alert_ids, all_committed, create_topic, okta_workload, read_jsonl, unique, wait_for

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
            "ssl": f"127.0.0.1:{port + 2}", "sasl": f"127.0.0.1:{port + 3}"}


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
