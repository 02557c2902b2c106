"""``temporal-siem config show``: the effective configuration, secrets masked."""

from __future__ import annotations

import argparse

import yaml

from temporal_siem import console
from temporal_siem.exit_codes import EXIT_OK, EXIT_USAGE
from temporal_siem.kernel.config import Settings, masked
from temporal_siem.settings import load_settings


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
    print(lateness_note(settings))
    return EXIT_OK


def lateness_note(settings: Settings) -> str:
    """The correlation lateness each command really uses, as a YAML comment (the file stays valid YAML):
    runs over files wait for the end of the input unless the configuration sets a lateness."""
    from temporal_siem.commands.replay import file_lateness

    stream = settings.detection.correlation.allowed_lateness_seconds
    files = file_lateness(settings)
    shown = "-1 (until the end of the input)" if files < 0 else f"{files:g}"
    if files == stream:
        return f"# effective detection.correlation.allowed_lateness_seconds: {shown} for run, replay and rules health"
    return (f"# effective detection.correlation.allowed_lateness_seconds: run {stream:g}; replay and rules health {shown} "
            "(set it here to use one value everywhere)")
