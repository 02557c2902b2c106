"""The Kafka service script's own logic that does not need a broker: the KRaft cluster id it formats with.

A CI run failed once because `kafka-storage format -t <id>` read an id starting with '-' as an option
("argument --cluster-id/-t: expected one argument"): one fresh machine in 64 drew such an id. Kafka's own
`Uuid.randomUuid()` never returns one, and neither may ours."""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path

import pytest

from tests.daemon.helpers import ROOT

SCRIPT = ROOT / "scripts" / "services" / "kafka.sh"
KAFKA_UUID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{21}")


def _cluster_id(entropy: Path | None = None) -> str:
    args = ["bash", str(SCRIPT), "cluster-id"] + ([str(entropy)] if entropy else [])
    result = subprocess.run(args, capture_output=True, text=True, timeout=30, check=True)
    return result.stdout.strip()


@pytest.mark.parametrize("first", [0xF8, 0xF9, 0xFA, 0xFB, 0xFC, 0xFF, 0x00, 0x7F, 0x80])
def test_cluster_id_never_starts_with_an_option_dash(first: int, tmp_path: Path) -> None:
    """0xF8-0xFB encode to a leading '-' in base64url, 0xFC-0xFF to '_': both reach the parser as the id's
    first character. The id stays 16 bytes of base64url without padding (what Kafka prints)."""
    entropy = tmp_path / "bytes"
    rest = b"\x00%\\\n" + bytes(range(0xF0, 0xFB))  # NUL, printf's '%' and backslash, a newline, high bytes
    entropy.write_bytes(bytes([first]) + rest + b"trailing bytes are not read")
    cluster_id = _cluster_id(entropy)
    assert KAFKA_UUID.fullmatch(cluster_id), cluster_id
    raw = base64.urlsafe_b64decode(cluster_id + "==")
    assert len(raw) == 16
    assert raw[1:] == rest  # only the first byte's top bit is given up
    assert raw[0] == first & 0x7F


def test_cluster_ids_are_random_by_default() -> None:
    ids = {_cluster_id() for _ in range(5)}
    assert len(ids) == 5
    assert all(KAFKA_UUID.fullmatch(i) for i in ids), ids
