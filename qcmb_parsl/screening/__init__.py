"""Screened many-body expansions: compute only the n-body subsystems within distance cutoffs.

``ManyBodyComputer.from_manybodyinput(mbin, executor=..., screening={2: 8.0, 3: 6.0})`` keeps an
n-body subsystem when every two of its fragments come within the level's cutoff (minimum interatomic
distance, Ångström) and sums the increments of the kept subsystems only. Modules: :mod:`.cutoffs`
(what the user asks), :mod:`.subsystems` (what a geometry keeps), :mod:`.expansion` (the arithmetic).
"""

from .cutoffs import Screening, parse_screen
from .expansion import coefficients, increments
from .subsystems import Selection, fragment_distances, kept_subsystems

__all__ = [
    "Screening",
    "Selection",
    "coefficients",
    "fragment_distances",
    "increments",
    "kept_subsystems",
    "parse_screen",
]
