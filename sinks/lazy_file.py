"""A file sink that creates its file only when the first document arrives (dead letters in a replay)."""

from __future__ import annotations

from typing import Any

from temporal_siem.sinks.file import FileSink


class LazyFileSink(FileSink):
    name = "lazy_file"

    def open(self) -> None:
        """Deferred to the first write so clean runs leave no empty file behind."""

    def write(self, documents: list[dict[str, Any]]) -> None:
        if documents:
            super().open()
            super().write(documents)

    @property
    def written(self) -> bool:
        return self._stream is not None
