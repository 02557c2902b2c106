"""Secret handling shared by every stage: which key names hold secrets, and masking of secret-shaped
text. One rule for the whole product (parsers, config show, dead letters, sinks, ``event.original``), so an
output can never be less careful than another.

Cost model (issue 15 / issue 19): most records hold nothing secret-shaped. :func:`scan` looks at a record's
raw bytes once (one Hyperscan pass, ~1 µs per KB) for anything a secret key name or a secret-shaped string
could contain (:func:`scan_records`: a batch's records in one pass); the router marks a record with no hit as
clean (:func:`clean_record`), and every masking
function returns its input untouched for a clean record. Only records that hit pay for the per-key and
per-string checks, and only strings that hit themselves pay for the substitutions. The scan is a superset
of the rules below (tests/hostile/test_secrets.py checks that every secret shape trips it).
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_left
from collections.abc import Sequence
from functools import lru_cache
from itertools import accumulate
from operator import add
from typing import Any

import hyperscan
import orjson

from temporal_siem.kernel.hyperscan_cache import compile_block_database

REDACTED = "[REDACTED]"
TOO_DEEP_TO_REDACT = "[nested deeper than 64 levels: not kept]"
MAX_REDACT_DEPTH = 64

# --- key names ---------------------------------------------------------------------------------

# One table of secret key names, written in their natural words; both the key rule below and the raw-bytes scan
# further down are made from it, so the scan cannot fall behind the rule (it did: ``Pass_Word`` and
# ``CiphertextKey`` were secrets to the rule that the scan's hand-written word list never looked for, and a
# record holding only them passed as clean, value and all). A key's words are split by case changes and by any
# character that is not an ASCII letter or digit; an entry's words may be glued together or separated.
#
# Whole keys: the key is the entry and nothing else (``-``, ``_`` and ``.`` around or between its words).
_WHOLE_KEYS = (
    "pass word", "passwd", "pass phrase", "secret", "client secret", "token", "access token", "refresh token",
    "id token", "bearer token", "client token", "api key", "api key value", "authorization", "private key",
    "secret key", "secret access key", "session token", "saml response", "saml assertion", "assertion", "credential",
    "credentials", "x vault token", "wrapped token", "plain text", "cipher text key", "key material", "cookie",
    "set cookie", "proxy authorization", "secret id",
)
# Endings: the key's last words (after qualifiers such as ``_pem``) are the entry: ``db_password``,
# ``newPassword``, ``AWS_SESSION_TOKEN``, ``x-amz-security-token``, ``client_secret``, ``X-Api-Key``,
# ``private_key_pem``, ``aws_secret_access_key``, AppRole ``secret_id``. ``token_policies`` / ``token_ttl`` /
# ``key_id`` / ``accessor`` end in another word and stay readable.
_ENDINGS = (
    "pass word", "passwd", "pass phrase", "secret", "token", "cookie", "cookies", "authorization", "credential",
    "credentials", "api key", "private key", "secret key", "saml response", "saml assertion", "plain text",
    "signing key", "encryption key", "secret id", "key material", "session key", "secret access key",
    # OAuth: a signed client assertion (a replayable credential), the PKCE verifier; MFA recovery codes
    "client assertion", "code verifier", "recovery code", "recovery codes", "backup codes",
)
# Trailing words that only say how a secret is written down: ``private_key_pem``, ``api_key_value``.
_QUALIFIERS = frozenset({"pem", "b64", "base64", "value", "raw", "text", "data", "str", "string", "enc", "encoded",
                         "hex", "der", "plain", "cleartext", "header"})
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def _groupings(words: tuple[str, ...]) -> set[tuple[str, ...]]:
    """Every way of writing an entry's words glued or apart: (api, key) -> {(apikey,), (api, key)}."""
    if len(words) == 1:
        return {words}
    return {(words[0] + rest[0], *rest[1:]) for rest in _groupings(words[1:])} | \
           {(words[0], *rest) for rest in _groupings(words[1:])}


