"""``run --workers N``: N members of the daemon's consumer group on one machine, started and stopped together.

Why processes: the daemon is CPU-bound Python, so one process uses one core whatever its threads do. The stream
engine already shares work between the members of a consumer group (input partitions for the stateless rules, the
scopes topic's partitions for correlation and enrichment state), so a second core is a second member, exactly as a
second machine would be. What one machine adds is what its members would otherwise share by accident:

* the local state directory: each member keeps its RocksDB state under ``<state_dir>/member-<i>`` (RocksDB takes a
  lock per store, and the state is a cache rebuilt from the changelog topics, so a member may start on any copy);
* the client id: ``<client_id>-<i>``, so the broker's logs and quotas tell the members apart;
* the metrics port: ``port + i`` when a fixed port is configured (0 still picks a free port per member, logged);
* log lines: each member's JSON lines carry ``"member": i``.

The sinks are shared as configured: N members append to one alerts file, whose lines stay whole because each
batch is one append (tests/sinks/test_file.py), and a search or Kafka sink takes N clients as it takes N machines.

Members live and die together: a signal to the supervisor goes to every member (a second one forces them, as it
forces one daemon), and a member that ends on its own (a crash, a refused configuration) makes the supervisor stop
the others and exit with that member's code. A service manager then restarts the whole set, and the group's
rebalance hands the partitions back; nothing is left half-running with a share of the partitions unread.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from temporal_siem.kernel.config import Settings

log = logging.getLogger("temporal_siem.members")


@dataclass(frozen=True)
class Member:
    """Which member of a ``run --workers N`` set this process is (``--member I/N``)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Member:
        index, sep, count = text.partition("/")
        try:
            member = cls(int(index), int(count))
        except ValueError:
            member = None
        if not sep or member is None or not 0 <= member.index < member.count:
            raise ValueError(f"--member wants I/N with 0 <= I < N, not {text!r}")
        return member

    def apply(self, settings: Settings, metrics_port: int | None) -> int | None:
        """Give this member its own state directory and client id (in ``settings``); return its metrics port."""
        kafka = settings.ingest.kafka
        kafka.client_id = f"{kafka.client_id}-{self.index}"
        kafka.stream.state_dir = os.path.join(kafka.stream.state_dir, f"member-{self.index}")
        port = settings.metrics.port if metrics_port is None else metrics_port
        return port + self.index if port > 0 else port

    def tag_logs(self) -> None:
        """Every log line of this process says which member wrote it."""
        index = self.index

        def tag(record: logging.LogRecord) -> bool:
            record.member = index
            return True

        for handler in logging.getLogger().handlers:
            handler.addFilter(tag)


def worker_count(requested: int) -> int:
    """``--workers``: N members; 0 means one per core this process may run on (as ``replay --workers``)."""
    if requested > 0:
        return requested
    from temporal_siem.parallel import default_workers  # only then: replay's worker pool is no part of a daemon

    return default_workers()


def member_command(args: Any, member: Member) -> list[str]:
    """The command line of one member: this ``run`` command line with ``--member`` instead of ``--workers``."""
    command = [sys.executable, "-m", "temporal_siem", "--log-level", args.log_level, "run", "--log-format", args.log_format]
    if args.config:
        command += ["--config", args.config]
    if args.metrics_port is not None:
        command += ["--metrics-port", str(args.metrics_port)]
    if args.allow_rule_errors:
        command.append("--allow-rule-errors")
    return [*command, "--member", f"{member.index}/{member.count}"]


def _die_with_parent(supervisor: int) -> None:
    """In the member, before it runs: the kernel sends it SIGTERM if the supervisor dies (even by SIGKILL), so no
    member outlives its set and goes on reading partitions unsupervised. Linux only; elsewhere a no-op.

    The signal is armed after the fork, so a supervisor that died in between never sends it: the member then has
    another parent than ``supervisor`` (the pid that forked it) and stops itself the same way.

    SIGTERM and SIGINT go back to their default action first: until the exec the child still has the supervisor's
    Python handlers, which only forward a signal, so a SIGTERM in that window (its own, or the kernel's for a
    supervisor killed after the signal was armed) was swallowed and the member outlived its supervisor. The exec
    keeps the default action, as it would have reset a handler."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != supervisor:
        os.kill(os.getpid(), signal.SIGTERM)


class Supervisor:
    """Starts the members, forwards signals to them, and ends when they have all ended."""

    POLL_SECONDS = 0.2

    def __init__(self, commands: list[list[str]]) -> None:
        self.commands = commands
        self.children: list[subprocess.Popen[bytes]] = []
        self.stopping = False

    def _forward(self, signum: int, _frame: Any = None) -> None:
        """A signal to the supervisor (or its own SIGTERM when a member ended): to every member still running."""
        self.stopping = True
        for child in self.children:
            if child.poll() is None:
                try:
                    child.send_signal(signum)
                except ProcessLookupError:
                    pass

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._forward) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for command in self.commands:
                if self.stopping:
                    break
                # Each member gets the signals from here, not from the terminal's process group, so one Ctrl-C
                # reaches it once (a second one forces it, as with one daemon).
                self.children.append(subprocess.Popen(command, start_new_session=True,
                                                      preexec_fn=functools.partial(_die_with_parent, os.getpid())))
            log.info("members started", extra={"members": len(self.children), "pids": [c.pid for c in self.children]})
            return self._wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _wait(self) -> int:
        codes: dict[int, int] = {}
        first_failure: int | None = None
        while len(codes) < len(self.children):
            for index, child in enumerate(self.children):
                if index in codes:
                    continue
                code = child.poll()
                if code is None:
                    continue
                codes[index] = code
                if not self.stopping:
                    # A member that ends on its own takes the others down: a set with a member missing would read
                    # its share of the partitions only after a rebalance, and a service manager restarts it whole.
                    log.error("member %d ended with exit code %d: stopping the other members", index, code,
                              extra={"member": index, "exit_code": code})
                    self._forward(signal.SIGTERM)
                if code != 0 and first_failure is None:
                    first_failure = code
            time.sleep(self.POLL_SECONDS)
        log.info("members stopped", extra={"exit_codes": [codes[i] for i in range(len(self.children))]})
        if first_failure is not None:
            return first_failure if first_failure > 0 else 1  # killed by a signal: a failure, not success
        return 0
