"""Dashboards query only what exists: Prometheus names from temporal_siem.kernel.metrics, alert fields from the contract.

Kibana / OpenSearch Dashboards cannot run on this machine (no registry ships them), so the import command is
exercised against a small HTTP server that checks the request the way the saved-objects import API does.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import threading
from collections.abc import Iterator
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.metrics import MetricWrapperBase

from temporal_siem.commands import setup
from temporal_siem.detections.alerts import RuleMeta, correlation_alert, rule_alert
from temporal_siem.kernel import metrics
from temporal_siem.kernel.schema import field_reference
from temporal_siem.report.dashboards import (
    DEFAULT_INDEX_PATTERN,
    grafana_dashboard,
    grafana_json,
    kibana_fields,
    kibana_ndjson,
    kibana_objects,
)
from tests.conftest import ROOT

DASHBOARDS = ROOT / "dashboards"
PROMETHEUS_TARGET_LABELS = {"job", "instance", "le"}


def exposed_series() -> dict[str, set[str]]:
    """Sample name -> label names, for every metric defined in temporal_siem.kernel.metrics, as prometheus_client exposes them."""
    series: dict[str, set[str]] = {}
    for value in vars(metrics).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        name, labels, kind = value._name, set(value._labelnames), str(value._type)
        suffixes = {"counter": ["_total", "_created"], "histogram": ["_bucket", "_sum", "_count", "_created"], "gauge": [""]}[kind]
        for suffix in suffixes:
            series[name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return series


def grafana_exprs(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    return exprs


def test_grafana_queries_only_metrics_and_labels_that_exist() -> None:
    series = exposed_series()
    exprs = grafana_exprs(grafana_dashboard())
    assert len(exprs) >= 15
    used: set[str] = set()
    for expr in exprs:
        names = set(re.findall(r"\btsiem_[a-z0-9_]+", expr))
        assert names, expr
        unknown = names - series.keys()
        assert not unknown, f"{expr}: {unknown} not in kernel/metrics.py"
        used |= names
        labels = set().union(*(series[n] for n in names)) | PROMETHEUS_TARGET_LABELS
        for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
            for label in filter(None, (part.strip() for part in group.split(","))):
                assert label in labels, f"{expr}: label {label} not on {names}"
        for template in re.findall(r"\{\{(\w+)\}\}", json.dumps(expr)):
            assert template in labels
    # Every metric the daemon exports appears on the dashboard.
    assert {n for n in series if not n.endswith("_created")} - used <= {n for n in series if n.endswith(("_sum", "_count"))}


def test_grafana_panels_are_well_formed() -> None:
    dashboard = grafana_dashboard()
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}" and target["refId"]
            legend = target.get("legendFormat", "")
            for label in re.findall(r"\{\{(\w+)\}\}", legend):
                assert re.search(rf"\b{label}\b", target["expr"]), (legend, target["expr"])


def alert_fields() -> set[str]:
    """Fields an alert document can carry: the schema's, plus what the alert contract really writes."""
    fields = {name for name, _, _ in field_reference()}
    rule = RuleMeta(id="r", title="t", tags=("attack.t1098",), references=("https://example.com",), author="a")
    event = {"@timestamp": "2026-01-01T00:00:00Z", "event.id": "e", "event.action": "a"}
    fields |= rule_alert(rule, event).keys()
    fields |= correlation_alert(rule, timestamp="t", event_ids=["e"], event_count=1, group_by={"user.name": "u"}, window_start="s",
                                window_end="e", correlation_type="event_count", referenced_rules=["r"], value=1).keys()
    return fields


def test_kibana_objects_query_only_alert_fields() -> None:
    used = kibana_fields(kibana_objects())
    assert {"@timestamp", "rule.name", "alert.level", "user.name", "source.ip", "temporal.namespace"} <= used
    assert used - alert_fields() == set()


