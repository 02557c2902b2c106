"""The daemon on every core: ``run --workers N`` against one member, on the same records.

    .venv/bin/python bench/members_bench.py [--records 60000] [--partitions 4] [--workers 2] [--corpus mixed|windows]
                                            [--sigma SIGMA_CHECKOUT [--rule-set 50|pc]] [--rounds 1]

Each round runs ``temporal-siem run --workers 1`` and ``--workers N`` as real processes, each with a topic of its
own (``--partitions`` partitions, records dealt round-robin, in event-time order; the corpora of
bench/stream_bench.py), a fresh consumer group and state directory: the whole daemon (stateless rules, the scopes
hop, keyed state, alerts to a file). The records are produced once every member has its partitions (start-up and
the group's join are paid once per start, and a member joining late would add a rebalance and a state restore),
and a run ends when every input offset is committed and then every scope message sent until then (the stateful
stage, where correlation and registry alerts come from, runs behind the input).

Printed per run: events/s through the whole daemon (first record produced to the scopes drained) and the input's
own rate, events per CPU second of our processes (supervisor and members, over the same span), the broker's CPU
seconds, the largest process's peak RSS (VmHWM), and the alerts; then the scaling factor (N members / one
member). The alert ids of both runs are compared: with stateless rules (the windows corpus) they must be
identical; on the mixed corpus the stateful rules may differ by a few (records with the same event time that two
partitions deliver in another order, the last minutes still behind the watermark at the stop), and the rules
that differ are shown. The broker runs on the same machine and takes CPU of its own, so on 2 cores the factor is
a floor of what two machines would see. Needs a broker: scripts/services.sh up kafka.
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.procfs import cpu_seconds, descendants, peak_rss_mb  # noqa: E402
from bench.stream_bench import corpus, create_topic, produce  # noqa: E402
from temporal_siem.stream.runtime import scopes_topic_name  # noqa: E402


def in_time_order(messages: list[bytes]) -> list[bytes]:
    """The records sorted by their events' time. Stateful rules decide by event time behind a watermark (the
    grace of ``detection.correlation.allowed_lateness_seconds``); on records far out of order, which of them are
    late depends on how the members' partitions interleave, so one member and two would differ by design."""
    from temporal_siem.kernel.records import Origin, RawRecord
    from temporal_siem.parsers.router import ParserRouter

    router = ParserRouter()

    def when(message: bytes) -> str:
        events = router.parse(RawRecord(message, Origin("bench"))).events
        return min((str(e.get("@timestamp", "")) for e in events), default="")

    return sorted(messages, key=when)


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    finally:
        consumer.close()
    return sum(max(tp.offset, 0) for tp in found)


def end_offsets(bootstrap: str, topic: str, partitions: int) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "members-bench-probe", "enable.auto.commit": False})
    try:
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions))
    finally:
        consumer.close()


def _broker_pid() -> int | None:
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"java" in cmdline and b"kafka.Kafka" in cmdline:
            return int(proc.name)
    return None


def _stable_members(bootstrap: str, group: str) -> int:
    """Members of a stable group that have partitions assigned (0 while it rebalances)."""
    from confluent_kafka import ConsumerGroupState
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    try:
        found = admin.describe_consumer_groups([group])[group].result(timeout=10)
    except Exception:  # not created yet
        return 0
    if found.state != ConsumerGroupState.STABLE:
        return 0
    return sum(1 for member in found.members if member.assignment and member.assignment.topic_partitions)


def run_daemon(bootstrap: str, messages: list[bytes], partitions: int, workers: int, out: Path,
               rules: list[str]) -> dict[str, Any]:
    """One daemon run on a topic of its own: the members join the group on the empty topic first, so the figures
    are the members at work, not the rebalance that a member joining late would add."""
    group = f"members-bench-{workers}-{uuid.uuid4().hex[:6]}"
    topic = f"{group}-in"
    create_topic(bootstrap, topic, partitions)
    alerts = out / f"{group}-alerts.jsonl"
    config = {
        "ingest": {"kafka": {"bootstrap_servers": [bootstrap], "group_id": group, "client_id": group, "topics": [{"name": topic}],
                             "dead_letter_topic": f"{group}-dlq",
                             "stream": {"state_dir": str(out / f"{group}-state"), "commit_interval_seconds": 1.0}}},
        "detection": {"rules": rules, "builtin_rules": not rules},
        "sinks": {"alerts": [{"type": "file", "path": str(alerts)}],
                  "dead_letter": {"type": "file", "path": str(out / f"{group}-dl.jsonl")}},
        "metrics": {"enabled": False}, "log_level": os.environ.get("TSIEM_BENCH_LOG_LEVEL", "WARNING"),
    }
    path = out / f"{group}.yml"
    path.write_text(yaml.safe_dump(config))
    # One member is plain ``run`` (as an older build without --workers runs it: --baseline).
    command = [sys.executable, "-m", "temporal_siem", "run", "--config", str(path)] + (["--workers", str(workers)] if workers != 1 else [])
    proc = subprocess.Popen(command,
                            stderr=open(out / f"{group}.log", "wb"), cwd=str(ROOT))  # noqa: SIM115
    try:
        return _measure(proc, bootstrap, group, topic, messages, partitions, workers, out, alerts)
    finally:
        if proc.poll() is None:  # the bench failed before it stopped the daemon: no members left running
            proc.kill()
            proc.wait()


