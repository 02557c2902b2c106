"""``temporal-siem rules explain RULE EVENT``: condition by condition, why an event matched a rule or not.

Every verdict shown comes from the engine's own compiler: each named detection and each of its items is turned
into a condition tree by pySigma exactly as the full rule is, and compiled with the engine's
:class:`~detections.sigma.compiler.RuleCompiler`. So an explanation cannot disagree with the engine (the overall
verdict is the compiled rule itself), and the rule is explained after the built-in pipeline renamed its fields,
which is what the engine evaluates. Enrichments run first, as in the detector.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule

from temporal_siem import console
from temporal_siem.exit_codes import EXIT_OK, EXIT_USAGE

# Exit code when the event does not match: scripts can use explain as a single-event test.
EXIT_NO_MATCH = 1

Matcher = Callable[[dict[str, Any], dict[int, Any]], bool]


@dataclass
class ItemVerdict:
    """One detection item (``field|modifiers: values``) and what the event holds for it."""

    text: str
    field: str | None
    matched: bool
    event_value: Any = None


@dataclass
class DetectionVerdict:
    name: str
    matched: bool
    linking: str
    items: list[ItemVerdict] = field(default_factory=list)


@dataclass
class Explanation:
    rule_id: str
    title: str
    condition: list[str]
    routed: bool
    dataset: Any
    rule_datasets: tuple[str, ...] | None
    matched: bool
    detections: list[DetectionVerdict]

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": {"id": self.rule_id, "title": self.title},
            "condition": self.condition,
            "routed": self.routed,
            "event_dataset": self.dataset,
            "rule_datasets": list(self.rule_datasets) if self.rule_datasets is not None else None,
            "matched": self.matched,
            "detections": [
                {"name": d.name, "matched": d.matched, "linking": d.linking,
                 "items": [{"item": i.text, "field": i.field, "matched": i.matched, "event_value": i.event_value} for i in d.items]}
                for d in self.detections
            ],
        }

    def lines(self) -> list[str]:
        """Plain text, one fact per line (also used by ``rules test`` to show why a case failed)."""
        verdict = "MATCHES" if self.matched else "does not match"
        out = [f"rule {self.rule_id} ({self.title}): event {verdict}"]
        if not self.routed:
            wanted = ", ".join(self.rule_datasets or ()) or "(unrouted)"
            out.append(f"  not routed: event.dataset={self.dataset!r}, rule's logsource routes to {wanted}")
        out.append(f"  condition: {' | '.join(self.condition)}")
        for det in self.detections:
            out.append(f"  [{'x' if det.matched else ' '}] {det.name} ({det.linking})")
            for item in det.items:
                shown = "<absent>" if item.event_value is None and item.field else json.dumps(item.event_value, default=str)
                value_text = f"   event: {shown}" if item.field else ""
                out.append(f"      [{'x' if item.matched else ' '}] {item.text}{value_text}")
        return out


def _compile_node(node: Any) -> Matcher:
    """Compile one pySigma condition tree with the engine's compiler (same code path as whole rules)."""
    from temporal_siem.detections.sigma.compiler import RuleCompiler

    compiler = RuleCompiler()
    shaped = SimpleNamespace(detection=SimpleNamespace(parsed_condition=[SimpleNamespace(parsed=node)]))
    compiled = compiler.compile_source(shaped)  # type: ignore[arg-type]
    function: Matcher = compiler.build(compiled, "<explain>")
    return function


def _item_text(item: SigmaDetectionItem | SigmaDetection) -> str:
    try:
        plain = item.to_plain()
    except Exception:  # to_plain refuses some processed values; repr still says enough
        return repr(item)
    if isinstance(plain, dict) and len(plain) == 1:
        key, value = next(iter(plain.items()))
        return f"{key}: {json.dumps(value, default=str)}"
    return json.dumps(plain, default=str)


def _leaf_items(detection: SigmaDetection) -> list[SigmaDetectionItem | SigmaDetection]:
    """The items to show: direct items; a list-of-maps selection shows each map as one item."""
    return list(detection.detection_items)


