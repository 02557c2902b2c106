"""Syslog sink against the private rsyslog (TCP octet counting, TLS, UDP): RFC 5424 fields and CEF checked
in what rsyslog wrote, and as rsyslog itself parsed them."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from temporal_siem.kernel.flatten import unflatten
from temporal_siem.sinks.base import SinkError
from temporal_siem.sinks.syslog import SyslogSink, cef_record, rfc5424_timestamp
from tests.conftest import ROOT

RSYSLOG_DIR = ROOT / ".services" / "rsyslog"
CA_FILE = str(RSYSLOG_DIR / "tls" / "ca.pem")

# RFC 5424 section 6 ABNF, strictly: header fields PRINTUSASCII, SD-PARAM values with \" \\ \] escapes.
RFC5424 = re.compile(
    r'^<(?P<pri>\d{1,3})>1 (?P<timestamp>-|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)) '
    r'(?P<hostname>[!-~]{1,255}) (?P<app>[!-~]{1,48}) (?P<procid>[!-~]{1,128}) (?P<msgid>[!-~]{1,32}) '
    r'(?P<sd>-|(?:\[[^= \]"]{1,32}(?: [^= \]"]{1,32}="(?:[^"\\\]]|\\["\\\]])*")*\])+)(?: (?P<msg>.*))?$', re.S)


def _wait_for(path: Path, marker: str, count: int, timeout: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while time.monotonic() < deadline:
        if path.exists():
            lines = [line for line in path.read_text("utf-8", "replace").splitlines() if marker in line]
            if len(lines) >= count:
                return lines
        time.sleep(0.1)
    return lines


def _sd_params(sd: str) -> dict[str, str]:
    return {m.group(1): re.sub(r'\\(["\\\]])', r"\1", m.group(2)) for m in re.finditer(r' ([^= \]"]+)="((?:[^"\\\]]|\\.)*)"', sd)}


def parse_cef(text: str) -> tuple[list[str], dict[str, str]]:
    """Header fields (unescaping \\| and \\\\) and the extension (unescaping \\= \\\\ \\n)."""
    header: list[str] = []
    current, index = "", 0
    while len(header) < 7:
        ch = text[index]
        if ch == "\\" and text[index + 1] in "|\\":
            current += text[index + 1]
            index += 2
            continue
        if ch == "|":
            header.append(current)
            current = ""
        else:
            current += ch
        index += 1
    extension_text = text[index:]
    extensions: dict[str, str] = {}
    for match in re.finditer(r"(\w+)=((?:[^=\\]|\\.)*?)(?= \w+=|$)", extension_text):
        value = re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), match.group(2), flags=re.S)
        extensions[match.group(1)] = value
    return header, extensions


@pytest.mark.services
def test_tcp_octet_counted_alerts_arrive_once_with_rfc5424_fields(rsyslog_ports: dict[str, int],
                                                                  replay_alerts: list[dict[str, Any]]) -> None:
    host = f"tcp-{uuid.uuid4().hex[:8]}"
    sink = SyslogSink(host="127.0.0.1", port=rsyslog_ports["tcp"], protocol="tcp", hostname=host, facility="authpriv")
    sink.open()
    sink.write(replay_alerts)
    sink.close()
    lines = _wait_for(RSYSLOG_DIR / "messages.log", f" {host} ", len(replay_alerts))
    assert len(lines) == len(replay_alerts)
    parsed_by_rsyslog = [json.loads(line) for line in _wait_for(RSYSLOG_DIR / "parsed.jsonl", f'"hostname":"{host}"', len(replay_alerts))]
    for line, doc, theirs in zip(lines, replay_alerts, parsed_by_rsyslog, strict=True):
        match = RFC5424.match(line)
        assert match, line[:300]
        severity = {"critical": 2, "high": 3, "medium": 4, "low": 5, "informational": 6}[doc["alert.level"]]
        assert int(match["pri"]) == 10 * 8 + severity
        assert match["timestamp"] == rfc5424_timestamp(doc["@timestamp"])
        assert (match["app"], match["msgid"]) == ("temporal-siem", "alert")
        params = _sd_params(match["sd"])
        assert params["alert_id"] == doc["alert.id"] and params["rule_id"] == doc["rule.id"]
        assert params["rule_name"] == doc["rule.name"]
        assert json.loads(match["msg"]) == json.loads(json.dumps(unflatten(doc), default=str))
        # rsyslog's own RFC 5424 parser agrees field by field.
        assert theirs["input"] == "tcp" and int(theirs["severity"]) == severity and int(theirs["facility"]) == 10
        assert (theirs["app_name"], theirs["msgid"], theirs["procid"]) == ("temporal-siem", "alert", match["procid"])
        assert theirs["structured_data"] == match["sd"]
        assert json.loads(theirs["msg"])["alert"]["id"] == doc["alert.id"]


@pytest.mark.services
def test_tls_with_cef_payload(rsyslog_ports: dict[str, int], replay_alerts: list[dict[str, Any]]) -> None:
    host = f"tls-{uuid.uuid4().hex[:8]}"
    sink = SyslogSink(host="127.0.0.1", port=rsyslog_ports["tls"], protocol="tls", hostname=host, payload="cef", ca_file=CA_FILE)
    sink.write(replay_alerts[:20])
    sink.close()
    lines = _wait_for(RSYSLOG_DIR / "messages.log", f" {host} ", 20)
    assert len(lines) == 20
    for line, doc in zip(lines, replay_alerts, strict=False):
        match = RFC5424.match(line)
        assert match and match["msg"].startswith("CEF:0|"), line[:200]
        header, extensions = parse_cef(match["msg"])
        assert header[:4] == ["CEF:0", "temporal-siem", "temporal-siem", "0.1"]
        assert header[4] == doc["rule.id"] and header[5] == doc["rule.name"]
        assert header[6] == str({"critical": 10, "high": 8, "medium": 5, "low": 3, "informational": 1}[doc["alert.level"]])
        assert extensions["externalId"] == doc["alert.id"]
        assert int(extensions["rt"]) > 1_000_000_000_000
        if doc.get("user.name") and isinstance(doc["user.name"], str):
            assert extensions["suser"] == doc["user.name"]
    theirs = _wait_for(RSYSLOG_DIR / "parsed.jsonl", f'"hostname":"{host}"', 20)
    assert all(json.loads(line)["input"] == "tls" for line in theirs) and len(theirs) == 20


@pytest.mark.services
def test_tls_rejects_an_unknown_certificate_authority(rsyslog_ports: dict[str, int]) -> None:
    sink = SyslogSink(host="127.0.0.1", port=rsyslog_ports["tls"], protocol="tls", max_retries=0)  # system CAs only
    with pytest.raises(SinkError, match="CERTIFICATE_VERIFY_FAILED"):
        sink.write([{"alert.id": "x"}])


@pytest.mark.services
def test_udp_messages_arrive(rsyslog_ports: dict[str, int]) -> None:
    host = f"udp-{uuid.uuid4().hex[:8]}"
    docs = [{"@timestamp": "2024-01-01T00:00:00Z", "alert.id": f"u{i}", "alert.level": "low", "rule.id": "r"} for i in range(10)]
    sink = SyslogSink(host="127.0.0.1", port=rsyslog_ports["udp"], protocol="udp", hostname=host)
    sink.write(docs)
    sink.close()
    lines = _wait_for(RSYSLOG_DIR / "messages.log", f" {host} ", 10)
    assert sorted(_sd_params(RFC5424.match(line)["sd"])["alert_id"] for line in lines) == sorted(d["alert.id"] for d in docs)  # type: ignore[index]


def test_reconnects_when_the_server_closed_the_connection() -> None:
    """A syslog server that restarts leaves a half-open socket; the next batch must not vanish into it."""
    received: list[bytes] = []
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve(connections: int) -> None:
        for _ in range(connections):
            conn, _ = server.accept()
            data = b""
            conn.settimeout(2)
            try:
                while chunk := conn.recv(65536):
                    data += chunk
                    if connections == 2 and len(received) == 0 and data.count(b" temporal-siem ") >= 3:
                        break  # first connection: take the first batch, then hang up like a restart
            except TimeoutError:
                pass
            received.append(data)
            conn.close()

    thread = threading.Thread(target=serve, args=(2,), daemon=True)
    thread.start()
    sink = SyslogSink(host="127.0.0.1", port=port, protocol="tcp", hostname="h", initial_backoff=0.01)
    sink.write([{"alert.id": f"a{i}"} for i in range(3)])
    time.sleep(0.3)  # the server has closed its side by now
    sink.write([{"alert.id": f"b{i}"} for i in range(3)])
    sink.close()
    thread.join(5)
    server.close()
    everything = b"".join(received)
    for i in range(3):
        assert everything.count(f'alert_id="a{i}"'.encode()) == 1
        assert everything.count(f'alert_id="b{i}"'.encode()) == 1


def _frames(data: bytes) -> list[bytes]:
    frames = []
    while data:
        length, _, rest = data.partition(b" ")
        size = int(length)
        frames.append(rest[:size])
        data = rest[size:]
    return frames


flat_values = st.one_of(st.text(max_size=40), st.integers(), st.lists(st.text(max_size=10), max_size=3), st.none())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=st.fixed_dictionaries({"alert.id": st.text(max_size=40), "rule.id": st.text(max_size=40),
                                  "rule.name": st.text(max_size=60), "@timestamp": st.text(max_size=35),
                                  "alert.level": st.sampled_from(["low", "high", "bogus", ""])},
                                 optional={"message": st.text(), "user.name": flat_values, "event.dataset": flat_values}),
       payload=st.sampled_from(["json", "cef"]),
       hostname=st.text(max_size=20))
def test_any_document_formats_as_strict_rfc5424(doc: dict[str, Any], payload: str, hostname: str) -> None:
    sink = SyslogSink(hostname=hostname or None, payload=payload)
    message = sink.format(doc)
    text = message.decode("utf-8")
    match = RFC5424.match(text)
    assert match, text[:300]
    params = _sd_params(match["sd"])
    if doc["alert.id"]:
        assert params["alert_id"] == doc["alert.id"]
    assert _frames(sink.frame(message)) == [message]
    if payload == "cef":
        header, extensions = parse_cef(match["msg"])
        assert len(header) == 7
        if doc["alert.id"]:
            assert extensions["externalId"] == doc["alert.id"]
        assert "\n" not in match["msg"]


def test_timestamps_follow_rfc5424() -> None:
    assert rfc5424_timestamp("2024-05-01T10:00:00.123456789Z") == "2024-05-01T10:00:00.123456Z"
    assert rfc5424_timestamp("2024-05-01T12:00:00+02:00") == "2024-05-01T10:00:00Z"
    assert rfc5424_timestamp("2024-05-01 10:00:00") == "2024-05-01T10:00:00Z"
    assert rfc5424_timestamp("yesterday") == "-"
    assert rfc5424_timestamp(None) == "-"


def test_cef_escapes_header_and_extension() -> None:
    doc = {"rule.id": "a|b\\c", "rule.name": "x", "alert.level": "critical", "user.name": "eve=admin\nroot",
           "alert.id": "id"}
    header, extensions = parse_cef(cef_record(doc, "V", "P", "1"))
    assert header[4] == "a|b\\c" and header[6] == "10"
    assert extensions["suser"] == "eve=admin\nroot"