def _measure(proc: subprocess.Popen[bytes], bootstrap: str, group: str, topic: str, messages: list[bytes], partitions: int,
             workers: int, out: Path, alerts: Path) -> dict[str, Any]:
    records = len(messages)
    deadline = time.monotonic() + 120
    cpu: dict[int, float] = {}
    rss: dict[int, float] = {}

    def sample() -> float:
        for pid in descendants(proc.pid):
            cpu[pid] = max(cpu.get(pid, 0.0), cpu_seconds(pid))
            rss[pid] = max(rss.get(pid, 0.0), peak_rss_mb(pid))
        if proc.poll() is not None:
            raise SystemExit(f"the daemon exited {proc.returncode}: see {out / f'{group}.log'}")
        return sum(cpu.values())

    while _stable_members(bootstrap, group) < workers:
        sample()
        if time.monotonic() > deadline:
            raise SystemExit(f"the group never had {workers} members at work: see {out / f'{group}.log'}")
        time.sleep(0.25)
    broker = _broker_pid()
    broker_cpu = cpu_seconds(broker) if broker else 0.0
    cpu_start = sample()
    started = time.monotonic()
    produce(bootstrap, topic, messages, partitions)
    while committed(bootstrap, group, topic, partitions) < records:
        sample()
        time.sleep(0.25)
    read = time.monotonic()
    # The input is read; the stateful stage may still be working through the scope messages it sent (correlation
    # and registry alerts come from there): the run ends when every scope message sent so far is committed too.
    scopes = scopes_topic_name(group)
    sent = end_offsets(bootstrap, scopes, partitions)
    while committed(bootstrap, group, scopes, partitions) < sent:
        sample()
        time.sleep(0.25)
    done = time.monotonic()
    cpu_used = sample() - cpu_start
    broker_used = (cpu_seconds(broker) - broker_cpu) if broker else float("nan")
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=120)
    if code != 0:
        raise SystemExit(f"the daemon exited {code} on SIGTERM: see {out / f'{group}.log'}")
    docs = [orjson.loads(line) for line in alerts.read_bytes().splitlines() if line.strip()] if alerts.exists() else []
    ids = {doc["alert"]["id"] for doc in docs}
    rules = collections.Counter(doc.get("rule", {}).get("name") for doc in {doc["alert"]["id"]: doc for doc in docs}.values())
    return {"rate": records / (done - started), "input_rate": records / (read - started), "alerts": ids, "rules": rules,
            "rss_mb": max(rss.values(), default=0.0), "cpu_rate": records / max(cpu_used, 1e-9), "broker_cpu": broker_used}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=60_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--corpus", choices=["mixed", "windows"], default="mixed")
    parser.add_argument("--sigma", metavar="SIGMA_CHECKOUT", help="windows corpus: SigmaHQ rules (see --rule-set)")
    parser.add_argument("--rule-set", choices=["50", "pc"], default="50",
                        help="with --sigma: the first 50 process_creation rules, or all 1,433 (bench/peer_bench.py's sets)")
    parser.add_argument("--bootstrap", default=os.environ.get("TSIEM_TEST_KAFKA", "127.0.0.1:9092"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        rules: list[str] = []
        if args.corpus == "windows" and args.sigma:
            from bench.peer_bench import rule_sets

            rules = [str(rule_sets(Path(args.sigma), [args.rule_set], out)[args.rule_set])]
        messages = in_time_order(corpus(args.corpus, args.records, 7))
        print(f"{args.records:,} {args.corpus} records in {args.partitions} partitions; "
              f"{f'SigmaHQ rule set {args.rule_set}' if rules else 'the shipped rule pack'}")
        ratios = []
        failures = 0
        for round_ in range(args.rounds):
            runs = {}
            for workers in (1, args.workers):
                runs[workers] = run = run_daemon(args.bootstrap, messages, args.partitions, workers, out, rules)
                print(f"  round {round_ + 1}, --workers {workers}: {run['rate']:,.0f} events/s through the whole daemon "
                      f"(input read at {run['input_rate']:,.0f}/s); {run['cpu_rate']:,.0f} events per CPU second of our "
                      f"processes; broker CPU {run['broker_cpu']:.1f} s; largest process {run['rss_mb']:.0f} MB; "
                      f"{len(run['alerts']):,} alerts")
            ratios.append(runs[args.workers]["rate"] / runs[1]["rate"])
            same = runs[1]["alerts"] == runs[args.workers]["alerts"]
            print(f"  scaling ({args.workers} members / 1, whole daemon): {ratios[-1]:.2f}x; alerts {'identical' if same else 'differ:'}")
            if not same:
                # Stateful rules decide behind an event-time watermark: records with the same event time that two
                # partitions deliver in another order, or the last minutes still behind the watermark when the run
                # stops, can change a registry's or a window's answer between any two runs, one member or several.
                one, many = runs[1]["rules"], runs[args.workers]["rules"]
                for rule in sorted(set(one) | set(many), key=str):
                    if one[rule] != many[rule]:
                        print(f"    {rule}: {one[rule]} with one member, {many[rule]} with {args.workers}")
                failures += 0 if args.corpus == "mixed" else 1  # stateless rules only: the same alerts, always
        if len(ratios) > 1:
            print(f"median scaling: {sorted(ratios)[len(ratios) // 2]:.2f}x")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
