"""The layers of docs/architecture.md hold: import-linter's contracts pass, every application module is
named in the layers contract (so a new one cannot slip past it), and the installed package maps every
source folder under the one ``temporal_siem`` namespace."""

from __future__ import annotations

import configparser
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"app": "temporal_siem", "kernel": "temporal_siem.kernel", "ingest": "temporal_siem.ingest",
           "parsers": "temporal_siem.parsers", "detections": "temporal_siem.detections", "sinks": "temporal_siem.sinks"}


def test_import_contracts_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports), "--config", str(ROOT / ".importlinter")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def _layers() -> list[set[str]]:
    parser = configparser.ConfigParser()
    parser.read(ROOT / ".importlinter")
    lines = [line.strip() for line in parser["importlinter:contract:layers"]["layers"].strip().splitlines()]
    return [{m.strip() for m in line.replace("|", ":").split(":")} for line in lines if line]


def test_every_application_module_is_in_the_top_layer() -> None:
    top = _layers()[0]
    app = ROOT / "app"
    modules = {f"temporal_siem.{p.stem}" for p in app.glob("*.py") if p.stem not in ("__init__", "__main__")}
    modules |= {f"temporal_siem.{p.parent.name}" for p in app.glob("*/__init__.py")}
    stages_and_kernel = {"temporal_siem.kernel", "temporal_siem.ingest", "temporal_siem.parsers", "temporal_siem.detections", "temporal_siem.sinks"}
    assert not (modules & stages_and_kernel)
    assert modules - top == set(), f"add these application modules to the top layer of .importlinter: {sorted(modules - top)}"


def test_stages_are_independent_and_above_the_kernel() -> None:
    layers = _layers()
    assert layers[1] == {"temporal_siem.ingest", "temporal_siem.parsers", "temporal_siem.detections", "temporal_siem.sinks"}
    assert layers[2] == {"temporal_siem.kernel"}
    parser = configparser.ConfigParser()
    parser.read(ROOT / ".importlinter")
    assert "|" in parser["importlinter:contract:layers"]["layers"].strip().splitlines()[1]


def test_every_source_package_is_installed_under_one_namespace() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"] == {name: folder for folder, name in FOLDERS.items()}
    expected = set()
    for folder, name in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            expected.add(".".join([name, *rel.parts]))
    assert set(setuptools["packages"]) == expected
    assert all(p == "temporal_siem" or p.startswith("temporal_siem.") for p in setuptools["packages"])


def test_installed_modules_come_from_the_source_folders() -> None:
    import temporal_siem
    import temporal_siem.kernel.records
    import temporal_siem.parsers.router

    assert Path(temporal_siem.parsers.router.__file__).resolve() == ROOT / "parsers" / "router.py"
    assert Path(temporal_siem.kernel.records.__file__).resolve() == ROOT / "kernel" / "records.py"
    assert Path(temporal_siem.__file__).resolve() == ROOT / "app" / "__init__.py"
