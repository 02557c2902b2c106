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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.processing.pipeline import ProcessingPipeline
from sigma.rule import SigmaRule

from temporal_siem.commands.options import add_json_option, apply_legacy_format, rule_paths_or_none
from temporal_siem.exit_codes import EXIT_OK, EXIT_RULES, EXIT_USAGE

# target name -> (module, backend class, what it produces)
TARGETS: dict[str, tuple[str, str, str]] = {
    "lucene": ("sigma.backends.elasticsearch", "LuceneBackend", "Elasticsearch Lucene query strings"),
    "eql": ("sigma.backends.elasticsearch", "EqlBackend", "Elasticsearch EQL"),
    "esql": ("sigma.backends.elasticsearch", "ESQLBackend", "Elasticsearch ES|QL (correlations as stats)"),
    "opensearch": ("sigma.backends.opensearch", "OpensearchLuceneBackend", "OpenSearch Lucene"),
    "splunk": ("sigma.backends.splunk", "SplunkBackend", "Splunk SPL (correlations as stats)"),
}
ALIASES = {"elasticsearch": "lucene", "es": "lucene", "es-ql": "esql", "es|ql": "esql", "spl": "splunk"}


# What the engine does that a target's query cannot say (docs/rule-authoring.md, "Commands"):
# string equality is case-insensitive in Sigma and in the engine; these targets compare keyword fields exactly.
CASE_SENSITIVE_TARGETS = frozenset({"lucene", "opensearch", "esql"})
# correlation windows slide in the engine; these targets convert them to fixed time buckets.
BUCKETED_TARGETS = frozenset({"esql", "splunk"})
# output formats that emit Elastic detection rules, which can carry building_block_type
SIEM_RULE_FORMATS = frozenset({"siem_rule", "siem_rule_ndjson"})
# ATT&CK enterprise tactics (stable ids): the Elastic rule formats' threat mapping is built from these and the rule's
# attack.* tags, offline. pySigma would download the whole ATT&CK data set for technique names at conversion time.
ATTACK_TACTICS = {
    "reconnaissance": "TA0043", "resource-development": "TA0042", "initial-access": "TA0001", "execution": "TA0002",
    "persistence": "TA0003", "privilege-escalation": "TA0004", "defense-evasion": "TA0005", "credential-access": "TA0006",
    "discovery": "TA0007", "lateral-movement": "TA0008", "collection": "TA0009", "command-and-control": "TA0011",
    "exfiltration": "TA0010", "impact": "TA0040",
}


@dataclass
class Conversion:
    rule_id: str
    title: str
    file: str
    queries: list[Any]
    error: str | None = None
    notes: list[str] = field(default_factory=list)  # what the query cannot express of the rule ("cannot express: ...")
    unsupported: bool = False  # the error is a target limit (a correlation type, a modifier), not a broken rule


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
    backend = getattr(importlib.import_module(module), name)(processing_pipeline=pipeline)
    if hasattr(backend, "finalize_output_threat_model"):
        backend.finalize_output_threat_model = offline_threat_model  # never download ATT&CK data while converting
    return backend


def offline_threat_model(tags: list[Any]) -> list[dict[str, Any]]:
    """Elastic's ``threat`` entries from a rule's ``attack.<tactic>`` and ``attack.tNNNN`` tags, without network:
    tactics from :data:`ATTACK_TACTICS`, techniques by id (their name is the id: names need the ATT&CK data set).
    As pySigma's version does, the attack tags move from ``tags`` to ``threat``."""
    import re

    attack = [t for t in tags if getattr(t, "namespace", None) == "attack"]
    techniques = [t.name.upper() for t in attack if re.fullmatch(r"[tT]\d{4}(\.\d{3})?", t.name)]
    tactics = [ATTACK_TACTICS[t.name.lower().replace("_", "-")] for t in attack if t.name.lower().replace("_", "-") in ATTACK_TACTICS]
    names = {v: k for k, v in ATTACK_TACTICS.items()}
    threat: list[dict[str, Any]] = []
    for tactic_id in dict.fromkeys(tactics):
        entry: dict[str, Any] = {
            "framework": "MITRE ATT&CK",
            "tactic": {"id": tactic_id, "name": names[tactic_id].replace("-", " ").title(),
                       "reference": f"https://attack.mitre.org/tactics/{tactic_id}/"},
            "technique": [],
        }
        for technique in dict.fromkeys(t.split(".")[0] for t in techniques):
            subs = [s for s in techniques if s.startswith(technique + ".")]
            entry["technique"].append({
                "id": technique, "name": technique, "reference": f"https://attack.mitre.org/techniques/{technique}/",
                "subtechnique": [{"id": s, "name": s, "reference": f"https://attack.mitre.org/techniques/{s.replace('.', '/')}/"}
                                 for s in subs],
            })
        threat.append(entry)
    for tag in attack:
        tags.remove(tag)
    return threat


