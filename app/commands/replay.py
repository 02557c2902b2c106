"""``temporal-siem replay``: files through parsers and rules, alerts to a file and a table."""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING, Any

from temporal_siem import console
from temporal_siem.commands.alert_views import ALERT_FORMATS, AlertFilter, FilteredDetector, alert_file_sink, parse_time_bound
from temporal_siem.commands.options import add_rule_options
from temporal_siem.detections.base import Detector
from temporal_siem.detections.factory import build_detector
from temporal_siem.detections.sigma.files import LoadError
from temporal_siem.exit_codes import EXIT_ALERT, EXIT_FAILURE, EXIT_OK, EXIT_RULES, EXIT_USAGE
from temporal_siem.ingest.replay import ReplaySource
from temporal_siem.kernel.config import Settings
from temporal_siem.kernel.levels import SEVERITY_BY_LEVEL
from temporal_siem.parsers.router import ParserRouter
from temporal_siem.pipeline import Pipeline, RunStats, collector_for_run, defer_completion
from temporal_siem.settings import load_settings
from temporal_siem.sinks.base import Sink
from temporal_siem.sinks.file import FileSink
from temporal_siem.sinks.lazy_file import LazyFileSink

log = logging.getLogger("temporal_siem.replay")

if TYPE_CHECKING:
    from temporal_siem.report.collect import EventRecorder


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("replay", help="Replay log files through the parsers and Sigma rules.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="Files or directories (recursive), .gz, or - for stdin.")
    add_common_input_options(p)
    add_rule_options(p)
    add_rule_error_option(p)
    p.add_argument("--pipeline", action="append", default=[], metavar="FILE", help="Extra pySigma pipeline YAML (repeatable).")
    p.add_argument("--filters", action="append", default=[], metavar="DIR", help="Sigma meta-filter rules (repeatable).")
    p.add_argument("--alerts", metavar="FILE", help="Write alerts to FILE (JSON Lines unless --alerts-format says otherwise).")
    p.add_argument("--alerts-format", choices=ALERT_FORMATS, default="jsonl",
                   help="jsonl (default), csv (main alert fields) or timeline (time, level, rule, entity, source ip, action, dataset, event ids).")
    p.add_argument("--min-level", choices=list(SEVERITY_BY_LEVEL), metavar="LEVEL", help="Keep only alerts at or above LEVEL.")
    p.add_argument("--from", dest="time_from", metavar="TIME", help="Only events at or after TIME (event time, e.g. 2025-10-01T00:00:00Z).")
    p.add_argument("--to", dest="time_to", metavar="TIME", help="Only events at or before TIME (event time).")
    p.add_argument("--rule-filter", action="append", default=[], metavar="GLOB",
                   help="Keep only alerts whose rule id, name or a tag matches GLOB (case-insensitive; repeatable), e.g. 'attack.t1552*'.")
    p.add_argument("--events", metavar="FILE", help="Also write the normalized events as JSON Lines to FILE.")
    p.add_argument("--quiet", action="store_true", help="No table, no summary.")
    p.add_argument("--summary-json", metavar="FILE", help="Write the run summary as JSON to FILE.")
    p.add_argument("--report", metavar="FILE.html", help="Write a self-contained HTML report of the run (charts, alerts, rule health).")
    p.add_argument("--fail-on-alert", choices=list(SEVERITY_BY_LEVEL), metavar="LEVEL",
                   help="Exit 10 if an alert at or above LEVEL was raised.")
    p.add_argument("--to-kafka", metavar="TOPIC", help="Instead of detecting, produce the raw records to TOPIC "
                   "(brokers and security from ingest.kafka; key = user/namespace when derivable).")
    p.add_argument("--rate", type=float, metavar="N", help="With --to-kafka: at most N records per second.")
    p.add_argument("--workers", type=int, metavar="N", help="Worker processes for parsing and matching "
                   "(default: the number of cores; 1 = this process only). Same alerts either way.")
    p.set_defaults(handler=run)


def add_common_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="YAML config file.")
    p.add_argument("--format", default=None, metavar="auto|NAME", help="Force a parser (default: auto-detect per record).")
    p.add_argument("--keep-original", action="store_true",
                   help="Keep each record as received in event.original (secrets masked).")
    p.add_argument("--dead-letter", metavar="FILE", default=None,
                   help="Where records that cannot be handled go (default: dead-letter.jsonl, created only if needed).")


