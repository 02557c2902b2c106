"""``run --workers N``: N members of one consumer group on one machine, against a real broker.

What the set must do that one daemon does: every alert once in the shared alerts file (whole lines, never two
members' bytes interleaved), correlations whose events two members read, and a clean stop on one signal; and what
one daemon cannot get wrong: members that share the machine do not share a state directory or a metrics port, and
a member that dies takes the set down instead of leaving its partitions unread.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaProducer

from temporal_siem.kernel.config import load_settings
from temporal_siem.members import Member, Supervisor, member_command, worker_count
from tests.daemon.helpers import (
    MASS_DELETE_RULE,
    SAML_RULE,
    Daemon,
    alert_ids,
    all_committed,
    create_topic,
    expected_alert_ids,
    mass_delete_events,
    okta_workload,
    produce,
    unique,
    wait_for,
)


def _assignments(bootstrap: str, group: str) -> dict[str, set[tuple[str, int]]]:
    """Each member's (client id's) assigned partitions, once the group is stable; {} while it rebalances."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        info: Any = admin.describe_groups([group])[group]
    finally:
        admin.close()
    if info.get("group_state") != "Stable":
        return {}
    return {member["client_id"]: {(assigned["topic"], partition)
                                  for assigned in (member.get("member_assignment") or {}).get("assigned_partitions", [])
                                  for partition in assigned["partitions"]}
            for member in info.get("members") or []}


def _both_members_read(bootstrap: str, group: str, topics: list[str]) -> Callable[[], bool]:
    """Two members, each assigned partitions of every input topic: before that, the first member to join reads
    them all, and a test would show one process doing the work of two."""
    def check() -> bool:
        found = _assignments(bootstrap, group)
        return len(found) == 2 and all({t for t, _ in parts} >= set(topics) for parts in found.values())
    return check