def faithfulness_notes(rule: SigmaRule | SigmaCorrelationRule, target: str, building_blocks: set[str],
                       output_format: str | None) -> list[str]:
    """What the converted query says differently from the engine, per rule (empty when it is faithful)."""
    notes: list[str] = []
    if isinstance(rule, SigmaRule):
        if target in CASE_SENSITIVE_TARGETS and _has_string_values(rule):
            notes.append("cannot express: case-insensitive string equality (the engine matches any case; "
                         f"{target} compares keyword fields exactly)")
        refs = {str(rule.id), rule.name} - {None, ""}
        if refs & building_blocks and (output_format or "") not in SIEM_RULE_FORMATS:
            notes.append("building block: raises no alert of its own in the engine (it only feeds a correlation); "
                         "do not schedule this query as an alert")
    elif target in BUCKETED_TARGETS and rule.timespan is not None:
        notes.append(f"cannot express: sliding {rule.timespan.spec} window (the engine slides it over event time; "
                     f"{target} counts in fixed {rule.timespan.spec} buckets, so a burst across a bucket boundary is missed)")
    return notes


def _has_string_values(rule: SigmaRule) -> bool:
    from sigma.rule import SigmaDetection, SigmaDetectionItem
    from sigma.types import SigmaString

    def walk(item: SigmaDetection | SigmaDetectionItem) -> bool:
        if isinstance(item, SigmaDetection):
            return any(walk(child) for child in item.detection_items)
        return any(isinstance(value, SigmaString) for value in item.value)

    return any(walk(d) for d in rule.detection.detections.values())


def _mark_building_block(queries: list[Any]) -> list[Any]:
    """Elastic detection rules have a building-block flag: such a rule writes signals only for other rules."""
    marked = []
    for query in queries:
        if isinstance(query, dict):
            query = {**query, "building_block_type": "default"}
        marked.append(query)
    return marked


def _unsupported(exc: Exception) -> bool:
    """A target limit (pySigma says 'not supported'), as opposed to a rule or backend failure."""
    from sigma.exceptions import SigmaFeatureNotSupportedByBackendError

    return isinstance(exc, (SigmaFeatureNotSupportedByBackendError, NotImplementedError)) or "not supported" in str(exc).lower()


