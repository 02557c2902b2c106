"""Compiled Hyperscan databases kept on disk, so a process start does not compile the same patterns again.

Hyperscan compiles the redaction scan's record patterns in ~0.2 s and a rule lane's needles in tens of
milliseconds; a serialized database loads in microseconds. Every ``replay``, every ``--workers`` process and
every daemon start compiled them anew: on a 200k-event replay that was 3 % of the run.

A database is stored under a key made of everything it depends on (the expressions, their ids and flags, the
mode, the Hyperscan and python-hyperscan versions, the machine), with a SHA-256 of the key and its bytes in front:
a file that is truncated, corrupt, copied under another key, from another build or another CPU is compiled again
and rewritten, never trusted.
The directory is the compiled-ruleset cache's (``TSIEM_CACHE_DIR``, ``off`` disables both), in ``hyperscan/``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import tempfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import hyperscan

CACHE_ENV = "TSIEM_CACHE_DIR"
FORMAT = 1
_DIGEST = 32


def cache_dir() -> Path | None:
    """``$TSIEM_CACHE_DIR/hyperscan``, else ``temporal-siem/hyperscan`` in the user's cache directory."""
    configured = os.environ.get(CACHE_ENV)
    if configured is not None:
        return None if configured.strip().lower() in ("", "off", "0", "none") else Path(configured) / "hyperscan"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "temporal-siem" / "hyperscan"


@functools.cache
def _versions() -> str:
    """Read once a process: a package-metadata lookup walks the installed distributions (~1.7 ms), and every
    database a process loads (the secret scans, each rule lane's scanners) asked for it again."""
    try:
        wrapper = metadata.version("hyperscan")
    except metadata.PackageNotFoundError:
        wrapper = "-"
    return f"{FORMAT}\0{wrapper}\0{getattr(hyperscan, '__version__', '-')}\0{platform.machine()}\0{platform.system()}"


def _key(expressions: Sequence[bytes], ids: Sequence[int], flags: Sequence[int] | int, literal: bool) -> str:
    digest = hashlib.sha256(_versions().encode())
    digest.update(b"\0literal" if literal else b"\0regex")
    digest.update(repr(flags if isinstance(flags, int) else list(flags)).encode())
    digest.update(repr(list(ids)).encode())
    for expression in expressions:
        digest.update(len(expression).to_bytes(8, "little"))
        digest.update(expression)
    return digest.hexdigest()


def compile_block_database(expressions: Sequence[bytes], ids: Sequence[int], flags: Sequence[int] | int,
                           literal: bool = False) -> hyperscan.Database:
    """A block-mode database of ``expressions``: from the disk cache when a good copy is there, else compiled
    (and stored for the next process). Compile errors propagate as ``hyperscan.error``, as without a cache."""
    directory = cache_dir()
    key = _key(expressions, ids, flags, literal)
    path = directory / f"{key}.hsdb" if directory is not None else None
    if path is not None:
        database = _load(path, key)
        if database is not None:
            return database
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    database.compile(expressions=list(expressions), ids=list(ids), elements=len(expressions), flags=flags,
                     literal=literal)
    if path is not None:
        _store(path, key, database)
    return database


def _seal(key: str, payload: bytes) -> bytes:
    """The check in front of a stored database: of its key too, so an entry copied under another key fails."""
    return hashlib.sha256(key.encode() + b"\0" + payload).digest()


def _load(path: Path, key: str) -> hyperscan.Database | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    payload = data[_DIGEST:]
    if len(data) <= _DIGEST or _seal(key, payload) != data[:_DIGEST]:
        return None
    try:
        database = hyperscan.loadb(payload, hyperscan.HS_MODE_BLOCK)
        database.scratch = hyperscan.Scratch(database)  # compile() allocates one; a loaded database has none
    except Exception:  # hyperscan.error (another platform, another version): compile instead
        return None
    return database


def _store(path: Path, key: str, database: hyperscan.Database) -> None:
    """Written to a temporary file and renamed: a reader never sees half a database. A cache that cannot be
    written (read-only home, full disk) only costs the next process its compile."""
    try:
        payload = hyperscan.dumpb(database)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=".hsdb-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(_seal(key, payload) + payload)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except (OSError, hyperscan.error):
        return
