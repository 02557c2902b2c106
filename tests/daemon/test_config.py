"""Kafka settings -> client options, topic subscriptions, snapshot keys, dead-letter values, replay keys:
the parts that need no broker."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kafka.consumer.fetcher import ConsumerRecord

from temporal_siem.commands.to_kafka import RateLimiter, correlation_key, split_record
from temporal_siem.ingest.kafka.client import KafkaConfigError, connection_options
from temporal_siem.ingest.kafka.source import TopicFormats
from temporal_siem.kernel.config import KafkaConfig, load_settings, masked
from temporal_siem.kernel.records import DeadLetter, Origin, RawRecord
from temporal_siem.parsers.router import ParserRouter
from temporal_siem.stream.dead_letter import dead_letter_value
from tests.conftest import record_calls


def _pem(tmp_path: Path, name: str, body: str = "-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n") -> str:
    path = tmp_path / name
    path.write_text(body)
    return str(path)


def test_plaintext_is_the_default() -> None:
    options = connection_options(KafkaConfig())
    assert options == {"bootstrap_servers": ["127.0.0.1:9092"], "client_id": "temporal-siem", "security_protocol": "PLAINTEXT",
                       "reconnect_backoff_max_ms": 5000}


def test_mutual_tls_maps_every_file(tmp_path: Path) -> None:
    cfg = KafkaConfig(security_protocol="SSL", ssl_cafile=_pem(tmp_path, "ca.pem"), ssl_certfile=_pem(tmp_path, "c.pem"),
                      ssl_keyfile=_pem(tmp_path, "k.pem"), ssl_password="s3cret", ssl_check_hostname=False)
    options = connection_options(cfg)
    assert options["security_protocol"] == "SSL"
    assert options["ssl_cafile"].endswith("ca.pem") and options["ssl_certfile"].endswith("c.pem") and options["ssl_keyfile"].endswith("k.pem")
    assert options["ssl_password"] == "s3cret" and options["ssl_check_hostname"] is False


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_mechanisms_over_tls(tmp_path: Path, mechanism: str) -> None:
    cfg = KafkaConfig(security_protocol="SASL_SSL", ssl_cafile=_pem(tmp_path, "ca.pem"), sasl_mechanism=mechanism,
                      sasl_username="svc", sasl_password="pw")
    options = connection_options(cfg)
    assert (options["sasl_mechanism"], options["sasl_plain_username"], options["sasl_plain_password"]) == (mechanism, "svc", "pw")
    assert options["ssl_cafile"].endswith("ca.pem")


@pytest.mark.parametrize(("settings", "message"), [
    ({"security_protocol": "SSL", "ssl_cafile": "/nonexistent/ca.pem"}, "no such file"),
    ({"security_protocol": "SASL_PLAINTEXT"}, "needs sasl_mechanism"),
    ({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_username": "u"}, "needs sasl_username and sasl_password"),
    ({"security_protocol": "PLAINTEXT", "sasl_mechanism": "PLAIN"}, "use SASL_PLAINTEXT or SASL_SSL"),
    ({"security_protocol": "PLAINTEXT", "ssl_cafile": "ca.pem"}, "use SSL or SASL_SSL"),
])
def test_impossible_security_settings_are_refused(settings: dict[str, object], message: str) -> None:
    with pytest.raises(KafkaConfigError, match=message):
        connection_options(KafkaConfig(**settings))  # type: ignore[arg-type]


def test_certificate_without_its_key_is_refused(tmp_path: Path) -> None:
    cfg = KafkaConfig(security_protocol="SSL", ssl_certfile=_pem(tmp_path, "c.pem"))
    with pytest.raises(KafkaConfigError, match="both ssl_certfile and ssl_keyfile"):
        connection_options(cfg)
    combined = _pem(tmp_path, "both.pem", "-----BEGIN PRIVATE KEY-----\nMII\n-----END PRIVATE KEY-----\n-----BEGIN CERTIFICATE-----\nMII\n")
    assert connection_options(KafkaConfig(security_protocol="SSL", ssl_certfile=combined))["ssl_certfile"] == combined


def test_secrets_are_masked_and_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "c.yml"
    config.write_text("ingest:\n  kafka:\n    security_protocol: SASL_PLAINTEXT\n    sasl_mechanism: SCRAM-SHA-512\n    sasl_username: svc\n")
    monkeypatch.setenv("TSIEM_INGEST__KAFKA__SASL_PASSWORD", "from-env")
    settings = load_settings(config)
    assert connection_options(settings.ingest.kafka)["sasl_plain_password"] == "from-env"
    assert "from-env" not in str(masked(settings))


def test_topic_names_and_patterns_with_format_hints() -> None:
    formats = TopicFormats(KafkaConfig(topics=[{"name": "okta.logs", "format": "okta"}, {"pattern": r"audit-.*", "format": "temporal_cloud_audit"},
                                               {"pattern": r".*"}]))
    assert formats.hint("okta.logs") == "okta"
    assert formats.hint("oktaXlogs") is None, "a name is literal, not a regex"
    assert formats.hint("audit-eu") == "temporal_cloud_audit"
    assert formats.hint("anything") is None
    assert formats.has_patterns
    import re

    regex = re.compile(formats.subscription_pattern())
    assert regex.match("okta.logs") and regex.match("audit-1")


@pytest.mark.parametrize(("topics", "message"), [
    ([], "is empty"),
    ([{"name": "a", "pattern": "b"}], "exactly one of name or pattern"),
    ([{"pattern": "("}], "pattern"),
])
def test_bad_topic_lists_are_refused(topics: list[dict[str, str]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TopicFormats(KafkaConfig(topics=topics))  # type: ignore[arg-type]


def test_dead_letter_value_is_the_bad_bytes() -> None:
    origin = Origin("kafka", topic="t", partition=0, offset=5)
    text = DeadLetter("invalid JSON", "decode", origin, b'{"a": ').as_dict()
    assert dead_letter_value(text, None) == b'{"a": '
    binary = DeadLetter("binary data", "decode", origin, b"\x00\xff\x01").as_dict()
    assert dead_letter_value(binary, None) == b"\x00\xff\x01"
    big_bytes = b"x" * 10_000
    big = DeadLetter("record too large", "decode", origin, big_bytes).as_dict()
    record = ConsumerRecord("t", 0, 0, 5, 0, 0, b"key", big_bytes, [], None, 3, len(big_bytes), 0)
    assert dead_letter_value(big, record) == big_bytes, "past the 4 KB excerpt: the full original record"
    assert b'"record too large"' in dead_letter_value(big, None), "no original at hand: the dead-letter document"


def test_replay_splits_envelopes_and_keys_by_user() -> None:
    envelope = RawRecord(b'{"Records": [{"a": 1}, {"b": 2}]}', Origin("f"))
    assert list(split_record(envelope)) == [b'{"a":1}', b'{"b":2}']
    line = RawRecord(b'{"uuid": "1"}', Origin("f"))
    assert list(split_record(line)) == [b'{"uuid": "1"}'], "single records go as they are, byte for byte"
    assert list(split_record(RawRecord(b"\xff\xfe", Origin("f")))) == [b"\xff\xfe"], "undecodable records still go"
    okta = (Path(__file__).resolve().parents[2] / "samples" / "okta" / "sessions_and_mfa.jsonl").read_bytes().splitlines()[0]
    router = ParserRouter()
    assert correlation_key(router, okta) == b"frank", "user.name first: what the correlation rules group by"
    assert correlation_key(router, b"garbage") is None


def test_rate_limiter_paces() -> None:
    limiter = RateLimiter(200)
    started = time.monotonic()
    for _ in range(300):
        limiter.wait()
    assert 0.4 < time.monotonic() - started < 2.5


def test_librdkafka_names_for_the_confluent_client(tmp_path: Path) -> None:
    from temporal_siem.ingest.kafka.client import librdkafka_options

    cfg = KafkaConfig(bootstrap_servers=["a:9093", "b:9093"], security_protocol="SASL_SSL", ssl_cafile=_pem(tmp_path, "ca.pem"),
                      ssl_certfile=_pem(tmp_path, "c.pem"), ssl_keyfile=_pem(tmp_path, "k.pem"), ssl_check_hostname=False,
                      sasl_mechanism="SCRAM-SHA-512", sasl_username="svc", sasl_password="pw")
    options = librdkafka_options(cfg)
    assert options["bootstrap.servers"] == "a:9093,b:9093"
    assert options["security.protocol"] == "sasl_ssl"
    assert options["ssl.ca.location"].endswith("ca.pem") and options["ssl.certificate.location"].endswith("c.pem")
    assert options["ssl.key.location"].endswith("k.pem") and options["ssl.endpoint.identification.algorithm"] == "none"
    assert (options["sasl.mechanism"], options["sasl.username"], options["sasl.password"]) == ("SCRAM-SHA-512", "svc", "pw")
    with pytest.raises(KafkaConfigError):
        librdkafka_options(KafkaConfig(security_protocol="SASL_SSL"))


@pytest.mark.parametrize(("config", "message"), [
    ("ingest: {kafka: {topics: []}}", "ingest.kafka.topics is empty"),
    ("ingest: {kafka: {topics: [{name: t, format: no_such_parser}]}}", "unknown format 'no_such_parser'"),
    ("ingest: {kafka: {topics: [{name: t}], security_protocol: SSL, ssl_cafile: /nonexistent/ca.pem}}", "ssl_cafile: no such file"),
    ("ingest: {kafka: {topics: [{name: t}]}}\nsinks: {alerts: [{type: no_such_sink}]}", "unknown sink type"),
    ("ingest: {kafka: {topics: [{name: t}], no_such_key: 1}}", "no_such_key"),
    # The per-partition snapshot topic is gone (state lives in the stream engine): its keys are refused, not ignored.
    ("ingest: {kafka: {topics: [{name: t}], state_topic: s}}", "state_topic"),
    ("ingest: {kafka: {topics: [{name: t}], stream: {processing_guarantee: twice}}}", "processing_guarantee"),
    ("ingest: {kafka: {topics: [{name: t}], stream: {scope_partitions: 0}}}", "scope_partitions"),
])
def test_run_refuses_bad_configs_with_exit_2(tmp_path: Path, config: str, message: str) -> None:
    import subprocess
    import sys

    path = tmp_path / "daemon.yml"
    path.write_text(config)
    result = subprocess.run([sys.executable, "-m", "temporal_siem", "run", "--config", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def test_run_exits_1_when_the_metrics_port_is_taken(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        path = tmp_path / "daemon.yml"
        path.write_text(f"ingest: {{kafka: {{topics: [{{name: t}}]}}}}\nmetrics: {{port: {taken.getsockname()[1]}}}\n")
        result = subprocess.run([sys.executable, "-m", "temporal_siem", "run", "--config", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "cannot serve metrics" in result.stderr


def test_ticks_rarer_than_half_the_silence_are_refused() -> None:
    """Scope partitions let a silent flag lapse after source_idle_seconds and members repeat it at their ticks."""
    from pydantic import ValidationError

    from temporal_siem.kernel.config import StreamConfig

    assert StreamConfig(tick_interval_seconds=15, source_idle_seconds=30).tick_interval_seconds == 15
    with pytest.raises(ValidationError, match=r"at most half of stream\.source_idle_seconds"):
        StreamConfig(tick_interval_seconds=20, source_idle_seconds=30)


def test_a_dead_letter_message_is_redacted_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dead-letter document's excerpt is already masked (``DeadLetter.as_dict``); masking it again for the topic
    message was a second full pass over every late event's JSON (14 % of the stateful daemon's CPU on the mixed
    bench corpus, whose unordered records make many late events). Only bytes that are not the masked excerpt (the
    full original record) are masked for the message; secrets stay masked either way."""
    from temporal_siem.stream import dead_letter

    calls = record_calls(monkeypatch, "redact_raw", dead_letter)
    origin = Origin("kafka", topic="t", partition=0, offset=5)
    late = DeadLetter("scope_late_event", "correlation", origin, b'{"user": "bob", "password": "LEAKlate0301"}').as_dict()
    message = dead_letter.topic_message(late, None)
    assert calls == [] and message["value"] == late["raw"].encode() and b"LEAKlate0301" not in message["value"]
    big_bytes = b'{"password": "LEAKbig0302", "pad": "' + b"x" * 10_000 + b'"}'
    big = DeadLetter("record too large", "decode", origin, big_bytes).as_dict()
    record = ConsumerRecord("t", 0, 0, 5, 0, 0, b"key", big_bytes, [], None, 3, len(big_bytes), 0)
    message = dead_letter.topic_message(big, record)
    assert len(calls) == 1 and b"LEAKbig0302" not in message["value"] and len(message["value"]) > 10_000
