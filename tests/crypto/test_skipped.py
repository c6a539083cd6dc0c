from parley.crypto import skipped
from parley.crypto.skipped import SkippedChain


def keys(start: int, stop: int) -> dict[int, bytes]:
    return {n: bytes([n % 256]) * 32 for n in range(start, stop)}


def test_add_merges_into_the_newest_chain_of_the_same_header_key() -> None:
    store = skipped.add((), b"A", keys(0, 2))
    store = skipped.add(store, b"A", keys(5, 6))
    store = skipped.add(store, b"B", keys(0, 1))
    assert [(c.header_key, list(c.keys)) for c in store] == [(b"A", [0, 1, 5]), (b"B", [0])]
    assert skipped.add(store, b"C", {}) is store


def test_eviction_drops_oldest_first_across_chains() -> None:
    store = skipped.add((), b"A", keys(0, 3), limit=5)
    store = skipped.add(store, b"B", keys(0, 2), limit=5)
    store = skipped.add(store, b"C", keys(0, 4), limit=5)
    assert skipped.count(store) == 5
    assert [(c.header_key, list(c.keys)) for c in store] == [(b"B", [1]), (b"C", [0, 1, 2, 3])]


def test_remove_drops_empty_chains_and_never_mutates() -> None:
    original = (SkippedChain(b"A", keys(0, 2)), SkippedChain(b"B", keys(0, 1)))
    store = skipped.remove(original, 0, 1)
    assert [list(c.keys) for c in store] == [[0], [0]]
    store = skipped.remove(store, 1, 0)
    assert [c.header_key for c in store] == [b"A"]
    assert [list(c.keys) for c in original] == [[0, 1], [0]]


def test_default_limit() -> None:
    store = skipped.add((), b"A", keys(0, 1500))
    store = skipped.add(store, b"B", keys(0, 1000))
    assert skipped.count(store) == skipped.MAX_SKIPPED_KEYS == 2000
    assert min(store[0].keys) == 500