_ENDING_FORMS = frozenset(form for entry in _ENDINGS for form in _groupings(tuple(entry.split())))
_LONGEST_ENDING = max(len(entry.split()) for entry in _ENDINGS)
_WHOLE_KEY = re.compile("[-_.]*(?:" + "|".join("[-_.]*".join(map(re.escape, entry.split())) for entry in _WHOLE_KEYS)
                        + ")[-_.]*", re.ASCII | re.IGNORECASE)


def key_words(key: str) -> list[str]:
    """``newPassword`` -> [new, password]; ``X-Api-Key`` -> [x, api, key]; ``AWS_SESSION_TOKEN`` -> [aws, session, token]."""
    return [w.lower() for w in _WORDS.findall(key)]


def is_secret_key(key: str) -> bool:
    """Whether a value under ``key`` is a secret, judged by the key's words (see the tables above). Cached:
    parsers ask for the same few hundred names on every record."""
    return _is_secret_key(key[-128:] if len(key) > 128 else key)


@lru_cache(maxsize=65_536)
def _is_secret_key(key: str) -> bool:
    if _WHOLE_KEY.fullmatch(key):
        return True
    words = key_words(key)
    while len(words) > 1 and words[-1] in _QUALIFIERS:
        words.pop()
    return any(tuple(words[-n:]) in _ENDING_FORMS for n in range(1, min(len(words), _LONGEST_ENDING) + 1))


MIN_TOKEN_TEXT = 7  # "token=x": nothing shorter can hold a secret shape
SECRET_KEY_CACHE: dict[str, bool] = {}


def is_secret_key_cached(key: str) -> bool:
    known = SECRET_KEY_CACHE.get(key)
    if known is None:
        known = is_secret_key(key)
        if len(SECRET_KEY_CACHE) < 50_000:
            SECRET_KEY_CACHE[key] = known
    return known


# --- the one fast scan ---------------------------------------------------------------------------

# Any secret key name of the tables, as the raw bytes of a JSON key or of text spell it: an entry's words with
# anything between them that is not an ASCII letter or digit (a non-ASCII character's UTF-8 bytes, a JSON escape
# such as \n), or nothing. A superset of is_secret_key, generated from the same tables (tested with keys spelled
# every such way): a ``\u`` escape, which hides letters from a byte scan, counts as both below. An escape may
# also be a run of backslashes: JSON written inside a JSON string spells a newline ``\\n``. Allowing the runs made
# the record scan ~0.2 us slower on the mixed bench's vendor records (1.71 -> 1.92 us), nothing on Sysmon's.
_SEPARATOR = rb'(?:[^A-Za-z0-9"\\]|\\+[^u])*'
_SCAN_WORDS = b"(?:" + b"|".join(sorted({_SEPARATOR.join(re.escape(word).encode() for word in entry.split())
                                          for entry in (*_WHOLE_KEYS, *_ENDINGS)})) + b")"
# What may follow a secret name up to the end of the key: qualifiers, separators, digits. A key that goes on with
# another word (``token_type``, ``credentialType``, ``api_key_id``) is no secret and no longer asks for key checks:
# on the mixed bench corpus 13 % of records instead of 48 %, in one pattern as fast as the looser one.
_KEY_TAIL = rb'(?:[^A-Za-z0-9"\\]|\\+[^u]|[0-9]|' + b"|".join(sorted(q.encode() for q in _QUALIFIERS)) + rb")*"
_SCHEMES = rb"(?:bearer|basic|splunk|apikey|ssws|dpop)\s"
# Case-sensitive token prefixes and shapes.
_SHAPES = (rb"eyJ|\b(?:hv[sbr]|s)\.[A-Za-z0-9]{20}|tmprl_|\bgh[pousr]_|github_pat_|-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY"
           rb"|\bxox[abposr]-|\b[sr]k_live_|\bAIza[0-9A-Za-z_-]{30}|\bglpat-"  # Slack, Stripe, Google API, GitLab
           # a URL password (slashes plain or JSON-escaped: a dead letter is scanned as text), or one the end of the
           # text cut off before its '@'
           rb"|(?:://|:\\/\\/)[^/\s@\"]*:[^/\s@\"]*(?:@|\Z)")

