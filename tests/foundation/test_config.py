from __future__ import annotations

import pytest
from pydantic import ValidationError
from temporal_siem.kernel.config import MASK, load_settings, masked


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
    from temporal_siem.kernel.config import _mask

    shown = _mask({"hosts": [value], "auth_header": value, "url": value})
    assert secret not in repr(shown), shown
    assert _mask({"hosts": ["http://127.0.0.1:9200"]}) == {"hosts": ["http://127.0.0.1:9200"]}
