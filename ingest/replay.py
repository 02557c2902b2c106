"""Replay source: files, directories (recursive), ``.gz``, and stdin (``-``).

Framing per file: a file whose content is one JSON document (a JSON array, a CloudTrail
``{"Records": [...]}`` or Entra ``{"records": [...]}`` envelope, a Reports API page) becomes one record
that the parser stage unwraps; anything else is read as lines (JSON Lines or plain text). Lines are read
with a size bound so a 50 MB line costs bounded memory: it is dead-lettered, not loaded.
"""

from __future__ import annotations

import gzip
import io
import os
import sys
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from temporal_siem.ingest.base import Source
from temporal_siem.kernel.records import DeadLetter, LineRecord, Origin, RawRecord

WHOLE_DOCUMENT_LIMIT = 256 * 1024 * 1024
SNIFF_BYTES = 8192
SKIP_SUFFIXES = (".md", ".expected.json", ".golden.json")
UTF8_BOM = b"\xef\xbb\xbf"


class ReplaySource(Source):
    name = "replay"

    def __init__(self, paths: Iterable[str], batch_size: int = 1000, max_record_bytes: int = 8 * 1024 * 1024,
                 format_hint: str | None = None, skip_lines: dict[str, int] | None = None) -> None:
        self.paths = list(paths)
        self.batch_size = batch_size
        self.max_record_bytes = max_record_bytes
        self.format_hint = format_hint
        self._dead: list[DeadLetter] = []
        self._skip = dict(skip_lines or {})
        self.bytes_total = 0
        self.bytes_read = 0
        self._files: list[str] | None = None

    # -- discovery --------------------------------------------------------------------------
    def files(self) -> list[str]:
        """The files to read, resolved once (a missing path is one dead letter, however often this is asked)."""
        if self._files is None:
            self._files = self._discover()
        return self._files

    def _discover(self) -> list[str]:
        found: list[str] = []
        for path in self.paths:
            if path == "-":
                found.append("-")
                continue
            p = Path(path)
            if p.is_dir():
                for child in sorted(p.rglob("*")):
                    if child.is_file() and not child.name.startswith(".") and not child.name.endswith(SKIP_SUFFIXES):
                        found.append(str(child))
            elif p.exists():
                found.append(str(p))
            else:
                self._dead.append(DeadLetter("file not found", "ingest", Origin(str(p))))
        return found

    def estimate_bytes(self) -> int:
        total = 0
        for name in self.files():
            if name != "-":
                try:
                    total += os.path.getsize(name)
                except OSError:
                    pass
        self.bytes_total = total
        return total

    # -- reading ----------------------------------------------------------------------------
    def batches(self) -> Iterator[list[RawRecord]]:
        """Batches of ``batch_size`` records (the last one of the run shorter), from the framer's chunks: a
        chunk is what one read of the input held, so a live pipe's records are not held back."""
        size = self.batch_size
        batch: list[RawRecord] = []
        for name in self.files():
            for chunk in self._record_chunks(name):
                batch.extend(chunk)
                if len(batch) >= size:
                    start = 0
                    while len(batch) - start >= size:
                        yield batch[start:start + size]
                        start += size
                    batch = batch[start:]
        if batch:
            yield batch

    def take_dead_letters(self) -> list[DeadLetter]:
        dead, self._dead = self._dead, []
        return dead

    def _open(self, name: str) -> IO[bytes]:
        if name == "-":
            stdin: Any = sys.stdin.buffer
            reader = stdin if hasattr(stdin, "peek") else io.BufferedReader(stdin)
            if reader.peek(2)[:2] == b"\x1f\x8b":  # gzip on stdin (zcat-less pipelines), as for files
                return gzip.GzipFile(fileobj=reader)  # type: ignore[return-value]
            return reader  # type: ignore[no-any-return]
        raw = open(name, "rb")  # noqa: SIM115 - closed by caller
        magic = raw.read(2)
        raw.seek(0)
        if magic == b"\x1f\x8b":
            return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
        return raw

    def _records(self, name: str) -> Iterator[RawRecord]:
        for chunk in self._record_chunks(name):
            yield from chunk

    def _record_chunks(self, name: str) -> Iterator[list[RawRecord]]:
        """The file's records, a list per read (``_records`` one by one): a read error ends the file with a dead
        letter at the line after the last record delivered."""
        try:
            stream = self._open(name)
        except OSError as exc:
            self._dead.append(DeadLetter("cannot open file", "ingest", Origin(name), detail=str(exc)))
            return
        last_line = 0
        try:
            for chunk in self._frame(name, stream):
                if chunk:
                    last_line = chunk[-1].origin.line or last_line
                    yield chunk
        except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
            # Where reading stopped: the records before it were delivered, the rest of the file is lost.
            where = Origin(name, line=last_line + 1) if last_line else Origin(name)
            self._dead.append(DeadLetter("read error", "ingest", where, detail=f"{type(exc).__name__}: {exc}"))
        finally:
            if name != "-" or isinstance(stream, gzip.GzipFile):
                stream.close()  # a GzipFile over stdin closes itself only, never stdin

    def _frame(self, name: str, stream: IO[bytes]) -> Iterator[list[RawRecord]]:
        reader: Any = stream if hasattr(stream, "peek") else io.BufferedReader(stream)  # type: ignore[arg-type]
        head = reader.peek(SNIFF_BYTES)[:SNIFF_BYTES]
        if head.startswith(UTF8_BOM):
            # A UTF-8 byte-order mark (Windows editors, PowerShell Out-File) is no part of the first record.
            reader.read(len(UTF8_BOM))
            head = reader.peek(SNIFF_BYTES)[:SNIFF_BYTES]
        if b"\x00" in head and not _looks_utf16(head):
            self._dead.append(DeadLetter("binary file", "ingest", Origin(name), head[:256], "NUL bytes in the first 8 KiB"))
            return
        first = head.lstrip()[:1]
        lines_from: IO[bytes] = reader
        first_line = head.split(b"\n", 1)[0]
        if first in (b"[", b"{") and name != "-" and not (first == b"{" and _is_json(first_line)):
            data = self._read_small(name, reader)
            if data is not None:
                if len(data) <= self.max_record_bytes and _is_json(data):
                    self.bytes_read += len(data)
                    yield [RawRecord(data, Origin(name, line=1), self.format_hint)]
                    return
                if len(data) > self.max_record_bytes and first_line.strip() in (b"[", b"{"):
                    # A pretty-printed document bigger than one record may be: one clear dead letter, not one per line.
                    size = len(data) + _drain(reader)
                    self._dead.append(DeadLetter("record too large", "ingest", Origin(name, line=1), data[:256],
                                                 f"JSON document of {size} bytes > limit {self.max_record_bytes}"))
                    return
                # Not one document after all (JSON Lines or text): re-read the bytes already taken, then the rest.
                lines_from = io.BufferedReader(_Prepended(data, reader), buffer_size=1 << 20)
        yield from self._line_chunks(name, lines_from)

    def _read_small(self, name: str, reader: IO[bytes]) -> bytes | None:
        """The whole file, if it is small enough to be a single JSON document."""
        try:
            if os.path.getsize(name) > WHOLE_DOCUMENT_LIMIT:
                return None
        except OSError:
            return None
        data: bytes = reader.read(self.max_record_bytes + 1)  # bounded: a bigger document is no single record anyway
        return data

    def _lines(self, name: str, source: IO[bytes], first_line: int = 1) -> Iterator[RawRecord]:
        """Records of ``source``, one a line; ``first_line`` is the number of its first line in the file
        (``replay --workers`` reads a file's line-aligned byte ranges in several processes)."""
        for chunk in self._line_chunks(name, source, first_line):
            yield from chunk

    def _line_chunks(self, name: str, source: IO[bytes], first_line: int = 1) -> Iterator[list[RawRecord]]:
        """What :meth:`_lines` yields, as one list per block read.

        Read in blocks and split, not ``readline`` per line (a tenth of a 200k-event replay went to it). A
        block is what the stream has (``read1``), so a live pipe's lines are not held back. A line longer
        than the record limit is dead-lettered with its size and first bytes and never held whole: memory
        stays bounded by the block and the limit. Same records, line numbers, ``bytes_read`` and dead
        letters as line-by-line reading (``tests/hostile/test_line_framing.py`` compares the two).

        A block whose lines (after the first, which may finish a line of the previous block) are all within the
        limit and past the lines to skip, the common case, takes them in one comprehension: sizes summed and
        checked in C, one record built per line without the per-line bookkeeping (~2,000 instructions a Windows
        event less, end to end)."""
        skip = self._skip.get(name, 0)
        limit = self.max_record_bytes
        line_no = first_line - 1
        read = getattr(source, "read1", None) or source.read
        origin_hint = self.format_hint
        head_bytes = min(256, limit + 1)  # what a dead letter keeps of a line past the limit
        pending = b""  # the start of a line whose end is not read yet (at most ``limit`` bytes)
        oversized: bytes | None = None  # first bytes of a line past the limit, while its rest is skipped
        oversized_size = 0
        while True:
            block = read(LINE_BLOCK)
            if not block:
                break
            parts = block.split(b"\n")
            tail = parts.pop()  # after the block's last newline: an unfinished line ("" if none)
            chunk: list[RawRecord] = []
            rest: list[bytes] = []
            if len(parts) > 1 and oversized is None and line_no + 1 >= skip and max(map(len, parts[1:])) <= limit:
                rest = parts[1:]
                del parts[1:]
            for part in parts:
                line_no += 1
                if oversized is not None:  # the end of a line already known to be too long
                    size = oversized_size + len(part) + 1
                    head, oversized, oversized_size = oversized, None, 0
                    if line_no > skip:
                        self._dead.append(DeadLetter("record too large", "ingest", Origin(name, line=line_no), head,
                                                     f"line of {size} bytes > limit {limit}"))
                    continue
                line = pending + part if pending else part
                pending = b""
                if len(line) > limit:
                    if line_no > skip:
                        self._dead.append(DeadLetter("record too large", "ingest", Origin(name, line=line_no),
                                                     line[:head_bytes], f"line of {len(line) + 1} bytes > limit {limit}"))
                    continue
                self.bytes_read += len(line) + 1
                if line_no <= skip:
                    continue
                stripped = line.rstrip(b"\r\n")
                if not stripped.strip():
                    continue
                chunk.append(LineRecord(stripped, name, line_no, origin_hint))
            if rest:  # every line here is whole (a newline ends it), within the limit and past the skip
                self.bytes_read += sum(map(len, rest)) + len(rest)
                if b"\r" in block:
                    rest = [part.rstrip(b"\r") for part in rest]
                chunk.extend([LineRecord(part, name, number, origin_hint)
                              for number, part in enumerate(rest, line_no + 1) if part.strip()])
                line_no += len(rest)
            if chunk:
                yield chunk
            if oversized is not None:
                oversized_size += len(tail)
            elif tail:
                pending = pending + tail if pending else tail
                if len(pending) > limit:  # no record: keep its first bytes and count the rest as it streams by
                    oversized, oversized_size, pending = pending[:head_bytes], len(pending), b""
        if oversized is not None:  # the file ends inside a line past the limit
            line_no += 1
            if line_no > skip:
                self._dead.append(DeadLetter("record too large", "ingest", Origin(name, line=line_no), oversized,
                                             f"line of {oversized_size} bytes > limit {limit}"))
        elif pending:  # a last line without its newline
            line_no += 1
            self.bytes_read += len(pending)
            if line_no > skip:
                stripped = pending.rstrip(b"\r\n")
                if stripped.strip():
                    yield [LineRecord(stripped, name, line_no, origin_hint)]


class _Prepended(io.RawIOBase):
    """Bytes already read from a stream, followed by the rest of that stream (so sniffing costs no re-open)."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            size = min(len(buffer), len(self._head))
            buffer[:size] = self._head[:size]
            self._head = self._head[size:]
            return size
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _drain(source: IO[bytes]) -> int:
    drained = 0
    while chunk := source.read(1 << 20):
        drained += len(chunk)
    return drained


LINE_BLOCK = 1 << 20  # bytes read at a time by the line framer


def _is_json(data: bytes) -> bool:
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return True


def _looks_utf16(head: bytes) -> bool:
    return head[:2] in (b"\xff\xfe", b"\xfe\xff")
