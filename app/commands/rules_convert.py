"""``temporal-siem rules convert --target NAME [DIR...]``: the same rules as queries for a SIEM.

Conversion goes through pySigma's backends with our built-in pipeline, so field names are exactly the ones our
sinks write (ECS + ``temporal.*`` + vendor namespaces). The engine routes a rule to its logsource's datasets; a
query in a shared index has no such routing, so the conversion pipeline adds ``event.dataset`` conditions with the
same rule conditions as the built-in routing items. Rules a backend cannot express (correlations on Lucene/EQL,
for example) are reported per rule; the others still convert.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.processing.pipeline import ProcessingPipeline
from sigma.rule import SigmaRule
from temporal_siem.cli import EXIT_OK, EXIT_RULES, EXIT_USAGE

# target name -> (module, backend class, what it produces)
TARGETS: dict[str, tuple[str, str, str]] = {
    "lucene": ("sigma.backends.elasticsearch", "LuceneBackend", "Elasticsearch Lucene query strings"),
    "eql": ("sigma.backends.elasticsearch", "EqlBackend", "Elasticsearch EQL"),
    "esql": ("sigma.backends.elasticsearch", "ESQLBackend", "Elasticsearch ES|QL (correlations as stats)"),
    "opensearch": ("sigma.backends.opensearch", "OpensearchLuceneBackend", "OpenSearch Lucene"),
    "splunk": ("sigma.backends.splunk", "SplunkBackend", "Splunk SPL (correlations as stats)"),
}
ALIASES = {"elasticsearch": "lucene", "es": "lucene", "es-ql": "esql", "es|ql": "esql", "spl": "splunk"}


@dataclass
class Conversion:
    rule_id: str
    title: str
    file: str
    queries: list[Any]
    error: str | None = None


def dataset_scope_pipeline(pipeline_files: list[Path]) -> ProcessingPipeline:
    """``event.dataset`` conditions mirroring the routing items of the given pipeline files (same rule conditions)."""
    import yaml
    from temporal_siem.detections.sigma.pipelines import DATASET_ATTRIBUTE

    items: list[dict[str, Any]] = []
    for path in pipeline_files:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for item in document.get("transformations") or []:
            if not isinstance(item, dict) or item.get("type") != "set_custom_attribute" or item.get("attribute") != DATASET_ATTRIBUTE:
                continue
            scoped: dict[str, Any] = {"id": f"scope_{item.get('id', len(items))}", "type": "add_condition",
                                      "conditions": {"event.dataset": item.get("value")}}
            for key in ("rule_conditions", "rule_cond_op", "rule_cond_expr"):
                if key in item:
                    scoped[key] = item[key]
            items.append(scoped)
    return ProcessingPipeline.from_dict({"name": "temporal-siem dataset scope", "priority": 90, "transformations": items})


def conversion_pipeline(extra: list[str]) -> ProcessingPipeline:
    from temporal_siem.detections.sigma.pipelines import BUILTIN_PIPELINE, build_pipeline

    base = build_pipeline(extra, builtin=True)
    result: ProcessingPipeline = base + dataset_scope_pipeline([Path(BUILTIN_PIPELINE), *map(Path, extra)])
    return result


def _backend(target: str, pipeline: ProcessingPipeline) -> Any:
    import importlib

    module, name, _ = TARGETS[target]
    return getattr(importlib.import_module(module), name)(processing_pipeline=pipeline)


def convert(paths: list[str | Path], target: str, output_format: str | None = None, extra_pipelines: list[str] | None = None) -> list[Conversion]:
    """One Conversion per rule; a correlation converts with the rules it references."""
    from temporal_siem.detections.sigma.loader import load_rules

    loaded = load_rules(paths)
    pipeline = conversion_pipeline(extra_pipelines or [])
    results = [Conversion("-", "-", e.file, [], e.error) for e in loaded.errors]
    everything: list[SigmaRule | SigmaCorrelationRule] = [*loaded.rules, *loaded.correlations]
    for rule in everything:
        rule_id = str(rule.id or rule.name or rule.title)
        source = str(rule.source.path) if rule.source is not None and rule.source.path is not None else "-"
        try:
            # Referenced rules first (deepest first): a correlation converts from its rules' results.
            members = [_fresh(r) for r in reversed(_referenced(rule, everything))] if isinstance(rule, SigmaCorrelationRule) else []
            members.append(_fresh(rule))
            collection = SigmaCollection(members)  # type: ignore[arg-type]
            backend = _backend(target, pipeline)
            queries = backend.convert(collection, output_format) if output_format else backend.convert(collection)
            output = [queries] if not isinstance(queries, list) else queries
            results.append(Conversion(rule_id, rule.title, source, output))
        except Exception as exc:  # a backend refusing one rule must not stop the others
            message = str(exc).split("\n", 1)[0]
            message = message if len(message) <= 200 else message[:200] + "..."
            results.append(Conversion(rule_id, rule.title, source, [], f"{type(exc).__name__}: {message}"))
    return results


def _fresh(rule: SigmaRule | SigmaCorrelationRule) -> SigmaRule | SigmaCorrelationRule:
    """A copy without any earlier pipeline or conversion state (pySigma mutates rules while converting)."""
    if isinstance(rule, SigmaCorrelationRule):
        return SigmaCorrelationRule.from_dict(rule.to_dict(), source=rule.source)
    return SigmaRule.from_dict(rule.to_dict(), source=rule.source)


def _referenced(corr: SigmaCorrelationRule, pool: list[SigmaRule | SigmaCorrelationRule]) -> list[SigmaRule | SigmaCorrelationRule]:
    wanted = {ref.reference for ref in corr.rules or []}
    found: list[SigmaRule | SigmaCorrelationRule] = []
    for rule in pool:
        if rule is not corr and (str(rule.id) in wanted or (rule.name and rule.name in wanted)):
            found.append(rule)
            if isinstance(rule, SigmaCorrelationRule):  # chained correlations bring their own rules
                found.extend(r for r in _referenced(rule, pool) if r not in found)
    return found


def register(rsub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = rsub.add_parser("convert", help="Convert rules to SIEM queries (Elasticsearch Lucene/EQL/ES|QL, OpenSearch, Splunk).")
    p.add_argument("dirs", nargs="*", metavar="DIR", help="Rule directories or files (default: the shipped rules).")
    p.add_argument("--target", "-t", required=True, help=f"Backend: {', '.join(TARGETS)}.")
    p.add_argument("--output-format", default=None, help="The backend's output format (e.g. siem_rule_ndjson, savedsearches).")
    p.add_argument("--pipeline", action="append", default=[], metavar="FILE", help="Extra pySigma pipeline YAML (applied after ours).")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from temporal_siem.detections.sigma.loader import BUILTIN_RULES
    from temporal_siem.detections.sigma.pipelines import PipelineError

    target = ALIASES.get(args.target.lower(), args.target.lower())
    if target not in TARGETS:
        sys.stderr.write(f"unknown target {args.target!r}; choose one of {', '.join(TARGETS)}\n")
        return EXIT_USAGE
    paths: list[str | Path] = list(args.dirs) or [BUILTIN_RULES]
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        sys.stderr.write(f"no such rule directory or file: {', '.join(missing)}\n")
        return EXIT_USAGE
    try:
        results = convert(paths, target, args.output_format, args.pipeline)
    except PipelineError as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_USAGE
    failed = [r for r in results if r.error]
    if args.format == "json":
        doc = [{"id": r.rule_id, "title": r.title, "file": r.file, "queries": r.queries, "error": r.error} for r in results]
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")
    else:
        out: list[str] = []
        for r in results:
            out.append(f"# {r.title} ({r.rule_id}) {r.file}")
            if r.error:
                out.append("# not converted: " + " ".join(r.error.split()))
            for query in r.queries:
                out.append(query if isinstance(query, str) else orjson.dumps(query, default=str).decode())
        sys.stdout.write("\n".join(out) + "\n")
        sys.stderr.write(f"{len(results) - len(failed)} converted, {len(failed)} not converted ({target})\n")
    return EXIT_RULES if failed and len(failed) == len(results) else EXIT_OK