def _field_of(item: SigmaDetectionItem | SigmaDetection) -> str | None:
    if isinstance(item, SigmaDetectionItem):
        return item.field
    fields = {i.field for i in item.detection_items if isinstance(i, SigmaDetectionItem) and i.field}
    return next(iter(fields)) if len(fields) == 1 else None


def _memo(event: dict[str, Any]) -> dict[Any, Any]:
    """The per-event memo the engine passes to compiled rules (its folded-values cache), as the engine builds it."""
    try:
        from temporal_siem.detections.sigma.values import EventFolds
    except ImportError:  # an engine without a folds memo takes a plain dict
        return {}
    folds: dict[Any, Any] = EventFolds(event)
    return folds


def _lane_rules(ruleset: Any, event: dict[str, Any]) -> tuple[int, ...]:
    from temporal_siem.detections.sigma.ruleset import DATASET_FIELD

    lane = ruleset.lane_for(event) if hasattr(ruleset, "lane_for") else ruleset.lane(event.get(DATASET_FIELD))
    return tuple(lane.rules)


@dataclass
class _CompiledItem:
    text: str
    field: str | None
    match: Matcher


@dataclass
class _CompiledDetection:
    name: str
    linking: str
    match: Matcher
    items: list[_CompiledItem]


_PLANS: dict[int, tuple[Any, list[_CompiledDetection]]] = {}


def _plan(compiled_rule: Any) -> list[_CompiledDetection]:
    """Each named detection and each of its items compiled once per rule (compiling is the slow part)."""
    cached = _PLANS.get(id(compiled_rule))
    if cached is not None and cached[0] is compiled_rule:
        return cached[1]
    rule: SigmaRule = copy.deepcopy(compiled_rule.rule)
    detections = rule.detection
    plan: list[_CompiledDetection] = []
    for name, detection in detections.detections.items():
        linking = "all of" if detection.item_linking is None or detection.item_linking.__name__ == "ConditionAND" else "any of"
        items = [_CompiledItem(_item_text(item), _field_of(item), _compile_node(item.postprocess(detections)))
                 for item in _leaf_items(detection)]
        plan.append(_CompiledDetection(name, linking, _compile_node(detection.postprocess(detections)), items))
    if len(_PLANS) > 4096:
        _PLANS.clear()
    _PLANS[id(compiled_rule)] = (compiled_rule, plan)
    return plan


def explain(compiled_rule: Any, event: dict[str, Any], ruleset: Any) -> Explanation:
    """Explain a compiled rule (``detections.sigma.ruleset.CompiledRule``) against one flat, enriched event."""
    from temporal_siem.detections.sigma.ruleset import DATASET_FIELD

    verdicts: list[DetectionVerdict] = []
    for detection in _plan(compiled_rule):
        verdict = DetectionVerdict(detection.name, bool(detection.match(event, _memo(event))), detection.linking)
        for item in detection.items:
            verdict.items.append(ItemVerdict(item.text, item.field, bool(item.match(event, _memo(event))),
                                             event.get(item.field) if item.field else None))
        verdicts.append(verdict)
    routed = compiled_rule.index in _lane_rules(ruleset, event)
    return Explanation(
        rule_id=compiled_rule.id, title=compiled_rule.meta.title, condition=list(compiled_rule.rule.detection.condition),
        routed=routed, dataset=event.get(DATASET_FIELD), rule_datasets=compiled_rule.datasets,
        matched=routed and bool(compiled_rule.match(event, _memo(event))), detections=verdicts,
    )


def find_rule(ruleset: Any, reference: str) -> Any:
    """A compiled rule by id, name or title (case-insensitive for titles)."""
    for rule in ruleset.rules:
        if reference in rule.refs:
            return rule
    lowered = reference.lower()
    for rule in ruleset.rules:
        if rule.meta.title.lower() == lowered:
            return rule
    return None


def load_event(text: str) -> dict[str, Any]:
    """An event from a file path or inline JSON; nested documents are flattened like parser output."""
    from temporal_siem.kernel.flatten import flatten

    path = Path(text)
    raw = path.read_bytes() if not text.lstrip().startswith("{") and path.is_file() else text.encode()
    stripped = raw.strip()
    if stripped.startswith(b"{") and b"\n{" in stripped:
        stripped = stripped.split(b"\n", 1)[0]  # JSONL: the first event
    data = orjson.loads(stripped)
    if not isinstance(data, dict):
        raise ValueError("the event must be a JSON object")
    if any(isinstance(v, dict) for v in data.values()):
        data = flatten(data)
    return data


