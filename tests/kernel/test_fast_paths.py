"""Issue 19's hot-path shortcuts give exactly what the plain code gave: flatten's scalar test, the UTC branch of
format_timestamp, the per-second now_timestamp, and the router's plain-record shortcut past the envelope walk."""

from __future__ import annotations

import dataclasses
import pickle
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from temporal_siem.kernel.flatten import MAX_DEPTH, TOO_DEEP, bound_depth, flatten, flatten_json
from temporal_siem.kernel.records import Origin, RecordError
from temporal_siem.kernel.timestamps import format_timestamp, now_timestamp, parse_timestamp
from temporal_siem.parsers.envelopes import ENVELOPE_KEYS, unwrap, unwrap_all
from tests.conftest import SAMPLES


def reference_flatten(obj: dict[str, Any], prefix: str = "", out: dict[str, Any] | None = None, depth: int = 0) -> dict[str, Any]:
    """flatten as it was before the scalar shortcut."""
    if out is None:
        out = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and depth < MAX_DEPTH:
            reference_flatten(value, name + ".", out, depth + 1)
        elif isinstance(value, list) and value and depth < MAX_DEPTH and any(isinstance(v, dict) for v in value):
            scalars: list[Any] = []
            merged: dict[str, list[Any]] = {}
            for item in value:
                if isinstance(item, dict):
                    for sub_key, sub_value in reference_flatten(item, "", None, depth + 1).items():
                        bucket = merged.setdefault(sub_key, [])
                        bucket.extend(sub_value) if isinstance(sub_value, list) else bucket.append(sub_value)
                else:
                    scalars.append(item)
            if scalars:
                out[name] = scalars
            for sub_key, values in merged.items():
                out[f"{name}.{sub_key}"] = values
        elif depth >= MAX_DEPTH and isinstance(value, (dict, list)) and value:
            out[name] = TOO_DEEP
        elif type(value) is list:
            out[name] = bound_depth(value, depth)
        else:
            out[name] = value
    return out


keys = st.sampled_from(["a", "b", "user", "name", "Records", "data", "x.y", ""]) | st.text(max_size=6)
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)


def deep(levels: int) -> Any:
    node: Any = {"leaf": [1, {"x": 2}]}
    for level in range(levels):
        node = {"k": node} if level % 2 else {"l": [node, 3]}
    return node


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(keys, values, max_size=6))
def test_flatten_is_the_reference(doc: dict[str, Any]) -> None:
    ours, reference = flatten(doc), reference_flatten(doc)
    assert ours == reference and list(ours) == list(reference)
    assert all(ours[k] is reference[k] or type(ours[k]) is list for k in ours)  # the same objects, not copies


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, values, max_size=8)
       | st.dictionaries(keys, st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8), max_size=12))
def test_flatten_json_is_the_reference_on_decoded_json(doc: dict[str, Any]) -> None:
    """The copy-whole shortcut for records with no nested value: same keys, order, objects; never the input itself."""
    try:
        encoded = orjson.dumps(doc)
    except TypeError:  # an integer past 64 bits: not JSON orjson writes
        encoded = None
    assume(encoded is not None)
    decoded = orjson.loads(encoded)
    ours, reference = flatten_json(decoded), reference_flatten(decoded)
    assert ours == reference and list(ours) == list(reference)
    assert all(ours[k] is reference[k] or type(ours[k]) is list for k in ours)
    assert ours is not decoded
    ours["event.id"] = "x"
    assert "event.id" not in decoded or decoded["event.id"] != "x"


def test_flatten_is_the_reference_past_the_depth_limit() -> None:
    for levels in (MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 3):
        assert flatten(deep(levels)) == reference_flatten(deep(levels))


def test_flatten_keeps_non_string_keys_and_subclassed_values_as_before() -> None:
    class Text(str):
        pass

    doc: dict[Any, Any] = {1: "one", Text("k"): Text("v"), "d": {2: None}}
    assert flatten(doc) == reference_flatten(doc) == {"1": "one", "k": "v", "d.2": None}


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
       st.sampled_from([UTC, UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]))
def test_format_timestamp_is_the_reference(moment: datetime, zone: timezone) -> None:
    dt = moment.replace(tzinfo=zone)
    assert format_timestamp(dt) == dt.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def test_now_timestamp_is_the_current_time_in_ecs_form() -> None:
    for _ in range(3):
        before = datetime.now(UTC)
        stamp = now_timestamp()
        after = datetime.now(UTC)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp)
        parsed = datetime.fromisoformat(stamp[:-1]).replace(tzinfo=UTC)
        assert before - timedelta(microseconds=1) <= parsed <= after


envelope_values = st.none() | st.text(max_size=4) | st.dictionaries(st.sampled_from(["data", "x", "message"]), st.text(max_size=4), max_size=2) \
    | st.lists(st.dictionaries(st.sampled_from(["a", "message"]), st.text(max_size=4), max_size=2), max_size=2)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from([*ENVELOPE_KEYS, "message", "detail-type", "source", "nextPageToken", "kind",
                                        "messageType", "etag", "user", "msg"]), envelope_values, max_size=5))
