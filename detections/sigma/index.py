"""The candidate index of one lane (the rules routed to one kind of event).

Per event it probes only the event's own keys that some rule of the lane needs: presence lists, a folded
exact-value dict, a numeric exact dict, and a literal scan (Hyperscan, or Aho-Corasick; one database of the
lane's substring needles) of each value of a field with substring needles, whose hits count only for that
field's needles (the ``\\cmd.exe`` of ``Image|endswith`` does not fire on a command line naming cmd.exe). In a
keyword lane the keyword needles (a database of their own) are searched once per event in all its values joined
with ``\x00``: a needle holds no NUL, so it is never found across two values. What each probe finds are tokens:
a rule's index for a one-clause rule, one token per clause for a rule with several (witness.py), which is a
candidate only when all its clauses were hit.
Rules without a witness are always candidates. The result may only over-approximate the rules that match;
``tests/sigma/test_differential.py`` checks it against a full scan.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

import ahocorasick

try:
    import hyperscan

    from temporal_siem.kernel.hyperscan_cache import compile_block_database
except ImportError:  # no wheel for this platform: Aho-Corasick does the same job, slower
    hyperscan = None  # type: ignore[assignment]

from temporal_siem.detections.sigma.values import fold, to_number
from temporal_siem.detections.sigma.witness_types import Witness, Witnesses

MEMO_SIZE = 4096  # distinct values remembered per field and lane
#: Memo misses between checks that a field's values repeat often enough to keep its memo: a miss costs a
#: scan of its own, so a field that misses on more than half the lane's events since the last check (a
#: time stamp, a hash, a command line) is switched off. Counted on misses only: a hit costs one dict probe.
MEMO_WINDOW = 256
#: A batch scan (candidates_many) costs ~0.02 us a value plus ~0.2 us a hit in Python (a callback, finding its
#: value, a set member), where a scan of one value costs ~0.6 us and ~0.15 us a hit. A field whose values hold
#: more distinct needle hits than this on average (SigmaHQ's process-creation command lines: 4-5) is scanned
#: value by value for the next PER_VALUE_BATCHES batches, then measured again.
BATCH_HITS_LIMIT = 2.0
PER_VALUE_BATCHES = 64
#: Characters of text one batch scan joins at most (a text longer than that is scanned alone): the joined copy of
#: a batch of hostile records (each up to the record limit) stays bounded, and ~1,000 command lines fit.
BATCH_SCAN_CHARS = 1 << 20


@dataclass(slots=True)
class FieldSlot:
    """What the lane knows about one event key. ``seen`` feeds the rule-health "missing fields" report."""

    presence: tuple[int, ...] = ()
    exact: dict[str, tuple[int, ...]] | None = None
    numbers: dict[int | float, tuple[int, ...]] | None = None
    needles: dict[int, tuple[int, ...]] | None = None  # needle id (in the lane's scanner) -> tokens
    seen: bool = False
    # Memo of what one string value of this field contributes (presence, exact, numeric and substring
    # tokens): low-cardinality fields (Image, User, Channel...) repeat their values, so
    # the fold, dict probes and scan are done once per distinct value; a value's contribution depends on the
    # value alone (a needle holds no NUL, so it is never found across two joined values). Turned off (None)
    # for a field whose values rarely repeat (command lines, hashes, times): those are probed on every event.
    memo: dict[str, tuple[int, ...]] | None = field(default_factory=dict)
    misses: int = 0
    since: int = 0  # the lane's event count when ``misses`` was last reset
    # Batches (candidates_many calls) left in which this field's unmemoised values are scanned one by one: set
    # when a batch scan found many needles a value (see BATCH_HITS_LIMIT), then the batch scan is tried again.
    per_value: int = 0


@dataclass
class CandidateIndex:
    always: tuple[int, ...]
    fields: dict[str, FieldSlot]
    scanner: Any = None  # LiteralScanner | None: every substring needle of the lane
    keyword_tokens: dict[int, tuple[int, ...]] | None = None  # keyword needle id -> tokens (a keyword lane)
    keyword_scanner: Any = None  # LiteralScanner | None: the keyword needles, searched in every value
    witness_kinds: dict[str, int] = field(default_factory=dict)
    # Rules with several clauses (witness.py): each clause has its own token (numbered past the lane's rule
    # indices) and ``gates`` maps a rule's first token to (rule, its other tokens). The rule is a candidate
    # when all its tokens were found. One-clause rules are their own token.
    gates: dict[int, tuple[int, frozenset[int]]] = field(default_factory=dict)
    clause_tokens: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        self._slot_set = frozenset(self.fields)
        # Fields some rule reads but no witness names (a filter's field, a field of an always-candidate rule): they
        # add no token, and are probed only to be marked ``seen`` (rule health); once seen they leave the probe set,
        # sparing every later event a memo probe each (~0.15 us a field on a Sysmon event).
        self._idle = frozenset(name for name, slot in self.fields.items()
                               if not (slot.presence or slot.exact or slot.numbers or slot.needles))
        self._first_tokens = frozenset(self.gates)
        self._events = 0  # events seen by this index: the memo policy's clock
        # candidates_many scans a batch's texts joined with NUL: only sound when no needle holds one (a needle
        # with a NUL could be found across two texts). Such a lane scans event by event, as before.
        self._batch_scan = all(scanner is None or not scanner.holds_nul
                               for scanner in (self.scanner, self.keyword_scanner))
        self._per_value: set[str] = set()  # fields whose per_value count is running

    @classmethod
    def build(cls, rules: list[tuple[int, Witnesses, tuple[str, ...]]]) -> CandidateIndex:
        """``rules``: (rule index, witness clauses or None, fields the rule reads)."""
        always: list[int] = []
        presence: dict[str, set[int]] = {}
        exact: dict[str, dict[str, set[int]]] = {}
        numbers: dict[str, dict[int | float, set[int]]] = {}
        needle_ids: dict[str, int] = {}
        keyword_ids: dict[str, int] = {}
        needles: dict[str, dict[int, set[int]]] = {}
        keywords: dict[int, set[int]] = {}
        kinds: dict[str, int] = {}
        all_fields: set[str] = set()
        gates: dict[int, tuple[int, frozenset[int]]] = {}
        next_token = max((index for index, _, _ in rules), default=-1) + 1
        # A rule's first clause is always indexed; a further clause only if it costs no new scan hit: its
        # needles are already asked for by some first clause (on the same field, or as keywords), so a hit
        # that is reported anyway only adds a token. A new needle would add a scan callback on every value
        # that holds it (~0.3 us, on command lines many per event), more than the false candidates it saves.
        # Exact and numeric witnesses are dict probes and always qualify. Dropping a clause only admits more.
        primary = {(w.field, w.value) for _, ws, _ in rules if ws for w in ws[0] if w.kind in ("substring", "keyword")}
        for index, witnesses, fields in rules:
            all_fields.update(fields)
            if witnesses is None:
                always.append(index)
                kinds["always"] = kinds.get("always", 0) + 1
                continue
            if len(witnesses) > 1:
                witnesses = (witnesses[0], *(c for c in witnesses[1:] if _free(c, primary)))
            if len(witnesses) == 1:
                tokens: tuple[int, ...] = (index,)
            else:
                tokens = tuple(range(next_token, next_token + len(witnesses)))
                next_token += len(witnesses)
                gates[tokens[0]] = (index, frozenset(tokens[1:]))
            for token, clause in zip(tokens, witnesses, strict=True):
                for w in clause:
                    kinds[w.kind] = kinds.get(w.kind, 0) + 1
                    name = w.field or ""
                    if w.kind == "presence":
                        presence.setdefault(name, set()).add(token)
                    elif w.kind == "exact":
                        exact.setdefault(name, {}).setdefault(w.value, set()).add(token)
                    elif w.kind == "number":
                        numbers.setdefault(name, {}).setdefault(w.value, set()).add(token)
                    elif w.kind == "substring":
                        nid = needle_ids.setdefault(w.value, len(needle_ids))
                        needles.setdefault(name, {}).setdefault(nid, set()).add(token)
                    elif w.kind == "keyword":
                        nid = keyword_ids.setdefault(w.value, len(keyword_ids))
                        keywords.setdefault(nid, set()).add(token)
        # Numbered by needle, not by the order met: a clause is a frozenset, whose order follows the string hash
        # of each process, and the lane's Hyperscan database is cached on disk under its needles and ids.
        needle_ids, renumber = _sorted_ids(needle_ids)
        needles = {name: {renumber[nid]: tokens for nid, tokens in table.items()} for name, table in needles.items()}
        keyword_ids, renumber = _sorted_ids(keyword_ids)
        keywords = {renumber[nid]: tokens for nid, tokens in keywords.items()}
        slots: dict[str, FieldSlot] = {}
        for name in all_fields | set(presence) | set(exact) | set(numbers) | set(needles):
            slots[name] = FieldSlot(
                presence=tuple(sorted(presence.get(name, ()))),
                exact=_tuples(exact[name]) if name in exact else None,
                numbers=_tuples(numbers[name]) if name in numbers else None,
                needles=_tuples(needles[name]) if name in needles else None,
            )
        clause_tokens = frozenset(t for first, (_, rest) in gates.items() for t in (first, *rest))
        return cls(tuple(sorted(always)), slots, LiteralScanner(list(needle_ids)) if needle_ids else None,
                   _tuples(keywords) if keywords else None, LiteralScanner(list(keyword_ids)) if keyword_ids else None,
                   kinds, gates, clause_tokens)

    def candidates(self, event: dict[str, Any], cache: dict[Any, Any]) -> set[int]:
        found = self._probe(event, cache, None)
        if self.keyword_scanner is not None:
            self._keywords(event, found)
        return self._resolve(found)

    def candidates_many(self, events: list[dict[str, Any]], caches: Sequence[dict[Any, Any]]) -> list[set[int]]:
        """``[candidates(e, c) for e, c in zip(events, caches)]``, with each scan made once for the batch.

        Why: a field whose values rarely repeat (a command line, a hash) has its memo off, so every event paid
        one Hyperscan call from Python for it (~0.6-1.5 us: the encode, the call, the hit list), where the scan
        itself is ~0.02 us a value. Here those values, and a keyword lane's joined texts, are gathered for the
        whole batch and scanned as one text (:meth:`LiteralScanner.hits_many`); each hit is given back to the
        event it was found in. The same tokens as event by event: a needle holds no NUL, and the texts are
        joined with one, so a needle is found in a text exactly when the per-event scan finds it there."""
        if not self._batch_scan:
            return [self.candidates(event, cache) for event, cache in zip(events, caches, strict=True)]
        slots = self.fields
        pending: dict[str, tuple[list[int], list[str]]] = {}
        founds = [self._probe(event, cache, pending, position)
                  for position, (event, cache) in enumerate(zip(events, caches, strict=True))]
        if self._per_value:
            for key in list(self._per_value):  # this batch scanned them value by value: one batch fewer to go
                slot = slots[key]
                slot.per_value -= 1
                if slot.per_value <= 0:  # (below zero only if two threads counted down one index at once)
                    slot.per_value = 0
                    self._per_value.discard(key)
        scanner = self.scanner
        for key, (owners, values) in pending.items():
            slot = slots[key]
            needles = slot.needles
            assert needles is not None and scanner is not None
            pairs = scanner.hits_many(values)
            for at, nid in pairs:
                hit = needles.get(nid)
                if hit:
                    founds[owners[at]].extend(hit)
            if len(pairs) > BATCH_HITS_LIMIT * len(values):
                slot.per_value = PER_VALUE_BATCHES
                self._per_value.add(key)
        if self.keyword_scanner is not None:
            keyword_tokens = self.keyword_tokens
            assert keyword_tokens is not None
            # in parts of about BATCH_SCAN_CHARS: a keyword text is a lowered copy of all of an event's values, so
            # the batch's texts are not all held at once
            texts: list[str] = []
            first = size = 0
            for position, event in enumerate(events):
                text = self._keyword_text(event)
                texts.append(text)
                size += len(text)
                if size >= BATCH_SCAN_CHARS or position == len(events) - 1:
                    for at, nid in self.keyword_scanner.hits_many(texts):
                        founds[first + at].extend(keyword_tokens[nid])
                    texts, first, size = [], position + 1, 0
        resolve = self._resolve
        return [resolve(found) for found in founds]

    def _probe(self, event: dict[str, Any], cache: dict[Any, Any], pending: dict[str, tuple[list[int], list[str]]] | None,
               position: int = 0) -> list[int]:
        """The tokens of an event's own fields (not its keywords). A value whose field has substring needles and
        no memo is scanned here, or, with ``pending`` (:meth:`candidates_many`), put in ``pending[key]`` with
        ``position`` for one scan of the batch."""
        self._events += 1
        slots = self.fields
        found: list[int] = list(self.always)
        # Only the event's keys some rule of the lane reads: one set intersection in C, which walks the smaller
        # side (a wide ECS event against a lane reading a few fields, or a narrow Windows event against
        # thousands of rule fields). The order of the keys does not matter: the result is a set.
        for key in event.keys() & self._slot_set:
            value = event[key]
            slot = slots[key]
            memo = slot.memo
            if memo is not None and value.__class__ is str:
                hit = memo.get(value)
                found.extend(self._miss(key, slot, memo, value) if hit is None else hit)
                continue  # a hit needs no ``seen``: the miss that filled the memo set it
            if not slot.seen:
                self._see(key, slot)
            if slot.presence:
                found.extend(slot.presence)
            if value is None:
                continue
            exact = slot.exact
            needles = slot.needles
            if exact is not None or needles is not None:
                folded = value.lower() if value.__class__ is str else fold(value)
                cache[key] = folded
                if folded.__class__ is not str:
                    if not folded:
                        continue
                    if exact is not None:
                        for member in folded:
                            hit = exact.get(member)
                            if hit:
                                found.extend(hit)
                    folded = "\x00".join(folded)  # type: ignore[arg-type]
                elif exact is not None:
                    hit = exact.get(folded)  # type: ignore[arg-type]
                    if hit:
                        found.extend(hit)
                if needles is not None:  # this value alone: its needles are attributed to this field
                    if pending is None or slot.per_value:
                        self._scan(needles, folded, found)  # type: ignore[arg-type]
                    else:
                        owners_texts = pending.get(key)
                        if owners_texts is None:
                            owners_texts = pending[key] = ([], [])
                        owners_texts[0].append(position)
                        owners_texts[1].append(folded)  # type: ignore[arg-type]
            if slot.numbers is not None:
                self._numbers(slot.numbers, value, found)
        return found

    def _keywords(self, event: dict[str, Any], found: list[int]) -> None:
        """The keyword needles in all of the event's values at once: one join and one lowering in C, and a scan
        of a database holding the keywords alone (the lane's field needles would only add discarded hits).
        Memoising per value cost more than it saved: a dict probe per key, in Python, on every event."""
        keyword_tokens = self.keyword_tokens
        assert keyword_tokens is not None
        for nid in self.keyword_scanner.hits(self._keyword_text(event)):
            found.extend(keyword_tokens[nid])

    @staticmethod
    def _keyword_text(event: dict[str, Any]) -> str:
        """The folded text keyword needles are searched in: every value, joined with NUL."""
        values = event.values()
        # str() is a value's own text for a str, and for a number, boolean or None text no keyword is searched in
        # (admitting more is allowed). Only a list hides keyword text that way: its str() escapes its members
        # (``['c:\\\\x']``). A list's str() starts with "[", so a joined text without one held no list.
        try:
            text: str | None = "\x00".join(map(str, values))
        except (ValueError, RecursionError):  # an integer past str()'s digit limit, a hostile nesting depth
            text = None
        if text is not None and "[" not in text:
            return text.lower()
        # a list, or only a "[" in some value: exactly the keyword texts (string values, string members)
        parts: list[str] = []
        for value in values:
            if value.__class__ is str:
                parts.append(value.lower())
            elif value.__class__ is list:
                parts.extend(member.lower() for member in value if member.__class__ is str)
        return "\x00".join(parts)

    def _resolve(self, found: list[int]) -> set[int]:
        """Tokens to rules: a several-clause rule is a candidate only if every one of its clauses had a hit."""
        result = set(found)
        if self.gates:
            pending = result & self.clause_tokens
            if pending:
                result -= pending
                gates = self.gates
                for token in pending & self._first_tokens:  # the first clause is the most selective
                    rule, rest = gates[token]
                    if rest <= pending:
                        result.add(rule)
        return result

    def _see(self, key: str, slot: FieldSlot) -> None:
        slot.seen = True
        if key in self._idle:
            self._slot_set = self._slot_set - {key}

    def _miss(self, key: str, slot: FieldSlot, memo: dict[str, tuple[int, ...]], value: str) -> tuple[int, ...]:
        if not slot.seen:
            self._see(key, slot)
        hit = self._contribution(slot, value)
        if len(memo) < MEMO_SIZE:
            memo[value] = hit
        slot.misses += 1
        if slot.misses >= MEMO_WINDOW:
            if slot.misses * 2 > self._events - slot.since:  # mostly new values: the memo only costs
                slot.memo = None
            slot.misses = 0
            slot.since = self._events
        return hit

    def _contribution(self, slot: FieldSlot, value: str) -> tuple[int, ...]:
        """The tokens one string value of a field admits: what the unmemoised path adds for it alone."""
        out: list[int] = list(slot.presence)
        folded = value.lower()
        if slot.exact is not None:
            hit = slot.exact.get(folded)
            if hit:
                out.extend(hit)
        if slot.needles is not None:
            self._scan(slot.needles, folded, out)
        if slot.numbers is not None:
            self._numbers(slot.numbers, value, out)
        return tuple(out)

    def _scan(self, needles: dict[int, tuple[int, ...]], text: str, found: list[int]) -> None:
        """One value's scan: the hits of this field's needles."""
        for nid in self.scanner.hits(text):
            hit = needles.get(nid)
            if hit:
                found.extend(hit)

    @staticmethod
    def _numbers(table: dict[int | float, tuple[int, ...]], value: Any, found: list[int]) -> None:
        members = value if value.__class__ is list else (value,)
        for member in members:
            number = to_number(member)
            if number is not None:
                hit = table.get(number)
                if hit:
                    found.extend(hit)


def _free(clause: frozenset[Witness], primary: set[tuple[str | None, Any]]) -> bool:
    return all(w.kind in ("exact", "number") or (w.kind in ("substring", "keyword") and (w.field, w.value) in primary)
               for w in clause)


def _sorted_ids(ids: dict[str, int]) -> tuple[dict[str, int], dict[int, int]]:
    """``ids`` renumbered in sorted needle order, and each old id's new one."""
    ordered = {needle: new for new, needle in enumerate(sorted(ids))}
    return ordered, {old: ordered[needle] for needle, old in ids.items()}


def _tuples(table: dict[Any, set[int]]) -> dict[Any, tuple[int, ...]]:
    return {k: tuple(sorted(v)) for k, v in table.items()}


class LiteralScanner:
    """Finds which of many literal needles occur in a text: one Hyperscan pass, or Aho-Corasick without it.

    Both sides are already folded with ``str.lower()``, so the scan is case-sensitive on purpose (Hyperscan's
    CASELESS is ASCII-only and would not add anything). Each needle is reported once (SINGLEMATCH): the
    index attributes it to every scanned field that asked for it, not to the value it was found in.
    """

    def __init__(self, needles: list[str]) -> None:
        self.needles = needles
        self.holds_nul = any("\x00" in needle for needle in needles)  # hits_many joins texts with NUL
        self._hits: list[int] = []
        self._local = threading.local()
        self._database: Any = None
        self._all_database: Any = None  # every match, for hits_many (compiled on its first use; False: it cannot be)
        self._automaton: Any = None
        if hyperscan is not None:
            self._database = _hyperscan_database(self.needles)
        if self._database is None:
            automaton = ahocorasick.Automaton()
            for i, needle in enumerate(self.needles):
                automaton.add_word(needle, i)
            automaton.make_automaton()
            self._automaton = automaton

    def hits(self, text: str) -> list[int]:
        """Ids (positions in ``needles``) of the needles found in ``text``; one may repeat."""
        if self._database is not None:
            local = self._local  # a Hyperscan scratch belongs to one thread; detectors may run on several
            scratch = getattr(local, "scratch", None)
            if scratch is None:
                scratch = local.scratch = hyperscan.Scratch(self._database)
            hits: list[int] = []
            self._database.scan(text.encode("utf-8", "surrogatepass"), match_event_handler=_append_hit,
                                context=hits, scratch=scratch)
            self._hits = hits  # kept for the bench's hit statistics
            return hits
        return [needle_id for _, needle_id in self._automaton.iter(text)]

    def hits_many(self, texts: list[str]) -> set[tuple[int, int]]:
        """``{(i, id) for i, text in enumerate(texts) for id in hits(text)}``, in one scan of the texts joined with
        NUL (the caller checks ``holds_nul`` is false: then no needle is found across two texts).

        Each match is mapped back to its text by where it ends: the last character of a match lies in exactly
        one text. SINGLEMATCH would report a needle once for the whole batch, so this scan uses a database
        without it (compiled on first use, cached on disk like the other), and the set drops the repeats.
        Texts past :data:`BATCH_SCAN_CHARS` together are scanned in parts of about that size, so the joined copy
        stays bounded whatever the records hold (a text longer than that is a part of its own)."""
        if sum(map(len, texts)) + len(texts) <= BATCH_SCAN_CHARS:
            return self._hits_joined(texts, 0)
        found: set[tuple[int, int]] = set()
        first = size = 0
        for at, text in enumerate(texts):
            size += len(text) + 1
            if size >= BATCH_SCAN_CHARS:
                found |= self._hits_joined(texts[first:at + 1], first)
                first, size = at + 1, 0
        if first < len(texts):
            found |= self._hits_joined(texts[first:], first)
        return found

    def _hits_joined(self, texts: list[str], base: int) -> set[tuple[int, int]]:
        """:meth:`hits_many` of ``texts`` in one scan; ``base`` is added to each text's position."""
        joined = "\x00".join(texts)
        if self._database is None:  # Aho-Corasick reports the index of a match's last character
            starts = list(accumulate([len(text) + 1 for text in texts], initial=0))
            return {(base + bisect_right(starts, end) - 1, needle_id) for end, needle_id in self._automaton.iter(joined)}
        if joined.isascii():  # one byte a character: the texts' lengths are their byte lengths
            data = joined.encode("ascii")
            lengths = [len(text) + 1 for text in texts]
        else:
            encoded = [text.encode("utf-8", "surrogatepass") for text in texts]
            data = b"\x00".join(encoded)
            lengths = [len(text) + 1 for text in encoded]
        del joined
        starts = list(accumulate(lengths, initial=base))
        database = self._all_database
        if database is None:
            database = self._all_database = _hyperscan_database(self.needles, single_match=False) or False
        if database is False:  # a limit of this Hyperscan build for this form of the database: text by text
            return {(base + at, needle_id) for at, text in enumerate(texts) for needle_id in self.hits(text)}
        local = self._local
        scratch = getattr(local, "all_scratch", None)
        if scratch is None:
            scratch = local.all_scratch = hyperscan.Scratch(database)
        found: list[tuple[int, int]] = []
        database.scan(data, match_event_handler=_append_end, context=found, scratch=scratch)
        return {(base + bisect_right(starts, base + end - 1) - 1, needle_id) for end, needle_id in found}


#: Longer needles than this are not given to Hyperscan (its literal limit is near 16,000 bytes and
#: depends on the platform): a lane holding one scans with Aho-Corasick instead (issue 15: a 20,000-character
#: ``contains`` value crashed the lane build with "Pattern length exceeds limit").
MAX_HYPERSCAN_NEEDLE_BYTES = 8_192


def _hyperscan_database(needles: list[str], single_match: bool = True) -> Any:
    """A Hyperscan database of the needles, or None when Hyperscan cannot take them (then Aho-Corasick).
    ``single_match``: each needle reported once a scan (``hits``), else at every place it ends (``hits_many``)."""
    encoded = [n.encode("utf-8", "surrogatepass") for n in needles]
    if any(len(n) > MAX_HYPERSCAN_NEEDLE_BYTES for n in encoded):
        return None
    try:  # compiled once per machine for the same needles (kernel/hyperscan_cache.py), not at every start
        return compile_block_database(encoded, list(range(len(needles))), hyperscan.HS_FLAG_SINGLEMATCH if single_match else 0,
                                      literal=True)
    except hyperscan.error:  # any other limit of this build: the same answers, from Aho-Corasick
        return None


def _append_hit(needle_id: int, start: int, end: int, flags: int, hits: list[int]) -> None:
    hits.append(needle_id)


def _append_end(needle_id: int, start: int, end: int, flags: int, hits: list[tuple[int, int]]) -> None:
    hits.append((end, needle_id))