KEYS = 1  # a key name (or the name member of a name/value pair) may be secret: check keys
TEXT = 2  # a string may hold a secret shape or a secret key=value: check strings
BOTH = KEYS | TEXT
_CASELESS = hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_SINGLEMATCH
_EXACT = hyperscan.HS_FLAG_SINGLEMATCH

# Over a record's raw bytes. In JSON a word followed by the rest of a key and '":' is a key name; followed by
# '=' or inside an escaped '\"key\":' it is text; \u escapes (a key written as \u0070assword) and \/ (https:\/\/)
# hide words from a byte scan, so they count as both.
_RECORD_PATTERNS: list[tuple[bytes, int, int]] = [
    (_SCAN_WORDS + _KEY_TAIL + rb'"\s*:', _CASELESS, KEYS),
    (rb'"(?:name|key|header)"\s*:\s*"(?:[^"\\]|\\.)*' + _SCAN_WORDS + _KEY_TAIL + b'"', _CASELESS, KEYS),
    (_SCAN_WORDS + rb"[A-Za-z0-9_.-]{0,64}\s*=", _CASELESS, TEXT),
    (_SCAN_WORDS + rb"[A-Za-z0-9_.-]{0,64}[ \t]*:", _CASELESS, TEXT),  # "X-Api-Key: v" in text (a JSON key has a quote)
    # Unbounded where the string pattern below stops at 128 characters: a superset, and Hyperscan runs the
    # bounded form ~4x slower on records full of escaped quotes (Windows command lines): 2.4 -> 0.9 µs a record.
    (_SCAN_WORDS + rb'(?:[^"\\]|\\[^"]|\\{2,}")*\\"\s*:', _CASELESS, TEXT),
    # a name/value pair (header lists) in JSON inside a string: its quotes are escaped, at any depth
    (rb'(?:name|key|header)\\+"\s*:\s*\\+"(?:[^"\\]|\\[^"]|\\{2,}")*' + _SCAN_WORDS, _CASELESS, TEXT),
    (_SCHEMES, _CASELESS, TEXT),
    (_SHAPES, _EXACT, TEXT),
    (rb"\\u|\\/", _EXACT, BOTH),
]
# Over one string of a record that hit TEXT: the decoded form, so JSON inside it has plain quotes.
_STRING_PATTERNS: list[tuple[bytes, int, int]] = [
    (_SCAN_WORDS + rb"[A-Za-z0-9_.-]{0,64}\s*=", _CASELESS, TEXT),
    (_SCAN_WORDS + rb"[A-Za-z0-9_.-]{0,64}[ \t]*:", _CASELESS, TEXT),
    (_SCAN_WORDS + rb'(?:[^"]|\\"){0,128}"\s*:', _CASELESS, TEXT),  # an escaped quote may be part of the key
    (rb'"(?:name|key|header)"\s*:\s*"(?:[^"\\]|\\[^"]|\\")*' + _SCAN_WORDS, _CASELESS, TEXT),  # a name/value pair
    (_SCHEMES, _CASELESS, TEXT),
    (_SHAPES, _EXACT, TEXT),
    (rb"\\u", _EXACT, TEXT),  # JSON inside the string with \u escapes, which hide letters (as over the record)
]


def _compile(patterns: list[tuple[bytes, int, int]]) -> hyperscan.Database:
    """Compiled once per machine, not per process (~0.2 s each start): see kernel/hyperscan_cache.py."""
    return compile_block_database([p for p, _, _ in patterns], [kind for _, _, kind in patterns],
                                  [f for _, f, _ in patterns])


_RECORD_DB = _compile(_RECORD_PATTERNS)
_LOCAL = threading.local()  # Hyperscan scratch space is per thread


@lru_cache(maxsize=1)
def _string_db() -> hyperscan.Database:
    """Compiled on first use (~0.12 s): only a record whose scan hits TEXT needs it, and every process start
    (each ``replay``, each worker) paid it before. Two threads racing here compile it twice, harmlessly."""
    return _compile(_STRING_PATTERNS)


