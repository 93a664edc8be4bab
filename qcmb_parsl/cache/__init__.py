"""The fragment-result cache: content keys, and the store that keeps every finished fragment."""

from .keys import fragment_key, task_keys
from .store import CachedFragment, CacheEntryInfo, CacheStats, FragmentCache, default_cache_dir

__all__ = [
    "CacheEntryInfo",
    "CacheStats",
    "CachedFragment",
    "FragmentCache",
    "default_cache_dir",
    "fragment_key",
    "task_keys",
]
