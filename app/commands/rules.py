"""``temporal-siem rules ...``: each rules subcommand is one module listed here."""

from __future__ import annotations

import argparse
import importlib

RULE_COMMAND_MODULES: tuple[str, ...] = (
    "temporal_siem.commands.rules_list",
    "temporal_siem.commands.rules_fields",
    "temporal_siem.commands.rules_health",
    "temporal_siem.commands.rules_validate",
    "temporal_siem.commands.rules_test",
    "temporal_siem.commands.rules_explain",
    "temporal_siem.commands.rules_convert",
    "temporal_siem.commands.rules_coverage",
    "temporal_siem.commands.rules_watch",
)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("rules", help="List, validate, test, explain and convert Sigma rules.")
    rsub = p.add_subparsers(dest="rules_command", required=True, metavar="SUBCOMMAND")
    for name in RULE_COMMAND_MODULES:
        importlib.import_module(name).register(rsub)
