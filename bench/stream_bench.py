"""Stream daemon throughput per process, and what the repartition hop costs.

    .venv/bin/python bench/stream_bench.py [--records 40000] [--partitions 4] [--cores 1] [--guarantee at-least-once]
                                           [--corpus mixed|windows] [--sigma SIGMA_CHECKOUT]

One pre-filled topic, unkeyed, then each mode in its own process pinned to ``--cores`` CPUs, a fresh consumer group
and state directory each. The corpus:

  mixed       (default) the mixed-format corpus of bench/corpus.py through the shipped rule pack (correlations,
              registries: the stateful path has work; ~0.25 alerts per event, the parsers of the audit formats
              dominate the cost, so replay itself is the ceiling here);
  windows     Sysmon process-creation events (``tests/sigma/generators.windows_events``, as bench/peer_bench.py)
              through stateless rules only: with ``--sigma``, the first 50 SigmaHQ ``process_creation`` rules,
              the shipped pack off (issue 19's "stateless rules" figure: what the daemon costs per event when
              parsing and matching are cheap).

Modes:

  consume     Quix Streams alone: every record through a no-op step (the engine's ceiling here);
  stateless   the daemon's topology with the scope messages dropped: parse, stateless enrichers and rules,
              rule alerts to a file sink, checkpoints (what the daemon costs without state);
  stateful    the whole daemon: plus one message per state scope into the internal topic (the hop), RocksDB
              keyed state with changelogs, correlations and registries;
  replay      the peer: the same records through the replay pipeline in process (no Kafka, whole-stream detector).

Printed: events/s per mode (wall, and per CPU second of the process: user + system, every thread, from the first
poll that returned records to the last record; the machine is shared, so the CPU figure is the stable one),
peak RSS per mode, scope messages per event, the hop's cost (microseconds per scope
message and per event: stateful minus stateless), and each mode as a ratio of replay. Needs a broker:
scripts/services.sh up kafka.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def peak_rss_mb() -> float:
    """This process's own peak (VmHWM): ``ru_maxrss`` of a mode process started by the bench, which holds the whole
    corpus, began at the bench's size (923 MB reported for 100k Sysmon records in a mode process that never
    read the corpus)."""
    from bench.procfs import peak_rss_mb as vm_hwm

    return vm_hwm(os.getpid())


def corpus(kind: str, records: int, seed: int) -> list[bytes]:
    if kind == "windows":
        import orjson

        from tests.sigma.generators import windows_events

        events = windows_events(records, seed)
        for event in events:
            event.update({"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational", "Provider_Name": "Microsoft-Windows-Sysmon"})
        return [orjson.dumps(event) for event in events]
    from bench.corpus import generate

    return generate(records, seed)


def rule_dirs() -> list[str]:
    """The rule folders of this run (``TSIEM_BENCH_RULES``, set by the parent); empty = the shipped pack."""
    value = os.environ.get("TSIEM_BENCH_RULES", "")
    return [value] if value else []


def fill(bootstrap: str, topic: str, records: int, partitions: int, seed: int, kind: str = "mixed") -> None:
    create_topic(bootstrap, topic, partitions)
    produce(bootstrap, topic, corpus(kind, records, seed), partitions)


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})  # held: its futures fail once it is collected
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result()


def produce(bootstrap: str, topic: str, messages: list[bytes], partitions: int) -> None:
    """Unkeyed records dealt round-robin: left to the producer, a topic created a moment before got nearly every
    record in partition 0 (its first metadata), and the near-empty partitions held the stateful stage's watermark back."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "lz4"})
    for i, message in enumerate(messages):
        while True:
            try:
                producer.produce(topic, value=message, partition=i % partitions)
                break
            except BufferError:  # librdkafka's queue (100k messages) is full: let deliveries drain it
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    producer.flush()


def settings_for(bootstrap: str, topic: str, out: Path, mode: str, guarantee: str) -> Any:
    from temporal_siem.kernel.config import load_settings

    group = f"bench-{mode}-{uuid.uuid4().hex[:6]}"
    return load_settings(None, ingest={"kafka": {
        "bootstrap_servers": [bootstrap], "group_id": group, "topics": [{"name": topic}], "dead_letter_topic": f"{group}-dlq",
        "stream": {"processing_guarantee": guarantee, "state_dir": str(out / f"{group}-state"), "commit_interval_seconds": 1.0,
                   "source_idle_seconds": 2.0}}},
        sinks={"alerts": [{"type": "file", "path": str(out / f"{mode}-alerts.jsonl")}],
               "dead_letter": {"type": "file", "path": str(out / f"{mode}-dl.jsonl")}},
        metrics={"enabled": False}, log_level="WARNING")


