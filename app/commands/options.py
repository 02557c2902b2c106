"""Option names that mean one thing in every command (issue 16, item 9):

* ``--format NAME``: the input parser (``auto``, ``okta``, ...), wherever records are read;
* ``--json``: the command's own report as JSON; ``--output-format``: a format of something produced (the
  SIEM backend's format in ``rules convert``, the schema's in ``schema``);
* ``--rules DIR``: more rules beside the shipped pack; ``--no-builtin-rules``: without the shipped pack.

Older spellings keep working with a deprecation warning on stderr (``--format json`` where it meant the output).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

LEGACY_OUTPUT_FORMATS = ("text", "json")


def add_json_option(p: argparse.ArgumentParser, *, legacy_format: bool = True, help_text: str = "Print the report as JSON.") -> None:
    p.add_argument("--json", action="store_true", help=help_text)
    if legacy_format:
        # Before issue 16 these commands spelled the output `--format text|json`; `--format` now only names parsers.
        p.add_argument("--format", dest="legacy_format", choices=LEGACY_OUTPUT_FORMATS, default=None, help=argparse.SUPPRESS)


def add_rule_options(p: argparse.ArgumentParser, *, extra_help: str = "") -> None:
    p.add_argument("--rules", action="append", default=[], metavar="DIR",
                   help="More Sigma rules beside the shipped pack (repeatable)." + extra_help)
    p.add_argument("--no-builtin-rules", action="store_true", help="Do not load the shipped pack (detections/rules).")


def apply_legacy_format(args: argparse.Namespace) -> None:
    """``--format text|json`` (the old output option) -> ``--json``, with a deprecation warning."""
    legacy = getattr(args, "legacy_format", None)
    if legacy is None:
        return
    sys.stderr.write(f"warning: --format {legacy} is deprecated here: --format names the input parser; "
                     f"use {'--json' if legacy == 'json' else 'no option'} for the output\n")
    if legacy == "json":
        args.json = True


def rule_paths_or_none(dirs: list[str]) -> list[str | Path] | None:
    """The rule files or directories a command was given (the shipped pack when none), or None after saying on
    stderr which do not exist: a named rule path that is not there stops the command (exit 2), never silently."""
    from temporal_siem.detections.sigma.files import BUILTIN_RULES

    paths: list[str | Path] = list(dirs) or [BUILTIN_RULES]
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        sys.stderr.write(f"no such rule directory or file: {', '.join(missing)}\n")
        return None
    return paths
