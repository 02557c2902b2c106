"""Sink throughput: alerts/s a sink accepts, end to end (encoding, HTTP/TCP, server acknowledgement).

    .venv/bin/python bench/sink_bench.py [--alerts N] [--batch B] [--chunk-size C] [--concurrency K]
                                         [--rounds R] [--refresh-interval 30s]
                                         [--sinks elasticsearch,opensearch,syslog,kafka] [--url URL]

The alerts are the real alerts of a replay of samples/, cloned with fresh ids up to N.

Elasticsearch is measured against peers in the same invocation, interleaved round by round (the machine is
shared, so only ratios and CPU time per alert compare across runs), each run in its own process (so its
peak RSS is its own) on a fresh index with the sink's template:
- ``sink``: ElasticsearchSink, first delivery (every document created);
- ``sink-again``: the same sink re-delivering the same alerts (every document a 409: what a restart costs);
- ``helpers``: the official client's ``helpers.parallel_bulk`` (same chunk size and threads, ``create`` with
  ``_id`` = alert.id) of the same documents, nested before the clock starts: the library way;
- ``ceiling``: the same bulk bodies, encoded before the clock starts, posted with the same concurrency: the
  server's limit, no client work at all.
Each prints alerts/s, the client's CPU µs per alert (all its threads), the local node's CPU µs per alert
(when its pid is known: scripts/services.sh's node on 127.0.0.1:9200, or ``--es-pid``) and peak RSS above the
loaded alerts. The ratios are medians over the rounds. Needs the services up (scripts/services.sh up).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.procfs import cpu_seconds
from temporal_siem.detections.factory import build_detector
from temporal_siem.ingest.replay import ReplaySource
from temporal_siem.parsers.router import ParserRouter
from temporal_siem.pipeline import Pipeline
from temporal_siem.sinks.base import Sink

ROOT = Path(__file__).resolve().parents[1]
ES_VARIANTS = ("sink", "sink-again", "helpers", "ceiling")


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


def rss_mb() -> float:
    """Resident set size now (Linux), MB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def local_es_pid(url: str) -> int | None:
    pidfile = ROOT / ".services" / "elasticsearch" / "default" / "es.pid"
    if url.rstrip("/") not in ("http://127.0.0.1:9200", "http://localhost:9200") or not pidfile.exists():
        return None
    return int(pidfile.read_text().strip())


# -- one measured run, in its own process ---------------------------------------------------------------

def child(args: argparse.Namespace) -> None:
    """Run one variant on a fresh index and print one JSON line: wall, CPU, node CPU, peak RSS above the data."""
    from elasticsearch import Elasticsearch, helpers

    from temporal_siem.kernel.flatten import unflatten
    from temporal_siem.sinks.elasticsearch import ElasticsearchSink

    with open(args.data, "rb") as data:
        alerts: list[dict[str, Any]] = pickle.load(data)
    index = f"tsiem-bench-{uuid.uuid4().hex[:8]}"
    options: dict[str, Any] = {"hosts": args.url, "index": index, "chunk_size": args.chunk_size,
                               "concurrency": args.concurrency, "refresh_interval": args.refresh_interval}
    sink = ElasticsearchSink(**options)
    sink.open()  # installs the template every variant's index gets
    client = Elasticsearch(args.url, request_timeout=120)
    work: Any = None
    if args.child == "helpers":
        work = [{"_op_type": "create", "_index": index, "_id": a["alert.id"], "_source": unflatten(a)} for a in alerts]
    elif args.child == "ceiling":
        items = [sink._encode(i, a) for i, a in enumerate(alerts)]
        work = [b"".join(part for item in chunk for part in (item.action, item.source)) for chunk in sink._chunks(items)]
        del items
    elif args.child == "sink-again":
        timed(sink, alerts, args.batch)  # first delivery, not measured
    baseline = rss_mb()
    pid = args.es_pid
    node_before, cpu_before, started = cpu_seconds(pid), time.process_time(), time.perf_counter()
    if args.child in ("sink", "sink-again"):
        before = sink.stats["delivered"] + sink.stats["duplicates"]
        timed(sink, alerts, args.batch)
        stored_by_client = sink.stats["delivered"] + sink.stats["duplicates"] - before
    elif args.child == "helpers":
        stored_by_client = sum(ok for ok, _ in helpers.parallel_bulk(
            client, work, thread_count=args.concurrency, chunk_size=args.chunk_size, max_chunk_bytes=sink.max_chunk_bytes,
            raise_on_error=True, queue_size=args.concurrency))
    else:
        stored_by_client = post_bodies(client, work, args.concurrency)
    elapsed = time.perf_counter() - started
    cpu, node = time.process_time() - cpu_before, cpu_seconds(pid) - node_before
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
    sink.close()
    client.indices.refresh(index=index)
    stored = client.count(index=index)["count"]
    client.indices.delete(index=index)
    client.indices.delete_index_template(name=index)
    client.close()
    print(json.dumps({"variant": args.child, "alerts": len(alerts), "elapsed": elapsed, "cpu": cpu, "node_cpu": node,
                      "peak_mb": peak, "above_data_mb": max(peak - baseline, 0.0), "stored": stored,
                      "acknowledged": stored_by_client}))


