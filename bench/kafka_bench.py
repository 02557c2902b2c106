"""Kafka daemon throughput: events/s from a pre-filled topic through the shipped rules to a file sink.

    .venv/bin/python bench/kafka_bench.py [--records 50000] [--bootstrap 127.0.0.1:9092] [--cores 1]

Three numbers, to see where the time goes:
  consume   kafka-python alone: poll the topic to its end (the client's ceiling);
  pipeline  the same records through parsers + rules + file sink in process, no Kafka (the engine's ceiling);
  daemon    the real daemon (Quix Streams: stateless rules, the scope repartition, keyed state, sinks flushed,
            offsets committed); bench/stream_bench.py splits its cost further.
The corpus is samples/ split into single records (as ``replay --to-kafka`` produces them), repeated.
Pinned to ``--cores`` CPUs (default 1) with sched_setaffinity. Needs a broker: scripts/services.sh up kafka.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer  # noqa: E402
from kafka.admin import NewTopic  # noqa: E402

from temporal_siem.commands.to_kafka import split_record  # noqa: E402
from temporal_siem.daemon import Daemon  # noqa: E402
from temporal_siem.detections.factory import build_detector  # noqa: E402
from temporal_siem.ingest.replay import ReplaySource  # noqa: E402
from temporal_siem.kernel.config import load_settings  # noqa: E402
from temporal_siem.kernel.records import Origin, RawRecord  # noqa: E402
from temporal_siem.parsers.router import ParserRouter  # noqa: E402
from temporal_siem.pipeline import Pipeline  # noqa: E402
from temporal_siem.sinks.file import FileSink  # noqa: E402
from temporal_siem.sinks.lazy_file import LazyFileSink  # noqa: E402


def corpus(records: int) -> list[bytes]:
    base: list[bytes] = []
    for batch in ReplaySource([str(ROOT / "samples")]).batches():
        for record in batch:
            base.extend(split_record(record))
    return [base[i % len(base)] for i in range(records)]


def fill(bootstrap: str, topic: str, messages: list[bytes], partitions: int) -> float:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, partitions, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20, batch_size=512 * 1024, compression_type="gzip")
    started = time.perf_counter()
    for i, message in enumerate(messages):
        producer.send(topic, key=str(i % 64).encode(), value=message)
    producer.flush()
    producer.close()
    return time.perf_counter() - started


def consume_only(bootstrap: str, topic: str, total: int, client: str) -> float:
    if client == "confluent-kafka":
        return _consume_only_confluent(bootstrap, topic, total)
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"bench-consume-{uuid.uuid4().hex[:6]}",
                             auto_offset_reset="earliest", enable_auto_commit=False, max_poll_records=1000)
    seen, started = 0, time.perf_counter()
    while seen < total:
        for records in consumer.poll(timeout_ms=500).values():
            seen += len(records)
    elapsed = time.perf_counter() - started
    consumer.close()
    return elapsed


def _consume_only_confluent(bootstrap: str, topic: str, total: int) -> float:
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-consume-{uuid.uuid4().hex[:6]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    seen, started = 0, time.perf_counter()
    while seen < total:
        seen += sum(1 for m in consumer.consume(num_messages=1000, timeout=0.5) if m.error() is None)
    elapsed = time.perf_counter() - started
    consumer.close()
    return elapsed


class _ListSource(ReplaySource):
    def __init__(self, messages: list[bytes], batch: int = 1000) -> None:
        super().__init__([])
        self.messages, self.batch = messages, batch

    def batches(self) -> Any:
        for start in range(0, len(self.messages), self.batch):
            yield [RawRecord(m, Origin("bench", offset=start + i)) for i, m in enumerate(self.messages[start:start + self.batch])]


def pipeline_only(messages: list[bytes], out: Path) -> tuple[float, int, int]:
    pipeline = Pipeline(_ListSource(messages), ParserRouter(), build_detector([]),
                        alert_sinks=[FileSink(path=str(out / "pipeline-alerts.jsonl"), append=False)],
                        dead_letter=LazyFileSink(path=str(out / "pipeline-dl.jsonl"), append=False))
    stats = pipeline.run()
    return stats.elapsed, stats.events, stats.alerts


def daemon_run(bootstrap: str, topic: str, total: int, out: Path, client: str) -> tuple[float, int, int]:
    """The daemon in this process (its own thread; Quix wants signals only on the main thread, so none here)."""
    settings = load_settings(None, ingest={"kafka": {"bootstrap_servers": [bootstrap], "group_id": f"bench-{uuid.uuid4().hex[:6]}",
                                                     "topics": [{"name": topic}], "dead_letter_topic": f"{topic}-dlq",
                                                     "stream": {"state_dir": str(out / f"state-{uuid.uuid4().hex[:6]}")}}},
                             sinks={"alerts": [{"type": "file", "path": str(out / f"daemon-{client}-alerts.jsonl")}],
                                    "dead_letter": {"type": "file", "path": str(out / f"daemon-{client}-dl.jsonl")}},
                             metrics={"enabled": False})
    daemon = Daemon(settings)
    first: float | None = None
    done: list[float] = []

    def watch() -> None:
        nonlocal first
        while not done:
            runtime = daemon.runtime
            if runtime is not None and runtime.stats.records and first is None:
                first = time.perf_counter()
            if runtime is not None and runtime.stats.records >= total:
                done.append(time.perf_counter())
                daemon.request_stop()
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.perf_counter()
    daemon.run()
    elapsed = (done[0] if done else time.perf_counter()) - (first or started)
    assert daemon.runtime is not None
    return elapsed, daemon.runtime.stats.events, daemon.runtime.stats.alerts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--bootstrap", default=os.environ.get("TSIEM_TEST_KAFKA", "127.0.0.1:9092"))
    parser.add_argument("--cores", type=int, default=1)
    parser.add_argument("--client", action="append", choices=["kafka-python", "confluent-kafka"],
                        help="Consume-only client(s) to measure (repeatable; default both). The daemon runs on confluent-kafka (Quix Streams).")
    parser.add_argument("--json", metavar="FILE", help="Also write the results as JSON.")
    args = parser.parse_args()
    args.client = args.client or ["kafka-python", "confluent-kafka"]
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[: args.cores]))
    import logging

    logging.basicConfig(level=logging.WARNING)
    messages = corpus(args.records)
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    out = Path(tempfile.mkdtemp(prefix="tsiem-kafka-bench-"))
    fill_s = fill(args.bootstrap, topic, messages, args.partitions)
    results: dict[str, Any] = {"records": len(messages), "partitions": args.partitions, "cores": args.cores,
                               "load_average_1m": os.getloadavg()[0], "produce_records_per_s": round(len(messages) / fill_s)}
    for client in args.client:
        consume_s = consume_only(args.bootstrap, topic, len(messages), client)
        daemon_s, daemon_events, daemon_alerts = daemon_run(args.bootstrap, topic, len(messages), out, client)
        results[client] = {
            "consume_only_records_per_s": round(len(messages) / consume_s),
            "daemon_events_per_s": round(daemon_events / daemon_s), "daemon_records_per_s": round(len(messages) / daemon_s),
            "daemon_alerts": daemon_alerts, "daemon_seconds": round(daemon_s, 2),
        }
    pipe_s, pipe_events, pipe_alerts = pipeline_only(messages, out)
    results["pipeline_no_kafka_events_per_s"] = round(pipe_events / pipe_s)
    results["pipeline_alerts"] = pipe_alerts
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
