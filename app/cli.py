"""``temporal-siem`` command line. Each subcommand is one module in app/commands/; exit codes are in
app/exit_codes.py."""

from __future__ import annotations

import argparse
import atexit
import importlib
import logging
import os
import sys
from typing import Any

from temporal_siem.exit_codes import EXIT_ALERT, EXIT_FAILURE, EXIT_OK, EXIT_RULES, EXIT_USAGE

# Re-exported for callers that import them with ``main`` (tests); defined once, in app/exit_codes.py.
__all__ = ["EXIT_ALERT", "EXIT_FAILURE", "EXIT_OK", "EXIT_RULES", "EXIT_USAGE", "build_parser", "main"]

#: Each top-level command and the module that registers it (tests/app/test_cli.py holds the two together).
COMMANDS = {
    "replay": "temporal_siem.commands.replay",
    "parse": "temporal_siem.commands.parse",
    "rules": "temporal_siem.commands.rules",
    "config": "temporal_siem.commands.config",
    "schema": "temporal_siem.commands.schema",
    "run": "temporal_siem.commands.run",
    "setup": "temporal_siem.commands.setup",
}
COMMAND_MODULES = tuple(COMMANDS.values())


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(text: str) -> str:
    """A log level name, any case; anything else is a usage error (exit 2), not a traceback."""
    level = text.upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"unknown log level {text!r}; choose one of {', '.join(LOG_LEVELS)}")
    return level


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("temporal-siem")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


class _VersionAction(argparse.Action):
    """``--version``: the installed version, looked up only when asked for.

    Why not argparse's ``action="version"``: its text is built with the parser, so every start paid for the
    package-metadata lookup (a walk over every installed distribution, ~10 ms of a ~0.2 s replay start)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0,
                         help="show program's version number and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        sys.stdout.write(f"{parser.prog} {_version()}\n")  # where argparse's own version action writes it
        parser.exit()


def command_word(argv: list[str]) -> str | None:
    """The command a command line names: its first word that is neither an option nor ``--log-level``'s value."""
    words = iter(argv)
    for word in words:
        if word == "--log-level":
            next(words, None)
        elif not word.startswith("-"):
            return word
        elif word == "--":
            return next(words, None)
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or with ``command`` (a key of ``COMMANDS``) that command's part alone.

    Why: registering every command imported every command's modules, ~75 ms of each ``replay`` start (the rule
    commands bring pySigma's processing and conversion modules); a command line naming one command parses
    the same with its part alone. Anything else (no command, ``--help``, an unknown word) gets the whole parser,
    so its usage and errors list every command."""
    parser = argparse.ArgumentParser(prog="temporal-siem", description="Sigma detection engine for the logs around Temporal.")
    parser.add_argument("--log-level", default="WARNING", type=_log_level, metavar="LEVEL",
                        help=f"Log level for diagnostics on stderr: {', '.join(LOG_LEVELS)} (default WARNING).")
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in ([COMMANDS[command]] if command in COMMANDS else COMMAND_MODULES):
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    parser = build_parser(command_word(words))
    args = parser.parse_args(words)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        if not _stdout_closed():
            raise  # a sink's socket or a worker's pipe: a failure, never the quiet end of ``| head``
        # The interpreter flushes stdout once more on exit: point it at /dev/null so that flush cannot fail.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    return code


#: Commands after which the process may end without the interpreter's teardown (:func:`entry`).
QUICK_EXIT_COMMANDS = frozenset({"replay"})


def entry() -> None:
    """The console script: :func:`main`, then, after a replay, the end of the process without freeing every
    object one by one.

    Why: by then the outputs are written and closed (the pipeline closes its sinks; the summary, report and
    table are written before ``main`` returns), and the interpreter's teardown freed the compiled ruleset, its
    memos and every module: ~80 ms of each replay, 3 % of a 50-rule benchmark run. Every ``atexit`` handler
    still runs (logging's flush, multiprocessing's cleanup) and the standard streams are flushed; anything
    unexpected (an exception, a stream that cannot be flushed) takes the ordinary exit."""
    code = main()
    if command_word(sys.argv[1:]) in QUICK_EXIT_COMMANDS:
        atexit._run_exitfuncs()
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:  # the ordinary exit reports it as it always did
            sys.exit(code)
        os._exit(code)
    sys.exit(code)


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader is gone (``poll`` reports an error on its write end)."""
    import select

    if not hasattr(select, "poll"):  # not POSIX: as before, take it for stdout
        return True
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # stdout is no file: the broken pipe was something else's
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(mask & select.POLLERR for _, mask in poller.poll(0))


if __name__ == "__main__":
    entry()
