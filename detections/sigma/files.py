"""Rule files on disk: which files are rules, and the error a file that does not load becomes.

Why apart from ``loader.py``: a start from the compiled-ruleset cache lists the rule files and reports their
errors without parsing them with pySigma, which ``loader.py`` imports (with pyparsing under it, ~80 ms of a
start). ``loader.py`` re-exports these names.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

BUILTIN_RULES = Path(__file__).resolve().parents[1] / "rules"
RULE_SUFFIXES = (".yml", ".yaml")
TEST_SUFFIXES = (".tests.yml", ".tests.yaml")  # rule test cases in YAML sit beside the rules and are not rules

#: libyaml's parser when the build has it (the same safe constructor); routing.py reads logsources.yml with it too.
SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class LoadError:
    file: str
    error: str
    line: int | None = None  # 1-based, when the problem can be located in the file

    @property
    def where(self) -> str:
        """``file:line`` (or the file alone): what editors and CI annotations jump to."""
        return f"{self.file}:{self.line}" if self.line else self.file

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "error": self.error}


def rule_files(paths: Iterable[str | Path]) -> list[Path]:
    """Every rule file under ``paths`` (files are taken as given), sorted for a stable rule order. A file
    reached twice (the same directory given twice, config + --rules; a symlink to a listed file; a hard link)
    is listed once, where it is first found."""
    files: list[Path] = []
    seen: set[Any] = set()
    for raw in paths:
        root = Path(raw)
        found = sorted(_walk_rule_files(root), key=lambda pair: pair[0]) if root.is_dir() else [(root, None)]
        for path, key in found:
            if key is None:
                key = _file_key(path)
            if key not in seen:
                seen.add(key)
                files.append(path)
    return files


def _file_key(path: Path) -> Any:
    """What identifies a file: its device and inode, or (it cannot be read) its resolved path."""
    try:
        status = path.stat()
    except (OSError, ValueError):
        return path.resolve()
    return status.st_dev, status.st_ino


def _walk_rule_files(directory: Path) -> Iterator[tuple[Path, Any]]:
    """What ``directory.rglob("*")`` finds that is a rule file (symlinked directories are not entered, symlinked
    files are), each with its :func:`_file_key`.

    Why the inode and not ``resolve()``: resolving a path costs an ``lstat`` per component, and a symlinked
    file's target again (eleven system calls a file in a folder of links into a SigmaHQ checkout: 30 ms of a
    1,433-rule start); the directory entry's ``stat`` is one call, and the same file has the same key however
    it was reached.
    """
    try:
        with os.scandir(directory) as scan:
            entries = list(scan)
    except (PermissionError, FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        name = entry.name
        dot = name.rfind(".")  # ``Path.suffix``: a leading dot alone (".yml") is no suffix
        try:
            if entry.is_dir() and not entry.is_symlink():
                yield from _walk_rule_files(directory / name)
                continue
            if dot <= 0 or name[dot:] not in RULE_SUFFIXES or name.endswith(TEST_SUFFIXES) or not entry.is_file():
                continue
            status = entry.stat()
        except OSError:
            continue
        yield directory / name, (status.st_dev, status.st_ino)
