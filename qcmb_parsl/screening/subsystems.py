"""Which subsystems a screening keeps at a geometry: fragment distances and the monotone kept set.

An n-body subsystem is kept when every pair of its fragments lies within the level's cutoff. Cutoffs
do not grow with the level (:mod:`.cutoffs`), so each (n-1)-body subset of a kept subsystem is kept: the
screen is monotone, which the inclusion–exclusion of :mod:`.expansion` needs. Kept subsystems are the
cliques of the "within the cutoff" graph, found by extending each kept (n-1)-body subsystem with the
fragments after its last one that are close to all of its members: the work follows what is kept,
not the C(N, n) subsystems there are.

The distance between two fragments is the minimum over their atom pairs (the interface's choice: a
hydrogen bond is ~2 Å whatever the molecules' sizes). :func:`fragment_distances` also measures the
centroid distance, which the benchmark compares.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Literal

import numpy as np
from qcelemental import constants

from ..errors import InputError
from .cutoffs import Screening
from .expansion import Subsystem, coefficients

Metric = Literal["minimum", "centroid"]

#: What a fragment distance is, as the result's record says it.
CRITERION = "minimum interatomic distance between two fragments, Angstrom"


def fragment_distances(
    geometry: np.ndarray, fragments: Sequence[Sequence[int]], metric: Metric = "minimum"
) -> np.ndarray:
    """(N, N) distances between fragments in Ångström, from a geometry in Bohr.

    ``"minimum"``: the closest pair of atoms, one in each fragment; ``"centroid"``: between the mean
    positions of the fragments' atoms.
    """
    xyz = np.asarray(geometry, dtype=float).reshape(-1, 3) * constants.bohr2angstroms
    if metric == "centroid":
        centroids = np.array([xyz[list(atoms)].mean(axis=0) for atoms in fragments])
        return np.linalg.norm(centroids[:, None, :] - centroids[None, :, :], axis=-1)
    order = np.concatenate([np.asarray(atoms, dtype=int) for atoms in fragments])
    starts = np.cumsum([0] + [len(atoms) for atoms in fragments[:-1]])
    ordered = xyz[order]
    distances = np.empty((len(fragments), len(fragments)))
    for i, atoms in enumerate(fragments):
        to_atoms = np.linalg.norm(ordered[None, :, :] - xyz[list(atoms)][:, None, :], axis=-1).min(axis=0)
        distances[i] = np.minimum.reduceat(to_atoms, starts)
    np.fill_diagonal(distances, 0.0)
    return distances


def kept_subsystems(distances: np.ndarray, cutoff: Any, max_nbody: int) -> dict[int, list[Subsystem]]:
    """Kept subsystems per level 1..max_nbody (1-indexed, sorted); ``cutoff(level)`` is Å or None (all)."""
    nfragments = len(distances)
    kept: dict[int, list[Subsystem]] = {1: [(i,) for i in range(1, nfragments + 1)]}
    for level in range(2, max_nbody + 1):
        limit = cutoff(level)
        if limit is None:
            kept[level] = list(combinations(range(1, nfragments + 1), level))
            continue
        close = distances <= limit
        near = [set((np.flatnonzero(row) + 1).tolist()) for row in close]
        found: list[Subsystem] = []
        for subsystem in kept[level - 1]:
            if limit != cutoff(level - 1) and not all(
                close[a - 1, b - 1] for a, b in combinations(subsystem, 2)
            ):
                continue  # a tighter cutoff than the level below's: its own pairs must pass it too
            candidates = {j for j in near[subsystem[-1] - 1] if j > subsystem[-1]}
            for member in subsystem[:-1]:
                candidates &= near[member - 1]
            found.extend((*subsystem, j) for j in sorted(candidates))
        kept[level] = found
    return kept


@dataclass(frozen=True, eq=False)
class Selection:
    """The subsystems a screening keeps for one cluster: what is computed and what is summed.

    Made by :meth:`Screening.select <qcmb_parsl.screening.Screening.select>` at a geometry; an
    optimization keeps the one of its first geometry for every step (a kept set that changed between
    steps would make the energy jump by the increments that crossed the cutoff).
    """

    screening: Screening
    nfragments: int
    kept: dict[int, list[Subsystem]]
    _members: dict[int, frozenset[Subsystem]] = field(init=False, repr=False)
    _weights: dict[tuple[int, int], dict[int, dict[Subsystem, int]]] = field(
        init=False, repr=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_members", {n: frozenset(s) for n, s in self.kept.items()})

    @classmethod
    def from_distances(cls, screening: Screening, molecule: Any, max_nbody: int) -> Selection:
        distances = fragment_distances(molecule.geometry, molecule.fragments)
        kept = kept_subsystems(distances, screening.cutoff, max_nbody)
        return cls(screening, len(molecule.fragments), kept)

    @property
    def max_nbody(self) -> int:
        return max(self.kept)

    def select(self, molecule: Any, max_nbody: int) -> Selection:
        """This selection, for a molecule of the same fragments and an expansion of the same order."""
        if len(molecule.fragments) != self.nfragments or max_nbody != self.max_nbody:
            raise InputError(
                f"the screened selection is of {self.nfragments} fragments through {self.max_nbody}-body; "
                f"this expansion has {len(molecule.fragments)} fragments through {max_nbody}-body"
            )
        return self

    def keeps(self, subsystem: Iterable[int]) -> bool:
        """Whether the subsystem (1-indexed fragments, sorted) is kept."""
        subsystem = tuple(subsystem)
        members = self._members.get(len(subsystem))
        return members is not None and subsystem in members

    def all_kept(self, levels: Iterable[int]) -> list[Subsystem]:
        """The kept subsystems of ``levels``."""
        return [subsystem for level in levels for subsystem in self.kept.get(level, ())]

    def weights(self, order: int, lowest: int = 1) -> dict[int, dict[Subsystem, int]]:
        """Inclusion–exclusion weights over the kept set (see :func:`.expansion.coefficients`), memoised:
        every model chemistry and property of an expansion sums with the same weights."""
        key = (order, lowest)
        if key not in self._weights:
            self._weights[key] = coefficients(self.all_kept(range(lowest, order + 1)), order, lowest)
        return self._weights[key]

    def dropped(self, level: int) -> int:
        """How many subsystems of ``level`` are dropped."""
        return math.comb(self.nfragments, level) - len(self.kept.get(level, ()))

    def record(self) -> dict[str, Any]:
        """The result's ``extras["qcmb_parsl"]["screening"]``: cutoffs, and per level what was kept."""
        return {
            "criterion": CRITERION,
            "cutoffs": self.screening.record(),
            "levels": {
                str(level): {
                    "cutoff": self.screening.cutoff(level),
                    "n_kept": len(self.kept[level]),
                    "n_dropped": self.dropped(level),
                    "kept": [list(subsystem) for subsystem in self.kept[level]],
                }
                for level in sorted(self.kept)
                if level > 1
            },
        }
