"""``temporal-siem config show``: the effective configuration, secrets masked."""

from __future__ import annotations

import argparse

import yaml
from temporal_siem import console
from temporal_siem.cli import EXIT_OK, EXIT_USAGE
from temporal_siem.kernel.config import load_settings, masked


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("config", help="Configuration.")
    csub = p.add_subparsers(dest="config_command", required=True)
    show = csub.add_parser("show", help="Print the effective config (YAML file + TSIEM_* environment), secrets masked.")
    show.add_argument("--config", metavar="FILE")
    show.set_defaults(handler=run_show)


def run_show(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except (OSError, ValueError) as exc:
        console.err.print(f"[red]error:[/] {exc}")
        return EXIT_USAGE
    print(yaml.safe_dump(masked(settings), sort_keys=False), end="")
    return EXIT_OK
