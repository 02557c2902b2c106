"""A replay keeps bounded alerts for its table (unless the HTML report needs them all)."""

from __future__ import annotations

import random

from temporal_siem import console
from temporal_siem.commands.replay import AlertKeeper

LEVELS = {"informational": 1, "low": 21, "medium": 47, "high": 73, "critical": 99}


def alerts(n: int, seed: int = 3) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        level = rng.choice(list(LEVELS))
        out.append({"alert.level": level, "event.severity": LEVELS[level], "@timestamp": f"2025-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z",
                    "alert.id": str(i)})
    return out


def test_bounded_keeper_shows_the_same_top_rows_as_keeping_everything():
    everything = alerts(5000)
    keeper = AlertKeeper(keep_all=False)
    for start in range(0, len(everything), 137):
        keeper.add(everything[start:start + 137])
    assert keeper.count == 5000
    assert len(keeper.alerts) <= 4 * console.MAX_TABLE_ROWS + 137
    top = [a["alert.id"] for a in console.most_important(keeper.alerts, console.MAX_TABLE_ROWS)]
    assert top == [a["alert.id"] for a in console.most_important(everything, console.MAX_TABLE_ROWS)]
    assert keeper.max_severity == max(a["event.severity"] for a in everything)


def test_report_keeper_keeps_everything():
    keeper = AlertKeeper(keep_all=True)
    keeper.add(alerts(1000))
    assert len(keeper.alerts) == 1000


def test_a_keeper_without_a_table_keeps_no_rows_but_counts_and_grades():
    """``replay --quiet`` prints no table: no rows are kept (nor sorted, nor sent by the workers)."""
    everything = alerts(2000)
    keeper = AlertKeeper(keep_all=False, top=0)
    keeper.add(everything[:1000])
    keeper.add_summary(1000, everything[1000:1050], max(a["event.severity"] for a in everything[1000:]))
    assert keeper.alerts == [] and keeper.rows_wanted() == 0
    assert keeper.count == 2000
    assert keeper.max_severity == max(a["event.severity"] for a in everything)
    assert AlertKeeper(keep_all=True, top=0).rows_wanted() > 10**9  # the HTML report needs them all


def test_a_parallel_replay_shows_the_table_of_one_process(tmp_path, capsys):
    """Workers hand over each batch's most important rows: the table equals the one-process table."""
    from bench.corpus import generate
    from temporal_siem.cli import main

    corpus = tmp_path / "mixed.jsonl"
    corpus.write_bytes(b"\n".join(generate(4000, seed=5)) + b"\n")
    tables = []
    for workers in (1, 2):
        capsys.readouterr()
        code = main(["replay", str(corpus), "--workers", str(workers), "--alerts", str(tmp_path / f"a{workers}.jsonl"),
                     "--dead-letter", str(tmp_path / "dead.jsonl")])
        assert code == 0
        out = capsys.readouterr().out
        start = out.index("Alerts (")
        tables.append(out[start:out.index("\u2518", start)])  # to the table's bottom-right corner
    assert tables[0].count("\n") > 20
    assert tables[1] == tables[0]
