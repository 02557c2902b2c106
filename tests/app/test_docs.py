"""The generated schema docs in docs/ match the models (run `make docs` after changing the schema)."""

from __future__ import annotations

import orjson

from temporal_siem.commands.schema import markdown
from temporal_siem.kernel.schema import json_schema
from temporal_siem.sinks import reference as sink_reference
from temporal_siem.sinks.registry import SINKS
from tests.conftest import ROOT


def test_schema_markdown_is_current():
    assert (ROOT / "docs" / "schema.md").read_text(encoding="utf-8") == markdown(), "run `make docs`"


def test_schema_json_is_current():
    on_disk = orjson.loads((ROOT / "docs" / "schema.json").read_bytes())
    assert on_disk == orjson.loads(orjson.dumps(json_schema())), "run `make docs`"


def test_sink_option_reference_is_current():
    text = (ROOT / "docs" / "sinks.md").read_text(encoding="utf-8")
    assert sink_reference.rewrite(text) == text, "run `make docs`"


def test_sink_option_reference_lists_every_option_of_every_sink():
    section = sink_reference.markdown()
    for name, entry in SINKS.items():
        table = section.split(f"### `{name}`", 1)[1].split("###", 1)[0]
        for option in entry.config.model_fields:
            assert option in sink_reference.COMMON or f"| `{option}` |" in table, f"{name}.{option} missing from docs/sinks.md"


def test_readme_opens_with_the_two_commands():
    lines = [line for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines() if line.strip()]
    commands = [line for line in lines[:6] if line.startswith("make ")]
    assert [c.split()[1] for c in commands] == ["demo", "test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_readme_library_example_runs(capsys):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### The engine as a library", 1)[1]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed == ["high Temporal Cloud Production Namespace Deleted", "low Temporal Cloud Namespace Deleted"]
