"""One of each: one backoff schedule, one line per parser, one place for exit codes."""

from __future__ import annotations

import importlib
import re

from temporal_siem.kernel.backoff import Backoff
from temporal_siem.parsers.registry import PARSERS, detection_chain, get_parser
from tests.conftest import ROOT


def test_backoff_doubles_to_its_cap_and_stops_after_its_attempts():
    assert list(Backoff(4, 0.5, 2.0, jitter=False).delays()) == [0.5, 1.0, 2.0, 2.0]
    delays = list(Backoff(6, 1.0, 8.0).delays())
    caps = [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert len(delays) == 6 and all(cap / 2 <= delay <= cap for delay, cap in zip(delays, caps, strict=True))


def test_backoff_without_attempts_never_runs_out():
    delays = Backoff(None, 1.0, 30.0, jitter=False).delays()
    assert [next(delays) for _ in range(8)] == [1, 2, 4, 8, 16, 30, 30, 30]


def test_no_hand_written_backoff_is_left():
    doubling = re.compile(r"(delay|backoff)\s*=\s*min\(\s*\w+\s*\*\s*2")
    offenders = [str(path.relative_to(ROOT)) for folder in ("app", "kernel", "ingest", "parsers", "detections", "sinks")
                 for path in (ROOT / folder).rglob("*.py")
                 if path.name != "backoff.py" and doubling.search(path.read_text(encoding="utf-8"))]
    assert offenders == [], "use temporal_siem.kernel.backoff.Backoff"


def test_a_parser_is_one_line_of_the_registry_and_its_place_is_its_detection_order():
    chain = detection_chain()
    assert [type(parser) for parser in chain] == [type(get_parser(name)) for name in PARSERS]
    assert list(PARSERS)[-2:] == ["ecs", "json"], "the generic parsers come last"


def test_exit_codes_are_defined_once():
    definitions = [str(path.relative_to(ROOT)) for path in (ROOT / "app").rglob("*.py")
                   if re.search(r"^EXIT_(OK|FAILURE|USAGE)\b.*=", path.read_text(encoding="utf-8"), re.M)]
    assert definitions == ["app/exit_codes.py"]
    codes = importlib.import_module("temporal_siem.exit_codes")
    assert (codes.EXIT_OK, codes.EXIT_FAILURE, codes.EXIT_USAGE, codes.EXIT_RULES, codes.EXIT_ALERT) == (0, 1, 2, 3, 10)
