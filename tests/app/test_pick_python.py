"""``scripts/pick-python.sh``: the interpreter ``make venv`` builds the virtual env with.

It prefers a distribution's optimised /usr/bin/python3 and falls back to ``python3`` on PATH; whatever it
prints must be a Python >= 3.11 that can create a virtual env, or ``make venv`` fails on a fresh machine.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "pick-python.sh"
PROBE = "import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))"


def pick(candidates: str | None = None) -> str:
    env = dict(os.environ)
    if candidates is not None:
        env["PICK_PYTHON_CANDIDATES"] = candidates
    return subprocess.run(["sh", str(SCRIPT)], capture_output=True, text=True, check=True, env=env).stdout.strip()


def fake_python(path: Path, qualifies: bool) -> Path:
    """An interpreter that answers the script's probe (Python >= 3.11 with venv and ensurepip) yes or no."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\nexit {0 if qualifies else 1}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_the_picked_interpreter_can_build_the_venv() -> None:
    chosen = pick()
    assert subprocess.run([chosen, "-c", PROBE], capture_output=True).returncode == 0, chosen


def test_the_system_interpreter_comes_first_when_it_qualifies() -> None:
    system = Path("/usr/bin/python3")
    qualifies = system.exists() and subprocess.run([str(system), "-c", PROBE], capture_output=True).returncode == 0
    assert (pick() == str(system)) == qualifies


def test_candidates_that_fail_the_probe_are_passed_over(tmp_path: Path) -> None:
    old = fake_python(tmp_path / "old" / "python3", qualifies=False)
    good = fake_python(tmp_path / "good" / "python3", qualifies=True)
    assert pick(f"{tmp_path / 'missing' / 'python3'} {old} {good}") == str(good)


def test_with_no_candidate_left_it_names_python3_for_make_to_report(tmp_path: Path) -> None:
    old = fake_python(tmp_path / "old" / "python3", qualifies=False)
    assert pick(str(old)) == "python3"
