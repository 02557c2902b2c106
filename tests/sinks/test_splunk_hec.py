"""Splunk HEC sink against an in-test server that enforces the HEC protocol (tests/sinks/hec_server.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from temporal_siem.kernel.flatten import unflatten
from temporal_siem.sinks.base import SinkError
from temporal_siem.sinks.splunk_hec import SplunkHecSink, epoch_seconds
from tests.sinks.certs import make_certificate
from tests.sinks.hec_server import HecServer, parse_events

TOKEN = "00000000-0000-4000-8000-000000000001"


def _alerts(n: int, rule: str = "rule-1") -> list[dict]:
    return [{"@timestamp": f"2024-05-01T10:00:{i % 60:02d}.123456789Z", "alert.id": f"a{i:04d}", "rule.id": rule,
             "rule.name": "Test rule", "alert.level": "high", "user.name": f"user{i}", "tags": ["attack.t1078"],
             "alert.group_by": {"user.name": f"user{i}"}} for i in range(n)]


def test_batches_arrive_once_in_splunk_format() -> None:
    with HecServer(TOKEN) as server:
        sink = SplunkHecSink(url=server.url, token=TOKEN, index="security", host="siem-1", max_batch_bytes=2000)
        docs = _alerts(40)
        sink.write(docs)
        sink.close()
        events = server.state.events
        assert server.state.protocol_errors == []
        assert server.state.requests > 1, "max_batch_bytes should split the batch into several requests"
        assert [e["event"]["alert"]["id"] for e in events] == [d["alert.id"] for d in docs]
        first = events[0]
        assert first["event"] == unflatten(docs[0])
        assert first["time"] == pytest.approx(1714557600.123)
        assert (first["host"], first["source"], first["sourcetype"], first["index"]) == (
            "siem-1", "temporal-siem", "temporal-siem:alert", "security")
        assert first["fields"] == {"rule.id": "rule-1", "alert.level": "high"}


def test_bad_token_holds_the_batch_with_a_clear_error() -> None:
    with HecServer(TOKEN) as server:
        sink = SplunkHecSink(url=server.url, token="wrong-token", max_retries=0)
        with pytest.raises(SinkError, match=r"HTTP 403 code 4: Invalid token"):
            sink.write(_alerts(1))
        assert server.state.events == []


def test_server_busy_is_retried_until_accepted() -> None:
    with HecServer(TOKEN) as server:
        server.state.busy_responses = 3
        sink = SplunkHecSink(url=server.url, token=TOKEN, initial_backoff=0.01, max_backoff=0.02)
        sink.write(_alerts(5))
        assert len(server.state.events) == 5
        assert sink.stats["busy"] == 3


def test_busy_beyond_retries_raises_then_resumes_without_duplicates() -> None:
    with HecServer(TOKEN) as server:
        sink = SplunkHecSink(url=server.url, token=TOKEN, max_batch_bytes=600, max_retries=1, initial_backoff=0.01)
        docs = _alerts(6)
        server.state.busy_responses = 0
        sink.write(docs[:2])  # a first, complete batch
        server.state.busy_responses = 2
        with pytest.raises(SinkError, match="Server is busy"):
            sink.write(docs[2:])
        sink.write(docs[2:])  # the pipeline's retry of the same batch
        ids = [e["event"]["alert"]["id"] for e in server.state.events]
        assert sorted(ids) == sorted(d["alert.id"] for d in docs)
        assert len(ids) == len(set(ids))


def test_indexer_acknowledgement_waits_for_acks() -> None:
    with HecServer(TOKEN, ack=True) as server:
        server.state.withhold_acks = 2
        sink = SplunkHecSink(url=server.url, token=TOKEN, ack=True, ack_poll_interval=0.01, max_batch_bytes=1500)
        sink.write(_alerts(10))
        assert server.state.protocol_errors == []
        assert len(server.state.events) == 10
        assert server.state.pending == {}


def test_unacknowledged_batch_is_sent_again() -> None:
    with HecServer(TOKEN, ack=True) as server:
        server.state.lose_acks = {0}
        sink = SplunkHecSink(url=server.url, token=TOKEN, ack=True, ack_timeout=0.2, ack_poll_interval=0.02, initial_backoff=0.01)
        docs = _alerts(3)
        sink.write(docs)
        ids = [e["event"]["alert"]["id"] for e in server.state.events]
        assert ids == [d["alert.id"] for d in docs]
        assert sink.stats["ack_resends"] == 1


def test_ack_server_rejects_missing_channel() -> None:
    """The stand-in is strict: without the channel header an ack-enabled HEC answers 400 code 10."""
    import http.client

    with HecServer(TOKEN, ack=True) as server:
        host, port = server.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port))
        connection.request("POST", "/services/collector/event", body=b'{"event":"x"}', headers={"Authorization": f"Splunk {TOKEN}"})
        response = connection.getresponse()
        assert (response.status, response.read()) == (400, b'{"text": "Data channel is missing", "code": 10}')


def test_invalid_body_is_reported_like_splunk() -> None:
    events, error = parse_events('{"event": {"a": 1}}{"event": ')
    assert len(events) == 1 and error == (400, 6, "Invalid data format")
    assert parse_events('{"time": 1}')[1] == (400, 12, "Event field is required")
    assert parse_events('{"event": ""}')[1] == (400, 13, "Event field cannot be blank")


def test_hostile_documents_still_encode_as_valid_hec() -> None:
    with HecServer(TOKEN) as server:
        sink = SplunkHecSink(url=server.url, token=TOKEN)
        docs = [{"@timestamp": "not a time", "alert.id": "x\u0000y", "message": "\ud800 broken surrogate? no: é}{\"event\":1}"},
                {"@timestamp": "2024-01-01T00:00:00+05:30", "alert.id": "z", "bytes": b"\xff"}]
        sink.write(docs)
        assert server.state.protocol_errors == []
        assert [e["event"]["alert"]["id"] for e in server.state.events] == ["x\u0000y", "z"]
        assert "time" not in server.state.events[0]
        assert server.state.events[1]["time"] == 1704047400.0


def test_epoch_seconds() -> None:
    assert epoch_seconds("2024-05-01T10:00:00Z") == 1714557600.0
    assert epoch_seconds("2024-05-01T10:00:00.999999999Z") == pytest.approx(1714557601.0, abs=0.001)
    assert epoch_seconds("2024-05-01T10:00:00") is None  # no zone: let Splunk stamp it
    assert epoch_seconds(17) is None


def test_an_oversized_alert_is_dead_lettered_and_the_rest_delivered() -> None:
    with HecServer(TOKEN) as server:
        server.state.max_content_length = 4000
        sink = SplunkHecSink(url=server.url, token=TOKEN)
        docs = _alerts(6)
        docs[3]["message"] = "x" * 5000
        sink.write(docs)
        rejected = sink.take_rejected()
        assert [d["alert.id"] for d, _ in rejected] == ["a0003"] and "413" in rejected[0][1]
        assert sorted(e["event"]["alert"]["id"] for e in server.state.events) == ["a0000", "a0001", "a0002", "a0004", "a0005"]


def test_incorrect_index_is_a_configuration_error_not_dead_letters() -> None:
    with HecServer(TOKEN) as server:
        server.state.indexes = {"security"}
        sink = SplunkHecSink(url=server.url, token=TOKEN, index="secrity", max_retries=0)
        with pytest.raises(SinkError, match="code 7: Incorrect index"):
            sink.write(_alerts(3))
        assert sink.take_rejected() == [] and server.state.events == []


def test_https_with_ca_file_and_verification(tmp_path: Path) -> None:
    ca, cert, key, _ = make_certificate(tmp_path)
    with HecServer(TOKEN, tls=(cert, key)) as server:
        sink = SplunkHecSink(url=server.url, token=TOKEN, ca_file=ca)
        sink.write(_alerts(2))
        sink.close()
        assert len(server.state.events) == 2
        untrusting = SplunkHecSink(url=server.url, token=TOKEN, max_retries=0)  # system CAs only
        with pytest.raises(SinkError, match="CERTIFICATE_VERIFY_FAILED"):
            untrusting.write(_alerts(1))
        assert len(server.state.events) == 2
