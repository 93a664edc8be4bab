"""What a user asks of screening: a distance cutoff per n-body level, checked before anything runs.

``screening={2: 8.0, 3: 6.0}`` (Python) or ``--screen 2:8.0,3:6.0`` (command line): an n-body subsystem
is kept when every two of its fragments come within the level's cutoff (the minimum interatomic
distance between them, in Ångström). A level without a cutoff takes the one below it (its subsystems'
pairs must be kept pairs anyway, see :mod:`.subsystems`); levels below the first cutoff are complete.
Cutoffs may not grow with the level: a trimer kept at 8 Å whose dimer was dropped at 5 Å would sum an
increment made of a fragment that was never computed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any, TypeAlias

from ..errors import InputError

if TYPE_CHECKING:
    from .subsystems import Selection

#: What ``screening=`` takes: n-body level -> cutoff (Å), a Screening, or a Selection made before.
ScreeningSpec: TypeAlias = "Mapping[Any, Any] | Screening | Selection | None"
#: How the command line spells a screening, for its help and its errors.
SCREEN_SYNTAX = "LEVEL:ANGSTROM,... e.g. 2:8.0,3:6.0"


@dataclass(frozen=True)
class Screening:
    """Distance cutoffs (Å) by n-body level, validated; build one with :meth:`from_user`.

    Parameters
    ----------
    cutoffs
        n-body level (2 or more) -> cutoff in Ångström, not growing with the level.
    """

    cutoffs: Mapping[int, float]

    @classmethod
    def from_user(cls, value: Any, *, where: str = "screening") -> Screening:
        """A Screening from a mapping of level -> cutoff (levels may be digit strings, as JSON keys are).

        Raises InputError, one line naming ``where`` and the value as written, for anything else.
        """
        if isinstance(value, Screening):
            return value
        if not isinstance(value, Mapping):
            raise InputError(
                f"{where} must map n-body levels to cutoffs in Angstrom, e.g. {{2: 8.0, 3: 6.0}}; "
                f"got {type(value).__name__}"
            )
        if not value:
            raise InputError(f"{where} names no n-body level: leave it out for the unscreened expansion")
        cutoffs = {_level(key, where): _cutoff(key, cutoff, where) for key, cutoff in value.items()}
        levels = sorted(cutoffs)
        for lower, upper in pairwise(levels):
            if cutoffs[upper] > cutoffs[lower]:
                raise InputError(
                    f"{where}: the {upper}-body cutoff {cutoffs[upper]:g} is larger than the {lower}-body "
                    f"cutoff {cutoffs[lower]:g}: a kept {upper}-body subsystem would need a dropped "
                    f"{lower}-body one; cutoffs may not grow with the level"
                )
        return cls({level: cutoffs[level] for level in levels})

    def check_levels(self, max_nbody: int, where: str = "screening") -> None:
        """Refuse a cutoff for a level the expansion does not reach."""
        above = [level for level in self.cutoffs if level > max_nbody]
        if above:
            raise InputError(
                f"{where}: level {above[0]} is above the expansion's max_nbody {max_nbody}: "
                f"screen levels 2 to {max_nbody}"
            )

    def cutoff(self, level: int) -> float | None:
        """The cutoff that applies at ``level`` (Å): its own, else the nearest lower level's; None: all
        kept."""
        below = [self.cutoffs[given] for given in self.cutoffs if given <= level]
        return min(below) if below else None

    def select(self, molecule: Any, max_nbody: int) -> Selection:
        """The subsystems of ``molecule`` (a QCElemental Molecule) this screening keeps, through
        ``max_nbody``."""
        from .subsystems import Selection

        self.check_levels(max_nbody)
        return Selection.from_distances(self, molecule, max_nbody)

    def record(self) -> dict[str, float]:
        """The cutoffs as JSON keeps them (levels as strings)."""
        return {str(level): cutoff for level, cutoff in self.cutoffs.items()}


def parse_screen(text: str) -> Screening:
    """The Screening of a command-line value ``2:8.0,3:6.0``; InputError naming the part that is wrong."""
    where = f"--screen {text!r}"
    pairs: dict[str, str] = {}
    for part in text.split(","):
        level, sep, cutoff = part.partition(":")
        if not sep or not level.strip() or not cutoff.strip():
            raise InputError(f"{where}: {part.strip()!r} is not LEVEL:ANGSTROM (write {SCREEN_SYNTAX})")
        if level.strip() in pairs:
            raise InputError(f"{where}: level {level.strip()} is given twice")
        pairs[level.strip()] = cutoff.strip()
    return Screening.from_user(pairs, where=where)


def as_screening(value: ScreeningSpec) -> Screening | Selection | None:
    """None, a Selection already made (kept as it is), or a validated Screening of a user's value."""
    from .subsystems import Selection

    if value is None or isinstance(value, Selection):
        return value
    return Screening.from_user(value)


def _level(key: Any, where: str) -> int:
    text = str(key).strip()
    if isinstance(key, bool) or not text.isdigit():
        raise InputError(f"{where}: level {key!r} is not an n-body level (an integer, 2 or more)")
    level = int(text)
    if level < 2:
        raise InputError(f"{where}: level {key!r}: monomers are always kept; screen levels 2 and above")
    return level


def _cutoff(key: Any, value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise InputError(f"{where}: cutoff {value!r} of level {key} is not a distance in Angstrom")
    try:
        cutoff = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: cutoff {value!r} of level {key} is not a distance in Angstrom") from None
    if not math.isfinite(cutoff) or cutoff <= 0:
        raise InputError(f"{where}: cutoff {value!r} of level {key} must be a positive distance in Angstrom")
    return cutoff
