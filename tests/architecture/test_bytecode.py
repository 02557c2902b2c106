"""``make venv`` byte-compiles the installed package, as pip does for every package it installs.

Where PYTHONDONTWRITEBYTECODE is set (CI images, containers: this build machine sets it) Python never writes
``__pycache__`` itself, so without that step every ``temporal-siem`` process compiled the whole package again
at start (~0.25 s of each replay, each benchmark run, each test subprocess).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import temporal_siem


def test_every_module_of_the_installed_package_has_cached_bytecode() -> None:
    tree = Path(temporal_siem.__file__).parent
    sources = sorted(tree.rglob("*.py"))
    assert len(sources) > 100  # the whole package, not a stub of it
    missing = [str(path.relative_to(tree)) for path in sources
               if not Path(importlib.util.cache_from_source(str(path))).is_file()]
    assert not missing, f"no bytecode for {len(missing)} modules (run `make venv`), e.g. {missing[:5]}"