def read_event_input(text: str) -> bytes:
    """The bytes of EVENT: ``FILE:LINE`` (that line), a file (one JSON document, else its first line), or the
    text itself (inline JSON or a raw log line)."""
    import re

    located = re.fullmatch(r"(.+):(\d+)", text)
    if located and Path(located.group(1)).is_file():
        number = int(located.group(2))
        with open(located.group(1), "rb") as handle:
            for index, line in enumerate(handle, start=1):
                if index == number:
                    return line.rstrip(b"\r\n")
        raise ValueError(f"{located.group(1)} has no line {number}")
    path = Path(text)
    if not text.lstrip().startswith(("{", "[")) and path.is_file():
        raw = path.read_bytes().strip()
        if raw[:1] in (b"{", b"[") and b"\n" in raw:
            try:
                orjson.loads(raw)
                return raw  # one pretty-printed document (a CloudTrail file, an API page)
            except orjson.JSONDecodeError:
                pass
        return raw.split(b"\n", 1)[0].strip()  # JSON Lines or a text log: the first record
    return text.encode()


def load_events(text: str, fmt: str | None = None, normalized: bool | None = None) -> list[dict[str, Any]]:
    """Events to explain from EVENT. A JSON object with ``event.dataset`` is taken as a normalized event (as a
    rule test's ``events``); anything else is a raw record routed through the parsers (``--format`` forces one),
    exactly as a replay would parse it, so ``explain`` answers for the record as it arrives."""
    from temporal_siem.kernel.flatten import flatten

    raw = read_event_input(text)
    data: Any = None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        if normalized:
            raise ValueError("not a JSON object") from None
    if isinstance(data, dict):
        flat = flatten(data) if any(isinstance(v, dict) for v in data.values()) else data
        if normalized or (normalized is None and fmt is None and "event.dataset" in flat):
            return [flat]
    elif normalized:
        raise ValueError("the event must be a JSON object")
    from temporal_siem.kernel.records import Origin, RawRecord
    from temporal_siem.parsers.router import ParserRouter

    router = ParserRouter(fmt or "auto")
    result = router.parse(RawRecord(raw, Origin("<explain>", line=1)))
    if result.dead:
        raise ValueError("; ".join(f"{d.reason} {d.detail or ''}".strip() for d in result.dead))
    if not result.events:
        raise ValueError("the parsers produced no event from it")
    return result.events