class _Hits:
    __slots__ = ("kinds",)

    def __init__(self) -> None:
        self.kinds = 0


def _collect(kind: int, _start: int, _end: int, _flags: int, hits: object) -> bool:
    assert isinstance(hits, _Hits)
    hits.kinds |= kind
    return hits.kinds == BOTH  # stop once nothing more can be learnt


def _scratch(db: hyperscan.Database, name: str) -> hyperscan.Scratch:
    scratch = getattr(_LOCAL, name, None)
    if scratch is None:
        scratch = hyperscan.Scratch(db)
        setattr(_LOCAL, name, scratch)
    return scratch


def _run(db: hyperscan.Database, name: str, data: bytes) -> int:
    hits = _Hits()
    try:
        db.scan(data, match_event_handler=_collect, context=hits, scratch=_scratch(db, name))
    except hyperscan.ScanTerminated:
        pass
    return hits.kinds


def scan_record(data: bytes) -> int:
    """What a record's masking must look at: 0 (nothing secret-shaped: skip it all), KEYS, TEXT or BOTH.
    A text record (not JSON) that hits anything is BOTH: its parser turns ``key=value`` text into keys."""
    if not data:
        return 0
    kinds = _run(_RECORD_DB, "record", data)
    if kinds and data[:256].lstrip()[:1] not in (b"{", b"["):
        return BOTH
    return kinds


# --- a batch of records in one scan ----------------------------------------------------------------

#: What a record ends with in the joined batch (records are lines, so no record holds it unescaped).
_SEPARATOR_BYTE = b"\n"
#: Matches a batch may report before its scan gives up and scans record by record: bounds the callbacks a
#: hostile batch (a record of 8 MB of ``\\u`` escapes) can cost. Per record of the batch, plus a floor.
BLOCK_MATCHES_PER_RECORD = 8
BLOCK_MATCHES_FLOOR = 64
#: A record longer than this is scanned on its own: joining it would copy it (a batch of CloudTrail files would
#: double its memory for a moment) to save a fixed cost that is nothing beside its own scan.
BLOCK_RECORD_MAX = 64 * 1024


def _block_patterns() -> list[tuple[bytes, int, int]]:
    """The record patterns for a batch joined with newlines: every match of each (not the first only, so no
    record's match hides behind an earlier record's), and the end of a record is its newline as well as the end of
    the batch (``\\Z`` in a pattern: a URL password cut off by the record's end)."""
    return [(pattern.replace(rb"\Z", rb"(?:\n|\Z)"), flags & ~hyperscan.HS_FLAG_SINGLEMATCH, kind)
            for pattern, flags, kind in _RECORD_PATTERNS]


@lru_cache(maxsize=1)
def _block_db() -> hyperscan.Database:
    """Compiled (or loaded from the disk cache) on the first batch: a one-record run never needs it."""
    return _compile(_block_patterns())


class _BlockHits(list):  # type: ignore[type-arg]
    """(end offset, kind) of each match of a batch's scan, and how many the scan may report."""

    __slots__ = ("limit",)
    limit: int


def _collect_block(kind: int, _start: int, end: int, _flags: int, hits: object) -> bool:
    assert isinstance(hits, _BlockHits)
    hits.append((end, kind))
    return len(hits) > hits.limit  # too many: stop, and the caller scans record by record


