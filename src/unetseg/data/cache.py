"""A cache of decoded, prepared images bounded by bytes (least recently used first out), and its default size.

Training reads an image when a patch needs it and keeps it here, so the memory a run holds does not grow with the
number of images: once the cache is full, the image used least recently makes room. What a cached value is never
depends on whether it came from the cache (a miss computes the same value again).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any, TypeVar

import numpy as np

V = TypeVar("V")

GIB = 1024**3

#: the default cache size in GiB, lowered to an eighth of the memory on a smaller machine
DEFAULT_CACHE_GIB = 2.0


def memory_bytes() -> int | None:
    """The machine's physical memory in bytes, or None where the system does not say."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def default_cache_gib(memory: int | None = None) -> float:
    """The default cache size in GiB: :data:`DEFAULT_CACHE_GIB`, at most an eighth of ``memory`` bytes (default:
    this machine's memory), rounded down to a hundredth.

    Example:
        >>> default_cache_gib(64 * GIB), default_cache_gib(8 * GIB)
        (2.0, 1.0)
    """
    memory = memory_bytes() if memory is None else memory
    if not memory:
        return DEFAULT_CACHE_GIB
    return min(DEFAULT_CACHE_GIB, int(memory / 8 / GIB * 100) / 100)


def nbytes(value: Any) -> int:
    """The bytes of the NumPy arrays in ``value`` (an array, None, or tuples, lists and mappings of them)."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, Mapping):
        return sum(nbytes(v) for v in value.values())
    if isinstance(value, (tuple, list)):
        return sum(nbytes(v) for v in value)
    return 0


class ByteCache:
    """A least-recently-used cache that holds at most ``limit`` bytes of NumPy arrays (:func:`nbytes`).

    A value larger than the limit is returned without being kept. A pickled cache (a loader process started by
    spawning) arrives empty, with its limit.

    Example:
        >>> cache = ByteCache(limit=100)
        >>> a = cache.get("a", lambda: np.zeros(10, np.int64))  # 80 bytes, kept
        >>> b = cache.get("b", lambda: np.zeros(5, np.int64))  # 40 more: "a" makes room
        >>> list(cache.keys()), cache.bytes
        (['b'], 40)
    """

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError(f"cache limit must be >= 0 bytes, got {limit}")
        self.limit = int(limit)
        self.bytes = 0
        self.hits = self.misses = 0
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()

    def get(self, key: Hashable, load: Callable[[], V]) -> V:
        """The value of ``key``: the cached one (then the most recently used), else ``load()``, kept if it fits."""
        item = self._items.get(key)
        if item is not None:
            self.hits += 1
            self._items.move_to_end(key)
            return item[0]
        self.misses += 1
        value = load()
        size = nbytes(value)
        if size <= self.limit:
            self._items[key] = (value, size)
            self.bytes += size
            self.shrink(self.limit)
        return value

    def shrink(self, limit: int) -> None:
        """Drop the least recently used values until at most ``limit`` bytes are held."""
        while self.bytes > limit and self._items:
            _, (_, size) = self._items.popitem(last=False)
            self.bytes -= size

    def keys(self) -> list[Hashable]:
        """The cached keys, least recently used first."""
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __getstate__(self) -> dict[str, Any]:
        return {"limit": self.limit}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["limit"])
