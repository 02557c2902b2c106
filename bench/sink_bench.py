"""Sink throughput: alerts/s a sink accepts, end to end (encoding, HTTP/TCP, server acknowledgement).

    .venv/bin/python bench/sink_bench.py [--alerts N] [--batch B] [--chunk-size C] [--concurrency K]
                                         [--sinks elasticsearch,opensearch,syslog,kafka] [--url URL]

The alerts are the real alerts of a replay of samples/, cloned with fresh ids up to N. Elasticsearch is
measured twice: first delivery (every document created) and a full re-delivery (every document a 409
conflict: what a restart after a crash costs). Needs the services up (scripts/services.sh up).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporal_siem.detections.factory import build_detector
from temporal_siem.ingest.replay import ReplaySource
from temporal_siem.parsers.router import ParserRouter
from temporal_siem.pipeline import Pipeline
from temporal_siem.sinks.base import Sink

ROOT = Path(__file__).resolve().parents[1]


class _Collect(Sink):
    name = "collect"

    def __init__(self) -> None:
        self.documents: list[dict[str, Any]] = []

    def write(self, documents: list[dict[str, Any]]) -> None:
        self.documents.extend(documents)


def sample_alerts(count: int) -> list[dict[str, Any]]:
    collect = _Collect()
    Pipeline(ReplaySource([str(ROOT / "samples")]), ParserRouter("auto", 1 << 23), build_detector([], builtin_rules=True),
             alert_sinks=[collect], dead_letter=_Collect()).run()
    base = collect.documents
    if not base:
        raise SystemExit("the samples raised no alerts: nothing to benchmark")
    run = uuid.uuid4().hex[:8]
    return [{**base[i % len(base)], "alert.id": f"{run}-{i:08d}"} for i in range(count)]


def timed(sink: Sink, alerts: list[dict[str, Any]], batch: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(alerts), batch):
        sink.write(alerts[start:start + batch])
    sink.flush()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000, help="alerts per pipeline batch (one write call)")
    parser.add_argument("--chunk-size", type=int, default=500, help="Elasticsearch: documents per bulk request")
    parser.add_argument("--concurrency", type=int, default=2, help="Elasticsearch: bulk requests in flight")
    parser.add_argument("--sinks", default="elasticsearch")
    parser.add_argument("--url", default="http://127.0.0.1:9200")
    parser.add_argument("--opensearch-url", default="https://127.0.0.1:9210")
    args = parser.parse_args()
    alerts = sample_alerts(args.alerts)
    print(f"{len(alerts)} alerts, batch {args.batch}")
    for name in [s for s in args.sinks.split(",") if s]:
        if name == "elasticsearch":
            from elasticsearch import Elasticsearch

            from temporal_siem.sinks.elasticsearch import ElasticsearchSink

            index = f"tsiem-bench-{uuid.uuid4().hex[:8]}"
            sink = ElasticsearchSink(hosts=args.url, index=index, chunk_size=args.chunk_size, concurrency=args.concurrency)
            sink.open()
            first = timed(sink, alerts, args.batch)
            again = timed(sink, alerts, args.batch)
            sink.close()
            client = Elasticsearch(args.url)
            client.indices.refresh(index=index)
            stored = client.count(index=index)["count"]
            client.indices.delete(index=index)
            client.indices.delete_index_template(name=index)
            client.close()
            print(f"elasticsearch  chunk {args.chunk_size} x {args.concurrency}: {len(alerts) / first:9.0f} alerts/s "
                  f"(re-delivery, all 409: {len(alerts) / again:9.0f} alerts/s); stored {stored}")
        elif name == "opensearch":
            # The node of scripts/services/opensearch.sh: HTTPS, its generated CA and user.
            from temporal_siem.sinks.opensearch import OpenSearchClient, OpenSearchSink

            state = Path(__file__).resolve().parents[1] / ".services" / "opensearch"
            auth = dict(line.split("=", 1) for line in (state / "default" / "auth.env").read_text().splitlines() if "=" in line)
            index = f"tsiem-bench-{uuid.uuid4().hex[:8]}"
            options: dict[str, Any] = {"username": auth["OPENSEARCH_USERNAME"], "password": auth["OPENSEARCH_PASSWORD"],
                                       "ca_certs": str(state / "tls" / "ca.pem")}
            sink = OpenSearchSink(hosts=args.opensearch_url, index=index, chunk_size=args.chunk_size, concurrency=args.concurrency, **options)
            sink.open()
            first = timed(sink, alerts, args.batch)
            again = timed(sink, alerts, args.batch)
            sink.close()
            stored = sink.stats["delivered"]
            cleanup = OpenSearchSink(hosts=args.opensearch_url, index=index, **options)._make_client()
            assert isinstance(cleanup, OpenSearchClient)
            cleanup.client.indices.delete(index=index)
            cleanup.client.indices.delete_index_template(name=index)
            cleanup.close()
            print(f"opensearch (https) chunk {args.chunk_size} x {args.concurrency}: {len(alerts) / first:9.0f} alerts/s "
                  f"(re-delivery, all 409: {len(alerts) / again:9.0f} alerts/s); delivered {stored}")
        elif name == "syslog":
            from temporal_siem.sinks.syslog import SyslogSink

            syslog = SyslogSink(host="127.0.0.1", port=10514, protocol="tcp")
            elapsed = timed(syslog, alerts, args.batch)
            syslog.close()
            print(f"syslog tcp: {len(alerts) / elapsed:9.0f} alerts/s")
        elif name == "kafka":
            from temporal_siem.sinks.kafka import KafkaSink

            kafka = KafkaSink(bootstrap_servers="127.0.0.1:9092", topic=f"tsiem-bench-{uuid.uuid4().hex[:8]}")
            elapsed = timed(kafka, alerts, args.batch)
            kafka.close()
            print(f"kafka (acks=all, idempotent): {len(alerts) / elapsed:9.0f} alerts/s")
        else:
            raise SystemExit(f"unknown sink {name!r}")


if __name__ == "__main__":
    main()