def scan_records(datas: Sequence[bytes]) -> list[int]:
    """:func:`scan_record` of each record of a batch, from one scan of the records joined by newlines.

    Why: a Hyperscan call costs ~0.5 µs before it reads a byte, as much as scanning a whole Windows event; a
    batch of 1,000 records pays it once. Each match's end offset names its record (a match only spans two
    records if its pattern crosses a newline, which can only add kinds). So each record's kinds hold at least
    what its own scan finds, and only a match that crosses records can add one: more checks, never fewer (and
    the masking they enable is exact, so the output is the same). Past :data:`BLOCK_MATCHES_PER_RECORD`
    matches a record on average, the records are scanned one by one instead."""
    count = len(datas)
    if count < 2:
        return [scan_record(data) for data in datas]
    if max(map(len, datas)) > BLOCK_RECORD_MAX:
        # Such records are scanned on their own, not copied into the join: the fixed cost is nothing beside theirs.
        kinds = scan_records([b"" if len(data) > BLOCK_RECORD_MAX else data for data in datas])
        for index, data in enumerate(datas):
            if len(data) > BLOCK_RECORD_MAX:
                kinds[index] = scan_record(data)
        return kinds
    hits = _BlockHits()
    hits.limit = BLOCK_MATCHES_FLOOR + BLOCK_MATCHES_PER_RECORD * count
    block = _SEPARATOR_BYTE.join(datas)
    database = _block_db()
    try:
        database.scan(block, match_event_handler=_collect_block, context=hits, scratch=_scratch(database, "block"))
    except hyperscan.ScanTerminated:
        return [scan_record(data) for data in datas]
    kinds = [0] * count
    if not hits:
        return kinds
    # The offset of each record's newline (the batch's end for the last): a match whose last byte is at or before
    # it, and after the previous record's, belongs to the record (its newline too: the \Z of the patterns).
    ends = list(map(add, accumulate(map(len, datas)), range(count)))
    for end, kind in hits:
        kinds[bisect_left(ends, end - 1)] |= kind
    for index, found in enumerate(kinds):
        if found and found != BOTH and datas[index][:256].lstrip()[:1] not in (b"{", b"["):
            kinds[index] = BOTH  # a text record: as scan_record, its parser turns key=value text into keys
    return kinds


def scan(data: bytes | str) -> bool:
    """True if ``data`` may hold a secret (a secret-ish key name, a token shape, a PEM block, a URL password)."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    return bool(scan_record(data))


def _string_may_hold_secret(text: str) -> bool:
    """The string scan, after substring probes that every string pattern needs one of (``=`` or ``"`` for a
    pair, whitespace for an auth scheme, ``s.``/``_``/``eyJ``/``xox``/``AIza``/``glpat-``/``-----``/``://`` for
    the token shapes): ids, timestamps, addresses and names (most values) never reach Hyperscan's ~1 µs call."""
    if not ("=" in text or ":" in text or '"' in text or " " in text or "_" in text or "s." in text or "eyJ" in text
            or "xox" in text or "AIza" in text or "glpat-" in text
            or "://" in text or ":\\/" in text or "-----" in text or "\t" in text or "\n" in text or "\r" in text
            or "\x0b" in text or "\x0c" in text):
        return False
    return bool(_run(_string_db(), "string", text.encode("utf-8", "surrogatepass")))


class _RecordChecks(threading.local):
    """The checks of the record being parsed, per thread (BOTH outside a record: careful by default)."""

    checks = BOTH


_STATE = _RecordChecks()


class clean_record:
    """Within this block, the masking functions do only the checks ``raw`` calls for (none for most records).

    A class, not a ``@contextmanager`` generator: this runs once per record, and the generator costs ~1 µs.
    """

    __slots__ = ("_previous", "checks")

    def __init__(self, raw: bytes, checks: int | None = None) -> None:
        """``checks``: what ``scan_record(raw)`` returned, when the caller already scanned ``raw``."""
        self.checks = scan_record(raw) if checks is None else checks
        self._previous = BOTH

    def __enter__(self) -> int:
        self._previous = _STATE.checks
        _STATE.checks = self.checks
        return self.checks

    def __exit__(self, *_exc: object) -> None:
        _STATE.checks = self._previous


def record_checks() -> int:
    """KEYS / TEXT bits of the record being parsed (BOTH outside a record: be careful by default)."""
    return _STATE.checks


# --- free text -------------------------------------------------------------------------------------

