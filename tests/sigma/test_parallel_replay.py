"""``replay --workers N`` raises the same alerts as one process: same ids, same documents, same summary,
on a mixed corpus with stateful enrichers and correlation rules (the shipped pack) and on stateless rules."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bench.corpus import generate
from temporal_siem.cli import main
from temporal_siem.detections.factory import build_detector
from temporal_siem.parallel import StateScope
from tests.sigma.generators import windows_events

SIGMAHQ = Path(__file__).parent / "data" / "sigmahq"


def _alert_docs(path: Path) -> list[dict]:
    """The alerts file's documents in file order, without the time each record was read."""
    docs = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    for doc in docs:
        doc["event"].pop("ingested", None)
    return docs


def _alerts(path: Path) -> dict[str, dict]:
    return {doc["alert"]["id"]: doc for doc in _alert_docs(path)}


def _replay(tmp_path: Path, corpus: Path, workers: int, *extra: str) -> tuple[dict[str, dict], dict]:
    alerts = tmp_path / f"alerts-{workers}.jsonl"
    summary = tmp_path / f"summary-{workers}.json"
    code = main(["replay", str(corpus), "--quiet", "--workers", str(workers), "--alerts", str(alerts),
                 "--summary-json", str(summary), "--dead-letter", str(tmp_path / f"dead-{workers}.jsonl"), *extra])
    assert code == 0
    stats = orjson.loads(summary.read_bytes())
    for key in ("elapsed_seconds", "events_per_second"):
        stats.pop(key)
    return _alerts(alerts), stats


@pytest.mark.parametrize("workers", [2, 3])
def test_mixed_formats_with_state_same_alerts(tmp_path: Path, workers: int) -> None:
    corpus = tmp_path / "mixed.jsonl"
    corpus.write_bytes(b"\n".join(generate(6000, seed=11)) + b"\n{broken\n")
    one, one_stats = _replay(tmp_path, corpus, 1)
    many, many_stats = _replay(tmp_path, corpus, workers)
    assert many == one
    assert many_stats == one_stats
    assert any(doc["alert"].get("type") == "correlation" or "correlation" in str(doc.get("rule", {}).get("type", ""))
               for doc in one.values()), "the corpus must exercise correlation state"
    assert one_stats["dead_lettered"] == 1


WINDOWS_RULES = """
title: cmd from certutil
id: 0d6f5a8e-7c1b-4a55-9a0c-0f3b8e9d1a11
logsource: {product: windows, category: process_creation}
detection:
  selection: {Image|endswith: '\\cmd.exe', ParentImage|endswith: '\\certutil.exe'}
  condition: selection
level: high
---
title: any powershell
id: 0d6f5a8e-7c1b-4a55-9a0c-0f3b8e9d1a12
logsource: {product: windows, category: process_creation}
detection:
  selection: {Image|contains: 'powershell'}
  condition: selection
level: medium
"""


def test_stateless_rules_same_alerts(tmp_path: Path) -> None:
    corpus = tmp_path / "windows.jsonl"
    corpus.write_bytes(b"\n".join(orjson.dumps(e) for e in windows_events(3000)) + b"\n")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "windows.yml").write_text(WINDOWS_RULES)
    rules = ["--no-builtin-rules", "--rules", str(SIGMAHQ), "--rules", str(tmp_path / "rules")]
    one, one_stats = _replay(tmp_path, corpus, 1, *rules)
    many, many_stats = _replay(tmp_path, corpus, 2, *rules)
    assert len(one) > 100 and many == one and many_stats == one_stats


def test_state_scope_claims_what_enricher_state_reads() -> None:
    """The registries' gates: an audit record that names a key, a namespace CA bundle or a role grant, a
    CloudTrail record of an assumed-role session; not an audit record that names none of them, nor another
    dataset (tests/rules/test_enrichment_state_gate.py holds each gate to its enricher)."""
    scope = StateScope(build_detector([], builtin_rules=True, options={"correlation": {"allowed_lateness_seconds": -1}}))
    audit = {"event.dataset": "temporal_cloud.audit"}
    assert scope.enriched_statefully({**audit, "temporal.target.id": "key-1"})
    assert scope.enriched_statefully({"temporal_cloud.principal.api_key_id": "key-1"})  # no dataset: read too
    assert scope.enriched_statefully({**audit, "user.changes.roles": ["admin"]})
    assert scope.enriched_statefully({"event.dataset": "aws.cloudtrail", "aws.cloudtrail.userIdentity.type": "AssumedRole"})
    assert not scope.enriched_statefully({**audit, "event.action": "GetNamespace"})
    assert not scope.enriched_statefully({**audit, "user.changes.roles": ["admin"], "event.outcome": "failure"})
    assert not scope.enriched_statefully({"event.dataset": "aws.cloudtrail", "aws.cloudtrail.userIdentity.type": "IAMUser"})
    assert not scope.enriched_statefully({"event.dataset": "okta.system", "temporal.target.id": "key-1"})
    assert not scope.enriched_statefully({"event.dataset": ["a", "b"]})  # unhashable: no gate is fooled into a crash