def add_rule_error_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-rule-errors", action="store_true",
                   help="Run even when a rule fails to load (the summary and the log list them); by default such a run "
                        "stops with exit 3, so a rule you believe runs never silently does not.")


def refuse_rule_errors(errors: list[LoadError], allow: bool) -> bool:
    """Every rule the user named either runs or stops the run: print each load error as ``file:line: reason``
    and return True when the run must stop (exit 3); with ``allow``, log them as warnings and go on."""
    if not errors:
        return False
    for error in errors:
        if allow:  # the run goes on: the log (and the summary) keep the record of what did not run
            log.warning("rule failed to load: %s: %s", error.where, error.error)
        else:
            console.err.print(f"[red]error:[/] {error.where}: {error.error}", highlight=False, soft_wrap=True)
    if allow:
        console.err.print(f"[yellow]warning:[/] {len(errors)} rule load error(s); running without those rules (--allow-rule-errors)")
        return False
    console.err.print(f"[red]error:[/] {len(errors)} rule load error(s): fix them, or pass --allow-rule-errors to run without them")
    return True


SHOWN_RULE_WARNINGS = 5


def announce_rule_warnings(warnings: list[LoadError], rules: int) -> None:
    """Rules (``rules`` of them) that run but cannot match as written (an unresolved placeholder), on stderr as
    ``file:line: reason``: the first few and a count (a corpus with a placeholder folder would flood a terminal),
    where to see them all."""
    if not warnings:
        return
    console.err.print(f"[yellow]warning:[/] {rules} rule(s) loaded with warnings: they run, but part of them matches nothing",
                      highlight=False, soft_wrap=True)
    for warning in warnings[:SHOWN_RULE_WARNINGS]:
        console.err.print(f"  {warning.where}: {warning.error}", highlight=False, soft_wrap=True, markup=False)
    if len(warnings) > SHOWN_RULE_WARNINGS:
        console.err.print(f"  ... and {len(warnings) - SHOWN_RULE_WARNINGS} more: `temporal-siem rules list` shows them all",
                          highlight=False, soft_wrap=True, markup=False)


REPLAY_LATENESS = -1.0


def file_lateness(settings: Settings) -> float:
    """The correlation lateness of a run over files (replay, rules health): unbounded unless the configuration
    sets one. A file is finite, so correlation state can wait for its end and files correlate in event time
    whatever their order (docs/correlation.md); the daemon keeps the configured default (a stream never ends)."""
    correlation = settings.detection.correlation
    if "allowed_lateness_seconds" in correlation.model_fields_set:
        return float(correlation.allowed_lateness_seconds)
    return REPLAY_LATENESS


def file_detection_options(settings: Settings) -> dict[str, Any]:
    """Detector options for a run over files: the configuration with :func:`file_lateness`."""
    options = settings.detection.model_dump()
    options["correlation"]["allowed_lateness_seconds"] = file_lateness(settings)
    return options


def settings_from(args: argparse.Namespace) -> Settings:
    return load_settings(getattr(args, "config", None))


def check_input_paths(paths: list[str]) -> bool:
    """False (after saying why) when a path to read does not exist: a replay of nothing is not a clean replay.
    A directory with no file to read is a warning."""
    from pathlib import Path

    missing = [p for p in paths if p != "-" and not Path(p).exists()]
    if missing:
        console.err.print(f"[red]error:[/] no such file or directory: {', '.join(missing)}", highlight=False)
        return False
    for path in paths:
        if path != "-" and Path(path).is_dir() and not ReplaySource([path]).files():
            console.err.print(f"[yellow]warning:[/] {path}: no files to read in this directory", highlight=False)
    return True


