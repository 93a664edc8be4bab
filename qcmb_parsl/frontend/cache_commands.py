"""``qcmb-parsl cache``: what the fragment cache holds, checking it, pruning it."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from .exits import PROG


def _open_cache(args: argparse.Namespace) -> Any:
    from ..cache import FragmentCache

    return FragmentCache(args.cache_dir)


def _input_keys(path: str) -> list[str]:
    """Cache keys of every fragment of an input, as the executor computes them."""
    from .files import read_input

    return list(read_input(path).prepare().cache_keys().values())


def _size(n_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n_bytes < 1024 or unit == "GiB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.1f} TiB"


# -- commands -------------------------------------------------------------------------------------


def cmd_cache_stats(args: argparse.Namespace) -> int:
    with _open_cache(args) as cache:
        stats = cache.stats()
    print(f"directory: {stats.directory}")
    print(f"entries:   {stats.entries}")
    print(f"size:      {_size(stats.size_bytes)}")
    return 0


def cmd_cache_list(args: argparse.Namespace) -> int:
    keys = _input_keys(args.input) if args.input else None
    with _open_cache(args) as cache:
        entries = cache.entries(keys)
        directory = cache.directory
    entries.sort(key=lambda e: (e.program, e.method, str(e.basis), e.nreal, e.natom, e.created))
    header = (
        f"{'key':<16}  {'program':<8} {'method':<10} {'basis':<12} {'driver':<8} "
        f"{'real/atoms':>10} {'wall s':>8}  {'created':<19}  version (harness)"
    )
    print(header)
    for e in entries:
        created = datetime.fromtimestamp(e.created).isoformat(sep=" ", timespec="seconds")
        print(
            f"{e.key[:16]}  {e.program:<8} {e.method:<10} {e.basis or '-'!s:<12} {e.driver:<8} "
            f"{f'{e.nreal}/{e.natom}':>10} {e.wall_time:>8.2f}  {created}  {e.program_version or '-'}"
        )
    if keys is None:
        print(f"{len(entries)} entries in {directory}")
    else:
        print(
            f"{len(entries)} of {len(set(keys))} distinct fragments of {args.input} are cached in {directory}"
        )
    return 0


def cmd_cache_verify(args: argparse.Namespace) -> int:
    with _open_cache(args) as cache:
        outcome = cache.verify()
    print(f"checked {outcome.checked} entries in {outcome.directory}: dropped {outcome.dropped}")
    return 0


def cmd_cache_invalidate(args: argparse.Namespace) -> int:
    from ..errors import ConfigurationError

    if args.program is None and args.method is None and args.input is None:
        raise ConfigurationError(
            f"give --program, --method or --input (or delete everything: {PROG} cache clear)"
        )
    keys = _input_keys(args.input) if args.input else None
    with _open_cache(args) as cache:
        count = cache.invalidate(program=args.program, method=args.method, keys=keys)
        print(f"invalidated {count} entries in {cache.directory}")
    return 0


def cmd_cache_clear(args: argparse.Namespace) -> int:
    with _open_cache(args) as cache:
        count = cache.clear()
        print(f"cleared {count} entries from {cache.directory}")
    return 0