_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----|\Z)")
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic|dpop)(\s+)[A-Za-z0-9._~+/=-]{8,}|\b(splunk|apikey|ssws)(\s+)[A-Za-z0-9._~+/=-]{16,}")
_TOKENS = re.compile(
    r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}"  # JWT
    r"|\b(?:hvs|hvb|hvr|s)\.[A-Za-z0-9_-]{20,}"  # Vault tokens
    r"|\btmprl_[A-Za-z0-9_.-]{8,}"  # Temporal Cloud API keys
    r"|\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"  # GitHub tokens
    r"|\bxox[abposr]-[A-Za-z0-9-]{10,}"  # Slack tokens
    r"|\b[sr]k_live_[A-Za-z0-9]{16,}"  # Stripe secret and restricted keys
    r"|\bAIza[0-9A-Za-z_-]{30,}"  # Google API keys
    r"|\bglpat-[A-Za-z0-9_-]{16,}"  # GitLab personal access tokens
)
# user:password@ in a URL; also user:password at the very end of the text (a record or dead letter cut before
# the '@'), unless all digits: there it cannot be told from host:port, and a port is no secret.
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9_+.-]{0,30}:(?://|\\/\\/)[^:/?#@\s\"'<>]{0,256}:)"
                           r"(?:[^@/?#\s\"'<>]{1,512}(@)|(?![0-9]+\Z)[^@/?#\s\"'<>]{1,512}\Z)")
_PAIR = re.compile(r"([A-Za-z][A-Za-z0-9_.-]{0,63})=([^&\s\"',;<>]+)")
# "Name: value" in free text (an HTTP header dump, a config line, Go's %+v of a struct): the value's first token,
# up to whitespace, a quote, a bracket or a ``,``/``;`` (a cookie header keeps its other, non-secret cookies), and
# after an auth scheme word the credentials too (``Authorization: Basic abc``: short credentials the scheme rule
# above leaves alone). ``name::`` is a path, not a pair: Mimikatz's ``token::elevate`` (SigmaHQ rules look for it),
# C++/Rust ``Token::new``.
_COLON_PAIR = re.compile(r"(?<![A-Za-z0-9_.-])([A-Za-z][A-Za-z0-9_.-]{0,63})([ \t]*:(?!:)[ \t]*)"
                         r"((?:(?i:bearer|basic|digest|negotiate|ntlm|splunk|apikey|token|ssws|dpop)[ \t]+)?[^\s\"'<>,;{}()\[\]]+)")
# A string value cut off by the end of the text (a truncated dead letter) counts as a value too.
_JSON_PAIR = re.compile(r'"([^"\\]{1,64})"(\s*:\s*)("(?:[^"\\]|\\.)*(?:"|\Z)|-?[0-9][0-9.eE+-]*|true|false)')
# The same pair written inside a JSON string (raw record text: {"body": "{\"password\": \"x\"}"}).
_ESCAPED_JSON_PAIR = re.compile(r'\\"([^"\\]{1,64})\\"(\s*:\s*)(\\"(?:[^"\\]|\\[^"])*\\"|-?[0-9][0-9.eE+-]*|true|false)')


def _mask_pair(match: re.Match[str]) -> str:
    return f"{match.group(1)}={REDACTED}" if is_secret_key_cached(match.group(1)) else match.group(0)


def _mask_colon_pair(match: re.Match[str]) -> str:
    if match.group(3) != REDACTED and is_secret_key_cached(match.group(1)):
        return f"{match.group(1)}{match.group(2)}{REDACTED}"
    return match.group(0)


def _mask_json_pair(match: re.Match[str]) -> str:
    if is_secret_key_cached(match.group(1)) and match.group(3) not in ('""', "null"):
        return f'"{match.group(1)}"{match.group(2)}"{REDACTED}"'
    return match.group(0)


def _mask_escaped_pair(match: re.Match[str]) -> str:
    if is_secret_key_cached(match.group(1)) and match.group(3) != '\\"\\"':
        return f'\\"{match.group(1)}\\"{match.group(2)}\\"{REDACTED}\\"'
    return match.group(0)


def _mask_scheme(match: re.Match[str]) -> str:
    scheme, space = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
    return f"{scheme}{space}{REDACTED}"


