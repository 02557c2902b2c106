"""``grouped_order``: the order of work for a batch that mixes kinds, or None when grouping gains nothing."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from temporal_siem.kernel.grouping import SAMPLED_ITEMS, grouped_order

ITEMS = st.lists(st.sampled_from(["okta", "vault", "aws", "json"]), max_size=300)


def identity(item: str) -> str:
    return item


@given(ITEMS)
def test_the_order_is_a_stable_sort_by_key_or_none(items: list[str]) -> None:
    order = grouped_order(items, identity, identity)
    if order is None:
        sample = items[::max(1, len(items) // SAMPLED_ITEMS)]
        assert len(set(sample)) <= 1 or items == sorted(items)
        return
    assert sorted(order) == list(range(len(items)))
    assert order == sorted(range(len(items)), key=lambda i: (items[i], i))  # stable: ties keep their order
    assert order != list(range(len(items)))


def test_one_kind_by_the_sample_is_left_alone_even_when_keys_differ() -> None:
    """The kind says which source a record is from; the key orders the work (a timestamp may follow the kind)."""
    items = [f"okta-{n:04d}" for n in range(500, 0, -1)]
    assert grouped_order(items, lambda item: item[:4], identity) is None
    assert grouped_order(items, identity, identity) == list(range(499, -1, -1))
    assert grouped_order([], identity, identity) is None
