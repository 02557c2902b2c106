"""``temporal-siem rules test DIR...``: run every rule's test events through the real engine.

Test files sit beside the rules they test: ``foo.yml`` is tested by ``foo.tests.yml`` or ``foo.tests.json`` (the
rule loader skips ``*.tests.*``, so test files never load as rules). ``--new-case FILE:LINE`` writes a case from a
log record. Layout (docs/rule-authoring.md), in JSON or the same keys in YAML::

    {"defaults": {"event.dataset": "temporal_cloud.audit"},      # merged into every event (optional)
     "cases": [
       {"rule": "<rule name or id>", "name": "what this shows", "expect": "match" | "no_match",
        "count": 1,                                                # optional: exactly this many times
        "events": [{...flat or nested normalized event...}],      # or
        "records": [{...raw vendor record...}]}                    # parsed by the real parsers first
     ]}

Each case runs in a fresh detector (enrichments, correlation state) built once per run from the rule
directories, so cases cannot leak into each other. A rule "fires" when it raised an alert, or, for a base rule
that only feeds correlations (``generate: false``), when the engine counted a match for it. Missing
``@timestamp``s are one second apart from 2025-01-01; missing ``event.id``s are derived from the case.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from temporal_siem.commands.options import add_json_option, add_rule_options, apply_legacy_format, rule_paths_or_none
from temporal_siem.detections.factory import new_detector
from temporal_siem.exit_codes import EXIT_OK, EXIT_RULES, EXIT_USAGE
from temporal_siem.kernel.flatten import flatten

TEST_SUFFIX = ".tests.json"
TEST_SUFFIXES = (".tests.json", ".tests.yml", ".tests.yaml")  # the rule loader skips the YAML ones (loader.TEST_SUFFIXES)
EXPECTATIONS = ("match", "no_match")
BASE_TIME = datetime(2025, 1, 1, tzinfo=UTC)


class TestFileError(ValueError):
    """A test file that cannot be used (with the file and case it came from)."""

    __test__ = False  # not a pytest class


@dataclass
class TestCase:
    __test__ = False
    file: Path
    index: int
    rule: str
    name: str
    expect: str
    events: list[dict[str, Any]] = field(default_factory=list)
    records: list[Any] = field(default_factory=list)
    count: int | None = None  # exact number of alerts (or building-block matches) expected, when given

    @property
    def where(self) -> str:
        return f"{self.file}#{self.index}"


@dataclass
class CaseResult:
    case: TestCase
    passed: bool
    fired: bool
    alerts: list[dict[str, Any]]
    detail: list[str] = field(default_factory=list)


def is_test_file(path: Path) -> bool:
    return path.name.endswith(TEST_SUFFIXES)


def find_test_files(paths: list[str | Path]) -> list[Path]:
    found: list[Path] = []
    for raw in paths:
        root = Path(raw)
        if root.is_dir():
            found.extend(sorted(p for p in root.rglob("*.tests.*") if is_test_file(p) and p.is_file()))
        elif is_test_file(root):
            found.append(root)
        elif root.suffix in (".yml", ".yaml"):
            stem = root.name.rsplit(".", 1)[0]
            found.extend(sibling for suffix in TEST_SUFFIXES if (sibling := root.with_name(stem + suffix)).is_file())
    return found


def misnamed_test_files(paths: list[str | Path]) -> list[Path]:
    """Files that look like test cases but will not be read (``rule.test.json``, ``rule_tests.json``...)."""
    found: list[Path] = []
    for raw in paths:
        root = Path(raw)
        if root.is_dir():
            found.extend(p for p in sorted(root.rglob("*test*")) if p.is_file() and not is_test_file(p)
                         and p.suffix in (".json", ".yml", ".yaml"))
    return found


def _read_test_document(path: Path) -> Any:
    """A test file's content: JSON (``.tests.json``) or YAML (``.tests.yml``, safe loader, no duplicate keys)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TestFileError(f"{path}: cannot read test file: {exc}") from exc
    if path.suffix == ".json":
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise TestFileError(f"{path}: cannot read test file: {exc}") from exc
    import yaml

    from temporal_siem.detections.sigma.loader import RuleYamlLoader
    from temporal_siem.detections.sigma.locate import yaml_error_line

    try:
        return yaml.load(raw.decode("utf-8"), Loader=RuleYamlLoader)
    except UnicodeDecodeError as exc:
        raise TestFileError(f"{path}: cannot read test file: {exc}") from exc
    except yaml.YAMLError as exc:
        line = yaml_error_line(exc)
        raise TestFileError(f"{path}{':' + str(line) if line else ''}: invalid YAML: {' '.join(str(exc).split())}") from exc


