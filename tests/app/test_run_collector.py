"""A replay runs with the cyclic collector set for it (app/pipeline.py ``collector_for_run``, and
``replay --workers`` around its fork in app/parallel.py).

Why it matters: a full collection walked the whole rule set every few hundred batches (0.38 s of a 10.5 s
replay with 1,433 rules), and with CPython's default young threshold every batch in flight was scanned and
promoted again and again (1.5 s of a 23 s replay of the mixed corpus). The settings must end with the run, so a
process that replays many times (these tests, a notebook) collects its old rule sets, and must not undo a
freeze it did not make.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

from temporal_siem import cli
from temporal_siem.parallel import ParallelPipeline
from temporal_siem.pipeline import RUN_GC_THRESHOLD, Pipeline, collector_for_run
from tests.conftest import SAMPLES


def test_the_collector_is_set_for_the_block_only() -> None:
    assert gc.get_freeze_count() == 0
    before = gc.get_threshold()
    with collector_for_run():
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (RUN_GC_THRESHOLD, *before[1:])
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before
    with collector_for_run(freeze=False):
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold()[0] == RUN_GC_THRESHOLD
    assert gc.get_threshold() == before


def test_a_higher_threshold_someone_set_is_kept() -> None:
    before = gc.get_threshold()
    gc.set_threshold(RUN_GC_THRESHOLD * 2, *before[1:])
    try:
        with collector_for_run():
            assert gc.get_threshold()[0] == RUN_GC_THRESHOLD * 2
        assert gc.get_threshold()[0] == RUN_GC_THRESHOLD * 2
    finally:
        gc.set_threshold(*before)


def test_someone_elses_freeze_is_left_alone() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with collector_for_run():
            assert gc.get_freeze_count() == frozen
        assert gc.get_freeze_count() == frozen  # not unfrozen by the block
    finally:
        gc.unfreeze()


def test_the_collector_is_restored_when_the_run_fails() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), collector_for_run():
        raise RuntimeError("sink down")
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before


def _replay(tmp_path: Path, workers: int) -> int:
    return cli.main(["replay", str(SAMPLES / "okta"), "--workers", str(workers), "--quiet",
                     "--alerts", str(tmp_path / "a.jsonl"), "--dead-letter", str(tmp_path / "d.jsonl")])


def test_a_one_process_replay_runs_frozen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, int]] = []
    run = Pipeline.run

    def spy(self: Pipeline) -> Any:
        seen.append((gc.get_freeze_count(), gc.get_threshold()[0]))
        return run(self)

    before = gc.get_threshold()
    monkeypatch.setattr(Pipeline, "run", spy)
    assert _replay(tmp_path, 1) in (0, 10)
    assert seen and seen[0][0] > 0 and seen[0][1] == RUN_GC_THRESHOLD
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before


def test_the_parent_of_a_parallel_replay_stays_frozen_until_the_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The parent applies results for the whole run: a thaw right after the fork had its full collections rescan
    the rule set (9 of them, 0.4 s of its 5 s CPU on the mixed corpus)."""
    seen: list[tuple[int, int]] = []
    apply = ParallelPipeline._apply

    def spy(self: ParallelPipeline, result: Any) -> None:
        seen.append((gc.get_freeze_count(), gc.get_threshold()[0]))
        apply(self, result)

    before = gc.get_threshold()
    monkeypatch.setattr(ParallelPipeline, "_apply", spy)
    assert _replay(tmp_path, 2) in (0, 10)
    assert seen and all(frozen > 0 and threshold == RUN_GC_THRESHOLD for frozen, threshold in seen)
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before