def run_mode(mode: str, bootstrap: str, topic: str, records: int, out: Path, guarantee: str, kind: str = "mixed") -> dict[str, Any]:
    """One mode in this process; returns its figures."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    if mode == "replay":
        return run_replay(topic, records, out, kind)
    from temporal_siem.detections.factory import build_ruleset
    from temporal_siem.sinks.factory import build_sink
    from temporal_siem.stream.runtime import SinkAdapter, StreamRuntime, input_partitions

    settings = settings_for(bootstrap, topic, out, mode, guarantee)
    partitions, _ = input_partitions(settings)
    ruleset = build_ruleset(rule_dirs(), builtin_rules=not rule_dirs())
    sinks = [build_sink(c, "alerts") for c in settings.sinks.alerts]
    marks: dict[str, float] = {}
    runtime: StreamRuntime

    def on_loop() -> None:
        stats = runtime.stats
        if stats.records >= records and (mode != "stateful" or stats.scoped_in >= stats.scope_messages):
            if "done" not in marks:
                marks["done"], marks["done_cpu"] = time.perf_counter(), time.process_time()
            runtime.stop()

    def timed_app() -> None:
        """The clock starts when a poll first returns records (topic creation, the group join and the
        assignment are start-up, not throughput)."""
        app = runtime.app
        # the batching loop polls through _poll_batch; a per-record application (before issue 19) through poll_row
        owner, name = (app, "_poll_batch") if hasattr(app, "_poll_batch") else (app._consumer, "poll_row")
        poll = getattr(owner, name)

        def first_poll(*args: Any, **kwargs: Any) -> Any:
            messages = poll(*args, **kwargs)
            if messages and "first" not in marks:
                marks["first"], marks["first_cpu"] = time.perf_counter(), time.process_time()
            return messages

        setattr(owner, name, first_poll)

    runtime = StreamRuntime(settings, ruleset, alerts=SinkAdapter(sinks, "alerts"), input_partitions=partitions, on_loop=on_loop)
    if mode == "consume":
        runtime._stateless = lambda value, key, timestamp, headers: _count(runtime)  # type: ignore[method-assign]
        runtime._stateless_batch = lambda messages: _count(runtime, len(messages))  # type: ignore[method-assign]
        _rebuild(runtime)
    elif mode == "stateless":
        match = runtime.stateless.match

        def match_without_scopes(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Any], int]:
            alerts, _, latest = match(events)
            return alerts, [], latest

        runtime.stateless.match = match_without_scopes  # type: ignore[method-assign]
    timed_app()
    runtime.run()
    elapsed = marks.get("done", time.perf_counter()) - marks.get("first", time.perf_counter())
    cpu = marks.get("done_cpu", time.process_time()) - marks.get("first_cpu", time.process_time())
    stats = runtime.stats
    events = stats.events or stats.records
    return {"mode": mode, "records": stats.records, "events": events, "seconds": round(elapsed, 3), "cpu_seconds": round(cpu, 3),
            "events_per_s": round(events / elapsed) if elapsed > 0 else 0, "events_per_cpu_s": round(events / cpu) if cpu > 0 else 0,
            "scope_messages": stats.scope_messages, "alerts": stats.alerts, "peak_rss_mb": round(peak_rss_mb())}


def _count(runtime: Any, n: int = 1) -> list[Any]:
    runtime.stats.records += n
    return []


def _rebuild(runtime: Any) -> None:
    """consume mode: the same application with the no-op step (topology is built in the constructor)."""
    runtime.app = runtime._application()
    runtime._topology()


def run_replay(topic: str, records: int, out: Path, kind: str) -> dict[str, Any]:
    from temporal_siem.detections.factory import build_detector
    from temporal_siem.ingest.replay import ReplaySource
    from temporal_siem.kernel.records import Origin, RawRecord
    from temporal_siem.parsers.router import ParserRouter
    from temporal_siem.pipeline import Pipeline
    from temporal_siem.sinks.file import FileSink
    from temporal_siem.sinks.lazy_file import LazyFileSink

    messages = corpus(kind, records, int(os.environ.get("TSIEM_BENCH_SEED", "7")))

    class ListSource(ReplaySource):
        def __init__(self) -> None:
            super().__init__([])

        def batches(self) -> Any:
            for start in range(0, len(messages), 1000):
                yield [RawRecord(m, Origin("bench", offset=start + i)) for i, m in enumerate(messages[start:start + 1000])]

    detector = build_detector(rule_dirs(), builtin_rules=not rule_dirs())
    pipeline = Pipeline(ListSource(), ParserRouter(), detector, alert_sinks=[FileSink(path=str(out / "replay-alerts.jsonl"), append=False)],
                        dead_letter=LazyFileSink(path=str(out / "replay-dl.jsonl"), append=False))
    cpu = time.process_time()
    stats = pipeline.run()
    cpu = time.process_time() - cpu
    return {"mode": "replay", "records": stats.records_read, "events": stats.events, "seconds": round(stats.elapsed, 3), "cpu_seconds": round(cpu, 3),
            "events_per_s": round(stats.events / stats.elapsed), "events_per_cpu_s": round(stats.events / cpu) if cpu > 0 else 0,
            "alerts": stats.alerts, "peak_rss_mb": round(peak_rss_mb())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=40_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--bootstrap", default=os.environ.get("TSIEM_TEST_KAFKA", "127.0.0.1:9092"))
    parser.add_argument("--cores", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--guarantee", choices=["at-least-once", "exactly-once"], default="at-least-once")
    parser.add_argument("--modes", default="consume,stateless,stateful,replay")
    parser.add_argument("--corpus", choices=["mixed", "windows"], default="mixed")
    parser.add_argument("--sigma", metavar="SIGMA_CHECKOUT", help="windows corpus: match the first 50 SigmaHQ process_creation rules "
                        "(without it: the shipped pack, which has no rule for these events)")
    parser.add_argument("--json", metavar="FILE", help="Also write the results as JSON.")
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[: args.cores]))
    if args.mode:  # a child: one mode, figures as JSON on the last line
        print(json.dumps(run_mode(args.mode, args.bootstrap, args.topic, args.records, Path(args.out), args.guarantee, args.corpus)))
        return 0
    topic = f"stream-bench-{uuid.uuid4().hex[:8]}"
    out = Path(tempfile.mkdtemp(prefix="tsiem-stream-bench-"))
    rules = ""
    if args.sigma:
        from bench.peer_bench import rule_sets

        rules = str(rule_sets(Path(args.sigma), ["50"], out)["50"])
    fill(args.bootstrap, topic, args.records, args.partitions, args.seed, args.corpus)
    results: dict[str, Any] = {"records": args.records, "partitions": args.partitions, "cores": args.cores, "guarantee": args.guarantee,
                               "corpus": args.corpus, "rules": "first 50 SigmaHQ process_creation" if rules else "shipped pack",
                               "load_average_1m": round(os.getloadavg()[0], 2)}
    for mode in args.modes.split(","):
        child = subprocess.run([sys.executable, __file__, "--mode", mode, "--topic", topic, "--out", str(out),
                                "--records", str(args.records), "--bootstrap", args.bootstrap, "--cores", str(args.cores),
                                "--guarantee", args.guarantee, "--corpus", args.corpus], capture_output=True, text=True, timeout=1800,
                               env={**os.environ, "TSIEM_BENCH_SEED": str(args.seed), "TSIEM_BENCH_RULES": rules, "PYTHONWARNINGS": "ignore"})
        if child.returncode != 0:
            print(child.stderr[-3000:], file=sys.stderr)
            return 1
        results[mode] = json.loads(child.stdout.strip().splitlines()[-1])
    replay = results.get("replay", {}).get("events_per_s")
    for mode in ("consume", "stateless", "stateful"):
        if mode in results and replay:
            results[mode]["ratio_to_replay"] = round(results[mode]["events_per_s"] / replay, 2)
            results[mode]["cpu_ratio_to_replay"] = round(results[mode]["events_per_cpu_s"] / results["replay"]["events_per_cpu_s"], 2)
    if "stateless" in results and "stateful" in results:
        hop = results["stateful"]["seconds"] - results["stateless"]["seconds"]
        messages = results["stateful"]["scope_messages"] or 1
        events = results["stateful"]["events"] or 1
        results["hop"] = {"scope_messages_per_event": round(messages / events, 3),
                          "us_per_scope_message": round(hop / messages * 1e6, 1), "us_per_event": round(hop / events * 1e6, 1)}
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
