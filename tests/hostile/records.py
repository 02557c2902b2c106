"""Generated hostile records, one builder per class of issue 15, shared by the hostile suite and the fuzz target.

Records are built as JSON text (not with a JSON encoder): the shapes here are deeper than encoders accept.
"""

from __future__ import annotations

import orjson

from tests.conftest import SAMPLES

# A Temporal Cloud record that raises an alert (an API key updated by a user from an IPv6 chain).
ALERTING = orjson.loads(
    next(line for line in (SAMPLES / "temporal_cloud_audit" / "current_g2_sink.jsonl").read_bytes().splitlines()
         if b'"UpdateAPIKey"' in line))


def with_raw_details(record: dict, fragment: str, **changes: object) -> bytes:
    """``record`` with ``raw_details`` replaced by the JSON text ``fragment`` (which may be nested past any encoder)."""
    base = {**record, **changes, "raw_details": "@@FRAGMENT@@"}
    return orjson.dumps(base).replace(b'"@@FRAGMENT@@"', fragment.encode())


def deep_list(levels: int) -> str:
    return "[" * levels + '"v"' + "]" * levels


def deep_object(levels: int) -> str:
    return '{"x":' * levels + '"v"' + "}" * levels


def dotted_key(parts: int) -> str:
    return orjson.dumps({".".join(["k"] * parts): 1}).decode()


def deep_records(log_id_prefix: str = "deep") -> list[bytes]:
    """Every depth shape issue 15 reproduced, each on an alerting record with its own log id."""
    shapes = {
        "list300": '{"x":' + deep_list(300) + "}",
        "list1000": '{"x":' + deep_list(1000) + "}",
        "object300": deep_object(300),
        "dotted300": dotted_key(300),
        "mixed": '{"a":[' + deep_object(250) + "," + deep_list(250) + "]}",
    }
    return [with_raw_details(ALERTING, fragment, log_id=f"{log_id_prefix}-{name}") for name, fragment in shapes.items()]
