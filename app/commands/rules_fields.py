"""``temporal-siem rules fields [DATASET]``: the fields each dataset really has, for rule authors and validation.

The catalog (``detections/pipelines/field_catalog.json``) is generated, not written: every file of ``samples/``
goes through the real parsers and the enrichers, and the flat field names of the events are collected per
``event.dataset``. So it lists what the parsers actually produce (vendor namespaces included), and a test
regenerates it and compares, so it cannot drift from the parsers. ``rules validate`` uses it with the schema
(kernel/schema.py): a field in neither is an error when a known name is close (``temporal.target.expiry_tme`` ->
``temporal.target.expiry_time``), and a warning when it is only absent from the samples.

Regenerate after changing a parser or the samples::

    temporal-siem rules fields --generate samples/ > detections/pipelines/field_catalog.json
"""

from __future__ import annotations

import argparse
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

from temporal_siem.exit_codes import EXIT_OK, EXIT_USAGE


def _catalog_path() -> Path:
    """The installed catalog (package data beside the built-in pipeline)."""
    from temporal_siem.detections.sigma.pipelines import BUILTIN_PIPELINE

    return Path(BUILTIN_PIPELINE).with_name("field_catalog.json")


def build_catalog(paths: list[str]) -> dict[str, list[str]]:
    """dataset -> sorted field names, from the logs under ``paths`` through the parsers and the enrichers."""
    from temporal_siem.detections.enrichment import build_enrichers
    from temporal_siem.ingest.replay import ReplaySource
    from temporal_siem.parsers.router import ParserRouter

    router = ParserRouter()
    enrichers = build_enrichers()
    fields: dict[str, set[str]] = {}
    source = ReplaySource(paths, batch_size=500)
    for batch in source.batches():
        events: list[dict[str, Any]] = []
        for item in batch:
            if hasattr(item, "data"):
                events.extend(router.parse(item).events)
        for enricher in enrichers:
            enricher.enrich(events)
        for event in events:
            dataset = event.get("event.dataset")
            if isinstance(dataset, str):
                fields.setdefault(dataset, set()).update(k for k, v in event.items() if v is not None and k != "event.original")
    return {dataset: sorted(names) for dataset, names in sorted(fields.items())}


@lru_cache(maxsize=1)
def load_catalog() -> dict[str, frozenset[str]]:
    """The generated catalog; empty when it is missing (validation then relies on the schema alone)."""
    try:
        data = orjson.loads(_catalog_path().read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return {str(k): frozenset(v) for k, v in data.items()}


def dataset_fields(patterns: tuple[str, ...] | None) -> frozenset[str]:
    """Every field the catalog has for the datasets a rule is routed to (``google_workspace.*`` patterns too)."""
    from temporal_siem.detections.sigma.pipelines import dataset_matches

    if not patterns:
        return frozenset()
    found: set[str] = set()
    for dataset, names in load_catalog().items():
        if any(dataset_matches(p, dataset) for p in patterns):
            found |= names
    return frozenset(found)


def register(rsub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = rsub.add_parser("fields", help="The fields each dataset has (generated from samples/ through the parsers).")
    p.add_argument("dataset", nargs="?", metavar="DATASET", help="One dataset (event.dataset; * at the end allowed).")
    p.add_argument("--json", action="store_true", help="JSON: {dataset: [fields]}.")
    p.add_argument("--schema", action="store_true", help="Also list the schema's fields (kernel/schema.py) a rule may use.")
    p.add_argument("--generate", nargs="+", metavar="PATH",
                   help="Build the catalog from these logs (files or directories) and print it as JSON.")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.generate:
        sys.stdout.write(orjson.dumps(build_catalog(args.generate), option=orjson.OPT_INDENT_2).decode() + "\n")
        return EXIT_OK
    catalog = load_catalog()
    if args.dataset:
        from temporal_siem.detections.sigma.pipelines import dataset_matches

        chosen = {d: names for d, names in catalog.items() if dataset_matches(args.dataset, d)}
        if not chosen:
            from temporal_siem.detections.sigma.locate import did_you_mean

            sys.stderr.write(f"no dataset {args.dataset!r} in the catalog{did_you_mean(args.dataset, catalog)}; "
                             f"known: {', '.join(sorted(catalog))}\n")
            return EXIT_USAGE
    else:
        chosen = dict(catalog)
    doc: dict[str, list[str]] = {d: sorted(names) for d, names in sorted(chosen.items())}
    if args.schema:
        from temporal_siem.commands.rules_validate import schema_fields

        doc["(schema)"] = sorted(schema_fields())
    if args.json:
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
        return EXIT_OK
    out: list[str] = []
    for dataset, names in doc.items():
        out.append(f"{dataset} ({len(names)} fields)")
        out.extend(f"  {name}" for name in names)
    sys.stdout.write("\n".join(out) + "\n")
    return EXIT_OK
