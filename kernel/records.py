"""Where a record came from, and what the pipeline says when it cannot handle one."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from temporal_siem.kernel.secrets import redact_raw, redact_text

RAW_EXCERPT_BYTES = 4096


@dataclass(slots=True, frozen=True)
class Origin:
    """Enough to find a record again: file and line, or topic/partition/offset."""

    source: str
    line: int | None = None
    offset: int | None = None
    topic: str | None = None
    partition: int | None = None
    index: int | None = None  # position inside an envelope (CloudTrail Records[i], JSON array element)

    def __init__(self, source: str, line: int | None = None, offset: int | None = None, topic: str | None = None,
                 partition: int | None = None, index: int | None = None) -> None:
        # Every record gets one. The generated __init__ of a frozen dataclass sets each field through
        # ``object.__setattr__`` (~0.77 µs for the six); the slots' own setters do the same in ~0.34 µs, and
        # the instance stays frozen (assignment still raises FrozenInstanceError).
        _SET_SOURCE(self, source)
        _SET_LINE(self, line)
        _SET_OFFSET(self, offset)
        _SET_TOPIC(self, topic)
        _SET_PARTITION(self, partition)
        _SET_INDEX(self, index)

    def __str__(self) -> str:
        if self.topic is not None:
            text = f"{self.topic}[{self.partition}]@{self.offset}"
        elif self.line is not None:
            text = f"{self.source}:{self.line}"
        else:
            text = self.source
        if self.index is not None:
            text += f"#{self.index}"
        return text

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"source": self.source}
        for key in ("line", "offset", "topic", "partition", "index"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        return data


_SLOTS: dict[str, Any] = dict(Origin.__dict__)  # the slots' member descriptors (typed Any: mypy sees fields)
_SET_SOURCE = _SLOTS["source"].__set__
_SET_LINE = _SLOTS["line"].__set__
_SET_OFFSET = _SLOTS["offset"].__set__
_SET_TOPIC = _SLOTS["topic"].__set__
_SET_PARTITION = _SLOTS["partition"].__set__
_SET_INDEX = _SLOTS["index"].__set__


class RawRecord:
    """One unit of input as it arrived: a line, a Kafka value, or a whole JSON document.

    Written by hand rather than as a dataclass so that :class:`LineRecord` can build its :class:`Origin` only when
    something asks for it (a dead letter, an error): most records never need one."""

    __slots__ = ("_line", "_origin", "_source", "data", "format_hint")
    _source: str  # with _line, what a LineRecord's origin is made of (set by LineRecord only)
    _line: int

    def __init__(self, data: bytes, origin: Origin, format_hint: str | None = None) -> None:
        self.data = data
        self._origin: Origin | None = origin
        self.format_hint = format_hint

    @property
    def origin(self) -> Origin:
        origin = self._origin
        if origin is None:
            origin = self._origin = Origin(self._source, line=self._line)
        return origin

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RawRecord):
            return NotImplemented
        return (self.data, self.origin, self.format_hint) == (other.data, other.origin, other.format_hint)

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass it replaces

    def __repr__(self) -> str:
        return f"RawRecord(data={self.data!r}, origin={self.origin!r}, format_hint={self.format_hint!r})"

    def __getstate__(self) -> tuple[bytes, Origin, str | None]:
        return self.data, self.origin, self.format_hint

    def __setstate__(self, state: tuple[bytes, Origin, str | None]) -> None:
        self.data, self._origin, self.format_hint = state


class LineRecord(RawRecord):
    """A line of a file: its origin (file and line number) is made on first use.

    Why: an :class:`Origin` costs ~0.45 µs to build and a record that parses cleanly never reads it; replay frames
    every line of its input into one of these (~0.65 µs less a record than ``RawRecord(data, Origin(...))``)."""

    __slots__ = ()

    def __init__(self, data: bytes, source: str, line: int, format_hint: str | None = None) -> None:
        self.data = data
        self._origin = None
        self._source = source
        self._line = line
        self.format_hint = format_hint


@dataclass(slots=True)
class DeadLetter:
    """A record the pipeline could not handle, with the reason and where it came from."""

    reason: str
    stage: str
    origin: Origin
    raw: bytes = b""
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    #: ``raw`` is our own JSON of a parsed event (a late event a correlation or scope could not use): masked when it
    #: was parsed, as every event and alert is. Masking it again cost a full pass per late event and only masked
    #: more than the event outputs do (Vault's HMAC'd values, which are kept to let rules follow one token).
    masked: bool = False

    def as_dict(self) -> dict[str, Any]:
        # Masked with the same rules as every other output, then cut (a secret must not survive by being cut in half).
        excerpt = self.raw if self.masked else redact_raw(self.raw[:RAW_EXCERPT_BYTES * 4])
        excerpt = excerpt[:RAW_EXCERPT_BYTES]
        try:
            raw_text: dict[str, Any] = {"raw": excerpt.decode("utf-8")}
        except UnicodeDecodeError:
            raw_text = {"raw_base64": base64.b64encode(excerpt).decode("ascii")}
        doc: dict[str, Any] = {
            "reason": self.reason,
            "stage": self.stage,
            "detail": redact_text(self.detail) if self.detail else self.detail,
            "origin": self.origin.as_dict(),
            "origin_text": str(self.origin),
            "raw_bytes": len(self.raw),
            "raw_truncated": len(self.raw) > RAW_EXCERPT_BYTES,
            **raw_text,
        }
        doc.update(self.extra)
        return doc


class RecordError(Exception):
    """A record-level failure: the record is dead-lettered with ``reason`` and the run goes on."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class _Pending:
    """The type of :data:`PENDING`; one instance. Not JSON: an encoder that meets it fails loudly."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "PENDING"

    def __reduce__(self) -> str:
        return "PENDING"  # pickled as the module's one instance (a worker's pipe), never a copy


#: A field value a parser will fill in later (``@timestamp``, ``event.id`` of a plain JSON record), set where the
#: value goes so that the event's keys keep their order. Only the replay pipeline asks for it, and only when
#: nothing reads those fields before an alert is built (see ``ParserRouter.defer_completion`` and
#: ``SigmaDetector.accepts_deferred``): matching never sees it, and the detector completes an event that
#: matched before anything else reads it. Lives in the kernel because both stages test for it.
PENDING: Any = _Pending()