def _normalized(event: Any, defaults: dict[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(event, dict):
        raise TestFileError(f"{where}: an event must be a JSON object, not {type(event).__name__}")
    flat = flatten(event) if any(isinstance(v, dict) for v in event.values()) else dict(event)
    merged = dict(defaults)
    merged.update(flat)
    return merged


def load_cases(path: Path) -> list[TestCase]:
    """Every case of a test file; the first bad case raises (see :func:`load_cases_checked` to keep going)."""
    cases, errors = load_cases_checked(path)
    if errors:
        raise TestFileError(errors[0])
    return cases


def load_cases_checked(path: Path) -> tuple[list[TestCase], list[str]]:
    """The good cases of a test file and one message per bad case: one bad case does not hide the others.
    A file that cannot be read at all raises :class:`TestFileError`."""
    data = _read_test_document(path)
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        raise TestFileError(f"{path}: a test file is an object with a 'cases' list")
    cases: list[TestCase] = []
    errors: list[str] = []
    for index, raw in enumerate(data["cases"]):
        try:
            cases.append(_case(path, index, raw, data))
        except TestFileError as exc:
            errors.append(str(exc))
    if not data["cases"]:
        errors.append(f"{path}: 'cases' is empty")
    return cases, errors


def _case(path: Path, index: int, raw: Any, data: dict[str, Any]) -> TestCase:
    file_defaults = data.get("defaults") or {}
    file_rule = data.get("rule")
    where = f"{path}#{index}"
    if not isinstance(raw, dict):
        raise TestFileError(f"{where}: a case must be an object")
    rule = raw.get("rule", file_rule)
    expect = raw.get("expect")
    if not isinstance(rule, str) or not rule:
        raise TestFileError(f"{where}: case names no 'rule'")
    if expect not in EXPECTATIONS:
        raise TestFileError(f"{where}: 'expect' must be one of {', '.join(EXPECTATIONS)}, not {expect!r}")
    defaults = dict(file_defaults)
    defaults.update(raw.get("defaults") or {})
    events = raw.get("events") or []
    records = raw.get("records") or []
    if not isinstance(events, list) or not isinstance(records, list) or not (events or records):
        raise TestFileError(f"{where}: a case needs a non-empty 'events' or 'records' list")
    count = raw.get("count")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 0
                              or (count == 0) != (expect == "no_match")):
        raise TestFileError(f"{where}: 'count' must be a whole number, 0 exactly when expect is no_match")
    normalized = [_normalized(e, defaults, f"{where} event {i}") for i, e in enumerate(events)]
    return TestCase(path, index, rule, str(raw.get("name", f"case {index}")), expect, normalized, records, count)


def _parsed_records(case: TestCase) -> list[dict[str, Any]]:
    from temporal_siem.kernel.records import Origin, RawRecord
    from temporal_siem.parsers.router import ParserRouter

    router = ParserRouter()
    events: list[dict[str, Any]] = []
    for i, record in enumerate(case.records):
        data = record.encode() if isinstance(record, str) else orjson.dumps(record)
        result = router.parse(RawRecord(data, Origin(str(case.file), line=i + 1)))
        if result.dead:
            reasons = "; ".join(f"{d.reason} {d.detail}".strip() for d in result.dead)
            raise TestFileError(f"{case.where}: record {i} did not parse: {reasons}")
        events.extend(result.events)
    return events


def _with_defaults(case: TestCase, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, event in enumerate(events):
        event = dict(event)
        event.setdefault("@timestamp", (BASE_TIME + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        event.setdefault("event.id", f"{case.file.stem}-{case.index}-{i}")
        out.append(event)
    return out


class TestRunner:
    """Runs test cases against one compiled ruleset (the rules under test plus anything they reference)."""

    __test__ = False

    def __init__(self, ruleset: Any) -> None:
        self.ruleset = ruleset
        self._index_of = {ref: rule.index for rule in ruleset.rules for ref in rule.refs}
        self._correlation_ids = {key: meta.id for key, meta in ruleset.correlation_meta.items()}

    def rule_id(self, reference: str) -> str | None:
        if reference in self._index_of:
            return str(self.ruleset.rules[self._index_of[reference]].id)
        return self._correlation_ids.get(reference)

    def run_case(self, case: TestCase) -> CaseResult:
        target = self.rule_id(case.rule)
        if target is None:
            from temporal_siem.detections.sigma.locate import did_you_mean

            hint = did_you_mean(case.rule, [*self._index_of, *self._correlation_ids])
            return CaseResult(case, False, False, [], [f"no rule {case.rule!r} is loaded{hint} (a load error? see 'rules validate')"])
        try:
            events = _with_defaults(case, case.events + (_parsed_records(case) if case.records else []))
        except TestFileError as exc:
            return CaseResult(case, False, False, [], [str(exc)])
        detector = new_detector(self.ruleset, {})
        correlation = getattr(detector, "correlation", None)
        if correlation is not None and hasattr(correlation, "suppressed_refs") and case.rule in correlation.suppressed_refs() \
                and case.rule not in self._index_of:
            return CaseResult(case, False, False, [], [f"{case.rule} only feeds other correlations (generate: false) and never alerts "
                                                        "on its own: test it through a correlation that references it"])
        alerts = list(detector.process([dict(e) for e in events]))
        alerts.extend(detector.finish())
        fired_alerts = [a for a in alerts if a.get("rule.id") == target]
        index = self._index_of.get(case.rule)
        times = len(fired_alerts) or (int(detector.matched[index]) if index is not None else 0)
        fired = times > 0
        passed = fired == (case.expect == "match") and (case.count is None or times == case.count)
        detail: list[str] = []
        if not passed:
            detail = self._diff(case, index, events, alerts, fired)
            if case.count is not None and fired == (case.expect == "match"):
                detail.insert(1, f"- expected it {case.count} times\n+ it fired {times} times")
        return CaseResult(case, passed, fired, fired_alerts, detail)

    def _diff(self, case: TestCase, index: int | None, events: list[dict[str, Any]], alerts: list[dict[str, Any]],
              fired: bool) -> list[str]:
        want = "an alert" if case.expect == "match" else "no alert"
        got = "it fired" if fired else "it did not fire"
        lines = [f"- expected {want} from {case.rule}", f"+ {got}; alerts raised: {sorted({str(a.get('rule.name')) for a in alerts}) or 'none'}"]
        if index is None:
            return lines  # a correlation: the base rules' own test cases explain the events
        from temporal_siem.commands.rules_explain import explain
        from temporal_siem.detections.enrichment import build_enrichers

        enriched = [dict(e) for e in events]
        for enricher in build_enrichers():
            enricher.enrich(enriched)
        for n, event in enumerate(enriched[:5]):
            lines.append(f"  event {n}:")
            lines.extend("  " + line for line in explain(self.ruleset.rules[index], event, self.ruleset).lines())
        return lines


def run_tests(paths: list[str | Path], extra_rule_paths: list[str | Path] | None = None,
              builtin_rules: bool = True) -> tuple[list[CaseResult], list[str]]:
    """Results of every test file under ``paths`` and the load problems (rule load errors, bad test files, and
    with ``builtin_rules`` ids/names the tested rules share with the shipped pack they will run beside)."""
    from temporal_siem.commands.rules_validate import shipped_clashes
    from temporal_siem.detections.sigma.ruleset import Ruleset

    rule_roots = [p for p in paths if Path(p).is_dir() or (Path(p).suffix in (".yml", ".yaml") and not is_test_file(Path(p)))]
    rule_roots.extend(extra_rule_paths or [])
    ruleset = Ruleset.from_paths(rule_roots, builtin_rules=False)
    problems = [f"{e.where}: {e.error}" for e in ruleset.errors]
    if builtin_rules:
        tested = [r.rule for r in ruleset.rules if r.rule is not None]
        clashes = shipped_clashes([*tested, *ruleset.correlations])
        problems.extend(f"{p.where}: {p.message}" for p in clashes)
        if not clashes:
            # As in replay: the shipped pack runs beside the rules under test (a correlation may reference it).
            ruleset = Ruleset.from_paths(rule_roots, builtin_rules=True)
            problems = [f"{e.where}: {e.error}" for e in ruleset.errors]
    runner = TestRunner(ruleset)
    results: list[CaseResult] = []
    files = find_test_files(paths)
    if not files:
        problems.append(no_test_files_message(paths))
    for path in files:
        try:
            cases, errors = load_cases_checked(path)
        except TestFileError as exc:
            problems.append(str(exc))
            continue
        problems.extend(errors)
        results.extend(runner.run_case(case) for case in cases)
    return results, problems


def no_test_files_message(paths: list[str | Path]) -> str:
    """Why nothing ran, and what would have: a run with no cases must not look like a clean one."""
    shown = ", ".join(str(p) for p in paths)
    message = (f"no test files under {shown}: a rule's cases go beside it as <rule>.tests.json or <rule>.tests.yml "
               "(docs/rule-authoring.md)")
    misnamed = misnamed_test_files(paths)
    if misnamed:
        message += "; not read because of their names: " + ", ".join(str(p) for p in misnamed[:5])
    return message


def register(rsub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = rsub.add_parser("test", help="Run every rule's test events (<rule>.tests.json) through the engine.")
    p.add_argument("dirs", nargs="*", metavar="DIR", help="Rule directories or files (default: the shipped rules).")
    add_rule_options(p, extra_help=" Their tests do not run: rules the tested ones reference, for example.")
    add_json_option(p)
    p.add_argument("-q", "--quiet", action="store_true", help="Print failures and the summary only.")
    p.add_argument("--junit", metavar="FILE", help="Also write JUnit XML for CI: one test per case.")
    new = p.add_argument_group("writing a case from a log record")
    new.add_argument("--new-case", metavar="FILE:LINE",
                     help="Add the record at FILE:LINE (or a FILE's first record) as a case of --rule to the rule's test "
                          "file (<rule>.tests.json if it exists, else <rule>.tests.yml), then run the tests.")
    new.add_argument("--rule", metavar="RULE", help="With --new-case: the rule's name or id (default: the only rule in DIR).")
    new.add_argument("--name", metavar="TEXT", help="With --new-case: what the case shows (default: FILE:LINE).")
    new.add_argument("--expect", choices=EXPECTATIONS,
                     help="With --new-case: the expectation (default: what the engine does with the record now).")
    p.set_defaults(handler=run)


def add_case(paths: list[str | Path], location: str, rule_ref: str | None, name: str | None, expect: str | None,
             extra_rule_paths: list[str | Path]) -> tuple[Path, int, str, bool]:
    """Append a case made of the record at ``location`` to the test file of the rule; (file, case index,
    expectation written, whether the rule fires on it now). Raises ``TestFileError`` when it cannot."""
    from temporal_siem.commands.rules_explain import read_event_input
    from temporal_siem.detections.sigma.ruleset import Ruleset

    try:
        raw = read_event_input(location)
    except (OSError, ValueError) as exc:
        raise TestFileError(f"cannot read {location}: {exc}") from exc
    from temporal_siem.kernel.secrets import redact, redact_text

    # The test file is an output like any other: secrets in the record (tokens, keys) are masked before it is written.
    try:
        record: Any = redact(orjson.loads(raw))
    except orjson.JSONDecodeError:
        record = redact_text(raw.decode("utf-8", "replace"))  # a text log line (grpc-go, syslog): kept as a string
    rule_roots = [p for p in paths if Path(p).is_dir() or Path(p).suffix in (".yml", ".yaml")]
    ruleset = Ruleset.from_paths([*rule_roots, *extra_rule_paths], builtin_rules=False)
    runner = TestRunner(ruleset)
    mine = [r for r in ruleset.rules if _under(r.meta.source, rule_roots)]
    mine_corr = [m for key, m in ruleset.correlation_meta.items() if key == m.id and _under(m.source, rule_roots)
                 and m.id not in {r.id for r in ruleset.rules}]
    if rule_ref is None:
        candidates = [r.name or r.id for r in mine] + [str(m.extra.get("name") or m.id) for m in mine_corr]
        if len(candidates) != 1:
            raise TestFileError(f"--new-case needs --rule: {len(candidates)} rules under {', '.join(map(str, paths))}")
        rule_ref = candidates[0]
    target = runner.rule_id(rule_ref)
    if target is None:
        from temporal_siem.detections.sigma.locate import did_you_mean

        raise TestFileError(f"no rule {rule_ref!r} under {', '.join(map(str, paths))}"
                            f"{did_you_mean(rule_ref, [*runner._index_of, *runner._correlation_ids])}")
    source = Path(ruleset.correlation_meta[target].source if target in ruleset.correlation_meta else "")
    test_file = source.with_name(source.name.rsplit(".", 1)[0] + TEST_SUFFIX)
    if not test_file.exists():
        test_file = source.with_name(source.name.rsplit(".", 1)[0] + ".tests.yml")
    probe = TestCase(test_file, 0, rule_ref, name or location, "match", records=[record])
    result = runner.run_case(probe)
    if result.detail and not result.fired and "did not parse" in " ".join(result.detail):
        raise TestFileError(" ".join(result.detail))
    written = expect or ("match" if result.fired else "no_match")
    document = _read_test_document(test_file) if test_file.exists() else {"cases": []}
    if not isinstance(document, dict) or not isinstance(document.get("cases"), list):
        raise TestFileError(f"{test_file}: a test file is an object with a 'cases' list")
    document["cases"].append({"rule": rule_ref, "name": name or location, "expect": written, "records": [record]})
    if test_file.suffix == ".json":
        test_file.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        import yaml

        test_file.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=120), encoding="utf-8")
    return test_file, len(document["cases"]) - 1, written, result.fired


def _under(source: str, roots: list[str | Path]) -> bool:
    path = Path(source).resolve()
    for root in roots:
        resolved = Path(root).resolve()
        if path == resolved or resolved in path.parents:
            return True
    return False


def _junit(path: str, results: list[CaseResult], problems: list[str]) -> None:
    from temporal_siem.commands.junit import JUnitCase, write_junit

    cases = [JUnitCase(str(r.case.file), f"#{r.case.index} {r.case.rule}: {r.case.name} (expect {r.case.expect})",
                       failures=[] if r.passed else ["\n".join(r.detail) or "failed"]) for r in results]
    cases.extend(JUnitCase("rules test", " ".join(p.split())[:200], errors=[p]) for p in problems)
    write_junit(path, "rules test", cases)


def run(args: argparse.Namespace) -> int:
    apply_legacy_format(args)
    paths = rule_paths_or_none(args.dirs)
    if paths is None:
        return EXIT_USAGE
    if args.new_case:
        try:
            test_file, index, written, fired = add_case(paths, args.new_case, args.rule, args.name, args.expect, args.rules)
        except TestFileError as exc:
            sys.stderr.write(f"error: {exc}\n")
            return EXIT_USAGE
        sys.stderr.write(f"added case #{index} to {test_file}: expect {written} (the rule {'fires' if fired else 'does not fire'} "
                         "on this record now)\n")
    results, problems = run_tests(paths, args.rules, builtin_rules=not args.no_builtin_rules)
    failed = [r for r in results if not r.passed]
    if args.junit:
        _junit(args.junit, results, problems)
    if args.json:
        doc = {
            "passed": len(results) - len(failed), "failed": len(failed), "problems": problems,
            "cases": [{"file": str(r.case.file), "case": r.case.index, "name": r.case.name, "rule": r.case.rule,
                       "expect": r.case.expect, "passed": r.passed, "fired": r.fired, "detail": r.detail} for r in results],
        }
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        out = []
        for result in results:
            if result.passed and args.quiet:
                continue
            status = "PASS" if result.passed else "FAIL"
            out.append(f"{status} {result.case.where} {result.case.rule}: {result.case.name} (expect {result.case.expect})")
            out.extend(f"    {line}" for line in result.detail)
        out.extend("ERROR " + " ".join(p.split()) for p in problems)
        out.append(f"{len(results) - len(failed)} passed, {len(failed)} failed" + (f", {len(problems)} errors" if problems else ""))
        sys.stdout.write("\n".join(out) + "\n")
    return EXIT_RULES if failed or problems or not results else EXIT_OK
