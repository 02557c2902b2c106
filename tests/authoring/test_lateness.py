"""Issue 16, item 6: `rules health samples/` dead-lettered 151 records (correlation lateness 300 s) while `replay
samples/` dead-lettered none, with no reason printed, and `config show` printed 300 while replay ran unbounded.
Now runs over files share one effective lateness, and health and config show print it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from temporal_siem.cli import main
from tests.conftest import SAMPLES


def test_health_and_replay_agree_on_the_samples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    summary = tmp_path / "summary.json"
    main(["replay", str(SAMPLES), "--quiet", "--summary-json", str(summary), "--dead-letter", str(tmp_path / "dl.jsonl")])
    replay_dead = json.loads(summary.read_text())["dead_lettered"]
    capsys.readouterr()
    main(["rules", "health", str(SAMPLES)])
    out = capsys.readouterr().out.replace("\n", " ")
    assert f"{replay_dead} records dead-lettered" in out
    assert "correlation lateness until the end of the input" in " ".join(out.split())


def test_health_uses_a_configured_lateness_and_says_why_records_were_dropped(tmp_path: Path,
                                                                             capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yml"
    config.write_text("detection:\n  correlation:\n    allowed_lateness_seconds: 0\n")
    main(["rules", "health", str(SAMPLES), "--config", str(config)])
    out = " ".join(capsys.readouterr().out.split())
    assert "correlation lateness 0 s" in out
    found = re.search(r"(\d+) records dead-lettered( \()?", out)
    assert found is not None
    assert found.group(1) == "0" or found.group(2)  # a count comes with its reasons


def test_config_show_prints_the_effective_lateness(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show"]) == 0
    out = capsys.readouterr().out
    assert "replay and rules health -1 (until the end of the input)" in out and "run 300" in out
    config = tmp_path / "c.yml"
    config.write_text("detection:\n  correlation:\n    allowed_lateness_seconds: 120\n")
    assert main(["config", "show", "--config", str(config)]) == 0
    assert "allowed_lateness_seconds: 120 for run, replay and rules health" in capsys.readouterr().out
