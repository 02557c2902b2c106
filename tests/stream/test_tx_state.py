"""``TxState`` over a real Quix RocksDB partition transaction: with the per-partition memo of ``__meta__``, every
read gives what Quix's own ``get`` gives for the stored bytes, whoever wrote them, and a fresh object each time."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from quixstreams.state.rocksdb import RocksDBStorePartition

from temporal_siem.detections.scoped import META_KEY
from temporal_siem.stream.runtime import TxState

PREFIX = META_KEY.encode()

metas = st.fixed_dictionaries({
    "w": st.integers(-(2**62), 2**62),
    "due": st.dictionaries(st.text(max_size=12), st.integers(-(2**62), 2**62), max_size=6),
})
# What happens between two reads of the memoised entry: the stage writes it, another writer does (a member that
# held the partition meanwhile, a checkpoint rolled back), a reader edits what it got without writing it back,
# or the entry is deleted.
operations = st.lists(st.one_of(
    st.tuples(st.just("set"), metas),
    st.tuples(st.just("other"), metas),
    st.tuples(st.just("edit"), st.integers(0, 3)),
    st.tuples(st.just("delete"), st.none()),
    st.tuples(st.just("get"), st.none()),
), max_size=25)


def _edit(value: dict[str, Any], how: int) -> None:
    if how == 0:
        value["w"] += 1
    elif how == 1:
        value["due"]["new"] = 7
    elif how == 2:
        value["due"].clear()
    else:
        value["extra"] = [1]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_every_read_is_what_quix_reads(tmp_path_factory: Any, ops: list[tuple[str, Any]]) -> None:
    partition = RocksDBStorePartition(str(tmp_path_factory.mktemp("rocksdb")))
    try:
        tx = partition.begin()
        memo: dict[str, tuple[bytes, dict[str, Any]]] = {}
        last: Any = None
        for op, arg in ops:
            store = TxState(tx, memo)  # the runtime makes one per message, over the partition's memo
            if op == "set":
                store.set(META_KEY, arg)
            elif op == "other":
                tx.set("v", arg, prefix=PREFIX)  # straight through Quix, past the memo
            elif op == "delete":
                store.delete(META_KEY)
            elif op == "edit" and isinstance(last, dict):
                _edit(last, arg)
            got = store.get(META_KEY)
            assert got == tx.get("v", prefix=PREFIX)
            assert got is None or got is not last
            last = got
    finally:
        partition.close()


def test_a_memo_hit_is_a_fresh_object(tmp_path: Path) -> None:
    partition = RocksDBStorePartition(str(tmp_path / "p"))
    try:
        tx = partition.begin()
        memo: dict[str, tuple[bytes, dict[str, Any]]] = {}
        TxState(tx, memo).set(META_KEY, {"w": 5, "due": {"c|x|y": 3}})
        first = TxState(tx, memo).get(META_KEY)
        first["due"]["c|x|z"] = 9
        first["w"] = 6
        assert TxState(tx, memo).get(META_KEY) == {"w": 5, "due": {"c|x|y": 3}}
        assert META_KEY in memo, "the entry is memoised"
        assert TxState(tx, memo).get("c|x|y") is None, "other keys go straight to Quix"
        stored = tx.get_bytes("v", prefix=PREFIX)
        TxState(tx, memo).set(META_KEY, {"due": {"c|x|y": 3}, "w": 5})  # the same content: nothing to write
        assert tx.get_bytes("v", prefix=PREFIX) is stored
        TxState(tx, memo).set(META_KEY, {"w": 5, "due": {"c|x|y": 4}})
        assert TxState(tx, memo).get(META_KEY) == tx.get("v", prefix=PREFIX) == {"w": 5, "due": {"c|x|y": 4}}
    finally:
        partition.close()
