"""The arithmetic of a screened many-body expansion: inclusion–exclusion over the kept subsystems only.

A subsystem ``S`` is a sorted tuple of 1-indexed fragments. Its n-body increment is
``ΔE_S = Σ_{T ⊆ S} (-1)^(|S|-|T|) E_T`` and the expansion through order n is ``Σ_{|S| ≤ n} ΔE_S``.
Screening keeps some subsystems and drops the increments of the others. Because the screen is monotone
(every subset of a kept subsystem is kept), each kept increment is made of computed energies only, and
the expansion regroups into one weighted sum of them::

    E(n) = Σ_T c_T(n) E_T,    c_T(n) = Σ_{S kept, T ⊆ S, |S| ≤ n} (-1)^(|S|-|T|)

With every subsystem of N fragments kept, ``c_T(n) = (-1)^(n-|T|) C(N-|T|-1, n-|T|)``: QCManyBody's
coefficient, so an expansion that drops nothing has QCManyBody's numbers. The same weights serve
energies, gradients and Hessians (they are linear in the fragments' properties): a screened gradient is
the derivative of the screened energy for a fixed kept set.

Counterpoise sums start their increments at dimers (``lowest=2``): the monomers' cluster-basis energies
cancel, and the 1-body term is the monomers in their own basis, as in QCManyBody.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from itertools import combinations

import numpy as np

#: Fragments of a subsystem, 1-indexed and sorted, as in QCManyBody's labels.
Subsystem = tuple[int, ...]
#: A fragment property: an energy, or a gradient or Hessian array.
Value = float | np.ndarray


def coefficients(kept: Iterable[Subsystem], order: int, lowest: int = 1) -> dict[int, dict[Subsystem, int]]:
    """The weights ``c_T(n)`` for n = 1..order: ``{n: {T: c_T(n)}}``, zeros left out.

    ``kept`` are the subsystems whose increments are summed (closed under subsets from size ``lowest``
    on); increments of subsystems smaller than ``lowest`` or larger than ``order`` are not summed.
    """
    by_size: dict[int, list[Subsystem]] = {}
    for subsystem in kept:
        if lowest <= len(subsystem) <= order:
            by_size.setdefault(len(subsystem), []).append(subsystem)
    running: dict[Subsystem, int] = {}
    weights: dict[int, dict[Subsystem, int]] = {}
    for n in range(1, order + 1):
        for subsystem in by_size.get(n, ()):
            for size in range(1, n + 1):
                sign = -1 if (n - size) % 2 else 1
                for part in combinations(subsystem, size):
                    running[part] = running.get(part, 0) + sign
        weights[n] = {part: c for part, c in running.items() if c}
    return weights


def weighted_sum(weights: Mapping[Subsystem, int], value: Callable[[Subsystem], Value], zero: Value) -> Value:
    """``Σ_T weights[T] · value(T)``; energies summed with :func:`math.fsum`, as QCManyBody sums them."""
    if isinstance(zero, float):
        return math.fsum(c * float(value(part)) for part, c in weights.items())
    total = np.copy(zero)
    for part, c in weights.items():  # in place: a Hessian per term would not fit many times over
        total += c * value(part)
    return total


def increments(energies: Mapping[Subsystem, float]) -> dict[Subsystem, float]:
    """Each subsystem's n-body increment ``ΔE_S`` from the energies of it and all its subsets.

    What screening drops: the error of a screened expansion is minus the sum of the increments of the
    subsystems it dropped. ``energies`` must hold every subset of every subsystem in it (an unscreened
    no-counterpoise expansion does, keyed by the ``real`` tuples of its ``(real, real)`` fragments).
    """
    found: dict[Subsystem, float] = {}
    for subsystem in sorted(energies, key=len):
        parts = (part for size in range(1, len(subsystem)) for part in combinations(subsystem, size))
        found[subsystem] = energies[subsystem] - math.fsum(found[part] for part in parts)
    return found
