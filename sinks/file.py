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

    def write_encoded(self, data: bytes) -> None:
        """Documents already encoded by :func:`to_json_line`, concatenated: ``replay --workers`` encodes alerts
        in its worker processes, so the process that writes only copies bytes."""
        if self._stream is None:
            self.open()
        assert self._stream is not None
        self._stream.write(data)
        if self.fsync and self._stream is not sys.stdout.buffer:
            self._stream.flush()
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