def _lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSON Lines file, failing on any that is not one whole document."""
    docs = []
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        try:
            docs.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raise AssertionError(f"{path.name}:{number} is not one JSON document (members' writes interleaved?): {line[:200]!r}") from exc
    return docs


@pytest.mark.services
def test_two_members_share_the_partitions_and_the_state(kafka_bootstrap: str, tmp_path: Path) -> None:
    okta_topic, delete_topic, group = unique("members-okta"), unique("members-delete"), unique("members-group")
    create_topic(kafka_bootstrap, okta_topic, 4)
    create_topic(kafka_bootstrap, delete_topic, 4)
    tag = unique("m").replace("-", "")
    # Dealt over the four partitions, so both members (each owns at least one of them, checked below) read some
    # of them: the correlation fires only if the scopes topic brings both shares to the member owning the actor.
    deletes = mass_delete_events(5, tag)
    workload = okta_workload(400, seed=tag)
    daemon = Daemon.configure(tmp_path, "members", kafka_bootstrap, group, [{"name": okta_topic}, {"name": delete_topic}],
                              extra={"detection": {"correlation": {"allowed_lateness_seconds": 0}}})
    daemon.start("--workers", "2")
    try:
        wait_for(_both_members_read(kafka_bootstrap, group, [okta_topic, delete_topic]), 60,
                 "two members, each reading both topics", detail=daemon.tail)
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        try:
            for i, (key, value) in enumerate(deletes):
                producer.send(delete_topic, key=key, value=value, partition=i % 4)
            producer.flush(timeout=60)
        finally:
            producer.close()
        wait_for(all_committed(kafka_bootstrap, group, delete_topic), 60, "every delete offset committed", detail=daemon.tail)
        # Then the Okta records. They are months later in event time: produced first, they could move the
        # watermark past the deletions before every member had read its share of them (the deletions would be
        # late); produced now, they move it past the deletions' window, which closes it.
        produce(kafka_bootstrap, okta_topic, workload)
        wait_for(all_committed(kafka_bootstrap, group, okta_topic), 90, "every okta offset committed", detail=daemon.tail)
        wait_for(lambda: bool(alert_ids(_lines(daemon.alerts), MASS_DELETE_RULE)), 60,
                 "the mass-deletion correlation over both members' events", detail=daemon.tail)
        assert daemon.proc is not None and daemon.proc.poll() is None
    finally:
        code = daemon.stop(signal.SIGTERM)
    assert code == 0, daemon.tail()
    alerts = _lines(daemon.alerts)
    expected = expected_alert_ids(workload, SAML_RULE)
    assert len(expected) == 200
    saml = alert_ids(alerts, SAML_RULE)
    assert set(saml) == expected
    assert len(saml) == len(expected), "each alert once: no member read another's partitions"
    assert len(set(alert_ids(alerts, MASS_DELETE_RULE))) == 1
    logs = daemon.log_lines()
    read = {line["member"]: line["summary"]["records"] for line in logs if line.get("msg") == "stopped"}
    assert sorted(read) == [0, 1] and all(read.values()), f"both members read records: {read}"
    assert sum(read.values()) == len(workload) + len(deletes)
    ports = {line["metrics_port"] for line in logs if "metrics_port" in line}
    assert len(ports) == 2, "port 0: each member picked its own free port"
    state = tmp_path / "members-state"
    assert sorted(p.name for p in state.iterdir()) == ["member-0", "member-1"]


@pytest.mark.services
def test_a_member_that_dies_stops_the_set(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic, group = unique("members-die"), unique("members-die-group")
    create_topic(kafka_bootstrap, topic, 2)
    daemon = Daemon.configure(tmp_path, "dies", kafka_bootstrap, group, [{"name": topic}])
    daemon.start("--workers", "2")
    try:
        wait_for(_both_members_read(kafka_bootstrap, group, [topic]), 60, "two members in the consumer group", detail=daemon.tail)
        pids = next(line["pids"] for line in daemon.log_lines() if line.get("msg") == "members started")
        os.kill(pids[1], signal.SIGKILL)
        assert daemon.proc is not None
        code = daemon.proc.wait(timeout=60)
    finally:
        daemon.ensure_stopped()
    assert code != 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert any(line.get("msg", "").startswith("member 1 ended") for line in daemon.log_lines()), daemon.tail()


def test_no_member_outlives_its_supervisor(tmp_path: Path) -> None:
    """A supervisor killed outright (SIGKILL: no handler runs) still takes its members with it."""
    sleeper = ["python3", "-c", "import time; time.sleep(120)"]
    script = tmp_path / "supervise.py"
    script.write_text("import sys\nfrom temporal_siem.members import Supervisor\n"
                      f"sys.exit(Supervisor([{sleeper!r}, {sleeper!r}]).run())\n")
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, str(script)])
    try:
        children: list[int] = []

        def found() -> bool:
            children[:] = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
            return len(children) == 2
        wait_for(found, 20, "two members started")
        proc.kill()
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        alive = children
        while alive and time.monotonic() < deadline:
            alive = [pid for pid in alive if Path(f"/proc/{pid}").exists() and "Z" not in _state(pid)]
            time.sleep(0.1)
        assert not alive, f"members {alive} outlived their supervisor"
    finally:
        if proc.poll() is None:
            proc.kill()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


def test_member_settings_are_their_own(tmp_path: Path) -> None:
    config = tmp_path / "c.yml"
    config.write_text("ingest: {kafka: {client_id: siem, stream: {state_dir: /var/lib/siem}}}\nmetrics: {port: 9300}\n")
    ports = []
    for index in range(3):
        settings = load_settings(config)
        ports.append(Member(index, 3).apply(settings, None))
        assert settings.ingest.kafka.client_id == f"siem-{index}"
        assert settings.ingest.kafka.stream.state_dir == os.path.join("/var/lib/siem", f"member-{index}")
    assert ports == [9300, 9301, 9302]
    assert Member(1, 2).apply(load_settings(config), 0) == 0, "port 0 stays 0: a free port per member"
    assert Member(1, 2).apply(load_settings(config), 9400) == 9401, "--metrics-port is the base too"


@pytest.mark.parametrize("text", ["2/2", "-1/2", "x/2", "1", "1/0", ""])
def test_bad_member_specs_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="--member"):
        Member.parse(text)


def test_worker_count() -> None:
    assert worker_count(3) == 3
    assert worker_count(0) == len(os.sched_getaffinity(0))


def test_member_command_carries_the_options() -> None:
    class Args:
        log_level, log_format, config, metrics_port, allow_rule_errors = "INFO", "text", "c.yml", 9500, True

    command = member_command(Args(), Member(1, 2))
    assert command[1:] == ["-m", "temporal_siem", "--log-level", "INFO", "run", "--log-format", "text", "--config", "c.yml",
                           "--metrics-port", "9500", "--allow-rule-errors", "--member", "1/2"]


def test_supervisor_exit_code_is_the_first_failure(tmp_path: Path) -> None:
    ok = ["python3", "-c", "import time; time.sleep(60)"]
    fails = ["python3", "-c", "import sys; sys.exit(7)"]
    started = time.monotonic()
    assert Supervisor([ok, fails]).run() == 7
    assert time.monotonic() - started < 30, "the failing member stopped the sleeping one"
    assert Supervisor([["python3", "-c", "pass"]]).run() == 0


def test_a_member_whose_supervisor_died_before_it_armed_the_signal_stops() -> None:
    """The death signal is armed in the child after fork: a supervisor killed in between is not signalled to it (the
    race test_no_member_outlives_its_supervisor hit once in CI). The child then finds its parent is not the
    supervisor that forked it and stops itself. Here the "supervisor" is a pid that is not the child's parent."""
    import functools
    import subprocess

    from temporal_siem.members import _die_with_parent

    not_the_parent = os.getpid() + 1_000_000  # no process: as if the supervisor was gone and the child reparented
    proc = subprocess.Popen(["python3", "-c", "import time; time.sleep(60)"],
                            preexec_fn=functools.partial(_die_with_parent, not_the_parent))
    try:
        assert proc.wait(timeout=10) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_member_stops_on_its_death_signal_even_with_the_supervisors_handler_inherited() -> None:
    """The supervisor forwards SIGTERM with a Python handler, and a forked child runs ``_die_with_parent`` with that
    handler still installed (exec resets it only afterwards). A SIGTERM there, its own (supervisor already gone) or
    the kernel's (supervisor killed after the signal was armed, before the exec), ran the inherited handler instead
    of ending the child, which then exec'd and outlived its supervisor: how test_no_member_outlives_its_supervisor
    failed in a fresh-clone CI run. The child must die of the signal."""
    from temporal_siem.members import _die_with_parent

    previous = signal.signal(signal.SIGTERM, lambda *_: None)  # what Supervisor.run installs before it forks
    try:
        pid = os.fork()
        if pid == 0:  # the member between fork and exec
            try:
                _die_with_parent(os.getpid() + 1_000_000)  # not its parent: as if the supervisor had died
                time.sleep(0.5)  # a Python-level handler runs here, and the child would go on
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM, status