def mask_text(text: str) -> str:
    """Every free-text rule, unconditionally: PEM private keys, auth schemes, token shapes, URL passwords,
    ``key=value``, ``Name: value`` and ``"key": value`` pairs whose key is secret-named."""
    if "PRIVATE KEY-----" in text:
        text = _PEM.sub(REDACTED, text)
    text = _AUTH_SCHEME.sub(_mask_scheme, text)
    text = _TOKENS.sub(REDACTED, text)
    if "://" in text or ":\\/\\/" in text:  # the two spellings _URL_PASSWORD needs one of
        text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{REDACTED}{m.group(2) or ''}", text)
    if "=" in text:
        text = _PAIR.sub(_mask_pair, text)
    if ":" in text:
        text = _COLON_PAIR.sub(_mask_colon_pair, text)
    if '"' in text and ":" in text:
        text = _JSON_PAIR.sub(_mask_json_pair, text)
        if '\\"' in text:
            text = _ESCAPED_JSON_PAIR.sub(_mask_escaped_pair, text)
    return text


def redact_text(text: str) -> str:
    """Mask secret shapes in free text. Free for a clean record; one scan for a string of a record that hit."""
    if len(text) < MIN_TOKEN_TEXT or not _STATE.checks & TEXT or not _string_may_hold_secret(text):
        return text
    stripped = text.lstrip()
    if stripped[:1] in ("{", "[") and len(text) <= 1_000_000:  # JSON inside a string: mask it by its structure
        try:
            inner = orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
        else:
            try:
                masked = _redact(inner, 0, KEYS)  # its keys were text to the scan
                # Nothing masked: the text as it came (its spacing, its key order), not a re-serialized copy, so a
                # record whose words only look secret-ish reads the same with or without the fast path's scan.
                return text if masked == inner else orjson.dumps(masked).decode()
            except TypeError:
                return TOO_DEEP_TO_REDACT
    return mask_text(text)


def redact_raw(raw: bytes) -> bytes:
    """A raw record (dead letters): structurally if it is JSON, else as text. Undecodable bytes are kept as is
    only if the scan finds nothing secret-shaped in them."""
    if not scan(raw):
        return raw
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "replace")
    previous, _STATE.checks = _STATE.checks, BOTH
    try:
        return redact_text(text).encode("utf-8", "surrogatepass")
    finally:
        _STATE.checks = previous


# --- structures --------------------------------------------------------------------------------------

_PAIR_NAMES = ("name", "Name", "key", "Key", "header", "Header")
_PAIR_VALUES = ("value", "Value", "values", "Values")


def secret_pair_member(obj: dict[str, Any]) -> str | None:
    """``{"name": "Authorization", "value": "..."}`` (header lists, Google parameters): the value member to mask."""
    for value_key in _PAIR_VALUES:
        if value_key in obj:
            for name_key in _PAIR_NAMES:
                name = obj.get(name_key)
                if isinstance(name, str) and name and is_secret_key_cached(name):
                    return value_key
    return None


def has_value(value: Any) -> bool:
    return not (value is None or value == "" or value == [] or value == {})


def redact(value: Any, depth: int = 0) -> Any:
    """Return a copy with secret-named keys masked and tokens in strings masked. Containers deeper than 64
    levels become a marker: returning them unredacted would let a secret hide under enough nesting."""
    checks = _STATE.checks
    if not checks:
        return value
    return _redact(value, depth, checks & KEYS)


def _redact(value: Any, depth: int, keys: int = KEYS) -> Any:
    if depth > MAX_REDACT_DEPTH:
        if isinstance(value, dict | list) and value:
            return TOO_DEEP_TO_REDACT
        return redact_text(value) if isinstance(value, str) else value
    if isinstance(value, dict):
        if not keys:
            return {k: _redact(v, depth + 1, keys) for k, v in value.items()}
        pair = secret_pair_member(value)
        return {k: (REDACTED if (k == pair or is_secret_key_cached(str(k))) and has_value(v) else _redact(v, depth + 1))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, depth + 1, keys) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value
