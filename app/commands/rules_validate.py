"""``temporal-siem rules validate DIR...``: what a rule pack must pass before it ships (CI-friendly).

Three layers, each problem one line ``file:line: severity: rule: message [check]`` (or ``--json``):

* parse: YAML and pySigma errors per file (the same loader the engine uses);
* pySigma's validators and the SigmaHQ validators package, minus the ones that download reference data at
  run time (ATT&CK / D3FEND / SigmaHQ taxonomies: CI has no network) and the SigmaHQ repository's own naming
  conventions (file names) and ``number_as_string`` (our ``error.code`` is a string on purpose);
* ours: every field a rule uses, after the built-in pipeline's mappings, is in the normalized schema or in the
  field catalog of the rule's datasets (generated from samples/ through the parsers: ``rules fields``), with
  "did you mean" for near misses; the logsource is one the engine routes; ids and names are unique across every
  directory given and against the shipped pack the rules run beside; correlation references resolve (to the
  given rules or shipped ones), and their group-by / alias fields exist; a rule that runs but partly matches
  nothing as written (an unresolved ``|expand`` placeholder) is a warning ``[unmatchable]``, as replay prints it.

Errors (exit 3): parse errors, our checks, and validator issues of severity high. Medium and lower are
warnings (exit 0) unless ``--strict`` or ``--fail-on warning``. ``--exclusions FILE`` drops accepted findings per
rule (as ``sigma check``); ``--junit FILE`` writes JUnit XML for CI.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule
from sigma.validators.base import SigmaValidationIssue, SigmaValidationIssueSeverity

from temporal_siem.commands.options import add_json_option, apply_legacy_format, rule_paths_or_none
from temporal_siem.exit_codes import EXIT_OK, EXIT_RULES, EXIT_USAGE

if TYPE_CHECKING:
    from temporal_siem.detections.sigma.routing import LogsourceTagger

# Validators left out, and why (see module docstring).
SKIPPED_VALIDATORS = frozenset({
    "attacktag", "d3_fendtag",  # download MITRE data
    "sigmahq_fieldname_cast", "sigmahq_invalid_fieldname", "sigmahq_redundant_field", "sigmahq_logsource_unknown",
    "sigmahq_tags_techniques_without_tactics", "sigmahq_filename_prefix",  # download SigmaHQ taxonomies
    "sigmahq_filename_convention", "sigmahq_correlation_filename_prefix", "filename_length", "duplicate_filename",
    "sigmahq_category_event_id", "sigmahq_category_windows_provider_name", "sigmahq_sysmon_missing_eventid",  # Windows-only
    "sigmahq_fields_existence", "sigmahq_unknown_field",  # the optional 'fields' attribute
    "number_as_string",  # error.code and friends are strings in our schema
})
# Vendor namespaces a rule may use, by logsource (product, service); fields of our schema are always allowed.
VENDOR_NAMESPACES: dict[tuple[str, str | None], tuple[str, ...]] = {
    ("temporal", "audit"): ("temporal_cloud.",),
    ("temporal", "server"): ("temporal_server.",),
    ("okta", None): ("okta.",),
    ("azure", "signinlogs"): ("azure.",),
    ("google_workspace", None): ("google_workspace.",),
    ("gcp", None): ("google_workspace.", "gcp."),
    ("aws", "cloudtrail"): ("aws.",),
    ("vault", None): ("hashicorp_vault.",),
    ("hashicorp_vault", None): ("hashicorp_vault.",),
}
# Open-ended objects of the schema (dict[str, Any]): any sub-field is allowed.
OPEN_PREFIXES = ("temporal.target.", "labels.", "organization.", "trace.", "cloud.account.", "cloud.service.",
                 "source.as.organization.", "client.as.organization.")


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    rule: str
    severity: str  # error | warning
    message: str
    check: str
    line_no: int | None = None  # 1-based line in ``file``

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line_no}" if self.line_no else self.file

    def line(self) -> str:
        """One line, whatever the message (YAML errors span several), compiler style ``file:line: severity: ...``:
        CI annotations and editors read it line by line and jump to the place."""
        return f"{self.where}: {self.severity}: {self.rule}: {one_line(self.message)} [{self.check}]"


def one_line(text: str) -> str:
    return " ".join(text.split())


def schema_fields() -> frozenset[str]:
    from temporal_siem.kernel.schema import field_reference

    return frozenset(name for name, _, _ in field_reference())


def _namespaces(rule: SigmaRule) -> tuple[str, ...]:
    product = (rule.logsource.product or "").lower()
    service = (rule.logsource.service or "").lower() or None
    return VENDOR_NAMESPACES.get((product, service)) or VENDOR_NAMESPACES.get((product, None)) or ()


def _logsource_problem(logsource: Any, tagger: LogsourceTagger | None) -> tuple[str | None, str]:
    """(severity or None, message) for the logsource of a rule no dataset routes.

    * Logs the event tags name (a Windows category or service, logsources.yml): routed by them, nothing to say.
    * A tagged product with a service no tag names (SigmaHQ has dozens of Windows services), or a product we do
      not parse at all and that is not close to one we do (Linux, a web server): the rule runs on every event
      no dataset or tag claims, as rsigma runs it. A warning; its fields are the log's own.
    * A near miss of a product or service the built-in pipeline routes (a typo in a pack rule: ``temporl``,
      ``audti``), of a tagged product (``windowz``) or of one of its categories (``process_creatoin``): an error,
      naming the one meant. A category no tag has that is not a near miss (SigmaHQ's ``file_rename``) is a
      warning: the rule runs only on events no dataset or tag claims. A service of ours that is not a near miss
      (SigmaHQ's ``gcp.audit``) is a warning as above."""
    from temporal_siem.detections.sigma.locate import did_you_mean
    from temporal_siem.detections.sigma.routing import LogSource

    product = (logsource.product or "").lower()
    service = (logsource.service or "").lower() or None
    category = (logsource.category or "").lower() or None
    where = f"product={logsource.product} service={logsource.service} category={logsource.category}"
    tagged = tagger.products if tagger is not None else frozenset()
    if tagger is not None and tagger.recognises(LogSource(category, product or None, service)):
        return None, ""
    unknown = f"unknown logsource {where}: the engine routes no dataset to it"
    if product in tagged:
        assert tagger is not None
        categories = tagger.categories(product)
        if category is not None and category not in categories:
            near = did_you_mean(category, categories)
            if near:
                return "error", unknown + near
            return "warning", (f"logsource {where}: no event tag puts events in this category "
                               "(detections/pipelines/logsources.yml), so the rule runs only on events no dataset or "
                               "tag claims")
        return "warning", (f"logsource {where}: no event tag names it (detections/pipelines/logsources.yml), so the "
                           "rule runs on every event no dataset or tag claims")
    routed = _routed_logsources()
    ours = {p for p, _ in routed}
    services = {s for p, s in routed if p == product and s}
    near = ""
    if product in ours:
        near = did_you_mean(service, services) if service else ""
    elif product:
        near = did_you_mean(product, ours | tagged)
    if near:
        return "error", unknown + near
    return "warning", (f"logsource {where}: no dataset or tag routes it, so the rule runs on every event no dataset "
                       "or tag claims (plain JSON); its fields are the log's own and are not checked")


@functools.cache
def _routed_logsources() -> frozenset[tuple[str, str | None]]:
    """(product, service) of every logsource the built-in pipeline routes to a dataset (its routing conditions).
    Read once: it is asked for every rule no dataset routes (hundreds in a SigmaHQ folder)."""
    import yaml

    from temporal_siem.detections.sigma.pipelines import BUILTIN_PIPELINE

    data = yaml.safe_load(BUILTIN_PIPELINE.read_text(encoding="utf-8")) or {}
    found: set[tuple[str, str | None]] = set()
    for item in data.get("transformations") or []:
        for condition in item.get("rule_conditions") or []:
            if condition.get("type") == "logsource" and condition.get("product"):
                service = condition.get("service")
                found.add((str(condition["product"]).lower(), str(service).lower() if service else None))
    return frozenset(found)


def field_problem(name: str, written: str, datasets: tuple[str, ...], namespaces: tuple[str, ...],
                  schema: frozenset[str]) -> tuple[str, str] | None:
    """(severity, message) when a field a rule reads is neither in the schema nor produced by the parsers for the
    rule's datasets (the generated catalog, ``rules fields``); None when it is known.

    * A name of ours (not under the logsource's vendor namespace nor an open object) that is unknown is an error,
      with the nearest known names.
    * A vendor-namespace name or a key under an open object (``temporal.target.*``) is judged against its
      siblings: another spelling of a known key (``app_display_name`` / ``appDisplayName``: vendors log both) is
      fine; a key close to a sibling (``temporal_cloud.statuss``, ``temporal.target.expiry_tme``) is an error with
      the suggestion, since a typo never matches anything; otherwise a warning, as real logs carry vendor keys the
      samples do not.
    """
    from temporal_siem.commands.rules_fields import dataset_fields
    from temporal_siem.detections.sigma.locate import suggest

    produced = dataset_fields(datasets)
    if name in schema or name in produced:
        return None
    known = schema | produced
    shown = repr(written) if written == name else f"{written!r} (read as {name!r})"
    where = ", ".join(datasets) or "no dataset"
    if not (name.startswith(namespaces) or name.startswith(OPEN_PREFIXES)):
        close = suggest(name, known) or suggest(written, known)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        return "error", (f"field {shown} is not in the schema nor in this logsource's vendor namespace "
                         f"({', '.join(namespaces) or 'none'}){hint}")
    parent, _, leaf = name.rpartition(".")
    siblings = {k.rpartition(".")[2]: k for k in known if _spelling(k.rpartition(".")[0]) == _spelling(parent)}
    if any(_spelling(leaf) == _spelling(other) for other in siblings):
        return None  # another spelling of a key the vendor logs (snake_case / camelCase generations)
    close = [siblings[c] for c in suggest(leaf, siblings)]
    if close:
        return "error", (f"field {shown} is not in the schema nor produced by the parsers for {where} "
                         f"(did you mean {' or '.join(repr(c) for c in close)}?)")
    return "warning", (f"field {shown} is in no sample of {where} (see: temporal-siem rules fields "
                       f"{datasets[0] if datasets else ''}); check the name")


def _did_you_mean(name: str, candidates: Iterable[str]) -> str:
    from temporal_siem.detections.sigma.locate import did_you_mean

    return did_you_mean(name, candidates)


def _spelling(name: str) -> str:
    """A key with case and underscores folded: vendors log one key as ``app_display_name`` and ``appDisplayName``."""
    return name.replace("_", "").lower()


def _label(rule: SigmaRule | SigmaCorrelationRule) -> str:
    return str(rule.name or rule.id or rule.title)


def _path(rule: SigmaRule | SigmaCorrelationRule, fallback: str = "?") -> str:
    return str(rule.source.path) if rule.source is not None and rule.source.path is not None else fallback


def _rule_line(rule: SigmaRule | SigmaCorrelationRule | None, key: str | None = None, field: str | None = None,
               text: str | None = None) -> int | None:
    """Line of a rule (or of one of its keys / detection fields) in its file, for ``file:line`` messages."""
    from temporal_siem.detections.sigma import locate

    if rule is None or rule.source is None or rule.source.path is None:
        return None
    title, ident = rule.title, str(rule.id) if rule.id else None
    if text is not None:
        line = locate.text_line(rule.source.path, text, title, ident)
        if line is not None:
            return line
    if field is not None:
        section = "correlation" if isinstance(rule, SigmaCorrelationRule) else "detection"
        return locate.field_line(rule.source.path, field, title, ident, section=section)
    if key is not None:
        return locate.key_line(rule.source.path, key, title, ident)
    return locate.rule_line(rule.source.path, title, ident)


def _validators() -> list[tuple[str, Any]]:
    from sigma.validators.core import validators as core
    from sigma.validators.sigmahq import validators as sigmahq  # pinned dependency: SigmaHQ's conventions, as `sigma check`

    found: dict[str, Any] = dict(core)
    found.update(sigmahq)
    return [(name, cls) for name, cls in sorted(found.items()) if name not in SKIPPED_VALIDATORS]


def _parse(files: list[Path]) -> tuple[list[SigmaRule | SigmaCorrelationRule], list[Problem]]:
    from temporal_siem.detections.sigma.loader import _read_file

    items: list[SigmaRule | SigmaCorrelationRule] = []
    problems: list[Problem] = []
    for path in files:
        found, errors = _read_file(path)
        problems.extend(Problem(e.file, "-", "error", e.error, "parse", e.line) for e in errors)
        items.extend(i for i in found if isinstance(i, (SigmaRule, SigmaCorrelationRule)))
    return items, problems


ISSUE_VALUE_CHARS = 120


def issue_message(issue: SigmaValidationIssue) -> str:
    """The issue's description and what it found: its own fields besides the rules (the word of a title-case
    issue, the tag, the field name...). Without them, two issues of one rule printed the same line and neither
    said what to fix."""
    found = []
    for member in fields(issue):
        if member.name == "rules":
            continue
        value = getattr(issue, member.name, None)
        if value is None:
            continue
        text = _issue_value(value)
        found.append(f"{member.name}: {one_line(text)[:ISSUE_VALUE_CHARS]}")
    return f"{issue.description} ({', '.join(found)})" if found else issue.description


def _issue_value(value: Any) -> str:
    """A found value as a rule author reads it: text quoted, a pySigma dataclass (a log source) by its set fields."""
    if isinstance(value, str):
        return repr(value)
    if is_dataclass(value) and not isinstance(value, type):
        shown = ", ".join(f"{m.name}={getattr(value, m.name)!r}" for m in fields(value) if getattr(value, m.name, None) is not None)
        return f"{type(value).__name__}({shown})"
    return str(value)


def _run_validators(rules: list[SigmaRule | SigmaCorrelationRule], strict: bool) -> list[Problem]:
    problems: list[Problem] = []
    for name, cls in _validators():
        try:
            validator = cls()
        except (RuntimeError, OSError) as exc:  # a validator that needs data we do not have
            problems.append(Problem("-", "-", "warning", f"validator skipped: {exc}", name))
            continue
        issues = []
        for rule in rules:
            try:
                issues.extend(validator.validate(rule))
            except Exception as exc:  # one validator failing on one rule must not hide the other problems
                problems.append(Problem(_path(rule), _label(rule), "error", f"validator failed on this rule: {type(exc).__name__}: {exc}",
                                        name, _rule_line(rule)))
        try:
            issues.extend(validator.finalize())
        except Exception as exc:
            problems.append(Problem("-", "-", "warning", f"validator skipped: {type(exc).__name__}: {exc}", name))
        for issue in issues:
            severity = "error" if issue.severity == SigmaValidationIssueSeverity.HIGH or strict else "warning"
            message = issue_message(issue)
            for rule in issue.rules or [None]:
                problems.append(Problem(_path(rule) if rule else "-", _label(rule) if rule else "-", severity,
                                        message, name, _rule_line(rule)))
    return problems


def _our_checks(rules: list[SigmaRule | SigmaCorrelationRule],
                context: list[SigmaRule | SigmaCorrelationRule] | None = None) -> list[Problem]:
    """Our checks on ``rules``; ``context`` (the shipped pack) only resolves what they reference."""
    from temporal_siem.detections.sigma.pipelines import build_pipeline
    from temporal_siem.detections.sigma.ruleset import Ruleset

    problems: list[Problem] = []
    known = schema_fields()
    base = [r for r in rules if isinstance(r, SigmaRule)]
    correlations = [r for r in rules if isinstance(r, SigmaCorrelationRule)]
    referenced = {ref.reference for c in correlations for ref in c.rules or []}
    external = [r for r in context or [] if {str(r.id), r.name} & referenced]
    external_files = {_path(r) for r in external}
    # Uniqueness across everything given.
    seen: dict[str, str] = {}
    for rule in rules:
        for key, kind in ((str(rule.id) if rule.id else None, "id"), (rule.name, "name")):
            if not key:
                continue
            if key in seen:
                problems.append(Problem(_path(rule), _label(rule), "error", f"duplicate {kind} {key} (also in {seen[key]})", "unique",
                                        _rule_line(rule, key=kind)))
            else:
                seen[key] = _path(rule)
    # Logsource routing and field names, on the rule as the engine compiles it (compile() owns the rules it is
    # given and rewrites their field names, so the names as written are collected first).
    written_fields = {id(rule): _original_fields(rule) for rule in base}
    # The correlations too: one the engine cannot evaluate (a percentile past 100, a cycle of references) is a
    # load error that stops replay and run, so the check before shipping must say so.
    ruleset = Ruleset.compile([*base, *(r for r in external if isinstance(r, SigmaRule))], correlations,
                              build_pipeline([], builtin=True))
    problems.extend(Problem(e.file, "-", "error", e.error, "compile", e.line) for e in ruleset.errors
                    if "duplicate rule" not in e.error)  # reported above with both files
    by_ref: dict[str, SigmaRule] = {}
    datasets_by_ref: dict[str, tuple[str, ...]] = {}
    for compiled in ruleset.rules:
        processed = compiled.rule
        if processed is None:
            continue
        for key in compiled.refs:
            by_ref[key] = processed
            datasets_by_ref[key] = compiled.datasets or ()
        if _path(processed) in external_files:
            continue  # a shipped rule, compiled only to resolve a reference: validated with the pack
        foreign = False  # logs we do not parse (Windows, Linux...): the rule runs under their own field names
        if compiled.datasets is None:
            severity, message = _logsource_problem(processed.logsource, ruleset.tagger)
            foreign = severity != "error"
            if severity is not None:
                problems.append(Problem(_path(processed), _label(processed), severity, message, "logsource",
                                        _rule_line(processed, key="logsource")))
        for warning, line in ruleset.rule_warnings(compiled):  # runs, but part of it matches nothing as written
            problems.append(Problem(_path(processed), _label(processed), "warning", warning, "unmatchable",
                                    line if line is not None else _rule_line(processed)))
        if foreign:
            continue  # fields of the log itself (Sysmon's Image, CommandLine...): no schema or catalog to check them against
        namespaces = _namespaces(processed)
        written = written_fields.get(id(processed), set())
        for name in compiled.fields:
            as_written = next((name[len(ns):] for ns in namespaces if name.startswith(ns) and name[len(ns):] in written), name)
            problem = field_problem(name, as_written, compiled.datasets or (), namespaces, known)
            if problem is not None:
                severity, message = problem
                problems.append(Problem(_path(processed), _label(processed), severity, message, "field",
                                        _rule_line(processed, field=as_written)))
    # Correlations: references, group-by and alias fields.
    all_correlations = [*correlations, *(r for r in external if isinstance(r, SigmaCorrelationRule))]
    corr_names = {str(c.id) for c in all_correlations if c.id} | {c.name for c in all_correlations if c.name}
    for corr in correlations:
        targets: list[SigmaRule] = []
        for reference in corr.rules or []:
            if reference.reference in by_ref:
                targets.append(by_ref[reference.reference])
            elif reference.reference not in corr_names:
                problems.append(Problem(_path(corr), _label(corr), "error", f"references unknown rule {reference.reference!r}"
                                        f"{_did_you_mean(reference.reference, [*by_ref, *corr_names])}",
                                        "correlation", _rule_line(corr, key="correlation", text=reference.reference)))
        namespaces = tuple(ns for t in targets for ns in _namespaces(t))
        datasets = tuple(d for r in corr.rules or [] for d in datasets_by_ref.get(r.reference, ()))
        aliases = {a.alias: a for a in corr.aliases} if corr.aliases else {}
        for group in corr.group_by or []:
            if group in aliases:
                for ref_name, field_name in aliases[group].mapping.items():
                    ref_text = getattr(ref_name, "reference", ref_name)
                    problem = field_problem(field_name, field_name, datasets_by_ref.get(str(ref_text), datasets), namespaces, known)
                    if problem is not None:
                        problems.append(Problem(_path(corr), _label(corr), problem[0],
                                                f"alias {group!r} maps {ref_text}: {problem[1]}", "field",
                                                _rule_line(corr, key="correlation", text=str(field_name))))
            else:
                problem = field_problem(group, group, datasets, namespaces, known)
                if problem is not None:
                    problems.append(Problem(_path(corr), _label(corr), problem[0], f"group-by: {problem[1]}", "field",
                                            _rule_line(corr, key="correlation", text=group)))
    return problems


def _original_fields(rule: SigmaRule) -> set[str]:
    """Field names as written in the rule (before the pipeline's renames)."""
    from sigma.rule import SigmaDetection, SigmaDetectionItem

    found: set[str] = set()

    def walk(item: SigmaDetection | SigmaDetectionItem) -> None:
        if isinstance(item, SigmaDetection):
            for child in item.detection_items:
                walk(child)
        elif item.field:
            found.add(item.field)

    for detection in rule.detection.detections.values():
        walk(detection)
    return found


def shipped_clashes(rules: list[SigmaRule | SigmaCorrelationRule]) -> list[Problem]:
    """Ids and names the given rules share with a shipped rule. ``replay``, ``run`` and ``rules list`` load the
    shipped pack first and keep the first of two rules with one id, so such a rule would silently never run."""
    from temporal_siem.detections.sigma.loader import BUILTIN_RULES, load_rules, rule_files

    builtin_files = {p.resolve() for p in rule_files([BUILTIN_RULES])}
    mine = [r for r in rules if r.source is None or r.source.path is None or Path(r.source.path).resolve() not in builtin_files]
    if not mine:
        return []
    shipped: dict[str, str] = {}
    loaded = load_rules([BUILTIN_RULES])
    pack: list[SigmaRule | SigmaCorrelationRule] = [*loaded.rules, *loaded.correlations]
    for shipped_rule in pack:
        for key in (str(shipped_rule.id) if shipped_rule.id else None, shipped_rule.name):
            if key:
                shipped.setdefault(key, _path(shipped_rule))
    problems: list[Problem] = []
    for rule in mine:
        for key, kind in ((str(rule.id) if rule.id else None, "id"), (rule.name, "name")):
            if key and key in shipped:
                problems.append(Problem(_path(rule), _label(rule), "error",
                                        f"duplicate {kind} {key}: the shipped rule {shipped[key]} has it too, and replay/run keep the "
                                        f"shipped one (give this rule its own {kind}, or --no-builtin-rules to replace the pack)",
                                        "unique", _rule_line(rule, key=kind)))
    return problems


def load_exclusions(path: str | Path) -> dict[str, set[str]]:
    """``sigma check``-style exclusions: a YAML mapping of rule (id, name or title) to the checks not to report
    for it, at the top level or under ``exclusions:``. A check is a validator name (``[description_length]``)
    or one of ours (``field``, ``logsource``...): what the ``[...]`` of each problem line shows."""
    import yaml

    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: exclusions are a mapping of rule id or name to a list of checks")
    data = data.get("exclusions", data) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: 'exclusions' must be a mapping of rule id or name to a list of checks")
    exclusions: dict[str, set[str]] = {}
    for rule, checks in data.items():
        names = [checks] if isinstance(checks, str) else checks
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{path}: exclusions of {rule!r} must be a check name or a list of them")
        exclusions[str(rule)] = set(names)
    return exclusions


def validate(paths: list[str | Path], strict: bool = False, builtin_rules: bool = True,
             exclusions: dict[str, set[str]] | None = None) -> list[Problem]:
    """Every problem of the rules under ``paths``; with ``builtin_rules`` (they run beside the shipped pack)
    also their id/name clashes with it; minus the ``exclusions`` (rule -> checks)."""
    problems = _validate(paths, strict, builtin_rules)
    if not exclusions:
        return problems
    return [p for p in problems if not (exclusions.get(p.rule, set()) | _excluded_by_alias(p, exclusions)) & {p.check, "*"}]


def _excluded_by_alias(problem: Problem, exclusions: dict[str, set[str]]) -> set[str]:
    """A problem names its rule by name, else id, else title; an exclusion may use any of the three."""
    found: set[str] = set()
    for alias in _ALIASES.get((problem.file, problem.rule), ()):
        found |= exclusions.get(alias, set())
    return found


_ALIASES: dict[tuple[str, str], tuple[str, ...]] = {}


def _validate(paths: list[str | Path], strict: bool, builtin_rules: bool) -> list[Problem]:
    from temporal_siem.detections.sigma.loader import rule_files

    files = rule_files(paths)
    rules, problems = _parse(files)
    for rule in rules:
        _ALIASES[(_path(rule), _label(rule))] = tuple(str(a) for a in (rule.id, rule.name, rule.title) if a)
    context: list[SigmaRule | SigmaCorrelationRule] = []
    if builtin_rules:
        problems.extend(shipped_clashes(rules))
        context = _shipped_context(rules)
    try:
        collection = SigmaCollection([*rules, *context], resolve_references=False)  # type: ignore[list-item]
        for corr in (r for r in rules if isinstance(r, SigmaCorrelationRule)):
            try:
                corr.resolve_rule_references(collection)
            except (SigmaError, ValueError, KeyError) as exc:
                problems.append(Problem(_path(corr), _label(corr), "error", f"unresolved reference: {exc}", "correlation",
                                        _rule_line(corr, key="correlation")))
    except (SigmaError, ValueError) as exc:
        problems.append(Problem("-", "-", "error", str(exc), "collection"))
    problems.extend(_run_validators(rules, strict))
    problems.extend(_our_checks(rules, context))
    return problems


def _shipped_context(rules: list[SigmaRule | SigmaCorrelationRule]) -> list[SigmaRule | SigmaCorrelationRule]:
    """Shipped rules the given ones may reference (they run beside the pack), minus the given files themselves."""
    from temporal_siem.detections.sigma.loader import BUILTIN_RULES, load_rules

    given = {Path(_path(r)).resolve() for r in rules}
    loaded = load_rules([BUILTIN_RULES])
    pack: list[SigmaRule | SigmaCorrelationRule] = [*loaded.rules, *loaded.correlations]
    return [r for r in pack if Path(_path(r)).resolve() not in given]


def register(rsub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = rsub.add_parser("validate", help="Validate rules: pySigma + SigmaHQ validators, schema fields, logsources, ids, references.")
    p.add_argument("dirs", nargs="*", metavar="DIR", help="Rule directories or files (default: the shipped rules).")
    add_json_option(p)
    p.add_argument("--strict", action="store_true", help="Treat every validator warning as an error.")
    p.add_argument("--no-builtin-rules", action="store_true",
                   help="These rules replace the shipped pack (as replay --no-builtin-rules): do not check ids/names against it.")
    p.add_argument("--exclusions", metavar="FILE",
                   help="YAML: rule id or name -> checks not to report for it (validator names, or field, logsource...).")
    p.add_argument("--fail-on", choices=("error", "warning"), default="error",
                   help="Exit 3 on errors (default), or on warnings too.")
    p.add_argument("--junit", metavar="FILE", help="Also write JUnit XML for CI: one test per rule file.")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    apply_legacy_format(args)
    paths = rule_paths_or_none(args.dirs)
    if paths is None:
        return EXIT_USAGE
    try:
        exclusions = load_exclusions(args.exclusions) if args.exclusions else None
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_USAGE
    problems = validate(paths, strict=args.strict, builtin_rules=not args.no_builtin_rules, exclusions=exclusions)
    errors = [p for p in problems if p.severity == "error"]
    if args.junit:
        _write_junit(args.junit, paths, problems)
    if args.json:
        doc = {"errors": len(errors), "warnings": len(problems) - len(errors), "problems": [asdict(p) for p in problems]}
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        lines = [p.line() for p in problems]
        lines.append(f"{len(errors)} errors, {len(problems) - len(errors)} warnings")
        sys.stdout.write("\n".join(lines) + "\n")
    return EXIT_RULES if errors or (args.fail_on == "warning" and problems) else EXIT_OK


def _write_junit(path: str, paths: list[str | Path], problems: list[Problem]) -> None:
    """One test per rule file: failed when it has an error, its warnings as output."""
    from temporal_siem.commands.junit import JUnitCase, write_junit
    from temporal_siem.detections.sigma.loader import rule_files

    by_file: dict[str, list[Problem]] = {}
    for problem in problems:
        by_file.setdefault(str(Path(problem.file).resolve()) if problem.file != "-" else "-", []).append(problem)
    cases = []
    for file in rule_files(paths):
        mine = by_file.pop(str(file.resolve()), [])
        cases.append(JUnitCase("rules validate", str(file), failures=[p.line() for p in mine if p.severity == "error"],
                               output="\n".join(p.line() for p in mine if p.severity != "error")))
    for other, rest in by_file.items():  # problems not tied to a rule file (a validator that could not run)
        cases.append(JUnitCase("rules validate", other, failures=[p.line() for p in rest if p.severity == "error"],
                               output="\n".join(p.line() for p in rest if p.severity != "error")))
    write_junit(path, "rules validate", cases)