def convert(paths: list[str | Path], target: str, output_format: str | None = None, extra_pipelines: list[str] | None = None,
            builtin_rules: bool = False) -> list[Conversion]:
    """One Conversion per rule under ``paths``; a correlation converts with the rules it references, which may be
    shipped rules when ``builtin_rules`` (the rules run beside the pack)."""
    from temporal_siem.detections.sigma.loader import BUILTIN_RULES, load_rules, rule_files
    from temporal_siem.detections.sigma.ruleset import building_block_refs

    mine = {p.resolve() for p in rule_files(paths)}
    loaded = load_rules([BUILTIN_RULES, *paths] if builtin_rules else paths)
    pipeline = conversion_pipeline(extra_pipelines or [])
    results = [Conversion("-", "-", e.where, [], e.error) for e in loaded.errors if Path(e.file).resolve() in mine]
    everything: list[SigmaRule | SigmaCorrelationRule] = [*loaded.rules, *loaded.correlations]
    building_blocks = building_block_refs(loaded.correlations)
    for rule in everything:
        if rule.source is None or rule.source.path is None or Path(rule.source.path).resolve() not in mine:
            continue  # a shipped rule loaded only because a converted correlation references it
        rule_id = str(rule.id or rule.name or rule.title)
        source = str(rule.source.path) if rule.source is not None and rule.source.path is not None else "-"
        try:
            # Referenced rules first (deepest first): a correlation converts from its rules' results.
            members = [_fresh(r) for r in reversed(_referenced(rule, everything))] if isinstance(rule, SigmaCorrelationRule) else []
            members.append(_fresh(rule))
            collection = SigmaCollection(members)  # type: ignore[arg-type]
            backend = _backend(target, pipeline)
            queries = backend.convert(collection, output_format) if output_format else backend.convert(collection)
            output = _flat(queries)
            is_block = isinstance(rule, SigmaRule) and bool({str(rule.id), rule.name} & building_blocks)
            if is_block and (output_format or "") in SIEM_RULE_FORMATS:
                output = _mark_building_block(output)
            results.append(Conversion(rule_id, rule.title, source, output,
                                      notes=faithfulness_notes(rule, target, building_blocks, output_format)))
        except Exception as exc:  # a backend refusing one rule must not stop the others
            message = str(exc).split("\n", 1)[0]
            message = message if len(message) <= 200 else message[:200] + "..."
            results.append(Conversion(rule_id, rule.title, source, [], f"{type(exc).__name__}: {message}",
                                      unsupported=_unsupported(exc)))
    return results


def _flat(queries: Any) -> list[Any]:
    """A backend's output as a flat list (some formats nest a list per rule)."""
    if not isinstance(queries, list):
        return [queries]
    flat: list[Any] = []
    for query in queries:
        flat.extend(_flat(query) if isinstance(query, list) else [query])
    return flat


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
    add_json_option(p, help_text="One JSON document: per rule its queries, error and notes.")
    p.add_argument("--no-builtin-rules", action="store_true",
                   help="Do not resolve correlation references against the shipped pack (the rules replace it).")
    p.add_argument("--skip-unsupported", action="store_true",
                   help="Rules the target cannot express (a correlation type, a modifier) are skipped with a note and do "
                        "not make the exit code non-zero; other failures still do.")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from temporal_siem.detections.sigma.pipelines import PipelineError

    apply_legacy_format(args)
    target = ALIASES.get(args.target.lower(), args.target.lower())
    if target not in TARGETS:
        sys.stderr.write(f"unknown target {args.target!r}; choose one of {', '.join(TARGETS)}\n")
        return EXIT_USAGE
    paths = rule_paths_or_none(args.dirs)
    if paths is None:
        return EXIT_USAGE
    try:
        results = convert(paths, target, args.output_format, args.pipeline, builtin_rules=not args.no_builtin_rules)
    except PipelineError as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_USAGE
    failed = [r for r in results if r.error]
    blocking = [r for r in failed if not (args.skip_unsupported and r.unsupported)]
    if args.json:
        doc = [{"id": r.rule_id, "title": r.title, "file": r.file, "queries": r.queries, "error": r.error,
                "unsupported": r.unsupported, "notes": r.notes} for r in results]
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")
    else:
        structured = any(not isinstance(q, str) for r in results for q in r.queries)
        # Structured formats (NDJSON for Kibana / Elastic rules) stay pure: one JSON document per line on stdout,
        # every comment on stderr. Query text keeps its '#' comment lines (comments in Splunk conf, ignored by eye).
        comments = sys.stderr if structured else sys.stdout
        for r in results:
            lines = [f"# {r.title} ({r.rule_id}) {r.file}"]
            if r.error:
                lines.append(("# skipped (target limit): " if args.skip_unsupported and r.unsupported else "# not converted: ")
                             + " ".join(r.error.split()))
            lines.extend(f"# {note}" for note in r.notes)
            comments.write("\n".join(lines) + "\n")
            for query in r.queries:
                sys.stdout.write((query if isinstance(query, str) else orjson.dumps(query, default=str).decode()) + "\n")
        sys.stderr.write(f"{len(results) - len(failed)} converted, {len(failed)} not converted ({target})"
                         f"{'' if not blocking else '; exit 3: not every rule converted (--skip-unsupported skips target limits)'}\n")
    return EXIT_RULES if blocking else EXIT_OK