def run(args: argparse.Namespace) -> int:
    if not check_input_paths(args.paths):
        return EXIT_USAGE
    try:
        settings = settings_from(args)
        fmt = args.format or settings.parsing.format
        router = ParserRouter(fmt, settings.parsing.max_record_bytes,
                              keep_original=settings.parsing.keep_original or args.keep_original, geoip=settings.parsing.geoip)
    except (KeyError, ValueError) as exc:
        console.err.print(f"[red]error:[/] {exc}")
        return EXIT_USAGE
    if args.to_kafka:
        from temporal_siem.commands.to_kafka import replay_to_kafka

        return replay_to_kafka(args.paths, args.to_kafka, settings, fmt, rate=args.rate)
    detection = settings.detection
    options = file_detection_options(settings)
    sigma_detector = build_detector(
        [*detection.rules, *args.rules],
        builtin_rules=detection.builtin_rules and not args.no_builtin_rules,
        pipelines=[*detection.pipelines, *args.pipeline],
        filters=[*detection.filters, *args.filters],
        options=options,
    )
    detector: Detector = sigma_detector
    rule_errors = list(sigma_detector.ruleset.errors)
    if refuse_rule_errors(rule_errors, args.allow_rule_errors or detection.allow_rule_errors):
        return EXIT_RULES
    ruleset = sigma_detector.ruleset
    announce_rule_warnings(ruleset.load_warnings(), sum(1 for rule in ruleset.rules if rule.warnings))
    recorder: EventRecorder | None = None
    try:
        start = parse_time_bound(args.time_from) if args.time_from else None
        end = parse_time_bound(args.time_to) if args.time_to else None
    except ValueError as exc:
        console.err.print(f"[red]error:[/] --from/--to: {exc}")
        return EXIT_USAGE
    wanted = AlertFilter(args.min_level, args.rule_filter)
    if wanted.active or start is not None or end is not None:
        detector = FilteredDetector(detector, wanted, start, end)
    if getattr(args, "report", None):
        from temporal_siem.report import EventRecorder

        detector = recorder = EventRecorder(detector)
    source = ReplaySource(args.paths, batch_size=settings.ingest.batch_size, max_record_bytes=settings.parsing.max_record_bytes)
    # The HTML report needs every alert; otherwise keep only what the table and the exit code need, so a
    # replay of millions of events holds bounded memory (the alerts file has them all).
    # With --quiet no table is printed: no rows are kept (nor sorted, nor sent by replay --workers' workers).
    collected = AlertKeeper(keep_all=recorder is not None, top=0 if args.quiet else console.MAX_TABLE_ROWS)
    alert_sinks: list[Sink] = [alert_file_sink(args.alerts, args.alerts_format)] if args.alerts else []
    event_sinks: list[Sink] = [FileSink(path=args.events, append=False)] if args.events else []
    dead_path = args.dead_letter or "dead-letter.jsonl"
    dead_letter: Sink = LazyFileSink(path=dead_path, append=False)
    if "sinks" in settings.model_fields_set:
        # Sinks named in the config (file or environment) receive the replay too: replay into the SIEM.
        from temporal_siem.sinks.factory import build_sinks

        try:
            built = build_sinks(settings.sinks)
        except ValueError as exc:
            console.err.print(f"[red]error:[/] {exc}")
            return EXIT_USAGE
        alert_sinks.extend(built.alerts)
        event_sinks.extend(built.events)
        if built.dead_letter is not None and not args.dead_letter and "dead_letter" in settings.sinks.model_fields_set:
            dead_letter = built.dead_letter
            dead_path = "the configured dead-letter sink"
    total = source.estimate_bytes()
    with console.progress_bar(total, enabled=not args.quiet and total > 20_000_000) as advance:
        chosen = pipeline_class(args, options, detector, event_sinks, collected)
        if chosen is Pipeline and not event_sinks and recorder is None and start is None and end is None:
            defer_completion(router, sigma_detector)  # no events written, no report, no time filter: only alerts read them
        pipeline = chosen(
            source, router, detector, alert_sinks=alert_sinks, event_sinks=event_sinks, dead_letter=dead_letter,
            on_alerts=collected.add, on_batch=lambda stats, batch: advance(source.bytes_read))
        with collector_for_run(freeze=type(pipeline) is Pipeline):  # the parallel pipeline freezes around its fork
            stats = pipeline.run()
    written = dead_letter.written if isinstance(dead_letter, LazyFileSink) else bool(stats.dead_lettered)
    report(args, stats, collected, dead_path if written else None, rule_errors)
    if recorder is not None and not write_html_report(args, stats, collected.alerts, recorder):
        return EXIT_FAILURE
    return exit_code(args, collected)


