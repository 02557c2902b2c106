"""The sink option reference in docs/sinks.md, generated from the registered config models.

The models are the one place an option, its type and its default are written; this renders them as
Markdown between two markers of docs/sinks.md, so the reference cannot drift (tests/app/test_docs.py
compares it). ``make docs`` rewrites it: ``python -m temporal_siem.sinks.reference docs/sinks.md``.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import SecretStr
from pydantic_core import PydanticUndefined

from temporal_siem.sinks.registry import SINKS

BEGIN = "<!-- BEGIN GENERATED: sink options (from the config models in sinks/; `make docs`) -->"
END = "<!-- END GENERATED: sink options -->"
COMMON = ("type", "required")


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return " \\| ".join(json.dumps(value) for value in get_args(annotation))
    if origin in (Union, types.UnionType):
        return " \\| ".join(_type_name(arg) for arg in get_args(annotation))
    if origin is list:
        return f"list of {_type_name(get_args(annotation)[0])}"
    if annotation is type(None):
        return "null"
    if annotation is SecretStr:
        return "secret"
    return getattr(annotation, "__name__", str(annotation))


def _default(value: Any) -> str:
    if value is PydanticUndefined:
        return "required"
    if value is None or value == "":
        return ""
    return f"`{json.dumps(value)}`"


def markdown() -> str:
    """One table per sink type: option, type, default, what it does."""
    lines = [BEGIN, "",
             "Every entry also takes `type` (the sink) and `required` (default `true`: a sink that is down holds the "
             "stream; `false`: its batches are dropped and counted). An option not listed is an error. `secret` "
             "options are masked by `config show`; set them through the environment (`TSIEM_SINKS__...`)."]
    for name, entry in SINKS.items():
        lines += ["", f"### `{name}`", "", "| option | type | default | |", "|---|---|---|---|"]
        for field_name, field in entry.config.model_fields.items():
            if field_name in COMMON:
                continue
            description = (field.description or "").replace("|", "\\|")
            lines.append(f"| `{field_name}` | {_type_name(field.annotation)} | {_default(field.default)} | {description} |")
    lines += ["", END]
    return "\n".join(lines)


def rewrite(text: str) -> str:
    """``text`` with the generated section replaced by the current one."""
    head, begin, rest = text.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"the generated section's markers are missing: {BEGIN} ... {END}")
    return head + markdown() + tail


if __name__ == "__main__":
    path = Path(sys.argv[1])
    path.write_text(rewrite(path.read_text(encoding="utf-8")), encoding="utf-8")
