"""``temporal-siem rules health PATH...``: replay logs quietly, then show per rule what it saw.

For each rule: events routed to it (its logsource's datasets), evaluated (after candidate selection),
matched, and the fields it reads that never appeared in any routed event. A rule whose fields never
appear cannot fire: usually a field-name mismatch between the rule and the parser (see docs/engine.md).
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any, cast

from temporal_siem import console
from temporal_siem.commands.options import add_rule_options
from temporal_siem.detections.coverage import ActionTally, DatasetCoverage, coverage
from temporal_siem.exit_codes import EXIT_OK, EXIT_RULES, EXIT_USAGE
from temporal_siem.sinks.base import Sink


class _CountingSink(Sink):
    """Dead letters are only counted here: health is about rules, not records."""

    name = "health_dead_letters"

    def __init__(self) -> None:
        self.count = 0
        self.reasons: Counter[str] = Counter()

    def write(self, documents: list[dict[str, Any]]) -> None:
        self.count += len(documents)
        self.reasons.update(str(d.get("reason", "?")) for d in documents)

    def summary(self) -> str:
        """``N records dead-lettered`` with the reasons, so a count never comes without its why."""
        if not self.count:
            return "0 records dead-lettered"
        return f"{self.count} records dead-lettered (" + ", ".join(f"{r}: {n}" for r, n in self.reasons.most_common(5)) + ")"


def register(rsub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = rsub.add_parser("health", help="Replay logs and report per rule: routed, evaluated, matched, missing fields.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="Log files or directories to replay (.gz, - for stdin).")
    add_rule_options(p)
    p.add_argument("--pipeline", action="append", default=[], metavar="FILE", help="Extra pySigma pipeline YAML (repeatable).")
    p.add_argument("--filters", action="append", default=[], metavar="DIR", help="Sigma meta-filter rules (repeatable).")
    p.add_argument("--format", default=None, metavar="auto|NAME", help="Force a parser.")
    p.add_argument("--config", metavar="FILE", help="YAML config file (its detection and parsing settings apply).")
    p.add_argument("--all", action="store_true", help="Also list rules no event was routed to.")
    p.add_argument("--json", action="store_true", help="Print the detector's stats() as JSON.")
    p.add_argument("--coverage", action="store_true",
                   help="Per dataset: deletion and configuration actions on keys, secrets, certificates and identities "
                        "seen in the logs or known for the parser, and the rules that select each (uncovered ones listed).")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from temporal_siem.commands.replay import check_input_paths, file_detection_options
    from temporal_siem.detections.factory import build_detector
    from temporal_siem.detections.sigma.pipelines import PipelineError
    from temporal_siem.ingest.replay import ReplaySource
    from temporal_siem.parsers.router import ParserRouter
    from temporal_siem.pipeline import Pipeline
    from temporal_siem.settings import load_settings

    if not check_input_paths(args.paths):
        return EXIT_USAGE
    try:
        settings = load_settings(args.config)
        detection = settings.detection
        router = ParserRouter(args.format or settings.parsing.format, settings.parsing.max_record_bytes)
        detector = build_detector([*detection.rules, *args.rules],
                                  builtin_rules=detection.builtin_rules and not args.no_builtin_rules,
                                  pipelines=[*detection.pipelines, *args.pipeline], filters=[*detection.filters, *args.filters],
                                  options=file_detection_options(settings),
                                  use_cache=not args.coverage)  # coverage reads the rules' detections: no cached rules
    except (KeyError, ValueError, OSError, PipelineError) as exc:
        console.err.print(f"[red]error:[/] {exc}")
        return EXIT_USAGE
    dead = _CountingSink()
    source = ReplaySource(args.paths, batch_size=settings.ingest.batch_size, max_record_bytes=settings.parsing.max_record_bytes)
    tally = ActionTally() if args.coverage else None
    routing = cast("ParserRouter", _TallyingRouter(router, tally)) if tally else router  # what Pipeline calls
    Pipeline(source, routing, detector, alert_sinks=[], dead_letter=dead).run()
    stats = detector.stats()
    rows = coverage(detector.ruleset, tally.seen) if tally is not None else None
    if args.json:
        import orjson

        if rows is not None:
            stats = {**stats, "coverage": [row.as_dict() for row in rows]}
        console.out.print_json(orjson.dumps(stats).decode())
        return EXIT_OK
    if rows is not None:
        _print_coverage(rows)
    rules: dict[str, dict[str, Any]] = stats.get("rules", {})
    from rich.table import Table  # here: rich costs every command's start ~60 ms
    table = Table(title=f"Rule health over {stats.get('events', 0)} events")
    for column in ("rule", "level", "routed", "evaluated", "matched", "fields never seen"):
        table.add_column(column, overflow="fold", justify="right" if column in ("routed", "evaluated", "matched") else "left")
    blind = 0
    for rule_id, row in sorted(rules.items(), key=lambda kv: (-kv[1]["routed"], kv[1]["title"])):
        if not row["routed"] and not args.all:
            continue
        missing = row["missing_fields"]
        if missing and len(missing) == len(_fields(detector, rule_id)):
            blind += 1
            flag = "[red]" + ", ".join(missing) + " (none of its fields: cannot fire)[/]"
        else:
            flag = "[yellow]" + ", ".join(missing) + "[/]" if missing else ""
        table.add_row(f"{row['title']}\n[dim]{rule_id}[/]", row["level"], str(row["routed"]), str(row["evaluated"]),
                      str(row["matched"]), flag)
    unrouted = sum(1 for row in rules.values() if not row["routed"])
    table.caption = (f"{len(rules)} rules; {unrouted} saw no event; {blind} never saw any field they read; "
                     f"{dead.summary()}; correlation lateness {_lateness(settings)}; mean candidates/event {stats.get('candidates_mean', 0):.1f}")
    console.out.print(table)
    for error in stats.get("load_errors", []):
        console.err.print(f"[red]{error['file']}{':' + str(error['line']) if error.get('line') else ''}[/]: {error['error']}")
    return EXIT_RULES if stats.get("load_errors") else EXIT_OK


def _lateness(settings: Any) -> str:
    from temporal_siem.commands.replay import file_lateness

    value = file_lateness(settings)
    return "until the end of the input" if value < 0 else f"{value:g} s"


class _TallyingRouter:
    """The parser router as the pipeline uses it (``parse_batch``), counting the sensitive actions of what it
    parses (for --coverage). Nothing else is handed through: a pipeline that called another router method would
    fail here loudly instead of parsing untallied."""

    def __init__(self, router: Any, tally: ActionTally) -> None:
        self._router = router
        self._tally = tally

    def parse_batch(self, records: Any, result: Any) -> int:
        start = len(result.events)
        parsed: int = self._router.parse_batch(records, result)
        for event in result.events[start:]:
            self._tally.observe(event)
        return parsed


def _print_coverage(rows: list[DatasetCoverage]) -> None:
    from rich.table import Table  # here: rich costs every command's start ~60 ms
    table = Table(title="Coverage of deletion and configuration actions (keys, secrets, certificates, identities)")
    for column in ("dataset", "actions seen / known", "covered", "uncovered"):
        table.add_column(column, overflow="fold")
    for row in rows:
        seen = sum(1 for n in row.actions.values() if n)
        table.add_row(row.dataset, f"{seen} / {len(row.actions)}", ", ".join(sorted(row.covered)) or "-",
                      "[red]" + ", ".join(row.uncovered) + "[/]" if row.uncovered else "-")
    console.out.print(table)


def _fields(detector: Any, rule_id: str) -> tuple[str, ...]:
    ruleset = getattr(detector, "ruleset", None)
    for rule in ruleset.rules if ruleset is not None else ():
        if rule.id == rule_id:
            return tuple(rule.fields)
    return ()
