"""The replay source's block line framer against line-by-line reading (the framer before issue 19): the same
records, line numbers, ``bytes_read`` and "record too large" dead letters, whatever the block boundaries."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import IO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from temporal_siem.ingest import replay
from temporal_siem.ingest.replay import ReplaySource
from temporal_siem.kernel.records import DeadLetter, Origin, RawRecord


def reference_lines(source: ReplaySource, name: str, stream: IO[bytes], first_line: int) -> Iterator[RawRecord]:
    """ReplaySource._lines as it was: ``readline(limit + 1)`` per line."""
    skip = source._skip.get(name, 0)
    limit = source.max_record_bytes
    line_no = first_line - 1
    while True:
        line = stream.readline(limit + 1)
        if not line:
            break
        line_no += 1
        if len(line) > limit and not line.endswith(b"\n"):
            size = len(line)
            while True:
                chunk = stream.readline(1 << 20)
                size += len(chunk)
                if not chunk or chunk.endswith(b"\n"):
                    break
            if line_no > skip:
                source._dead.append(DeadLetter("record too large", "ingest", Origin(name, line=line_no), line[:256],
                                               f"line of {size} bytes > limit {limit}"))
            continue
        source.bytes_read += len(line)
        if line_no <= skip:
            continue
        stripped = line.rstrip(b"\r\n")
        if not stripped.strip():
            continue
        yield RawRecord(stripped, Origin(name, line=line_no), source.format_hint)


class Trickle(io.RawIOBase):
    """A stream that hands out at most ``step`` bytes a call (a pipe, a slow disk)."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step, self.position = data, step, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        chunk = self.data[self.position:self.position + min(self.step, len(buffer))]
        buffer[:len(chunk)] = chunk
        self.position += len(chunk)
        return len(chunk)


def frame(data: bytes, limit: int, skip: int, first_line: int, block: int, step: int, framer: str):
    source = ReplaySource([], max_record_bytes=limit, skip_lines={"f": skip} if skip else None)
    stream = io.BufferedReader(Trickle(data, step), buffer_size=max(step, 1))
    saved, replay.LINE_BLOCK = replay.LINE_BLOCK, block
    try:
        framed = source._lines("f", stream, first_line) if framer == "new" else reference_lines(source, "f", stream, first_line)
        records = list(framed)
    finally:
        replay.LINE_BLOCK = saved
    return ([(r.data, r.origin.line) for r in records], source.bytes_read,
            [(d.reason, d.origin.line, d.raw, d.detail) for d in source._dead])


lines = st.lists(st.one_of(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), st.sampled_from([b"", b"\r", b" ", b"{}\r"])),
                 max_size=25)


@settings(max_examples=400, deadline=None)
@given(parts=lines, trailing=st.booleans(), limit=st.integers(1, 24), skip=st.integers(0, 5),
       first_line=st.integers(1, 40), block=st.integers(1, 40), step=st.integers(1, 50))
def test_block_framer_is_line_by_line_reading(parts: list[bytes], trailing: bool, limit: int,
                                             skip: int, first_line: int, block: int, step: int) -> None:
    data = b"\n".join(parts) + (b"\n" if trailing and parts else b"")
    assert frame(data, limit, skip, first_line, block, step, "new") == frame(data, limit, skip, first_line, block, step, "old")


def test_a_long_line_is_never_held_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 5 MB line against a 1 KB limit: one dead letter with its true size; the reader keeps only its head."""
    monkeypatch.setattr(replay, "LINE_BLOCK", 4096)
    data = b'{"a":1}\n' + b"x" * 5_000_000 + b"\n" + b'{"b":2}'
    source = ReplaySource([], max_record_bytes=1024)
    records = list(source._lines("f", io.BufferedReader(io.BytesIO(data)), 1))
    assert [(r.data, r.origin.line) for r in records] == [(b'{"a":1}', 1), (b'{"b":2}', 3)]
    (dead,) = source._dead
    assert dead.origin.line == 2 and dead.raw == b"x" * 256 and dead.detail == "line of 5000001 bytes > limit 1024"


def test_every_block_size_and_skip_on_short_lines() -> None:
    """The block framer's fast path (whole lines past the skip, within the limit) at every boundary: each block
    size cuts the lines somewhere else, each skip ends in another block; CRLF and blank lines among them."""
    data = b"".join(b'{"n":%d}%s\n' % (n, b"\r" if n % 3 == 0 else b"") if n % 7 else b"  \n" for n in range(1, 30))
    for block in range(1, 48):
        for skip in range(0, 12):
            for first_line in (1, 4):
                assert frame(data, 64, skip, first_line, block, 64, "new") == frame(data, 64, skip, first_line, block, 64, "old")


@settings(max_examples=100, deadline=None)
@given(count=st.integers(0, 60), batch_size=st.integers(1, 9), block=st.integers(8, 200), files=st.integers(1, 3))
def test_batches_are_the_records_cut_to_size(tmp_path_factory: pytest.TempPathFactory, count: int, batch_size: int,
                                             block: int, files: int) -> None:
    """Records arrive from the framer a block at a time; batches still hold ``batch_size`` records each (the
    run's last one fewer), in file and line order, across files."""
    folder = tmp_path_factory.mktemp("batches")
    paths = []
    for f in range(files):
        path = folder / f"{f}.jsonl"
        path.write_bytes(b"".join(b'{"f":%d,"n":%d}\n' % (f, n) for n in range(count)))
        paths.append(str(path))
    saved, replay.LINE_BLOCK = replay.LINE_BLOCK, block
    try:
        batches = list(ReplaySource(paths, batch_size=batch_size).batches())
    finally:
        replay.LINE_BLOCK = saved
    records = [r for b in batches for r in b]
    assert [(r.origin.source, r.origin.line) for r in records] == [(p, n + 1) for p in paths for n in range(count)]
    assert all(len(b) == batch_size for b in batches[:-1]) and all(0 < len(b) <= batch_size for b in batches)