def post_bodies(client: Any, bodies: list[bytes], concurrency: int) -> int:
    """POST pre-encoded _bulk bodies, ``concurrency`` in flight; the count of documents acknowledged."""
    lock = threading.Lock()
    done = [0]

    def post(body: bytes) -> None:
        response = client.bulk(operations=body, filter_path="errors,items.*.status")
        ok = sum(1 for item in response.body["items"] if next(iter(item.values()))["status"] in (201, 409))
        with lock:
            done[0] += ok

    with ThreadPoolExecutor(concurrency) as pool:
        in_flight: deque[Future[None]] = deque()
        for body in bodies:
            if len(in_flight) >= concurrency:
                in_flight.popleft().result()
            in_flight.append(pool.submit(post, body))
        while in_flight:
            in_flight.popleft().result()
    return done[0]


# -- the interleaved comparison -------------------------------------------------------------------------

def compare_elasticsearch(args: argparse.Namespace, alerts: list[dict[str, Any]]) -> None:
    es_pid = args.es_pid if args.es_pid is not None else local_es_pid(args.url)
    runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in ES_VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "alerts.pickle"
        data.write_bytes(pickle.dumps(alerts))
        base = [sys.executable, __file__, "--data", str(data), "--url", args.url, "--batch", str(args.batch),
                "--chunk-size", str(args.chunk_size), "--concurrency", str(args.concurrency)]
        if es_pid is not None:
            base += ["--es-pid", str(es_pid)]
        if args.refresh_interval:
            base += ["--refresh-interval", args.refresh_interval]
        for round_ in range(args.rounds):
            order = ES_VARIANTS if round_ % 2 == 0 else ES_VARIANTS[::-1]  # neither side always runs first
            for variant in order:
                out = subprocess.run([*base, "--child", variant], check=True, capture_output=True, text=True).stdout
                result = json.loads(out.strip().splitlines()[-1])
                runs[variant].append(result)
                n = result["alerts"]
                node = f"node {result['node_cpu'] / n * 1e6:5.0f} µs" if es_pid else "node   ? µs"
                print(f"  round {round_ + 1} {variant:10s} {n / result['elapsed']:8.0f} alerts/s  client {result['cpu'] / n * 1e6:5.1f} µs/alert  "
                      f"{node}/alert  peak RSS {result['peak_mb']:5.0f} MB (+{result['above_data_mb']:.0f} over the data)  "
                      f"stored {result['stored']}", flush=True)
                if result["stored"] != n or result["acknowledged"] != n:
                    raise SystemExit(f"{variant}: {result['stored']} stored, {result['acknowledged']} acknowledged, of {n}")

    def rate(variant: str) -> float:
        return statistics.median(r["alerts"] / r["elapsed"] for r in runs[variant])

    def per_alert(variant: str, key: str) -> float:
        return statistics.median(r[key] / r["alerts"] * 1e6 for r in runs[variant])

    def ratio(variant: str, peer: str) -> float:  # per round, so both sides saw the same neighbours
        return statistics.median(b["elapsed"] / a["elapsed"] for a, b in zip(runs[variant], runs[peer], strict=True))

    print(f"elasticsearch chunk {args.chunk_size} x {args.concurrency}, refresh_interval {args.refresh_interval or 'server default'}, "
          f"median of {args.rounds} (load average {os.getloadavg()[0]:.1f}):")
    for variant in ES_VARIANTS:
        node = f", node {per_alert(variant, 'node_cpu'):.0f} µs/alert" if es_pid else ""
        peak = statistics.median(r["above_data_mb"] for r in runs[variant])
        print(f"  {variant:10s} {rate(variant):8.0f} alerts/s, client {per_alert(variant, 'cpu'):.1f} µs/alert{node}, "
              f"peak RSS +{peak:.0f} MB over the data")
    print(f"  sink / ceiling (pre-encoded bodies): {ratio('sink', 'ceiling'):.2f}x   sink / helpers.parallel_bulk: "
          f"{ratio('sink', 'helpers'):.2f}x   re-delivery / first: {ratio('sink-again', 'sink'):.2f}x")
    if es_pid:
        total = per_alert("sink", "cpu") + per_alert("sink", "node_cpu")
        print(f"  CPU per alert, client + node: {total:.0f} µs: at most {2e6 / total:,.0f} alerts/s on 2 idle cores, "
              f"{1e6 / total:,.0f} per core")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000, help="alerts per pipeline batch (one write call; the pipeline's batch_size is 1000 records)")
    parser.add_argument("--chunk-size", type=int, default=None, help="Elasticsearch: documents per bulk request (default: the sink's)")
    parser.add_argument("--concurrency", type=int, default=None, help="Elasticsearch: bulk requests in flight (default: the sink's)")
    parser.add_argument("--refresh-interval", default=None, help="Elasticsearch: the template's index.refresh_interval")
    parser.add_argument("--rounds", type=int, default=3, help="Elasticsearch: interleaved rounds of every variant")
    parser.add_argument("--sinks", default="elasticsearch")
    parser.add_argument("--url", default="http://127.0.0.1:9200")
    parser.add_argument("--opensearch-url", default="https://127.0.0.1:9210")
    parser.add_argument("--es-pid", type=int, default=None, help="the Elasticsearch node's pid, for its CPU time")
    parser.add_argument("--child", choices=ES_VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    from temporal_siem.sinks.elasticsearch import BulkIndexConfig

    defaults = BulkIndexConfig.model_fields
    args.chunk_size = args.chunk_size or defaults["chunk_size"].default
    args.concurrency = args.concurrency or defaults["concurrency"].default
    if args.child:
        child(args)
        return
    alerts = sample_alerts(args.alerts)
    print(f"{len(alerts)} alerts, batch {args.batch}")
    for name in [s for s in args.sinks.split(",") if s]:
        if name == "elasticsearch":
            compare_elasticsearch(args, alerts)
        elif name == "opensearch":
            # The node of scripts/services/opensearch.sh: HTTPS, its generated CA and user.
            from temporal_siem.sinks.opensearch import OpenSearchClient, OpenSearchSink

            state = ROOT / ".services" / "opensearch"
            auth = dict(line.split("=", 1) for line in (state / "default" / "auth.env").read_text().splitlines() if "=" in line)
            index = f"tsiem-bench-{uuid.uuid4().hex[:8]}"
            options: dict[str, Any] = {"username": auth["OPENSEARCH_USERNAME"], "password": auth["OPENSEARCH_PASSWORD"],
                                       "ca_certs": str(state / "tls" / "ca.pem")}
            sink = OpenSearchSink(hosts=args.opensearch_url, index=index, chunk_size=args.chunk_size, concurrency=args.concurrency,
                                  refresh_interval=args.refresh_interval, **options)
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
