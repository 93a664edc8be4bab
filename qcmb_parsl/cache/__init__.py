"""The fragment-result cache: content keys, verified records, and the store that keeps every fragment."""

from .keys import fragment_key, task_keys
from .store import (
    CachedFragment,
    CacheEntryInfo,
    CacheStats,
    CacheVerification,
    FragmentCache,
    FragmentEntry,
    default_cache_dir,
)

__all__ = [
    "CacheEntryInfo",
    "CacheStats",
    "CacheVerification",
    "CachedFragment",
    "FragmentCache",
    "FragmentEntry",
    "default_cache_dir",
    "fragment_key",
    "task_keys",
]
