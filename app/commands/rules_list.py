"""``temporal-siem rules list``: the rules that load, with level, logsource and route; files that do not, with why."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from temporal_siem import console
from temporal_siem.commands.options import add_rule_options
from temporal_siem.exit_codes import EXIT_OK, EXIT_RULES


def register(rsub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = rsub.add_parser("list", help="List the rules that load (and the files that do not, with the reason).")
    p.add_argument("dirs", nargs="*", metavar="DIR", help="Rule directories or files, listed beside the shipped pack (as --rules).")
    add_rule_options(p)
    p.add_argument("--pipeline", action="append", default=[], metavar="FILE", help="Extra pySigma pipeline YAML (repeatable).")
    p.add_argument("--filters", action="append", default=[], metavar="DIR", help="Sigma meta-filter rules (repeatable).")
    p.add_argument("--json", action="store_true", help="One JSON document instead of a table.")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from temporal_siem.detections.sigma.pipelines import PipelineError
    from temporal_siem.detections.sigma.ruleset import Ruleset

    try:
        ruleset = Ruleset.from_paths([*args.dirs, *args.rules], builtin_rules=not args.no_builtin_rules, pipelines=args.pipeline,
                                     filters=args.filters)
    except PipelineError as exc:
        console.err.print(f"[red]error:[/] {exc}")
        return EXIT_RULES
    rows: list[dict[str, Any]] = []
    for rule in ruleset.rules:
        logsource = rule.rule.logsource if rule.rule is not None else None
        rows.append({
            "id": rule.id, "name": rule.name or "", "title": rule.meta.title, "level": rule.meta.level,
            "status": rule.meta.status, "type": "rule",
            "logsource": "/".join(v for v in (logsource.product, logsource.category, logsource.service) if v) if logsource else "",
            "route": ",".join(rule.datasets) if rule.datasets else "unrouted (json / unknown datasets)",
            "datasets": list(rule.datasets or []), "alerts": "yes" if rule.generate else "no (feeds a correlation)",
            "file": rule.meta.source, "fields": list(rule.fields), "tags": list(rule.meta.tags),
            "description": rule.meta.description, "author": rule.meta.author, "references": list(rule.meta.references),
            "falsepositives": list(rule.meta.falsepositives), "warnings": list(rule.warnings),
        })
    for corr in ruleset.correlations:
        meta = ruleset.correlation_meta.get(str(corr.id) if corr.id else (corr.name or ""))
        rows.append({
            "id": meta.id if meta else str(corr.id or corr.name), "name": corr.name or "", "title": corr.title,
            "level": meta.level if meta else "", "status": meta.status if meta else "",
            "type": f"correlation ({corr.type.name.lower()})", "logsource": "", "route": "", "datasets": [],
            "alerts": "yes", "file": meta.source if meta else "",
            "rules": [r.reference for r in corr.rules or []], "group_by": list(corr.group_by or []),
            "timespan": corr.timespan.spec if corr.timespan is not None else None,
            "tags": list(meta.tags) if meta else [], "description": meta.description if meta else "",
            "author": meta.author if meta else "", "references": list(meta.references) if meta else [],
            "falsepositives": list(meta.falsepositives) if meta else [], "warnings": [],
        })
    errors = [e.as_dict() for e in ruleset.errors]
    if args.json:
        import orjson

        # Plain stdout (not rich): long lines stay whole, and the output is parseable by any tool.
        sys.stdout.write(orjson.dumps({"rules": rows, "load_errors": errors}, option=orjson.OPT_INDENT_2).decode() + "\n")
        return EXIT_RULES if errors else EXIT_OK
    # The name is what tests, filters and correlations refer to; ids never wrap (a wrapped UUID cannot be copied).
    from rich.table import Table  # here: rich costs every command's start ~60 ms
    table = Table(title="Sigma rules")
    table.add_column("name", overflow="fold")
    table.add_column("id", no_wrap=True, min_width=36)
    for column in ("title", "level", "logsource / type", "route", "file"):
        table.add_column(column, overflow="fold")
    for row in rows:
        kind = row["logsource"] if row["type"] == "rule" else row["type"]
        title = row["title"] + ("" if row["alerts"] == "yes" else " [dim](no own alert)[/]")
        title += "".join(f"\n[yellow]warning:[/] {w}" for w in row["warnings"])
        table.add_row(row["name"] or "-", row["id"], title, row["level"], kind, row["route"], row["file"].rsplit("/", 1)[-1])
    table.caption = f"{len(ruleset.rules)} rules, {len(ruleset.correlations)} correlations, {len(errors)} load errors"
    console.out.print(table)
    for error in errors:
        console.err.print(f"[red]{error['file']}{':' + str(error['line']) if error.get('line') else ''}[/]: {error['error']}")
    return EXIT_RULES if errors else EXIT_OK
