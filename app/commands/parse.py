"""``temporal-siem parse``: normalized events as JSON Lines, no detection."""

from __future__ import annotations

import argparse
from typing import Any

from temporal_siem import console
from temporal_siem.commands.replay import add_common_input_options, settings_from
from temporal_siem.detections.factory import NullDetector
from temporal_siem.exit_codes import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from temporal_siem.ingest.replay import ReplaySource
from temporal_siem.kernel.flatten import unflatten
from temporal_siem.parsers.router import ParserRouter
from temporal_siem.pipeline import Pipeline
from temporal_siem.sinks.base import Sink
from temporal_siem.sinks.file import FileSink
from temporal_siem.sinks.lazy_file import LazyFileSink


class _ValidatingSink(Sink):
    """Checks every event against the pydantic schema; failures are counted and reported."""

    name = "validate"

    def __init__(self) -> None:
        self.failures: list[str] = []

    def write(self, documents: list[dict[str, Any]]) -> None:
        from pydantic import ValidationError

        from temporal_siem.kernel.schema import validate_event

        for doc in documents:
            try:
                validate_event(unflatten(doc))
            except ValidationError as exc:
                self.failures.append(f"{doc.get('event.dataset')} {doc.get('event.id')}: {exc.errors()[0]}")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("parse", help="Normalize log files to ECS JSON Lines.")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--out", required=True, metavar="FILE", help="Output JSON Lines (- for stdout).")
    p.add_argument("--validate", action="store_true", help="Validate every event against the schema models.")
    add_common_input_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from(args)
        router = ParserRouter(args.format or settings.parsing.format, settings.parsing.max_record_bytes,
                              keep_original=settings.parsing.keep_original or args.keep_original, geoip=settings.parsing.geoip)
    except (KeyError, ValueError) as exc:
        console.err.print(f"[red]error:[/] {exc}")
        return EXIT_USAGE
    source = ReplaySource(args.paths, batch_size=settings.ingest.batch_size, max_record_bytes=settings.parsing.max_record_bytes)
    dead_path = args.dead_letter or "dead-letter.jsonl"
    dead_letter = LazyFileSink(path=dead_path, append=False)
    event_sinks: list[Sink] = [FileSink(path=args.out, append=False)]
    validator = _ValidatingSink() if args.validate else None
    if validator:
        event_sinks.append(validator)
    stats = Pipeline(source, router, NullDetector(), alert_sinks=[], event_sinks=event_sinks, dead_letter=dead_letter).run()
    if args.out != "-":
        console.err.print(console.summary_table(stats, dead_path if dead_letter.written else None))
    if validator and validator.failures:
        for line in validator.failures[:20]:
            console.err.print(f"[red]schema:[/] {line}")
        return EXIT_FAILURE
    return EXIT_OK