def register(rsub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from temporal_siem.commands.options import add_json_option, add_rule_options

    p = rsub.add_parser("explain", help="Explain, condition by condition, why an event matches a rule or not.")
    p.add_argument("rule", metavar="RULE", help="Rule id, name or title; or a rule file (its first rule, loaded alone).")
    p.add_argument("event", metavar="EVENT",
                   help="A record as it arrives (any format, parsed like a replay) or a normalized event (JSON with "
                        "event.dataset): inline, a FILE (its first record) or FILE:LINE.")
    add_rule_options(p)
    p.add_argument("--format", default=None, metavar="auto|NAME",
                   help="Parse EVENT with this parser (default: a JSON event with event.dataset is taken as normalized, "
                        "anything else is auto-detected).")
    p.add_argument("--normalized", action="store_true", help="EVENT is a normalized event: do not parse it.")
    add_json_option(p, legacy_format=False)
    p.add_argument("--no-enrich", action="store_true", help="Do not run the enrichments before matching.")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from temporal_siem.detections.sigma.ruleset import Ruleset

    fmt = args.format
    if fmt in ("text", "json"):  # the old output option; as a parser name, auto-detection finds generic JSON anyway
        sys.stderr.write(f"warning: --format {fmt} is deprecated here: --format names the input parser; "
                         f"use {'--json' if fmt == 'json' else 'no option'} for the output\n")
        args.json = args.json or fmt == "json"
        fmt = None
    rule_path = Path(args.rule)
    if rule_path.is_file():  # the rule as written in this file, not a shipped rule of the same id
        paths, builtin = [str(rule_path), *args.rules], False
    else:
        paths, builtin = list(args.rules), not args.no_builtin_rules
    try:
        ruleset = Ruleset.from_paths(paths, builtin_rules=builtin)
    except Exception as exc:
        console.err.print(f"cannot load rules: {exc}")
        return EXIT_USAGE
    for error in ruleset.errors:
        console.err.print(f"[yellow]warning:[/] {error.where}: {error.error}", highlight=False)
    rule = ruleset.rules[0] if rule_path.is_file() and ruleset.rules else find_rule(ruleset, args.rule)
    correlation = None if rule is not None else find_correlation(ruleset, args.rule)
    if rule is None and correlation is None:
        from temporal_siem.detections.sigma.locate import did_you_mean

        names = [ref for r in ruleset.rules for ref in r.refs] + [str(c.name or c.id) for c in ruleset.correlations]
        console.err.print(f"no rule {args.rule!r}{did_you_mean(args.rule, names)}", highlight=False)
        return EXIT_USAGE
    try:
        events = load_events(args.event, fmt, True if args.normalized else None)
    except (OSError, ValueError) as exc:
        console.err.print(f"cannot read event {args.event!r}: {exc}", highlight=False)
        return EXIT_USAGE
    if not args.no_enrich:
        from temporal_siem.detections.enrichment import build_enrichers

        for enricher in build_enrichers():
            enricher.enrich(events)
    output = "json" if args.json else "text"
    if correlation is not None:
        codes = [_explain_correlation(correlation, event, ruleset, output) for event in events]
        return EXIT_OK if EXIT_OK in codes else EXIT_NO_MATCH
    explanations = [explain(rule, event, ruleset) for event in events]
    if output == "json":
        doc: Any = explanations[0].as_dict() if len(explanations) == 1 else [e.as_dict() for e in explanations]
        sys.stdout.write(orjson.dumps(doc, default=str, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        lines: list[str] = []
        for n, explanation in enumerate(explanations):
            if len(explanations) > 1:
                lines.append(f"event {n + 1} of {len(explanations)}:")
            lines.extend(explanation.lines())
        sys.stdout.write("\n".join(lines) + "\n")
    return EXIT_OK if any(e.matched for e in explanations) else EXIT_NO_MATCH


def find_correlation(ruleset: Any, reference: str) -> Any:
    for corr in ruleset.correlations:
        if reference in (str(corr.id), corr.name) or corr.title.lower() == reference.lower():
            return corr
    return None


def _explain_correlation(corr: Any, event: dict[str, Any], ruleset: Any, fmt: str) -> int:
    """One event cannot satisfy a correlation: show which of its rules the event feeds, and its group key."""
    aliases = {a.alias: a for a in corr.aliases} if corr.aliases else {}
    parts: list[dict[str, Any]] = []
    lines = [f"correlation {corr.id} ({corr.title}): {corr.type.name.lower()} over {corr.timespan.spec}, "
             f"group-by {', '.join(corr.group_by or []) or '(none)'}"]
    fed = False
    for reference in corr.rules or []:
        target = find_rule(ruleset, reference.reference)
        if target is None:
            lines.append(f"  {reference.reference}: a correlation or an unknown rule (explain it by name)")
            parts.append({"rule": reference.reference, "explained": False})
            continue
        explanation = explain(target, event, ruleset)
        fed = fed or explanation.matched
        group = {}
        for name in corr.group_by or []:
            field_name = name
            if name in aliases:
                field_name = next((f for r, f in aliases[name].mapping.items()
                                   if getattr(r, "reference", r) in target.refs), name)
            group[name] = event.get(field_name)
        lines.append(f"  {reference.reference}: {'feeds the correlation' if explanation.matched else 'not fed'}; group {group}")
        lines.extend("    " + line for line in explanation.lines())
        parts.append({"rule": reference.reference, "explained": True, "group": group, "explanation": explanation.as_dict()})
    if fmt == "json":
        doc = {"correlation": {"id": str(corr.id), "title": corr.title}, "fed": fed, "rules": parts}
        sys.stdout.write(orjson.dumps(doc, default=str, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write("\n".join(lines) + "\n")
    return EXIT_OK if fed else EXIT_NO_MATCH
