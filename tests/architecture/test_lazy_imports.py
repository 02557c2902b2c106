"""Heavy libraries a run may never need are imported on first use, not at start: every process (each replay,
daemon start and test subprocess) paid for them. Checked in a fresh interpreter, where nothing imported them yet."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

GOLDEN = Path(__file__).resolve().parents[2] / "samples" / "temporal_cloud_audit" / "current_g2_sink.jsonl"  # CA bundles

SCRIPT = r"""
import sys
from pathlib import Path
from temporal_siem.kernel.records import Origin, RawRecord
from temporal_siem.parsers.router import ParserRouter

router = ParserRouter()
plain = router.parse(RawRecord(b'{"EventID": 1, "Image": "C:\\\\x.exe"}', Origin("t", line=1)))
assert plain.events and not plain.dead, plain.dead
print("after plain record:", "cryptography" in sys.modules)
lines = Path(sys.argv[1]).read_bytes().splitlines()
events = [e for n, line in enumerate(lines, 1) if line.strip()
          for e in router.parse(RawRecord(line, Origin("golden", line=n))).events]
print("certificate fields:", sum(1 for e in events for k in e if k.startswith("x509.")))
print("after certificates:", "cryptography" in sys.modules)
"""


def test_cryptography_is_imported_by_the_first_certificate_not_at_start() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(GOLDEN)], capture_output=True, text=True, check=True).stdout
    lines = dict(line.split(": ", 1) for line in out.strip().splitlines())
    assert lines["after plain record"] == "False"
    assert int(lines["certificate fields"]) > 0  # parsed through the lazily loaded library
    assert lines["after certificates"] == "True"
