"""``temporal-siem run --config FILE``: the Kafka consumer-group daemon (see docs/operations.md)."""

from __future__ import annotations

import argparse
import logging
import sys

from temporal_siem.exit_codes import EXIT_RULES, EXIT_USAGE
from temporal_siem.settings import load_settings


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("run", help="Run the detection daemon: consume Kafka topics, detect, deliver to the sinks.")
    p.add_argument("--config", metavar="FILE", help="YAML config file (TSIEM_* environment variables override it).")
    p.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                   help="Port of /metrics and /healthz (overrides metrics.port; 0 picks a free port, logged at start).")
    p.add_argument("--log-format", choices=["json", "text"], default="json", help="Log line format on stderr (default json).")
    p.add_argument("--allow-rule-errors", action="store_true",
                   help="Start even when a rule fails to load (logged); by default the daemon exits 3 naming file:line.")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="Members of the consumer group to run on this machine, one process each (default 1; 0 = one per "
                        "core). Each keeps its state in <state_dir>/member-<i>; a fixed metrics port becomes port+i.")
    p.add_argument("--member", default=None, help=argparse.SUPPRESS)  # I/N: set by the supervisor of --workers N
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from temporal_siem.daemon import Daemon, DaemonConfigError, RuleLoadErrors
    from temporal_siem.members import Member, Supervisor, member_command, worker_count
    from temporal_siem.observability import configure_logging

    if args.workers < 0:
        print(f"error: --workers wants 0 (one per core) or more, not {args.workers}", file=sys.stderr)
        return EXIT_USAGE
    try:
        member = Member.parse(args.member) if args.member else None
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        settings = load_settings(args.config)
    except (OSError, ValueError) as exc:
        print(f"error: {args.config}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(settings.log_level, args.log_format)
    count = worker_count(args.workers) if member is None else 1
    if count > 1:  # the configuration loaded: start the members, each of which loads it again
        return Supervisor([member_command(args, Member(i, count)) for i in range(count)]).run()
    metrics_port = args.metrics_port
    if member is not None:
        member.tag_logs()
        metrics_port = member.apply(settings, metrics_port)
    if args.allow_rule_errors:
        settings.detection.allow_rule_errors = True
    try:
        daemon = Daemon(settings, metrics_port=metrics_port)
    except RuleLoadErrors:
        logging.getLogger("temporal_siem.daemon").error("not starting: rules failed to load (each logged above with file:line); "
                                                        "fix them or pass --allow-rule-errors")
        return EXIT_RULES
    except DaemonConfigError as exc:
        logging.getLogger("temporal_siem.daemon").error("configuration error: %s", exc)
        return EXIT_USAGE
    daemon.install_signal_handlers()
    return daemon.run()