def test_a_dead_worker_fails_the_replay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker killed mid-run (here: one that exits on its first batch) must not leave the parent waiting."""
    import os

    from temporal_siem import parallel

    def dying_worker(*args: object) -> None:
        os._exit(3)

    monkeypatch.setattr(parallel, "_worker", dying_worker)
    corpus = tmp_path / "windows.jsonl"
    corpus.write_bytes(b"\n".join(orjson.dumps(e) for e in windows_events(30000)) + b"\n")
    with pytest.raises(RuntimeError, match="exited with code 3"):
        main(["replay", str(corpus), "--quiet", "--workers", "2", "--no-builtin-rules", "--rules", str(SIGMAHQ),
              "--dead-letter", str(tmp_path / "dead.jsonl")])


def test_a_worker_dead_before_its_first_batch_fails_the_replay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CI defect: a worker that is gone before the parent sends it anything turns the send into
    ``BrokenPipeError``, which the CLI took for a closed stdout (``| head``) and answered with exit 0.
    The parent waits here until the workers are dead, so the race is decided, then must report the death."""
    import os
    import time

    from temporal_siem import parallel

    def dying_worker(*args: object) -> None:
        os._exit(3)

    original = parallel.ParallelPipeline._loop

    def late_loop(self: parallel.ParallelPipeline, *args: object) -> None:
        processes = args[-1]
        deadline = time.monotonic() + 10
        while any(p.exitcode is None for p in processes) and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.01)
        original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(parallel, "_worker", dying_worker)
    monkeypatch.setattr(parallel.ParallelPipeline, "_loop", late_loop)
    corpus = tmp_path / "windows.jsonl"
    corpus.write_bytes(b"\n".join(orjson.dumps(e) for e in windows_events(3000)) + b"\n")
    with pytest.raises(RuntimeError, match="exited with code 3"):
        main(["replay", str(corpus), "--quiet", "--workers", "2", "--no-builtin-rules", "--rules", str(SIGMAHQ),
              "--dead-letter", str(tmp_path / "dead.jsonl")])


@pytest.mark.parametrize("workers", [1, 2])
def test_the_alerts_counter_counts_every_alert(tmp_path: Path, workers: int) -> None:
    """``tsiem_alerts_total`` grows by each rule's alerts, whether one process raised them or workers encoded
    them (the pipeline keeps each rule's labelled counter instead of asking ``labels()`` per batch)."""
    from collections import Counter

    from temporal_siem.kernel import metrics

    def counted() -> Counter[tuple[str, str, str]]:
        totals: Counter[tuple[str, str, str]] = Counter()
        for family in metrics.ALERTS.collect():
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    totals[(sample.labels["rule_id"], sample.labels["rule_name"], sample.labels["level"])] += int(sample.value)
        return totals

    corpus = tmp_path / "mixed.jsonl"
    corpus.write_bytes(b"\n".join(generate(3000, 5)) + b"\n")
    before = counted()
    _replay(tmp_path, corpus, workers)
    lines = (orjson.loads(line) for line in (tmp_path / f"alerts-{workers}.jsonl").read_bytes().splitlines())
    written = Counter((a["rule"]["id"], a["rule"]["name"], a["alert"]["level"]) for a in lines)
    assert written and counted() - before == written


@pytest.mark.parametrize("splice", [True, False])
def test_the_alerts_file_is_one_process_file_line_for_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           splice: bool) -> None:
    """Workers send their encoded alerts raw after each result; the parent copies the next result's straight
    into the file (``FileSink.copy_from_fd``) and holds one that arrives early until its turn. The file must be
    one process's file in its order, not only the same set of alerts, with ``splice`` and without. Small ranges
    make many batches, so results arrive out of order too."""
    import os

    from temporal_siem import parallel
    from temporal_siem.sinks.file import FileSink
    from tests.conftest import record_calls

    if not splice:
        monkeypatch.delattr(os, "splice", raising=False)
    monkeypatch.setattr(parallel, "RANGE_BYTES", 64 * 1024)
    copied = record_calls(monkeypatch, "copy_from_fd", FileSink)
    corpus = tmp_path / "windows.jsonl"
    corpus.write_bytes(b"\n".join(orjson.dumps(e) for e in windows_events(4000)) + b"\n")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "windows.yml").write_text(WINDOWS_RULES)
    rules = ["--no-builtin-rules", "--rules", str(tmp_path / "rules")]
    _replay(tmp_path, corpus, 1, *rules)
    assert not copied  # one process writes its own documents
    _replay(tmp_path, corpus, 2, *rules)
    one, two = _alert_docs(tmp_path / "alerts-1.jsonl"), _alert_docs(tmp_path / "alerts-2.jsonl")
    assert len(one) > 100
    assert two == one  # the same documents in the same order
    assert copied  # at least the first batch's alerts went from the pipe to the file directly


def test_a_worker_dead_in_the_middle_of_its_alerts_fails_the_replay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The alerts follow a result's message on the pipe: a worker that dies after sending part of them must fail
    the replay (not hang the parent on the rest, nor leave a file with half a batch reported as success)."""
    import os

    from temporal_siem import parallel

    def half_then_die(target: int, data: bytes) -> None:
        os.write(target, data[: len(data) // 2])
        os._exit(3)

    monkeypatch.setattr(parallel, "_write_all", half_then_die)
    corpus = tmp_path / "windows.jsonl"
    corpus.write_bytes(b"\n".join(orjson.dumps(e) for e in windows_events(3000)) + b"\n")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "windows.yml").write_text(WINDOWS_RULES)
    with pytest.raises(RuntimeError, match=r"exited with code 3|ended in the middle of a result"):
        main(["replay", str(corpus), "--quiet", "--workers", "2", "--no-builtin-rules", "--rules", str(tmp_path / "rules"),
              "--alerts", str(tmp_path / "alerts.jsonl"), "--dead-letter", str(tmp_path / "dead.jsonl")])
