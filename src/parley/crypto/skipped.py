"""A bounded, ordered store of skipped message keys, grouped by receiving header key.

Keys are only ever added to the newest chain (the current receiving chain), in increasing
N, so the store is globally ordered oldest first: eviction drops from the front. Grouping by
header key means an incoming header is tried once per chain, not once per skipped key.
Values are never mutated; every change returns a new tuple.
"""

import msgspec

MAX_SKIPPED_KEYS = 2000


class SkippedChain(msgspec.Struct, frozen=True):
    header_key: bytes
    keys: dict[int, bytes]  # N -> message key, in increasing N

    def __repr__(self) -> str:
        return f"SkippedChain(<{len(self.keys)} keys>)"


SkippedStore = tuple[SkippedChain, ...]


def count(store: SkippedStore) -> int:
    return sum(len(chain.keys) for chain in store)


def add(
    store: SkippedStore, header_key: bytes, keys: dict[int, bytes], limit: int = MAX_SKIPPED_KEYS
) -> SkippedStore:
    """Append `keys` under `header_key`, then evict the oldest keys beyond `limit`."""
    if not keys:
        return store
    if store and store[-1].header_key == header_key:
        merged = SkippedChain(header_key, {**store[-1].keys, **keys})
        store = (*store[:-1], merged)
    else:
        store = (*store, SkippedChain(header_key, dict(keys)))
    excess = count(store) - limit
    if excess <= 0:
        return store
    kept = list(store)
    while excess > 0:
        oldest = kept[0]
        if len(oldest.keys) <= excess:
            excess -= len(oldest.keys)
            kept.pop(0)
        else:
            remaining = dict(list(oldest.keys.items())[excess:])
            kept[0] = SkippedChain(oldest.header_key, remaining)
            excess = 0
    return tuple(kept)


def remove(store: SkippedStore, index: int, n: int) -> SkippedStore:
    """Drop key N from chain `index`; a chain left empty is dropped with it."""
    chain = store[index]
    keys = {k: v for k, v in chain.keys.items() if k != n}
    if not keys:
        return store[:index] + store[index + 1 :]
    return (*store[:index], SkippedChain(chain.header_key, keys), *store[index + 1 :])
