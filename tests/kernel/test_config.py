from __future__ import annotations

import re
import subprocess
import sys

import pytest
from pydantic import SecretStr, ValidationError

from temporal_siem.kernel.config import MASK, CorrelationConfig, SinkConfig, SinksConfig, load_settings, masked
from temporal_siem.settings import ConfigError
from temporal_siem.settings import load_settings as load_app_settings
from tests.conftest import ROOT


def test_yaml_then_environment_precedence(tmp_path, monkeypatch):
    cfg = tmp_path / "c.yml"
    cfg.write_text("ingest:\n  kafka:\n    group_id: from-yaml\n    sasl_password: hunter2\nparsing:\n  format: okta\n")
    monkeypatch.setenv("TSIEM_INGEST__KAFKA__GROUP_ID", "from-env")
    settings = load_settings(cfg)
    assert settings.ingest.kafka.group_id == "from-env"
    assert settings.parsing.format == "okta"
    assert settings.ingest.kafka.sasl_password is not None
    assert settings.ingest.kafka.sasl_password.get_secret_value() == "hunter2"


def test_show_masks_every_secret(tmp_path):
    cfg = tmp_path / "c.yml"
    cfg.write_text(
        "ingest:\n  kafka:\n    sasl_password: hunter2\n"
        "sinks:\n  alerts:\n    - type: elasticsearch\n      api_key: abc123\n      password: pw\n      hosts: [http://127.0.0.1:9200]\n"
    )
    shown = masked(load_settings(cfg))
    assert shown["ingest"]["kafka"]["sasl_password"] == MASK
    sink = shown["sinks"]["alerts"][0]
    assert sink["api_key"] == MASK and sink["password"] == MASK
    assert sink["hosts"] == ["http://127.0.0.1:9200"]
    assert "hunter2" not in repr(shown) and "abc123" not in repr(shown)


def test_unknown_key_is_an_error(tmp_path):
    cfg = tmp_path / "c.yml"
    cfg.write_text("ingest:\n  kafak: {}\n")
    with pytest.raises(ValidationError):
        load_settings(cfg)


@pytest.mark.parametrize(("value", "secret"), [
    ("https://user:pw0secret@es.example.com:9200", "pw0secret"),
    ("https://hec.example.com/services/collector?token=tok0secret&x=1", "tok0secret"),
    ("alice:kafka0secret@broker.example.com:9095", "kafka0secret"),
    ("SASL_SSL://alice:kafka1secret@broker.example.com:9095", "kafka1secret"),
    ("Bearer abcdefgh0secret", "abcdefgh0secret"),
    ("Splunk 9f8e7d6c-0000-1111-2222-secretsecret", "9f8e7d6c-0000-1111-2222-secretsecret"),
])
def test_show_masks_credentials_in_values_of_any_key(value, secret):
    """Issue 15 item 9: URL credentials and secret-looking values under keys not named like secrets."""
    from temporal_siem.kernel.config import _plain as _mask  # masked() on plain data

    shown = _mask({"hosts": [value], "auth_header": value, "url": value})
    assert secret not in repr(shown), shown
    assert _mask({"hosts": ["http://127.0.0.1:9200"]}) == {"hosts": ["http://127.0.0.1:9200"]}


@pytest.mark.parametrize(("text", "path"), [
    ("sinks:\n  alerts:\n    - type: elasticsearch\n      bulk_sizee: 3\n", "sinks.alerts[0].bulk_sizee"),
    ("sinks:\n  events:\n    - {type: file}\n    - {type: syslog, protocol: tcp, hostnme: x}\n", "sinks.events[1].hostnme"),
    ("sinks:\n  dead_letter: {type: kafka, topik: t}\n", "sinks.dead_letter.topik"),
    ("detection:\n  correlation:\n    allowed_latenes_seconds: 5\n", "detection.correlation.allowed_latenes_seconds"),
    ("detection:\n  rulez: []\n", "detection.rulez"),
    ("ingest:\n  kafka:\n    topics: [{name: t, formt: okta}]\n", "ingest.kafka.topics[0].formt"),
])
def test_an_unknown_key_at_any_depth_is_refused_with_its_path(tmp_path, text, path):
    cfg = tmp_path / "c.yml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(f"{path}: unknown key")):
        load_app_settings(cfg)


