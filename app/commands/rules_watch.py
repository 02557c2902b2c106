"""``temporal-siem rules watch DIR...``: re-validate and re-test rules each time a file under DIR is saved.

Polling (modification times and sizes every ``--interval`` seconds) rather than inotify: it works the same on every
platform and on network mounts, and a rule directory is small. Each run prints the problems of ``rules validate``
and the failures of ``rules test`` (when the directory has test files), then a one-line verdict.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

from temporal_siem.commands.options import add_rule_options
from temporal_siem.exit_codes import EXIT_OK, EXIT_RULES, EXIT_USAGE

WATCHED_SUFFIXES = (".yml", ".yaml", ".json")


def snapshot(paths: list[str]) -> dict[str, tuple[float, int]]:
    """(mtime, size) of every rule or test file under ``paths``."""
    found: dict[str, tuple[float, int]] = {}
    for raw in paths:
        root = Path(raw)
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.suffix in WATCHED_SUFFIXES and p.is_file()]
        for path in files:
            try:
                stat = path.stat()
            except OSError:
                continue
            found[str(path)] = (stat.st_mtime, stat.st_size)
    return found


def check_once(paths: list[str], extra: list[str], builtin_rules: bool) -> int:
    """One validate + test run; prints what a rule author needs and returns the exit code it would have."""
    from temporal_siem.commands.rules_test import find_test_files, run_tests
    from temporal_siem.commands.rules_validate import validate

    problems = validate(list(paths), builtin_rules=builtin_rules)
    errors = [p for p in problems if p.severity == "error"]
    lines = [p.line() for p in problems]
    failed = 0
    passed = 0
    if find_test_files(list(paths)):
        results, test_problems = run_tests(list(paths), list(extra), builtin_rules=builtin_rules)
        for result in results:
            if not result.passed:
                failed += 1
                lines.append(f"FAIL {result.case.where} {result.case.rule}: {result.case.name} (expect {result.case.expect})")
                lines.extend(f"    {line}" for line in result.detail)
        passed = len(results) - failed
        lines.extend("ERROR " + " ".join(p.split()) for p in test_problems)
        failed += len(test_problems)
    verdict = "OK" if not errors and not failed else "PROBLEMS"
    stamp = datetime.now().strftime("%H:%M:%S")
    lines.append(f"[{stamp}] {verdict}: {len(errors)} errors, {len(problems) - len(errors)} warnings; "
                 f"{passed} cases passed, {failed} failed")
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    return EXIT_OK if verdict == "OK" else EXIT_RULES


def watch(paths: list[str], *, interval: float = 1.0, max_runs: int | None = None, extra: list[str] | None = None,
          builtin_rules: bool = True) -> list[int]:
    """Check now, then after every change, until interrupted (or ``max_runs`` checks: for tests)."""
    # The files' state is noted before each check, never after: a save that lands while a check runs is then a
    # change the next poll sees, instead of being folded into "seen" and missed until the following save.
    seen = snapshot(paths)
    codes = [check_once(paths, extra or [], builtin_rules)]
    while max_runs is None or len(codes) < max_runs:
        time.sleep(interval)
        current = snapshot(paths)
        if current != seen:
            time.sleep(min(interval, 0.2))  # let an editor finish writing (save = truncate + write)
            seen = snapshot(paths)
            codes.append(check_once(paths, extra or [], builtin_rules))
    return codes


def register(rsub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = rsub.add_parser("watch", help="Re-validate and re-test rules each time one is saved (Ctrl-C to stop).")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="Rule directories or files to watch.")
    add_rule_options(p, extra_help=" Not watched; their tests do not run.")
    p.add_argument("--interval", type=float, default=1.0, metavar="SECONDS", help="Polling interval (default 1).")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    missing = [d for d in args.dirs if not Path(d).exists()]
    if missing:
        sys.stderr.write(f"no such rule directory or file: {', '.join(missing)}\n")
        return EXIT_USAGE
    sys.stderr.write(f"watching {', '.join(args.dirs)} (Ctrl-C to stop)\n")
    watch(list(args.dirs), interval=args.interval, extra=list(args.rules), builtin_rules=not args.no_builtin_rules)
    return EXIT_OK
