"""The CLI as a user runs it: real subprocesses, exit codes, files written."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import yaml

from tests.conftest import ROOT, SAMPLES


def run(*args: str, cwd=None, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "temporal_siem", *args], cwd=cwd or ROOT, input=stdin,
                          capture_output=True, timeout=300)


def test_replay_samples_writes_summary_and_no_dead_letters(tmp_path):
    summary = tmp_path / "summary.json"
    result = run("replay", str(SAMPLES), "--alerts", str(tmp_path / "alerts.jsonl"), "--summary-json", str(summary),
                 "--dead-letter", str(tmp_path / "dead.jsonl"), "--quiet")
    assert result.returncode == 0, result.stderr.decode()
    data = orjson.loads(summary.read_bytes())
    assert data["records_read"] > 0 and data["events"] > 0
    assert data["dead_lettered"] == 0, data["dead_lettered_by_reason"]
    assert not (tmp_path / "dead.jsonl").exists()


def test_parse_from_stdin_to_stdout():
    result = run("parse", "-", "--out", "-", "--format", "json", stdin=b'{"x": 1}\n{"y": 2}\n')
    assert result.returncode == 0, result.stderr.decode()
    lines = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [line.get("x", line.get("y")) for line in lines] == [1, 2]
    assert all(line["event"]["id"] for line in lines)


def test_unknown_format_is_a_usage_error():
    result = run("parse", "-", "--out", "-", "--format", "nope", stdin=b"{}\n")
    assert result.returncode == 2
    assert b"unknown format" in result.stderr


def test_config_show_masks_secrets_from_environment(tmp_path):
    env_run = subprocess.run([sys.executable, "-m", "temporal_siem", "config", "show"], cwd=ROOT, capture_output=True,
                             timeout=120, env={"TSIEM_INGEST__KAFKA__SASL_PASSWORD": "s3cret", "PATH": "/usr/bin:/bin"})
    assert env_run.returncode == 0, env_run.stderr.decode()
    shown = yaml.safe_load(env_run.stdout)
    assert shown["ingest"]["kafka"]["sasl_password"] == "***"
    assert b"s3cret" not in env_run.stdout


def test_schema_export_is_valid_json_schema():
    result = run("schema")
    assert result.returncode == 0
    schema = orjson.loads(result.stdout)
    assert "NormalizedEvent" in schema["$defs"] and "Alert" in schema["$defs"]


def test_replay_delivers_to_the_sinks_in_the_config(tmp_path):
    out = tmp_path / "from-config.jsonl"
    cfg = tmp_path / "c.yml"
    cfg.write_text(f"sinks:\n  alerts:\n    - type: file\n      path: {out}\n")
    cli_file = tmp_path / "cli.jsonl"
    result = run("replay", str(SAMPLES), "--config", str(cfg), "--alerts", str(cli_file), "--quiet")
    assert result.returncode == 0, result.stderr.decode()
    from_config = [orjson.loads(line)["alert"]["id"] for line in out.read_bytes().splitlines()]
    from_cli = [orjson.loads(line)["alert"]["id"] for line in cli_file.read_bytes().splitlines()]
    assert from_config and sorted(from_config) == sorted(from_cli)


def test_replay_rejects_a_misconfigured_sink(tmp_path):
    cfg = tmp_path / "c.yml"
    cfg.write_text("sinks:\n  alerts:\n    - type: elasticsearch\n      hots: [x]\n")
    result = run("replay", str(SAMPLES / "okta"), "--config", str(cfg), "--quiet")
    assert result.returncode == 2
    assert b"hots" in result.stderr


def test_keep_original_is_opt_in_and_redacted():
    record = b'{"msg": "login", "password": "hunter2", "hdr": "Authorization: Bearer abcdefghijklmnop"}\n'
    plain = run("parse", "-", "--out", "-", "--format", "json", stdin=record)
    assert "original" not in orjson.loads(plain.stdout)["event"]
    kept = run("parse", "-", "--out", "-", "--format", "json", "--keep-original", stdin=record)
    assert kept.returncode == 0, kept.stderr.decode()
    original = orjson.loads(orjson.loads(kept.stdout)["event"]["original"])
    assert original["msg"] == "login" and original["password"] == "[REDACTED]"
    assert "abcdefghijklmnop" not in kept.stdout.decode()


def test_a_reader_that_closes_stdout_early_ends_the_run_quietly(tmp_path):
    """``parse ... | head -1``: the reader goes away; the run ends with 0 and no traceback."""
    corpus = tmp_path / "many.jsonl"
    corpus.write_bytes(b"".join(b'{"n": %d, "pad": "%s"}\n' % (n, b"x" * 200) for n in range(50000)))
    process = subprocess.Popen([sys.executable, "-m", "temporal_siem", "parse", str(corpus), "--out", "-",
                                "--format", "json"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stdout.readline()
    process.stdout.close()
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err.decode()
    assert b"Traceback" not in err


def test_a_broken_pipe_that_is_not_stdout_is_not_success(monkeypatch):
    """A ``BrokenPipeError`` from a sink's socket or a worker's pipe is a failure, not a closed ``| head``."""
    import pytest

    from temporal_siem import cli

    def handler(args: argparse.Namespace) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    parser = cli.build_parser()
    real = parser.parse_args

    def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
        args = real(argv)
        args.handler = handler
        return args

    monkeypatch.setattr(parser, "parse_args", parse_args)
    monkeypatch.setattr(cli, "build_parser", lambda command=None: parser)
    with pytest.raises(BrokenPipeError):
        cli.main(["rules", "list"])


def _choices(parser: argparse.ArgumentParser) -> set[str]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(sub.choices)


def test_each_command_parses_with_its_own_part_alone() -> None:
    """``COMMANDS`` names every command the whole parser has, each registered by its module; a command line's
    parser for one command has that command alone, with the same help as in the whole parser."""
    from temporal_siem import cli

    whole = cli.build_parser()
    assert _choices(whole) == set(cli.COMMANDS)
    (sub,) = [a for a in whole._actions if isinstance(a, argparse._SubParsersAction)]
    for command in cli.COMMANDS:
        alone = cli.build_parser(command)
        assert _choices(alone) == {command}
        (own,) = [a for a in alone._actions if isinstance(a, argparse._SubParsersAction)]
        assert own.choices[command].format_help() == sub.choices[command].format_help()
    assert _choices(cli.build_parser("no-such-command")) == set(cli.COMMANDS)  # its error lists every command


def test_the_command_word_skips_options_and_the_log_level_value() -> None:
    from temporal_siem.cli import command_word

    assert command_word(["replay", "x.jsonl"]) == "replay"
    assert command_word(["--log-level", "DEBUG", "rules", "list"]) == "rules"
    assert command_word(["--log-level=DEBUG", "run"]) == "run"
    assert command_word(["--log-level", "replay"]) is None  # the level's value, not a command
    assert command_word(["--help"]) is None and command_word([]) is None
    assert command_word(["--", "parse"]) == "parse"


def test_a_replay_does_not_import_the_other_commands() -> None:
    """The rule commands bring pySigma's processing and conversion modules (~75 ms of every start)."""
    script = ("import sys\nfrom temporal_siem import cli\ncli.build_parser('replay')\n"
              "print(sorted(m for m in sys.modules if m.startswith(('temporal_siem.commands.rules', 'sigma.processing.pipeline',"
              " 'temporal_siem.commands.run', 'temporal_siem.commands.setup'))))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_the_version_is_looked_up_only_for_version(monkeypatch) -> None:
    """The package-metadata lookup walks every installed distribution (~10 ms): a command line that does not
    ask for ``--version`` must not pay for it, and ``--version`` still prints it on stdout."""
    import contextlib
    import io

    from temporal_siem import cli

    calls: list[int] = []
    monkeypatch.setattr(cli, "_version", lambda: calls.append(1) or "9.9.9")
    cli.build_parser().parse_args(["rules", "list"])
    cli.build_parser("replay")
    assert calls == []
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(["--version"])
    assert exit_info.value.code == 0 and out.getvalue() == "temporal-siem 9.9.9\n" and calls == [1]


def test_a_replay_ends_without_teardown_yet_runs_atexit_and_keeps_every_output(tmp_path: Path) -> None:
    """``entry`` ends a replay with ``os._exit`` after the atexit handlers and a flush: the exit code, the
    alerts, the dead letters, the summary and what a handler prints are all there, as with ``main``."""
    import subprocess
    import sys

    from temporal_siem.cli import main
    from tests.conftest import SAMPLES

    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(b'{"broken\n{"EventID": 1}\n')

    def args(tag: str) -> list[str]:
        return ["replay", str(SAMPLES), str(broken), "--workers", "1", "--fail-on-alert", "low", "--alerts", str(tmp_path / f"a-{tag}.jsonl"),
                "--dead-letter", str(tmp_path / f"d-{tag}.jsonl"), "--summary-json", str(tmp_path / f"s-{tag}.json"),
                "--alerts-format", "jsonl"]

    script = ("import atexit, sys\n"
              "atexit.register(lambda: print('handler ran', flush=False))\n"
              f"sys.argv = ['temporal-siem', *{args('entry')!r}]\n"
              "from temporal_siem.cli import entry\n"
              "entry()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert done.returncode == main(args("main")) == 10, done.stderr.decode()[-2000:]
    assert done.stdout.decode().rstrip().endswith("handler ran")
    for name in ("a", "d"):
        ours, theirs = ((tmp_path / f"{name}-{tag}.jsonl").read_bytes().splitlines() for tag in ("entry", "main"))
        assert len(ours) == len(theirs) > 0
    assert (tmp_path / "s-entry.json").read_bytes().count(b"\n") == (tmp_path / "s-main.json").read_bytes().count(b"\n")
