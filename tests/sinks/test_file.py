"""The file sink: one JSON document per line, whole, even with several processes appending to one file (the
members of ``run --workers N`` share their configured alerts file). It holds because each batch is one
``write`` on a file opened for appending: the buffered stream copies a batch that fits into its buffer and
hands the kernel whole buffers, or writes a larger batch in one call, and an append lands whole at the end."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import orjson
import pytest

from temporal_siem.sinks.file import FileSink


def _append(path: str, writer: int, batches: int) -> None:
    sink = FileSink(path=path, append=True)
    sink.open()
    for batch in range(batches):
        # Batches from 1 document of ~60 bytes to 40 of ~2 KB: across a buffer's 8 KiB boundaries, and past it.
        size = 1 + (batch * 7) % 40
        sink.write([{"writer": writer, "batch": batch, "n": n, "pad": "x" * (batch * 37 % 2000)} for n in range(size)])
    sink.close()


def test_processes_appending_to_one_file_never_split_a_line(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_append, args=(str(path), w, 400)) for w in range(3)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(60)
        assert process.exitcode == 0
    seen: dict[int, list[tuple[int, int]]] = {0: [], 1: [], 2: []}
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise AssertionError(f"line {number} is not one document: {line[:120]!r}") from exc
        seen[doc["writer"]].append((doc["batch"], doc["n"]))
    for writer, docs in seen.items():
        expected = [(batch, n) for batch in range(400) for n in range(1 + (batch * 7) % 40)]
        assert docs == expected, f"writer {writer}: every document, in its order"


def test_truncate_and_append(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"old":1}\n')
    appended = FileSink(path=str(path), append=True)
    appended.write([{"a": 1}])
    appended.close()
    assert path.read_bytes() == b'{"old":1}\n{"a":1}\n'
    truncated = FileSink(path=str(path), append=False)
    truncated.write([{"b": 2}])
    truncated.close()
    assert path.read_bytes() == b'{"b":2}\n'


@pytest.mark.parametrize("way", ["splice", "no splice", "append"])
def test_copy_from_fd_writes_exactly_the_bytes_asked_for_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  way: str) -> None:
    """``replay --workers``' parent copies a worker's encoded alerts from the result pipe into the alerts file:
    exactly ``size`` bytes (what follows on the pipe belongs to the next message), after what the sink wrote
    before and before what it writes next. ``splice`` moves them where it can; without it (no ``os.splice``, or
    a file in append mode, which ``splice`` refuses) they are read and written, with the same result."""
    import os
    import threading

    from tests.conftest import record_calls

    if way == "no splice":
        monkeypatch.delattr(os, "splice", raising=False)
    spliced = record_calls(monkeypatch, "splice", os) if way != "no splice" else []
    payload = bytes(range(256)) * (3 * 4096 + 7)  # ~3 MB: more than a pipe holds, so the copy waits for the writer
    reader, writer = os.pipe()

    def produce() -> None:
        view = memoryview(payload + b"NEXT MESSAGE")
        while view:
            view = view[os.write(writer, view):]
        os.close(writer)

    thread = threading.Thread(target=produce)
    thread.start()
    path = tmp_path / "alerts.jsonl"
    sink = FileSink(path=str(path), append=way == "append")
    sink.write([{"before": 1}])
    sink.copy_from_fd(reader, len(payload))
    sink.write([{"after": 2}])
    sink.close()
    rest = b""
    while chunk := os.read(reader, 65536):
        rest += chunk
    thread.join(10)
    os.close(reader)
    assert path.read_bytes() == b'{"before":1}\n' + payload + b'{"after":2}\n'
    assert rest == b"NEXT MESSAGE"
    assert bool(spliced) is (way == "splice")
