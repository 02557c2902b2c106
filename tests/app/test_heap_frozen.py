"""A one-process replay runs with the heap it started with frozen (commands/replay.py ``heap_frozen``).

Why it matters: a full collection walked the whole rule set every few hundred batches (0.38 s of a 10.5 s
replay with 1,433 rules); frozen, the collector skips it. The freeze must end with the run, so a process that
replays many times (these tests, a notebook) collects its old rule sets, and must not undo a freeze it did not
make (``replay --workers`` freezes around its fork).
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

from temporal_siem import cli
from temporal_siem.commands.replay import heap_frozen
from temporal_siem.pipeline import Pipeline
from tests.conftest import SAMPLES


def test_heap_frozen_freezes_for_the_block_only() -> None:
    assert gc.get_freeze_count() == 0
    with heap_frozen():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    with heap_frozen(False):
        assert gc.get_freeze_count() == 0


def test_heap_frozen_leaves_someone_elses_freeze_alone() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with heap_frozen():
            assert gc.get_freeze_count() == frozen
        assert gc.get_freeze_count() == frozen  # not unfrozen by the block
    finally:
        gc.unfreeze()


def test_heap_frozen_unfreezes_when_the_run_fails() -> None:
    with pytest.raises(RuntimeError), heap_frozen():
        raise RuntimeError("sink down")
    assert gc.get_freeze_count() == 0


def test_a_one_process_replay_runs_frozen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    run = Pipeline.run

    def spy(self: Pipeline) -> Any:
        seen.append(gc.get_freeze_count())
        return run(self)

    monkeypatch.setattr(Pipeline, "run", spy)
    code = cli.main(["replay", str(SAMPLES / "okta"), "--workers", "1", "--quiet", "--alerts", str(tmp_path / "a.jsonl"),
                     "--dead-letter", str(tmp_path / "d.jsonl")])
    assert code in (0, 10)
    assert seen and seen[0] > 0
    assert gc.get_freeze_count() == 0