def test_unwrap_all_is_list_of_unwrap(obj: dict[str, Any]) -> None:
    assert _outcome(lambda: unwrap_all(obj)) == _outcome(lambda: list(unwrap(obj)))


def _outcome(call: Any) -> Any:
    try:
        return call()
    except RecordError as exc:  # a bad envelope is a dead letter either way, with the same reason
        return ("error", exc.reason, exc.detail)


def test_unwrap_all_is_list_of_unwrap_on_every_sample() -> None:
    for path in sorted(SAMPLES.glob("*/*.json*")):
        text = path.read_bytes()
        docs = [text] if path.suffix == ".json" else text.splitlines()
        for doc in docs:
            try:
                obj = orjson.loads(doc)
            except orjson.JSONDecodeError:
                continue
            assert unwrap_all(obj) == list(unwrap(obj)), path


def _previous_fast_path(text: str) -> datetime | None:
    """parse_timestamp's C fast path before issue 19's zone shortcuts (replace / astimezone every time)."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@settings(max_examples=400, deadline=None)
@given(moment=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)),
       separator=st.sampled_from("T "), fraction=st.integers(min_value=0, max_value=9),
       zone=st.sampled_from(["", "Z", "z", "+00:00", "-00:00", "+01:00", "-05:30", "+0100", "+14:00"]))
def test_parse_timestamp_zone_shortcuts_are_the_previous_path(moment: datetime, separator: str, fraction: int,
                                                              zone: str) -> None:
    text = moment.strftime(f"%Y-%m-%d{separator}%H:%M:%S")
    if fraction:
        text += "." + f"{moment.microsecond:06d}{moment.microsecond:03d}"[:fraction]
    text += zone
    expected = _previous_fast_path(text)
    got = parse_timestamp(text)
    if expected is not None:
        assert got == expected and got is not None and got.tzinfo is UTC and repr(got) == repr(expected)


def _full_path(value: Any) -> str | None:
    dt = parse_timestamp(value)
    return format_timestamp(dt) if dt is not None else None


SECONDS = ["2026-11-29 12:00:03", "2026-11-29T12:00:03", "2026-02-29 12:00:03", "2024-02-29T23:59:60", "2026-11-29 12:00:0\u0663",
           " 2026-11-29 12:00:0", "2026-11-29 24:00:00", "0001-01-01T00:00:00", "9999-12-31T23:59:59", "2026-11-29 12:00"]
TAILS = st.one_of(st.sampled_from(["", "Z", "z", ".123", ".123Z", ".123456", ".123456Z", ".1", ".1234", ".1234567Z", ",123",
                                   "+00:00", "+01:00", ".123+01:00", " ", "\n", ".\u0661\u0662\u0663", ".12a", "Z3", ":07"]),
                  st.text(alphabet="0123456789.Z+-: z\u0663", max_size=8))


@settings(max_examples=600, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(SECONDS), TAILS), min_size=1, max_size=12))
def test_timestamp_or_none_is_the_full_path(texts: list[tuple[str, str]]) -> None:
    """Any sequence of times, so a second learnt from one text answers for the texts after it: always what parsing
    and formatting give (None when that does not parse), whatever the rest of the text is."""
    from temporal_siem.kernel import timestamps

    timestamps._SECONDS.clear()
    timestamps._MISSED.clear()
    for head, tail in texts:
        value = head + tail
        assert timestamps.timestamp_or_none(value) == _full_path(value), value
        assert timestamps.timestamp_or_none(value) == _full_path(value), value  # the second time, from what it learnt


def test_timestamp_or_none_learns_a_second_and_stays_bounded() -> None:
    from temporal_siem.kernel import timestamps

    timestamps._SECONDS.clear()
    timestamps._MISSED.clear()
    assert timestamps.timestamp_or_none("2026-11-29 12:00:03.123") == "2026-11-29T12:00:03.123000Z"
    assert timestamps._SECONDS == {}  # one record in a second: nothing learnt
    assert timestamps.timestamp_or_none("2026-11-29 12:00:03.124") == "2026-11-29T12:00:03.124000Z"
    assert timestamps._SECONDS == {"2026-11-29 12:00:03": "2026-11-29T12:00:03"}
    assert timestamps.timestamp_or_none("2026-11-29 12:00:03.999999Z") == "2026-11-29T12:00:03.999999Z"
    assert timestamps.timestamp_or_none("2026-11-29 12:00:03+01:00") == "2026-11-29T11:00:03.000000Z"  # not from the memo
    assert timestamps.timestamp_or_none(1700000000) == _full_path(1700000000)
    for n in range(timestamps._SECONDS_LIMIT + 10):
        for fraction in ("000", "001"):
            timestamps.timestamp_or_none(f"2026-11-29T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}.{fraction}Z")
    assert 0 < len(timestamps._SECONDS) <= timestamps._SECONDS_LIMIT
    assert 0 < len(timestamps._MISSED) <= timestamps._SECONDS_LIMIT


def test_decode_finds_a_nul_in_the_first_4_kib_without_slicing() -> None:
    """``decode``'s binary test (``data.find(NUL, 0, 4096)``, once a slice copy): binary data is one clear dead
    letter; a NUL past the first 4 KiB is left to the JSON or text parsers, as before."""
    from temporal_siem.kernel.records import Origin, RawRecord
    from temporal_siem.parsers.router import ParserRouter

    router = ParserRouter()
    for data in (b"\x00\x01\x02", b"2025-01-01T00:00:00Z INFO text\x00more", b"{" + b" " * 4000 + b"\x00}"):
        assert [d.reason for d in router.parse(RawRecord(data, Origin("nul"))).dead] == ["binary data"], data[:40]
    late = b'{"msg": "' + b"m" * 5000 + b'"}' + b"\x00"
    assert [d.reason for d in router.parse(RawRecord(late, Origin("nul"))).dead] == ["invalid JSON"]


_ORIGIN_FIELDS = st.tuples(st.text(max_size=8), *[st.none() | st.integers() | st.text(max_size=4) for _ in range(5)])


@settings(max_examples=200, deadline=None)
@given(_ORIGIN_FIELDS, st.integers(0, 6))
def test_origin_init_sets_each_field_and_stays_frozen(values: tuple[Any, ...], given_count: int) -> None:
    """Origin's hand-written __init__ (slot setters instead of object.__setattr__) is the dataclass's: each
    argument lands in its own field, by position or by name, the rest default to None, equal origins hash alike,
    and assignment still raises."""
    names = [f.name for f in dataclasses.fields(Origin)]
    expected = values[:given_count] + (None,) * (6 - given_count)
    for origin in (Origin(*values[:given_count]) if given_count else None,
                   Origin(**dict(zip(names[:given_count], values[:given_count], strict=True))) if given_count else None):
        if origin is None:
            continue
        assert dataclasses.astuple(origin) == expected
        twin = Origin(*expected)
        assert origin == twin and hash(origin) == hash(twin) and pickle.loads(pickle.dumps(origin)) == origin
        for name in names:
            try:
                setattr(origin, name, 1)
            except dataclasses.FrozenInstanceError:
                continue
            raise AssertionError(f"Origin.{name} could be assigned")


_flat_keys = (st.sampled_from(["@timestamp", "@a.b", "event.id", "event", "event.kind", "user.name", "user", "a.b.c", "a.b",
                               "a", "a.", ".a", "a..b", "x'y.z", 'q"".r', "t\\n.u", "é.ü", ".".join("k" * 40)])
              | st.lists(st.sampled_from(["a", "b", "c", "'", "\\", "", "@x"]), min_size=1, max_size=4).map(".".join))
_flat_values = values | st.dictionaries(keys, values, max_size=3)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_flat_keys, _flat_values, max_size=8))
def test_unflatten_plans_nest_as_the_loop_does(doc: dict[str, Any]) -> None:
    """A shape of keys seen often enough is nested by a generated function (kernel.flatten's plans): the same
    document, key order included, as the loop, for every shape the plan accepts; shapes whose nesting depends on
    the values (a name both a leaf and an object) stay on the loop. Keys with quotes, backslashes and newlines
    are source literals in a plan, so they are here too."""
    from copy import deepcopy

    from temporal_siem.kernel import flatten as module

    expected = repr(module._unflatten(deepcopy(doc)))  # repr: dict order counts, any int or float is shown
    for _ in range(module._PLAN_AFTER + 2):
        assert repr(module.unflatten(deepcopy(doc))) == expected
    plan = module._PLANS.get(tuple(doc))
    assert plan is not None or len(module._PLANS) >= module._MAX_PLANS
    names = [module._KEY_PATHS.get(k) or module._key_path(k) for k in doc]
    heads = {p[0] for p in names if p not in (module._TOP, module._KEEP) and len(p) > 1}
    if plan is module._NO_PLAN:
        assert heads & set(doc) or any(a != b and b.startswith(a + ".") for a in doc for b in doc), doc


def test_unflatten_plans_are_bounded() -> None:
    """Shapes are data: a stream of ever new key sets compiles at most ``_MAX_PLANS`` plans and remembers at most
    ``_MAX_SIGHTINGS`` shapes it has not planned."""
    from temporal_siem.kernel import flatten as module

    for n in range(module._MAX_PLANS + 50):
        doc = {f"k{n}.a": 1, f"k{n}.b": 2}
        for _ in range(module._PLAN_AFTER):
            assert module.unflatten(doc) == {f"k{n}": {"a": 1, "b": 2}}
    for n in range(module._MAX_SIGHTINGS + 50):
        assert module.unflatten({f"once{n}": n}) == {f"once{n}": n}
    assert len(module._PLANS) <= module._MAX_PLANS and len(module._SIGHTINGS) <= module._MAX_SIGHTINGS
