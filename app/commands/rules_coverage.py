"""``temporal-siem rules coverage``: which ATT&CK techniques the rule pack covers, as a table or as a layer
file for the MITRE ATT&CK Navigator (``--navigator FILE``), the view Hayabusa and Sigma users share coverage in.

Coverage comes from the rules' own ``attack.*`` tags (techniques ``attack.tNNNN[.NNN]``, tactics by name);
nothing is fetched, so it works offline and the layer states the ATT&CK version it was written against."""

from __future__ import annotations

import argparse
from collections import defaultdict
from typing import Any

import orjson

from temporal_siem import console
from temporal_siem.commands.options import add_rule_options
from temporal_siem.exit_codes import EXIT_OK, EXIT_RULES

TACTICS = ("reconnaissance", "resource-development", "initial-access", "execution", "persistence", "privilege-escalation",
           "defense-evasion", "credential-access", "discovery", "lateral-movement", "collection", "command-and-control",
           "exfiltration", "impact")
ATTACK_VERSION = "16"
NAVIGATOR_VERSION = "5.1.0"
LAYER_VERSION = "4.5"


def register(rsub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = rsub.add_parser("coverage", help="ATT&CK techniques the rules cover (table, or an ATT&CK Navigator layer).")
    p.add_argument("dirs", nargs="*", metavar="DIR", help="Extra rule directories or files (added to the shipped rules).")
    add_rule_options(p)
    p.add_argument("--navigator", metavar="FILE", help="Write an ATT&CK Navigator layer (JSON) to FILE.")
    p.set_defaults(handler=run)


def coverage(rules: list[tuple[str, str, tuple[str, ...]]]) -> dict[str, dict[str, list[str]]]:
    """technique id -> tactic ('' when the rule names none) -> titles of the rules covering it."""
    out: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for _rule_id, title, tags in rules:
        lowered = [t.lower() for t in tags if t.lower().startswith("attack.")]
        tactics = [t[len("attack."):].replace("_", "-") for t in lowered if t[len("attack."):].replace("_", "-") in TACTICS]
        techniques = [t[len("attack."):].upper() for t in lowered if t[len("attack.t"):len("attack.t") + 1].isdigit()]
        for technique in techniques:
            for tactic in tactics or [""]:
                out[technique][tactic].append(title)
    return {k: dict(v) for k, v in sorted(out.items())}


def navigator_layer(cov: dict[str, dict[str, list[str]]], name: str = "temporal-siem rule coverage") -> dict[str, Any]:
    techniques = []
    peak = 1
    for technique, by_tactic in cov.items():
        for tactic, titles in by_tactic.items():
            peak = max(peak, len(titles))
            entry: dict[str, Any] = {"techniqueID": technique, "score": len(titles), "enabled": True,
                                     "comment": "; ".join(sorted(set(titles)))[:4000]}
            if tactic:
                entry["tactic"] = tactic
            techniques.append(entry)
    return {
        "name": name, "domain": "enterprise-attack",
        "versions": {"attack": ATTACK_VERSION, "navigator": NAVIGATOR_VERSION, "layer": LAYER_VERSION},
        "description": "Techniques tagged by the loaded Sigma rules; score = number of rules.",
        "sorting": 3, "hideDisabled": False, "techniques": techniques,
        "gradient": {"colors": ["#ffe5cc", "#e8590c"], "minValue": 0, "maxValue": peak},
        "legendItems": [], "metadata": [], "showTacticRowBackground": False, "selectTechniquesAcrossTactics": True,
    }


def run(args: argparse.Namespace) -> int:
    from temporal_siem.detections.sigma.pipelines import PipelineError
    from temporal_siem.detections.sigma.ruleset import Ruleset

    try:
        ruleset = Ruleset.from_paths([*args.dirs, *args.rules], builtin_rules=not args.no_builtin_rules)
    except PipelineError as exc:
        console.err.print(f"[red]error:[/] {exc}")
        return EXIT_RULES
    rules = [(r.id, r.meta.title, tuple(r.meta.tags)) for r in ruleset.rules]
    rules += [(k, m.title, tuple(m.tags)) for k, m in ruleset.correlation_meta.items()]
    cov = coverage(rules)
    if args.navigator:
        with open(args.navigator, "wb") as handle:
            handle.write(orjson.dumps(navigator_layer(cov), option=orjson.OPT_INDENT_2))
        console.err.print(f"navigator layer: {args.navigator} ({len(cov)} techniques)")
    from rich.table import Table  # here: rich costs every command's start ~60 ms
    table = Table(title=f"ATT&CK coverage: {len(cov)} techniques from {len(rules)} rules")
    for column in ("technique", "tactics", "rules"):
        table.add_column(column)
    for technique, by_tactic in cov.items():
        titles = sorted({t for ts in by_tactic.values() for t in ts})
        table.add_row(technique, ", ".join(t for t in by_tactic if t) or "-", f"{len(titles)}: " + "; ".join(titles[:3]) + (" …" if len(titles) > 3 else ""))
    console.out.print(table)
    if ruleset.errors:
        console.err.print(f"[yellow]{len(ruleset.errors)} rule file(s) did not load; their techniques are not counted[/]")
        return EXIT_RULES
    return EXIT_OK
