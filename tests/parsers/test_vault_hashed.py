"""Vault HMACs string values in audit request data (the CLI sends booleans as strings): issue 14 class 5.

Kept apart from test_vault_audit.py on purpose: the hashed-value marker is one small, separate change.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from temporal_siem.kernel.records import Origin, RawRecord
from temporal_siem.parsers.router import ParserRouter

HMAC = "hmac-sha256:6b4c0e0f1d2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4"


def config_write(data: dict[str, Any]) -> dict[str, Any]:
    return {"time": "2025-03-04T10:00:00.123456Z", "type": "request",
            "auth": {"display_name": "userpass-mallory", "policies": ["default", "transit-admin"], "token_type": "service"},
            "request": {"id": "7c1d0f2e-9a8b-4c3d-8e7f-6a5b4c3d2e1f", "operation": "update", "mount_type": "transit",
                        "path": "transit/keys/temporal-codec/config", "data": data, "remote_address": "203.0.113.9"}}


def parse(record: dict[str, Any]) -> dict[str, Any]:
    result = ParserRouter().parse(RawRecord(orjson.dumps(record), Origin("vault.log", line=1)))
    assert not result.dead
    (event,) = result.events
    return event


def test_hashed_values_are_marked_by_key():
    event = parse(config_write({"deletion_allowed": HMAC, "min_decryption_version": 1, "exportable": HMAC}))
    assert sorted(event["hashicorp_vault.audit.request.hashed_keys"]) == ["deletion_allowed", "exportable"]
    assert "temporal.key.deletion_allowed" not in event  # the value is unknown: no guessed boolean


def test_clear_values_are_not_marked():
    event = parse(config_write({"deletion_allowed": True}))
    assert "hashicorp_vault.audit.request.hashed_keys" not in event and event["temporal.key.deletion_allowed"] is True


# No deadline: an example may be the process's first Vault parse (lazy caches, a string scanner built on first use),
# which took over hypothesis' 200 ms once on a loaded machine.
@settings(deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=12).filter(lambda k: "." not in k),
                       st.one_of(st.just(HMAC), st.booleans(), st.integers(min_value=-(2**31), max_value=2**31), st.text(max_size=8)), max_size=6))
def test_property_marked_keys_are_exactly_the_hashed_ones(data):
    event = parse(config_write(data))
    expected = sorted(k for k, v in data.items() if isinstance(v, str) and v.startswith("hmac-sha256:"))
    assert sorted(event.get("hashicorp_vault.audit.request.hashed_keys", [])) == expected


# vault_flatten is flatten(vault_redact(record)) in one pass: checked against the two steps as oracle, keys in order.
_KEYS = st.sampled_from(["token", "client_token", "accessor", "wrapped_accessor", "password", "secret_id", "data", "path",
                         "policies", "token_policies", "metadata", "a.b", "a", "b", "keys", "", "x" * 70, "private_key_pem"])
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                     st.sampled_from(["", "hmac-sha256:abc", "Bearer abcdefghijklmnop", "token=s.abcdefghijklmnopqrstuvwx",
                                      "plain text", "-----BEGIN RSA PRIVATE KEY-----\nMII\n-----END RSA PRIVATE KEY-----"]),
                     st.text(max_size=12))
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(_KEYS, inner, max_size=5)), max_leaves=25)


def _two_steps(record: dict[str, Any]) -> list[tuple[str, Any]]:
    from temporal_siem.kernel.flatten import flatten
    from temporal_siem.parsers.vault_audit import vault_redact

    return list(flatten(vault_redact(record), "p.").items())


def _one_pass(record: dict[str, Any]) -> list[tuple[str, Any]]:
    from temporal_siem.parsers.vault_audit import vault_flatten

    out: dict[str, Any] = {}
    vault_flatten(record, "p.", out)
    return list(out.items())


@settings(deadline=None)
@given(st.dictionaries(_KEYS, _VALUES, max_size=6))
def test_property_vault_flatten_is_redact_then_flatten(record: dict[str, Any]) -> None:
    assert _one_pass(record) == _two_steps(record)


def test_vault_flatten_deep_and_odd_records_match_the_two_steps() -> None:
    deep: dict[Any, Any] = {"leaf": "token=s.abcdefghijklmnopqrstuvwx"}
    for level in range(40):
        deep = {f"k{level}": deep, "client_token": "hvs.x" if level % 2 else "hmac-sha256:kept", "n": [[{"password": "p"}]]}
    odd: dict[Any, Any] = {1: {"token": "t"}, "list": [{"accessor": "a", "x": 1}, "s", {"x": 2}], "empty": {}, "none": None,
                           "a.b": 1, "a": {"b": 2}}
    for record in (deep, odd):
        assert _one_pass(record) == _two_steps(record)


def test_the_sensitive_key_memo_stays_bounded_and_right() -> None:
    from temporal_siem.parsers.vault_audit import _SENSITIVE, vault_redact

    record = {f"field_{n}": "v" for n in range(10_000)} | {"x" * 80 + "_token": "t", "client_token_accessor": "a"}
    redacted = vault_redact(record)
    assert len(_SENSITIVE) <= 8192
    assert redacted["field_9999"] == "v" and redacted["x" * 80 + "_token"] == "[REDACTED]"
    assert redacted["client_token_accessor"] == "[REDACTED]"