@pytest.mark.parametrize("command", [["config", "show"], ["run"], ["replay", "samples/okta"]])
def test_commands_refuse_an_unknown_sink_option_with_exit_2(tmp_path, command):
    cfg = tmp_path / "c.yml"
    cfg.write_text("ingest: {kafka: {topics: [{name: t}]}}\nsinks:\n  alerts:\n    - {type: elasticsearch, hosts: [http://127.0.0.1:1], bulk_sizee: 3}\n")
    result = subprocess.run([sys.executable, "-m", "temporal_siem", *command, "--config", str(cfg)],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 2, result.stderr
    assert "sinks.alerts[0].bulk_sizee: unknown key" in result.stderr


def test_an_unknown_sink_type_names_the_known_ones(tmp_path):
    cfg = tmp_path / "c.yml"
    cfg.write_text("sinks:\n  alerts:\n    - {type: elastic}\n")
    with pytest.raises(ConfigError, match=r"sinks.alerts\[0\]: unknown sink type 'elastic'; known: elasticsearch, file"):
        load_app_settings(cfg)


def test_sink_secrets_are_typed_and_masked_by_type(tmp_path, monkeypatch):
    cfg = tmp_path / "c.yml"
    cfg.write_text("sinks:\n  alerts:\n    - {type: kafka, topic: t, sasl_password: pw-kafka, ssl_password: pw-key}\n"
                   "    - {type: splunk_hec, token: tok-hec, url: 'http://127.0.0.1:8088'}\n")
    settings = load_app_settings(cfg)
    kafka, _ = settings.sinks.alerts
    assert isinstance(kafka.sasl_password, SecretStr) and kafka.sasl_password.get_secret_value() == "pw-kafka"
    shown = masked(settings)["sinks"]["alerts"]
    assert shown[0] == {"type": "kafka", "required": True, "topic": "t", "sasl_password": MASK, "ssl_password": MASK}
    assert shown[1]["token"] == MASK and "tok-hec" not in repr(shown) and "pw-" not in repr(shown)


def test_secret_named_keys_in_free_form_maps_stay_masked():
    envelope = SinkConfig.model_validate({"type": "custom", "headers": {"Authorization": "Bearer abc", "X-Id": "1"}, "token": "t"})
    shown = masked(SinksConfig(alerts=[envelope]))["alerts"][0]
    assert shown == {"type": "custom", "required": True, "headers": {"Authorization": MASK, "X-Id": "1"}, "token": MASK}


def test_config_show_prints_the_options_as_written_in_their_order(tmp_path):
    cfg = tmp_path / "c.yml"
    cfg.write_text("sinks:\n  alerts:\n    - {required: false, type: syslog, port: 6514, host: h, protocol: tls}\n")
    assert masked(load_app_settings(cfg))["sinks"]["alerts"] == [
        {"type": "syslog", "required": False, "port": 6514, "host": "h", "protocol": "tls"}]


def test_correlation_defaults_are_written_once():
    from temporal_siem.detections.correlation.engine import CorrelationEngine

    engine = CorrelationEngine([], {})
    defaults = CorrelationConfig()
    assert engine.max_groups == defaults.max_groups and engine.max_rejected == defaults.max_rejected_events
    assert engine.allowed_lateness_us == int(defaults.allowed_lateness_seconds * 1_000_000)
    with pytest.raises(ValidationError, match="allowed_latenes_seconds"):
        CorrelationEngine([], {"allowed_latenes_seconds": 1})
