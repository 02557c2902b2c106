"""``temporal-siem rules list``: the rules that would load, with level and logsource."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml
from rich.table import Table

from temporal_siem import console
from temporal_siem.cli import EXIT_OK

BUILTIN_RULES = Path(__file__).resolve().parents[2] / "detections" / "rules"


def register(rsub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = rsub.add_parser("list", help="List rules.")
    p.add_argument("dirs", nargs="*", metavar="DIR", help="Rule directories (default: the shipped rules).")
    p.add_argument("--no-builtin-rules", action="store_true")
    p.set_defaults(handler=run)


def rule_files(dirs: list[str], builtin: bool) -> list[Path]:
    roots = ([BUILTIN_RULES] if builtin else []) + [Path(d) for d in dirs]
    files: list[Path] = []
    for root in roots:
        files.extend(sorted(root.rglob("*.yml")) if root.is_dir() else [root])
        files.extend(sorted(root.rglob("*.yaml")) if root.is_dir() else [])
    return files


def run(args: argparse.Namespace) -> int:
    table = Table(title="Sigma rules")
    for column in ("id", "title", "level", "logsource", "file"):
        table.add_column(column, overflow="fold")
    count = 0
    for path in rule_files(args.dirs, not args.no_builtin_rules):
        try:
            docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
            console.err.print(f"[red]{path}[/]: {exc}")
            continue
        for doc in docs:
            if not isinstance(doc, dict) or "title" not in doc:
                continue
            logsource = doc.get("logsource") or {}
            kind = "correlation" if "correlation" in doc else "/".join(str(v) for v in logsource.values())
            table.add_row(str(doc.get("id", "")), str(doc["title"]), str(doc.get("level", "")), kind, path.name)
            count += 1
    table.caption = f"{count} rules"
    console.out.print(table)
    return EXIT_OK