def pipeline_class(args: argparse.Namespace, options: dict[str, Any], detector: Detector, event_sinks: list[Sink],
                   collected: AlertKeeper | None = None) -> Any:
    """:class:`Pipeline`, or with more than one worker the parallel one (app/parallel.py). One process when the
    run needs every event in one place (--events, --report) or correlation windows close on event time
    (a configured lateness: which events are late depends on the order of all events)."""
    from functools import partial

    from temporal_siem.detections.sigma.detector import SigmaDetector
    from temporal_siem.parallel import ParallelPipeline, default_workers

    workers = args.workers if getattr(args, "workers", None) is not None else default_workers()
    if (workers <= 1 or event_sinks or not isinstance(detector, SigmaDetector)
            or options.get("correlation", {}).get("allowed_lateness_seconds") != -1):
        return Pipeline
    return partial(ParallelPipeline, workers=workers, on_alert_summary=collected.add_summary if collected else None,
                   table_rows=collected.rows_wanted() if collected else console.MAX_TABLE_ROWS)


class AlertKeeper:
    """Alerts seen by a replay: all of them for the HTML report, else the table's top rows and the highest severity."""

    def __init__(self, keep_all: bool, top: int = console.MAX_TABLE_ROWS) -> None:
        self.keep_all = keep_all
        self.top = top
        self.alerts: list[dict[str, Any]] = []
        self.count = 0
        self.max_severity = 0

    def rows_wanted(self) -> int:
        """How many of the most important alerts a batch must hand over (the whole batch when all are kept)."""
        return 1 << 62 if self.keep_all else self.top

    def add(self, alerts: list[dict[str, Any]]) -> None:
        self.count += len(alerts)
        for alert in alerts:
            severity = alert.get("event.severity")
            if isinstance(severity, int) and severity > self.max_severity:
                self.max_severity = severity
        self._keep(alerts)

    def _keep(self, alerts: list[dict[str, Any]]) -> None:
        if not self.keep_all and self.top == 0:
            return
        self.alerts.extend(alerts)
        if not self.keep_all and len(self.alerts) > 4 * self.top:
            self.alerts = console.most_important(self.alerts, self.top)

    def add_summary(self, count: int, shown: list[dict[str, Any]], max_severity: int) -> None:
        """Alerts a ``replay --workers`` worker wrote itself: their number, the rows the table may show
        (the batch's most important) and their highest severity."""
        self.count += count
        self.max_severity = max(self.max_severity, max_severity)
        self._keep(shown)


def report(args: argparse.Namespace, stats: RunStats, alerts: AlertKeeper, dead_path: str | None,
           rule_errors: list[LoadError] | None = None) -> None:
    rule_errors = rule_errors or []
    if args.summary_json:
        import orjson

        summary = stats.as_dict()
        summary["rule_load_errors"] = [e.as_dict() for e in rule_errors]
        with open(args.summary_json, "wb") as handle:
            handle.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    if args.quiet:
        return
    if alerts.count:
        console.out.print(console.alert_table(alerts.alerts, total=alerts.count))
    table = console.summary_table(stats, dead_path)
    if rule_errors:
        table.add_row("[red]rules that did not load[/]", f"[red]{len(rule_errors)}[/]")
        for error in rule_errors[:8]:
            table.add_row(f"  {error.where}", "")
    console.err.print(table)


def write_html_report(args: argparse.Namespace, stats: RunStats, alerts: list[dict[str, Any]], recorder: EventRecorder) -> bool:
    from temporal_siem.report import write_report

    try:
        size = write_report(args.report, alerts, stats.as_dict(), recorder.stats(), recorder.retained, list(args.paths))
    except OSError as exc:
        console.err.print(f"[red]error:[/] cannot write the report {args.report}: {exc}")
        return False
    if not args.quiet:
        console.err.print(f"report: {args.report} ({size / 1e6:.1f} MB)")
    return True


def exit_code(args: argparse.Namespace, alerts: AlertKeeper) -> int:
    if args.fail_on_alert:
        threshold = SEVERITY_BY_LEVEL[args.fail_on_alert]
        if alerts.max_severity >= threshold:
            return EXIT_ALERT
    return EXIT_OK
