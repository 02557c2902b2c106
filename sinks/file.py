"""``file``: JSON Lines to a path or stdout (``-``). The default for replays and for tests."""

from __future__ import annotations

import os
import sys
from typing import IO, Any, Literal

from pydantic import Field

from temporal_siem.sinks.base import Sink, to_json_line
from temporal_siem.sinks.options import SinkOptions, resolve


class FileConfig(SinkOptions):
    """``file`` sink options."""

    type: Literal["file"] = "file"
    path: str = Field("-", description="File to write JSON Lines to; `-` is standard output.")
    fsync: bool = Field(False, description="fsync the file after each batch (durable across a power loss, slower).")
    append: bool = Field(True, description="Append to an existing file, so a restarted service keeps what it delivered; "
                                           "`false` truncates it at open (what `replay --alerts` does).")


class FileSink(Sink):
    name = "file"

    def __init__(self, config: FileConfig | None = None, /, *, role: str = "alerts", **options: Any) -> None:
        config = resolve(FileConfig, config, options)
        self.path = config.path
        self.fsync = config.fsync
        self.append = config.append
        self._stream: IO[bytes] | None = None

    def open(self) -> None:
        if self._stream is not None:
            return
        if self.path == "-":
            self._stream = sys.stdout.buffer
            return
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        self._stream = open(self.path, "ab" if self.append else "wb")  # noqa: SIM115 - closed in close()

    def write(self, documents: list[dict[str, Any]]) -> None:
        if self._stream is None:
            self.open()
        assert self._stream is not None
        self._stream.write(b"".join(to_json_line(doc) for doc in documents))
        if self.fsync and self._stream is not sys.stdout.buffer:
            self._stream.flush()
            os.fsync(self._stream.fileno())

    def write_encoded(self, data: bytes | bytearray) -> None:
        """Documents already encoded by :func:`to_json_line`, concatenated: ``replay --workers`` encodes alerts
        in its worker processes, so the process that writes only copies bytes."""
        if self._stream is None:
            self.open()
        assert self._stream is not None
        self._stream.write(data)
        if self.fsync and self._stream is not sys.stdout.buffer:
            self._stream.flush()
            os.fsync(self._stream.fileno())

    def copy_from_fd(self, source: int, size: int) -> None:
        """Write the next ``size`` bytes readable from the pipe ``source``: documents already encoded (as
        :meth:`write_encoded`), taken from ``replay --workers``' result pipe.

        Why: a worker's encoded alerts are ~1 MB a batch (362 MB for 200k Sysmon events with 1,433 rules), and
        the parent's CPU is what caps the scaling. Received as a pickled message they were copied four times in
        the parent (read, the message buffer, unpickling, write); here the kernel moves them from the pipe into
        the file (``splice``) and the parent's Python never holds them. Where ``splice`` is not tried (standard
        output, a file in append mode, which it refuses, no ``os.splice``) or fails, the rest is read into one
        buffer and written.
        Exactly ``size`` bytes are consumed from ``source`` either way."""
        if self._stream is None:
            self.open()
        assert self._stream is not None
        self._stream.flush()  # what was written before these bytes reaches the file first
        done = 0
        splice = getattr(os, "splice", None)
        if splice is not None and self._stream is not sys.stdout.buffer and not self.append:
            target = self._stream.fileno()
            try:
                while done < size:
                    moved = splice(source, target, size - done)
                    if moved == 0:
                        raise EOFError(f"the pipe ended {size - done} bytes before the end of the alerts")
                    done += moved
            except OSError:
                pass  # e.g. EINVAL: this file cannot take a splice; what is left goes the ordinary way
        if done < size:
            self._stream.write(read_exactly(source, size - done))
            self._stream.flush()
        if self.fsync and self._stream is not sys.stdout.buffer:
            os.fsync(self._stream.fileno())

    def flush(self) -> None:
        if self._stream is not None:
            self._stream.flush()

    def close(self) -> None:
        if self._stream is None:
            return
        self._stream.flush()
        if self._stream is not sys.stdout.buffer:
            self._stream.close()
        self._stream = None


def read_exactly(source: int, size: int) -> bytearray:
    """The next ``size`` bytes of the file descriptor ``source`` (a pipe), read into one buffer (one copy from
    the kernel, none in Python); ``EOFError`` if it ends first."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    done = 0
    while done < size:
        got = os.readv(source, [view[done:]])
        if got == 0:
            raise EOFError(f"the pipe ended {size - done} bytes early")
        done += got
    return buffer
