"""The on-disk Hyperscan cache: a stored database answers like a compiled one; a damaged, foreign or unwritable
cache costs a compile, never a wrong answer or an error."""

from __future__ import annotations

from pathlib import Path

import hyperscan
import pytest

from temporal_siem.kernel import hyperscan_cache
from temporal_siem.kernel.hyperscan_cache import compile_block_database

EXPRESSIONS = [rb"pass(?:word)?\s*=", rb"tmprl_", rb"-----BEGIN [A-Z ]{0,40}PRIVATE KEY"]
IDS = [1, 2, 3]
FLAGS = [hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_SINGLEMATCH, hyperscan.HS_FLAG_SINGLEMATCH,
         hyperscan.HS_FLAG_SINGLEMATCH]
TEXT = b"user=x Password = y token tmprl_abc -----BEGIN RSA PRIVATE KEY"


def scan(database: hyperscan.Database) -> list[int]:
    hits: list[int] = []
    database.scan(TEXT, match_event_handler=lambda i, *_: hits.append(i) and None)
    return sorted(hits)


def stored(directory: Path) -> list[Path]:
    return sorted((directory / "hyperscan").glob("*.hsdb"))


def test_second_process_loads_what_the_first_compiled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TSIEM_CACHE_DIR", str(tmp_path))
    first = compile_block_database(EXPRESSIONS, IDS, FLAGS)
    files = stored(tmp_path)
    assert len(files) == 1
    compiled: list[int] = []
    monkeypatch.setattr(hyperscan_cache.hyperscan, "Database", lambda **_: compiled.append(1))  # must not compile
    second = compile_block_database(EXPRESSIONS, IDS, FLAGS)
    assert not compiled and scan(second) == scan(first) == [1, 2, 3]


def test_other_patterns_flags_or_ids_get_their_own_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TSIEM_CACHE_DIR", str(tmp_path))
    compile_block_database(EXPRESSIONS, IDS, FLAGS)
    compile_block_database(EXPRESSIONS[:2], IDS[:2], FLAGS[:2])
    compile_block_database(EXPRESSIONS, [7, 8, 9], FLAGS)
    caseful = compile_block_database(EXPRESSIONS, IDS, hyperscan.HS_FLAG_SINGLEMATCH)
    assert len(stored(tmp_path)) == 4
    assert scan(caseful) == [2, 3]  # "Password" needs CASELESS: a shared entry would have answered 1 too


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "foreign"])
def test_damaged_entry_is_compiled_again_and_rewritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str) -> None:
    monkeypatch.setenv("TSIEM_CACHE_DIR", str(tmp_path))
    compile_block_database(EXPRESSIONS, IDS, FLAGS)
    (path,) = stored(tmp_path)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # a well-formed entry of other patterns, copied under this key
        compile_block_database([rb"zzz"], [1], hyperscan.HS_FLAG_SINGLEMATCH)
        (other,) = [p for p in stored(tmp_path) if p != path]
        path.write_bytes(other.read_bytes())
    database = compile_block_database(EXPRESSIONS, IDS, FLAGS)
    assert scan(database) == [1, 2, 3]
    assert path.read_bytes() == data  # rewritten whole


def test_off_writes_nothing_and_unwritable_is_harmless(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TSIEM_CACHE_DIR", "off")
    assert scan(compile_block_database(EXPRESSIONS, IDS, FLAGS)) == [1, 2, 3]
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("TSIEM_CACHE_DIR", str(blocker))
    assert scan(compile_block_database(EXPRESSIONS, IDS, FLAGS)) == [1, 2, 3]


def test_compile_errors_still_raise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TSIEM_CACHE_DIR", str(tmp_path))
    with pytest.raises(hyperscan.error):
        compile_block_database([rb"(unclosed"], [1], hyperscan.HS_FLAG_SINGLEMATCH)
    assert stored(tmp_path) == []
