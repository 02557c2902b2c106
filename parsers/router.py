"""From a raw record to normalized events: decode, unwrap envelopes, pick a parser, parse.

Every failure is a :class:`RecordError` with a short reason; the pipeline dead-letters it with the
record's origin. A batch envelope whose elements fail one by one yields the good ones and reports the
bad ones individually (see :class:`ParseResult`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from temporal_siem.kernel.grouping import grouped_order
from temporal_siem.kernel.records import PENDING, DeadLetter, Origin, RawRecord, RecordError
from temporal_siem.kernel.secrets import clean_record, scan_record, scan_records
from temporal_siem.parsers.base import Parser
from temporal_siem.parsers.common import now_timestamp, redact, redact_text
from temporal_siem.parsers.enrichment import Enricher
from temporal_siem.parsers.envelopes import ENVELOPE_KEY_SET, collector_prefix_candidates, json_object_or_none, unwrap_all
from temporal_siem.parsers.generic_json import JsonParser
from temporal_siem.parsers.registry import detection_chain, get_parser

if TYPE_CHECKING:  # the config models pull in pydantic-settings; the hot path needs none of it
    from temporal_siem.kernel.config import GeoIPConfig

DEFAULT_MAX_RECORD_BYTES = 8 * 1024 * 1024
#: One record (a JSON array, a CloudTrail Records[] file) may hold at most this many elements / give at most
#: this many events: 8 MB of ``[{},{},...]`` became 2.8M events, 1.4 GB and 34 s in one batch (issue 15).
DEFAULT_MAX_EVENTS_PER_RECORD = 50_000


@dataclass(slots=True)
class ParseResult:
    events: list[dict[str, Any]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)


_UNDECODED: Any = object()  # "not decoded yet" (None is a JSON value)


class ParserRouter:
    """Chooses a parser per record (``auto``) or forces one; stamps event.ingested."""

    def __init__(self, format_name: str = "auto", max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
                 keep_original: bool = False, geoip: GeoIPConfig | None = None,
                 max_events_per_record: int = DEFAULT_MAX_EVENTS_PER_RECORD) -> None:
        self.format_name = format_name
        self.max_events_per_record = max_events_per_record
        self.max_record_bytes = max_record_bytes
        self.keep_original = keep_original
        self._forced: Parser | None = None if format_name == "auto" else get_parser(format_name)
        self._chain = detection_chain()
        self._text_chain = [p for p in self._chain if type(p).accepts_text is not Parser.accepts_text]
        # The parsers before the first one without ``accept_keys`` are skipped together for a record that has none
        # of their keys: one set operation instead of one ``accepts`` call each (~1.5 µs of a plain JSON record).
        gated = 0
        while gated < len(self._chain) and self._chain[gated].accept_keys is not None:
            gated += 1
        self._gate_keys: frozenset[str] = frozenset().union(*(p.accept_keys or () for p in self._chain[:gated]))
        self._after_gate = self._chain[gated:]
        self._enrich = Enricher(geoip).enrich
        # The plain-JSON path: a JSON object that is no envelope and has none of the gated parsers' keys goes to
        # the generic ``json`` parser when it is the only parser after the gate (as shipped). Such a record whose
        # bytes hold nothing secret-shaped is parsed in one method here, into the decoded object itself (the
        # Windows and plain JSON logs most Sigma rules are written for): the general path's layers (decode,
        # envelope walk, choice, masking scope, the copy of a flat object) cost ~2 us of its ~8 us. Anything
        # else (a secret-shaped byte, a hint, an event.original to keep, an error) takes the general path.
        plain = self._after_gate[0] if len(self._after_gate) == 1 else None
        self._plain: JsonParser | None = (plain if self._forced is None and not keep_original and type(plain) is JsonParser
                                          else None)
        self._plain_excluded = self._gate_keys | ENVELOPE_KEY_SET
        self.defer_completion = False
        self._pending: dict[int, tuple[dict[str, Any], bytes]] = {}

    #: What :attr:`defer_completion` leaves pending, and in the events of which datasets.
    deferred_fields = frozenset({"@timestamp", "event.id"})
    deferred_datasets = frozenset({JsonParser.dataset})
    #: The characters of their texts: ``@timestamp`` as format_timestamp writes it, ``event.id`` as lowercase hex.
    deferred_alphabet = frozenset("0123456789abcdef-:.tzTZ")

    def enable_deferred_completion(self) -> bool:
        """Leave ``@timestamp`` and ``event.id`` of plain JSON records :data:`PENDING` until :meth:`complete`
        (the pipeline turns it on only when nothing reads them before an alert is built). False when this router
        has no plain-JSON path (a forced format, ``keep_original``): nothing is deferred then.

        Why: a Windows or plain JSON event that matches no rule, in a replay that writes no events, is read by
        no one after matching, yet its record's sha256 (``event.id``, ~0.9 us), its time parsed and formatted and
        the enrichers' checks were a third of the CPU of the 50-rule peer bench (2.5 -> 1.7 s). Only the events that raise an alert
        need them, and get exactly the values and key order the eager path gives (tests/app/test_deferred.py)."""
        self.defer_completion = self._plain is not None
        return self.defer_completion

    def complete(self, events: list[dict[str, Any]]) -> None:
        """Fill in what :attr:`defer_completion` left pending in ``events`` (events of the batch parsed last;
        any other event is left as it is)."""
        pending = self._pending
        plain = self._plain
        for event in events:
            entry = pending.pop(id(event), None)
            if entry is not None and entry[0] is event and plain is not None:
                plain.finish(event, entry[1])

    #: A batch of at least this many records that mixes formats is parsed one format after another (see
    #: :meth:`_parse_grouped`); a smaller one is too short for the grouping to pay.
    group_min_records = 32

    def parse(self, record: RawRecord) -> ParseResult:
        result = ParseResult()
        self._pending.clear()
        self._parse_record(record, now_timestamp(), result)
        return result

    def parse_batch(self, records: list[RawRecord], result: ParseResult, ends: list[tuple[int, int]] | None = None) -> int:
        """Every record of a batch into one ``result``, in order, all stamped with one ``event.ingested`` (the
        time the batch is parsed); returns how many records gave at least one event. What ``parse`` gives record
        by record, without a result object and a clock read per record (~1 µs of a plain record's ~25).

        ``ends``, when given, receives one ``(len(result.events), len(result.dead))`` after each record: where each
        record's events and dead letters end, for a caller that answers per record (the daemon's offsets)."""
        ingested = now_timestamp()
        self._pending.clear()  # what the last batch left pending: its events are done with
        events = result.events
        parsed = 0
        # The secret scan of the whole batch in one Hyperscan call (kernel.secrets.scan_records); a record past the
        # size limit is dead-lettered unread, so it is not scanned either.
        limit = self.max_record_bytes
        scans = scan_records([record.data if len(record.data) <= limit else b"" for record in records])
        if len(records) >= self.group_min_records:
            order = _grouped_order(records)
            if order is not None:
                return self._parse_grouped(records, scans, order, ingested, result, ends)
        if self._plain is not None and ends is None:
            return self._parse_plain_batch(records, scans, ingested, result)
        for record, checks in zip(records, scans, strict=True):
            before = len(events)
            self._parse_record(record, ingested, result, checks)
            if len(events) > before:
                parsed += 1
            if ends is not None:
                ends.append((len(events), len(result.dead)))
        return parsed

    def _parse_plain_batch(self, records: list[RawRecord], scans: list[int], ingested: str, result: ParseResult) -> int:
        """``parse_batch``'s loop for a batch of one kind, with the plain-JSON path of :meth:`_parse_record` written
        out in it: a Windows or plain JSON record is decoded and made an event without a method call of its own
        (the call and its checks were ~0.4 us of such a record's ~3.3). Any other record, or one the plain path
        refuses, goes to :meth:`_parse_record` as before, with what was decoded, so nothing is decoded twice."""
        events = result.events
        append = events.append
        loads = orjson.loads
        decode_error = orjson.JSONDecodeError
        excluded = self._plain_excluded
        limit = self.max_record_bytes
        defer = self.defer_completion
        pending = self._pending
        enrich = self._enrich
        plain = self._plain
        assert plain is not None
        parse_clean = plain.parse_clean
        parsed = 0
        for record, checks in zip(records, scans, strict=True):
            data = record.data
            decoded: Any = _UNDECODED
            if data[:1] == b"{" and record.format_hint in _NO_HINT and len(data) <= limit:
                try:
                    decoded = loads(data)
                except decode_error:
                    pass  # still _UNDECODED: _parse_record's decode() gives the dead letter
                else:
                    if not checks and decoded.__class__ is dict and decoded.keys().isdisjoint(excluded):
                        try:
                            event = parse_clean(decoded, data, defer)
                        except Exception:  # the general path parses it again and dead-letters it
                            decoded = _UNDECODED
                        else:
                            if defer and event.get("event.id") is PENDING:
                                pending[id(event)] = (event, data)
                            enrich(event)
                            event.setdefault("event.ingested", ingested)
                            append(event)
                            parsed += 1
                            continue
            before = len(events)
            self._parse_record(record, ingested, result, checks, decoded)
            if len(events) > before:
                parsed += 1
        return parsed

    def _parse_grouped(self, records: list[RawRecord], scans: list[int], order: list[int], ingested: str,
                       result: ParseResult, ends: list[tuple[int, int]] | None) -> int:
        """``parse_batch`` of a batch that mixes formats: the records parsed in ``order`` (alike ones together),
        their events and dead letters put back in the records' own order. Parsing one format after another kept
        the interpreter's and the CPU's caches on one parser's code and keys: 20 % less time a record on the
        mixed bench corpus (~55 -> ~44 us) for ~0.5 us of bookkeeping. Parsers keep no state between records,
        so each record's events are what they were; only the order of the work changes."""
        events = result.events
        dead = result.dead
        first_event, first_dead = len(events), len(dead)
        spans: list[tuple[int, int, int, int]] = [(0, 0, 0, 0)] * len(records)
        for index in order:
            event_start, dead_start = len(events), len(dead)
            self._parse_record(records[index], ingested, result, scans[index])
            spans[index] = (event_start, len(events), dead_start, len(dead))
        done_events = events[first_event:]
        done_dead = dead[first_dead:]
        del events[first_event:], dead[first_dead:]
        parsed = 0
        for event_start, event_end, dead_start, dead_end in spans:
            if event_end > event_start:
                parsed += 1
                events.extend(done_events[event_start - first_event:event_end - first_event])
            if dead_end > dead_start:
                dead.extend(done_dead[dead_start - first_dead:dead_end - first_dead])
            if ends is not None:
                ends.append((len(events), len(dead)))
        return parsed

    def _parse_record(self, record: RawRecord, ingested: str, result: ParseResult, checks: int | None = None,
                      decoded: Any = _UNDECODED) -> None:
        """One record's events and dead letters appended to ``result`` (which may hold earlier records').
        ``checks``: the secret scan of the record's bytes when the caller made it (``scan_records`` of a batch),
        else it is made here once a path needs it. ``decoded``: ``orjson.loads(record.data)`` when the caller
        made it (:meth:`_parse_plain_batch`, for a record its plain path did not take)."""
        if len(record.data) > self.max_record_bytes:
            result.dead.append(DeadLetter("record too large", "decode", record.origin, record.data,
                                          f"{len(record.data)} bytes > limit {self.max_record_bytes}"))
            return
        data = record.data
        if decoded is not _UNDECODED:
            pass  # the caller's plain path looked at it already
        elif self._plain is not None and data[:1] == b"{" and record.format_hint in _NO_HINT:
            try:
                decoded = orjson.loads(data)  # what decode() returns for it: no NUL, BOM or space before the "{"
            except orjson.JSONDecodeError:
                pass  # still _UNDECODED: decode() below gives the dead letter
            else:
                if decoded.__class__ is dict and decoded.keys().isdisjoint(self._plain_excluded):
                    if checks is None:
                        checks = scan_record(data)
                    if not checks:
                        try:
                            event = self._plain.parse_clean(decoded, data, self.defer_completion)
                        except Exception:  # the general path parses it again and dead-letters it
                            decoded = _UNDECODED
                        else:
                            if self.defer_completion and event.get("event.id") is PENDING:
                                self._pending[id(event)] = (event, data)
                            self._enrich(event)
                            event.setdefault("event.ingested", ingested)
                            result.events.append(event)
                            return
        if decoded is _UNDECODED:
            try:
                decoded = decode(data)
            except RecordError as exc:
                result.dead.append(DeadLetter(exc.reason, "decode", record.origin, data, exc.detail))
                return
        hint = record.format_hint if record.format_hint not in _NO_HINT else None
        if isinstance(decoded, str):
            self._parse_one(decoded, record.data, record.origin, hint, ingested, result, checks)
            return
        try:
            elements = unwrap_all(decoded)
        except RecordError as exc:
            result.dead.append(DeadLetter(exc.reason, "decode", record.origin, record.data, exc.detail))
            return
        if not elements:
            result.dead.append(DeadLetter("empty envelope", "decode", record.origin, record.data, "no records inside"))
            return
        if len(elements) > self.max_events_per_record:
            result.dead.append(DeadLetter("too many events in one record", "decode", record.origin, record.data,
                                          f"{len(elements)} elements > limit {self.max_events_per_record}"))
            return
        single = len(elements) == 1 and elements[0][1] is None
        events = result.events
        start = len(events)
        for element, index in elements:
            origin = record.origin if index is None else _with_index(record.origin, index)
            raw = record.data if single else _element_bytes(element, record.data)
            self._parse_one(element, raw, origin, hint, ingested, result, checks if single else None)
            if len(events) - start > self.max_events_per_record:
                del events[start:]
                result.dead.append(DeadLetter("too many events in one record", "parse", record.origin, record.data,
                                              f"more than {self.max_events_per_record} events"))
                break

    def _parse_one(self, element: Any, raw: bytes, origin: Origin, hint: str | None,
                   ingested: str, result: ParseResult, checks: int | None = None) -> None:
        """``checks``: ``scan_record(raw)`` when the caller already made it (the plain path's scan of a record
        it handed on), else None."""
        try:
            if isinstance(element, str):
                element = self._without_collector_prefix(element, hint)
            parser = self._choose(element, hint)
            with clean_record(raw, checks):
                events = parser.parse(element, raw)
                original = _redacted_original(element) if self.keep_original and events else None
        except RecordError as exc:
            result.dead.append(DeadLetter(exc.reason, "parse", origin, raw, exc.detail))
            return
        except RecursionError:
            result.dead.append(DeadLetter("record too deeply nested", "parse", origin, raw))
            return
        except Exception as exc:
            result.dead.append(DeadLetter("parser error", "parse", origin, raw, f"{type(exc).__name__}: {exc}"))
            return
        enrich = self._enrich
        for event in events:
            enrich(event)
            event.setdefault("event.ingested", ingested)
            if original is not None:
                event["event.original"] = original
            result.events.append(event)

    def _without_collector_prefix(self, line: str, hint: str | None) -> Any:
        """A text line no parser claims may be a known line behind a collector's prefix (docker compose, kubectl,
        CRI, syslog/journald): then the line after the prefix, parsed as JSON when it is an object."""
        candidates = [self._forced or get_parser(hint)] if (self._forced is not None or hint is not None) else self._text_chain
        if any(parser.accepts_text(line) for parser in candidates):
            return line
        for inner in collector_prefix_candidates(line):
            record = json_object_or_none(inner)
            if record is not None:
                return record
            if any(parser.accepts_text(inner) for parser in candidates):
                return inner
        return line

    def _choose(self, element: Any, hint: str | None) -> Parser:
        if self._forced is not None:
            return self._forced
        if hint is not None:
            return get_parser(hint)
        if isinstance(element, dict):
            chain = self._after_gate if element.keys().isdisjoint(self._gate_keys) else self._chain
            for parser in chain:
                if parser.accepts(element):
                    return parser
            raise RecordError("no parser accepts the record", f"keys: {', '.join(list(element)[:12])}")
        if isinstance(element, str):
            for parser in self._text_chain:
                if parser.accepts_text(element):
                    return parser
            raise RecordError("no parser accepts the text line", element[:120])
        raise RecordError("not a JSON object", f"JSON {type(element).__name__} is not a log record")


#: Bytes of a record's start that say which format it likely is (its first keys; where a timestamp follows,
#: records of one source still sort next to each other), and how many of them tell one source from a mix.
GROUP_PREFIX_BYTES = 24
GROUP_KIND_BYTES = 12


def _grouped_order(records: list[RawRecord]) -> list[int] | None:
    """The records' indexes sorted by the start of their bytes (:func:`kernel.grouping.grouped_order`)."""
    return grouped_order(records, lambda record: record.data[:GROUP_KIND_BYTES], lambda record: record.data[:GROUP_PREFIX_BYTES])

_NO_HINT = (None, "auto")


def decode(data: bytes) -> Any:
    """bytes -> JSON value, or the text line for non-JSON records. Invalid UTF-8 and broken JSON are errors."""
    if data.find(b"\x00", 0, 4096) != -1:  # no slice: a copy of up to 4 KiB of every record
        raise RecordError("binary data", "NUL byte in record")
    stripped = data.strip()
    if stripped.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark is no part of the record
        stripped = stripped[3:].strip()
    if not stripped:
        raise RecordError("empty record")
    first = stripped[:1]
    if first in (b"{", b"["):
        try:
            return orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            try:
                text = stripped.decode("utf-8")
            except UnicodeDecodeError as uexc:
                raise RecordError("invalid UTF-8", str(uexc)) from uexc
            if first == b"[" and collector_prefix_candidates(text):
                return text  # "[pod/name/container] {...}": a kubectl --prefix line, not a JSON array
            raise RecordError("invalid JSON", str(exc)) from exc
    try:
        return stripped.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError("invalid UTF-8", str(exc)) from exc


def _redacted_original(element: Any) -> str:
    """``event.original`` as asked for: the record as received, with secrets masked like every other output."""
    if isinstance(element, str):
        return redact_text(element)
    try:
        return orjson.dumps(redact(element)).decode()
    except TypeError:  # deeper than orjson serializes
        return "[record nested too deeply to keep]"


def _element_bytes(element: Any, fallback: bytes) -> bytes:
    try:
        return orjson.dumps(element)
    except TypeError:  # nested deeper than orjson serializes
        return fallback


def _with_index(origin: Origin, index: int) -> Origin:
    return Origin(origin.source, origin.line, origin.offset, origin.topic, origin.partition, index)