def test_kibana_objects_reference_each_other_consistently() -> None:
    objects = kibana_objects("custom-alerts*")
    by_id = {(o["type"], o["id"]) for o in objects}
    assert objects[0]["type"] == "index-pattern" and objects[0]["attributes"]["title"] == "custom-alerts*"
    assert objects[-1]["type"] == "dashboard"
    for obj in objects:
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in by_id
    dashboard = objects[-1]
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    names = {r["name"] for r in dashboard["references"]}
    assert {p["panelRefName"] for p in panels} == names and len(panels) == len(objects) - 2
    for obj in objects:
        if obj["type"] == "visualization":
            json.loads(obj["attributes"]["visState"])
            source = json.loads(obj["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
            assert source["indexRefName"] in {r["name"] for r in obj["references"]}


def test_committed_files_are_the_generated_ones() -> None:
    assert (DASHBOARDS / setup.KIBANA_FILE).read_text(encoding="utf-8") == kibana_ndjson(DEFAULT_INDEX_PATTERN)
    assert (DASHBOARDS / setup.GRAFANA_FILE).read_text(encoding="utf-8") == grafana_json()


class FakeImportApi(BaseHTTPRequestHandler):
    """Checks what the saved-objects import API checks: path, xsrf header, multipart 'file' of NDJSON."""

    received: list[dict[str, Any]] = []
    answer: tuple[int, dict[str, Any]] = (200, {})

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        body = self.rfile.read(length)
        if self.path == "/api/dashboards/db":
            self._grafana(json.loads(body))
            return
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body)
        files: dict[str, bytes] = {}
        for part in message.iter_parts():
            payload = part.get_payload(decode=True)
            files[str(part.get_param("name", header="content-disposition"))] = payload if isinstance(payload, bytes) else b""
        objects = [json.loads(line) for line in files.get("file", b"").decode().splitlines() if line]
        self.received.append({"path": self.path, "headers": dict(self.headers), "objects": objects})
        status, payload = self.answer
        if self.path.split("?")[0].endswith("/api/saved_objects/_import") and self.headers.get("kbn-xsrf") and objects and status == 200:
            payload = {"success": True, "successCount": len(objects), "successResults": []}
        elif status == 200:
            status, payload = 400, {"statusCode": 400, "error": "Bad Request", "message": "bad import request"}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _grafana(self, request: dict[str, Any]) -> None:
        """Grafana's dashboard API: a bearer token and {"dashboard": {...}, "overwrite": true}."""
        self.received.append({"path": self.path, "headers": dict(self.headers), "grafana": request})
        ok = self.headers.get("Authorization") == "Bearer tok" and request.get("dashboard", {}).get("uid") == "temporal-siem"
        data = json.dumps({"status": "success"} if ok else {"message": "Unauthorized"}).encode()
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_kibana() -> Iterator[str]:
    FakeImportApi.received = []
    FakeImportApi.answer = (200, {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeImportApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    """stderr with the console's line wrapping undone."""
    return " ".join(capsys.readouterr().err.split())


def run_setup(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    setup.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["setup", "dashboards", *argv])
    code: int = args.handler(args)
    return code


def test_setup_imports_saved_objects(fake_kibana: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TSIEM_KIBANA_PASSWORD", "pw")
    code = run_setup("--kibana-url", fake_kibana, "--index-pattern", "logs-temporal_siem.alerts-*", "--space", "soc", "--user", "elastic")
    assert code == 0
    request = FakeImportApi.received[0]
    assert request["path"] == "/s/soc/api/saved_objects/_import?overwrite=true"
    assert request["headers"]["Authorization"] == "Basic " + base64.b64encode(b"elastic:pw").decode()
    assert request["objects"] == kibana_objects("logs-temporal_siem.alerts-*")


def test_setup_reports_import_errors_and_unreachable_hosts(fake_kibana: str, capsys: pytest.CaptureFixture[str]) -> None:
    FakeImportApi.answer = (201, {"success": False, "errors": [{"type": "index-pattern", "id": "x", "error": {"type": "conflict"}}]})
    assert run_setup("--kibana-url", fake_kibana) == 1
    assert "index-pattern/x" in _err(capsys)
    FakeImportApi.answer = (403, {"statusCode": 403, "message": "forbidden"})
    assert run_setup("--kibana-url", fake_kibana) == 1
    assert "HTTP 403" in _err(capsys)
    assert run_setup("--kibana-url", "http://127.0.0.1:9", "--timeout", "5") == 1
    err = _err(capsys)
    assert "not reachable" in err and "--output" in err


def test_setup_output_writes_importable_files(tmp_path: Path) -> None:
    assert run_setup("--output", str(tmp_path / "out"), "--index-pattern", "alerts-*") == 0
    lines = (tmp_path / "out" / setup.KIBANA_FILE).read_text().splitlines()
    assert json.loads(lines[0])["attributes"]["title"] == "alerts-*"
    assert json.loads((tmp_path / "out" / setup.GRAFANA_FILE).read_text())["uid"] == "temporal-siem"


def test_setup_loads_the_grafana_dashboard_too(fake_kibana: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TSIEM_GRAFANA_TOKEN", "tok")
    assert run_setup("--kibana-url", fake_kibana, "--grafana-url", fake_kibana) == 0
    grafana = FakeImportApi.received[-1]
    assert grafana["grafana"]["dashboard"] == grafana_dashboard() and grafana["grafana"]["overwrite"] is True
    monkeypatch.setenv("TSIEM_GRAFANA_TOKEN", "wrong")
    assert run_setup("--kibana-url", fake_kibana, "--grafana-url", fake_kibana) == 1
    err = _err(capsys)
    assert "Grafana dashboard API" in err and "HTTP 401" in err
