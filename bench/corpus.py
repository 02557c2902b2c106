"""Seeded generator of a mixed-format corpus for benchmarks.

Templates are the records in ``samples/<format>/`` (every shipped format, every shape); each generated
record is a template with its ids, addresses, users and times varied, so the corpus has realistic field
shapes and cardinalities without copying anything the samples do not already contain.
"""

from __future__ import annotations

import random
import re
import uuid
from pathlib import Path
from typing import Any

import orjson

from temporal_siem.ingest.replay import ReplaySource
from temporal_siem.kernel.records import RecordError
from temporal_siem.parsers.envelopes import unwrap
from temporal_siem.parsers.router import decode

ROOT = Path(__file__).resolve().parents[1]
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_IPV4 = re.compile(r"^(\d{1,3}\.){3}\d{1,3}$")
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@([A-Za-z0-9.-]+)$")
_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})")


def load_templates(samples: Path = ROOT / "samples") -> dict[str, list[Any]]:
    """Decoded sample records by format folder (envelopes unwrapped; text lines kept as text)."""
    templates: dict[str, list[Any]] = {}
    for folder in sorted(p for p in samples.iterdir() if p.is_dir()):
        records: list[Any] = []
        for batch in ReplaySource([str(folder)]).batches():
            for raw in batch:
                try:
                    decoded = decode(raw.data)
                except RecordError:
                    continue
                if isinstance(decoded, str):
                    records.append(decoded)
                else:
                    records.extend(item for item, _ in unwrap(decoded))
        if records:
            templates[folder.name] = records
    return templates


class Mutator:
    def __init__(self, rng: random.Random, users: int = 500, ips: int = 2000) -> None:
        self.rng = rng
        self.users = users
        self.ips = ips

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self(v) for v in value]
        if not isinstance(value, str):
            return value
        if _UUID.match(value):
            return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        if _HEX32.match(value):
            return f"{self.rng.getrandbits(128):032x}"
        if _IPV4.match(value):
            n = self.rng.randrange(self.ips)
            return f"198.51.{100 + n // 254 % 2}.{n % 254 + 1}"
        m = _EMAIL.match(value)
        if m:
            return f"user{self.rng.randrange(self.users)}@{m.group(1)}"
        return value


def generate(n: int, seed: int = 7, formats: list[str] | None = None) -> list[bytes]:
    """n JSON/text lines, formats mixed uniformly by template file."""
    rng = random.Random(seed)
    templates = load_templates()
    if formats:
        templates = {k: v for k, v in templates.items() if k in formats}
    names = sorted(templates)
    if not names:
        raise SystemExit("no templates: samples/ is empty")
    mutate = Mutator(rng)
    lines: list[bytes] = []
    for _ in range(n):
        record = rng.choice(templates[rng.choice(names)])
        if isinstance(record, str):
            lines.append(record.encode())
        else:
            lines.append(orjson.dumps(mutate(record)))
    return lines
