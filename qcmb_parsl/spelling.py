"""The nearest valid names to a mistyped one, for messages that say what was meant.

A refusal names the value as the user wrote it and the valid values nearest to it ("basis '6-31gg' is
not known to PySCF; did you mean 6-31g?"). Nearness is :mod:`difflib`'s similarity ratio, compared in
a folded form (lower case, no ``-``, ``_`` or spaces) when the caller gives one, so that ``6-31GG`` and
``631g`` are near.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable

#: At most this many names are offered.
OFFERED = 3


def nearest(
    word: str, candidates: Iterable[str], fold: Callable[[str], str] = str.lower, cutoff: float = 0.6
) -> list[str]:
    """The candidates nearest to ``word`` (at most :data:`OFFERED`, nearest first), compared folded."""
    shown: dict[str, str] = {}
    for candidate in candidates:
        shown.setdefault(fold(candidate), candidate)
    matches = difflib.get_close_matches(fold(word), list(shown), n=OFFERED, cutoff=cutoff)
    return [shown[match] for match in matches]


def did_you_mean(
    word: str, candidates: Iterable[str], fold: Callable[[str], str] = str.lower, cutoff: float = 0.6
) -> str:
    """``"; did you mean a or b?"`` for the nearest candidates, or ``""`` when none is near."""
    found = nearest(word, candidates, fold, cutoff)
    if not found:
        return ""
    words = found[0] if len(found) == 1 else ", ".join(found[:-1]) + " or " + found[-1]
    return f"; did you mean {words}?"


def squeeze(name: str) -> str:
    """``name`` lower case without ``-``, ``_`` and spaces: how basis-set and functional names compare."""
    return name.lower().replace("-", "").replace("_", "").replace(" ", "")
