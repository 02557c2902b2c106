"""What the network sinks share: remembering a half-delivered batch (retry timing is kernel.backoff).

The pipeline re-sends the whole batch after a SinkError. A sink that had already delivered part of it
(some Kafka records acknowledged, some syslog frames written) would duplicate that part; PartialBatch
remembers which positions of the batch in hand went through so the retry sends only the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr


def secret(value: str | SecretStr | None) -> str | None:
    """The secret text of a ``SecretStr`` option (config models type their secrets so), or None."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return value


@dataclass
class PartialBatch:
    """Positions of the current batch already delivered, kept across a SinkError until the batch completes."""

    _batch: list[dict[str, Any]] | None = None
    _done: set[int] = field(default_factory=set)

    def pending(self, documents: list[dict[str, Any]]) -> list[int]:
        """Positions still to deliver: all of them, unless this is the retry of a half-delivered batch."""
        if documents is not self._batch:
            self._batch, self._done = documents, set()
        return [i for i in range(len(documents)) if i not in self._done]

    def delivered(self, position: int) -> None:
        self._done.add(position)

    def complete(self) -> None:
        self._batch, self._done = None, set()
