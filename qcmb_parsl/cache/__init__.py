"""The fragment-result cache: content keys, and the store that keeps every finished fragment."""

from .store import (
    CachedFragment,
    CacheEntryInfo,
    CacheStats,
    FragmentCache,
    default_cache_dir,
    fragment_key,
    task_keys,
)

__all__ = [
    "CacheEntryInfo",
    "CachedFragment",
    "CacheStats",
    "FragmentCache",
    "default_cache_dir",
    "fragment_key",
    "task_keys",
]
