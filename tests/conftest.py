"""Shared test fixtures. Services are real: a test that needs one starts it through scripts/services.sh
and fails loudly (never skips) if it cannot."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

# The compiled-ruleset cache of this test run (and the CLIs it starts) lives in a fresh directory, never the user's.
os.environ.setdefault("TSIEM_CACHE_DIR", tempfile.mkdtemp(prefix="tsiem-test-cache-"))

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
RULES = ROOT / "detections" / "rules"


def record_calls(monkeypatch: pytest.MonkeyPatch, name: str, *owners: Any) -> list[Any]:
    """Replace ``name`` on each owner (a module imported ``from`` elsewhere has its own binding) by one wrapper that
    records each call's first argument and calls the first owner's original: what the tests that count scans,
    flattens or maskings all need."""
    calls: list[Any] = []
    real = getattr(owners[0], name)

    def recording(first: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(first)
        return real(first, *args, **kwargs)

    for owner in owners:
        monkeypatch.setattr(owner, name, recording)
    return calls


def start_service(name: str) -> None:
    """Start (or confirm) a service; raise with its output if it cannot run."""
    result = subprocess.run(["bash", str(ROOT / "scripts" / "services.sh"), "up", name],
                            capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        pytest.fail(f"service {name} could not be started:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}", pytrace=False)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    start_service("kafka")
    return os.environ.get("TSIEM_TEST_KAFKA", "127.0.0.1:9092")


@pytest.fixture(scope="session")
def elasticsearch_url() -> str:
    start_service("elasticsearch")
    return os.environ.get("TSIEM_TEST_ELASTICSEARCH", "http://127.0.0.1:9200")


@pytest.fixture(scope="session")
def rsyslog_ports() -> dict[str, int]:
    start_service("rsyslog")
    return {"tcp": 10514, "tls": 10515, "udp": 10516}
