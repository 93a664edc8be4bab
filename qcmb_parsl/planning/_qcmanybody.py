"""The one place we read QCManyBody beyond its documented API, for the versions tested.

QCManyBody decides which fragment calculations exist; its public way to see them builds a validated
qcelemental Molecule per fragment (``iterate_molecules``), which is what planning at scale avoids.
``ManyBodyCore.compute_map`` holds the same list as plain data: per model chemistry, under ``"all"``,
per n-body level, the (real, basis) fragment tuples. ``tests/test_dependency_contracts.py`` checks
that layout against the installed QCManyBody.
"""

from __future__ import annotations

from collections.abc import Iterator

from qcmanybody import ManyBodyCore
from qcmanybody.utils import labeler

#: QCManyBody versions this layout was checked against (pyproject pins the same range).
TESTED_QCMANYBODY = ">=0.8,<0.9"


def fragment_calculations(core: ManyBodyCore) -> Iterator[tuple[str, str, tuple[int, ...], tuple[int, ...]]]:
    """(model chemistry, label, real, basis) of every fragment calculation, in upstream's order;
    a fragment needed by several n-body levels comes once per level, as in ``compute_map``."""
    for mc, compute_dict in core.compute_map.items():
        for compute_list in compute_dict["all"].values():
            for real, basis in compute_list:
                yield mc, labeler(mc, real, basis), tuple(real), tuple(basis)
