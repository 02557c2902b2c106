"""``temporal-siem setup dashboards``: load the Kibana / OpenSearch Dashboards saved objects (and optionally
the Grafana dashboard) through their HTTP APIs, or write them to a directory for a manual import.

Credentials come from the environment only (TSIEM_KIBANA_PASSWORD, TSIEM_GRAFANA_TOKEN), never from flags,
so they stay out of shell history and process lists.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import ssl
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from temporal_siem import console
from temporal_siem.exit_codes import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from temporal_siem.report.dashboards import DEFAULT_INDEX_PATTERN, grafana_dashboard, grafana_json, kibana_ndjson

KIBANA_FILE = "kibana-alerts.ndjson"
GRAFANA_FILE = "grafana.json"


class SetupError(Exception):
    """A dashboard could not be loaded; the message says where and why."""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("setup", help="Install operator assets (dashboards).")
    ssub = p.add_subparsers(dest="setup_command", required=True, metavar="WHAT")
    d = ssub.add_parser("dashboards", help="Load the Kibana/OpenSearch Dashboards saved objects (and Grafana dashboard).")
    d.add_argument("--kibana-url", default="http://127.0.0.1:5601", metavar="URL",
                   help="Kibana or OpenSearch Dashboards base URL (default: %(default)s).")
    d.add_argument("--index-pattern", default=DEFAULT_INDEX_PATTERN, metavar="PATTERN",
                   help="Index pattern / data view over the alerts (default: %(default)s).")
    d.add_argument("--space", default=None, metavar="ID", help="Kibana space to import into (default: the default space).")
    d.add_argument("--user", default=None, metavar="NAME", help="Basic-auth user; the password is read from TSIEM_KIBANA_PASSWORD.")
    d.add_argument("--no-overwrite", action="store_true", help="Keep saved objects that already exist instead of replacing them.")
    d.add_argument("--grafana-url", default=None, metavar="URL",
                   help="Also load the Grafana dashboard there (token from TSIEM_GRAFANA_TOKEN).")
    d.add_argument("--insecure", action="store_true", help="Do not verify TLS certificates.")
    d.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS")
    d.add_argument("--output", default=None, metavar="DIR",
                   help=f"Write {KIBANA_FILE} and {GRAFANA_FILE} to DIR for a manual import instead of calling any API.")
    d.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not args.index_pattern.strip():
        console.err.print("[red]error:[/] --index-pattern must not be empty")
        return EXIT_USAGE
    if args.output:
        return write_files(Path(args.output), args.index_pattern)
    context = ssl._create_unverified_context() if args.insecure else None  # the operator asked for it
    try:
        result = import_kibana(args.kibana_url, kibana_ndjson(args.index_pattern), space=args.space, user=args.user,
                               password=os.environ.get("TSIEM_KIBANA_PASSWORD"), overwrite=not args.no_overwrite,
                               timeout=args.timeout, context=context)
        console.err.print(f"kibana: imported {result.get('successCount', 0)} saved objects into {args.kibana_url} "
                          f"(data view {args.index_pattern!r})")
        if args.grafana_url:
            import_grafana(args.grafana_url, os.environ.get("TSIEM_GRAFANA_TOKEN"), timeout=args.timeout, context=context)
            console.err.print(f"grafana: dashboard loaded into {args.grafana_url}")
    except SetupError as exc:
        console.err.print(f"[red]error:[/] {exc}")
        console.err.print(f"To import by hand: temporal-siem setup dashboards --output DIR, then see docs/report.md ({KIBANA_FILE}, {GRAFANA_FILE}).")
        return EXIT_FAILURE
    return EXIT_OK


def write_files(directory: Path, index_pattern: str) -> int:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / KIBANA_FILE).write_text(kibana_ndjson(index_pattern), encoding="utf-8")
        (directory / GRAFANA_FILE).write_text(grafana_json(), encoding="utf-8")
    except OSError as exc:
        console.err.print(f"[red]error:[/] cannot write dashboards to {directory}: {exc}")
        return EXIT_FAILURE
    console.err.print(f"wrote {directory / KIBANA_FILE} and {directory / GRAFANA_FILE}")
    return EXIT_OK


def _multipart(field: str, filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = f"tsiem-{uuid.uuid4().hex}"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            "Content-Type: application/ndjson\r\n\r\n").encode()
    return head + content + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _request(url: str, body: bytes, headers: dict[str, str], what: str, timeout: float, context: ssl.SSLContext | None) -> dict[str, Any]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            payload = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:500].decode("utf-8", "replace")
        raise SetupError(f"{what} at {url} answered HTTP {exc.code}: {detail}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SetupError(f"{what} at {url} is not reachable: {reason}") from exc
    try:
        parsed = json.loads(payload or b"{}")
    except ValueError as exc:
        raise SetupError(f"{what} at {url} answered with something that is not JSON: {payload[:200]!r}") from exc
    if not isinstance(parsed, dict):
        raise SetupError(f"{what} at {url} answered unexpectedly: {str(parsed)[:200]}")
    return parsed


def import_kibana(base_url: str, ndjson: str, *, space: str | None = None, user: str | None = None, password: str | None = None,
                  overwrite: bool = True, timeout: float = 30.0, context: ssl.SSLContext | None = None) -> dict[str, Any]:
    """POST the NDJSON to the saved-objects import API (Kibana 7/8 and OpenSearch Dashboards share it)."""
    prefix = f"/s/{space}" if space else ""
    url = f"{base_url.rstrip('/')}{prefix}/api/saved_objects/_import" + ("?overwrite=true" if overwrite else "")
    body, content_type = _multipart("file", "temporal-siem.ndjson", ndjson.encode("utf-8"))
    # kbn-xsrf for Kibana, osd-xsrf for OpenSearch Dashboards: each ignores the other's header.
    headers = {"Content-Type": content_type, "kbn-xsrf": "true", "osd-xsrf": "true"}
    if user:
        token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    result = _request(url, body, headers, "the saved-objects import API", timeout, context)
    if not result.get("success", False):
        errors = result.get("errors") or []
        text = "; ".join(f"{e.get('type')}/{e.get('id')}: {e.get('error')}" for e in errors[:5] if isinstance(e, dict))
        raise SetupError(f"the saved-objects import at {url} failed: {text or result}")
    return result


def import_grafana(base_url: str, token: str | None, *, timeout: float = 30.0, context: ssl.SSLContext | None = None) -> dict[str, Any]:
    """POST the dashboard to Grafana's dashboard API (replaces the one with the same uid)."""
    url = f"{base_url.rstrip('/')}/api/dashboards/db"
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps({"dashboard": grafana_dashboard(), "overwrite": True, "message": "temporal-siem setup dashboards"}).encode()
    return _request(url, body, headers, "the Grafana dashboard API", timeout, context)
