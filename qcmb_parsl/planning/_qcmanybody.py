"""The one place we read QCManyBody beyond its documented API, for the versions tested.

QCManyBody decides which fragment calculations exist; its public way to see them builds a validated
qcelemental Molecule per fragment (``iterate_molecules``), which is what planning at scale avoids.
``ManyBodyCore.compute_map`` holds the same list as plain data: per model chemistry, under ``"all"``,
per n-body level, the (real, basis) fragment tuples. ``tests/test_dependency_contracts.py`` checks
that layout against the installed QCManyBody.

A screened expansion (:class:`ScreenedCore`) is upstream's core with two parts replaced: its
``compute_map`` keeps the calculations of kept subsystems only, and ``_assemble_nbody_components``
(which sums n-body levels with binomial weights that assume every subsystem) sums with the weights
of the kept set. Upstream's ``analyze`` does the rest unchanged: resizing gradients and Hessians,
composing model chemistries and a supersystem level, the properties, the printed table.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from qcmanybody import ManyBodyCore
from qcmanybody.models.v2 import BsseEnum
from qcmanybody.utils import copy_value, delabeler, find_shape, labeler, shaped_zero, sum_cluster_data

from ..screening.expansion import Subsystem, Value, weighted_sum
from ..screening.subsystems import Selection

#: QCManyBody versions this layout was checked against (pyproject pins the same range).
TESTED_QCMANYBODY = ">=0.8,<0.9"


def fragment_calculations(core: ManyBodyCore) -> Iterator[tuple[str, str, tuple[int, ...], tuple[int, ...]]]:
    """(model chemistry, label, real, basis) of every fragment calculation, in upstream's order;
    a fragment needed by several n-body levels comes once per level, as in ``compute_map``."""
    for mc, compute_dict in core.compute_map.items():
        for compute_list in compute_dict["all"].values():
            for real, basis in compute_list:
                yield mc, labeler(mc, real, basis), tuple(real), tuple(basis)


class ScreenedCore(ManyBodyCore):
    """Upstream's core of ``core``'s expansion, computing and summing only what ``selection`` keeps.

    A calculation is kept when its subsystem is: the basis subsystem for no-CP and VMFC, the real one
    for CP (whose basis is the whole cluster). The supersystem level's whole-cluster calculation is
    always kept: it corrects the screened expansion at that level, dropped terms included.
    """

    mc_compute_dict: dict[str, dict[str, dict[int, set[tuple[Any, Any]]]]] | None  # upstream's, untyped

    def __init__(self, core: ManyBodyCore, selection: Selection):
        super().__init__(
            core.molecule,
            core.bsse_type,
            core.levels,
            return_total_data=core.return_total_data,
            supersystem_ie_only=core.supersystem_ie_only,
            embedding_charges=core.embedding_charges,
        )
        self.selection = selection

    @property
    def compute_map(self) -> dict[str, dict[str, dict[int, set[tuple[Any, Any]]]]]:
        if self.mc_compute_dict is None:
            complete = super().compute_map  # upstream's lists, which it also stores in mc_compute_dict
            self.mc_compute_dict = {mc: self._screened(mc, lists) for mc, lists in complete.items()}
        return self.mc_compute_dict

    def _screened(
        self, mc: str, compute_dict: dict[str, dict[int, set[tuple[Any, Any]]]]
    ) -> dict[str, dict[int, set[tuple[Any, Any]]]]:
        """One model chemistry's lists with the calculations of dropped subsystems taken out.

        Each treatment's list by its own rule (a CP and a VMFC calculation can be the same one, the
        whole cluster's basis around a kept real subsystem of a dropped VMFC subsystem), and ``all`` as
        what some treatment keeps.
        """
        supersystem = mc == self.levels.get("supersystem")
        screened: dict[str, dict[int, set[tuple[Any, Any]]]] = {}
        for kind, lists in compute_dict.items():
            if kind == "all":
                continue
            by_real = kind == "cp"  # in the whole cluster's basis; no-CP's real subsystem is its basis
            screened[kind] = {
                nb: {pair for pair in pairs if self._keeps(pair, by_real, supersystem)}
                for nb, pairs in lists.items()
            }
        needed = set().union(*(pairs for lists in screened.values() for pairs in lists.values()))
        screened["all"] = {nb: pairs & needed for nb, pairs in compute_dict["all"].items()}
        return screened

    def _keeps(self, pair: tuple[Any, Any], by_real: bool, supersystem: bool) -> bool:
        real, basis = pair
        if supersystem and len(real) == self.nfragments:
            return True
        return self.selection.keeps(real if by_real else basis)

    def _assemble_nbody_components(
        self, property_label: str, component_results: dict[str, Value]
    ) -> dict[str, Any]:
        """Upstream's n-body sums of one model chemistry and property, over the kept subsystems.

        The same keys as upstream's: per BSSE treatment the cumulative body dict 1..max n, the returned
        treatment's, and ``ret_<property>``.
        """
        mcs = {delabeler(label)[0] for label in component_results}
        if len(mcs) != 1:
            raise RuntimeError(f"Multiple model chemistries passed into _assemble_nbody_components: {mcs}")
        mc = mcs.pop()
        nbodies = self.nbodies_per_mc_level[mc]
        bsse_type, return_bsse_type = self.bsse_type, self.return_bsse_type
        if "supersystem" in nbodies:
            nbodies = list(range(1, self.max_nbody + 1))
            bsse_type, return_bsse_type = [BsseEnum.nocp], BsseEnum.nocp
        top = max(nbodies)
        zero = shaped_zero(find_shape(next(iter(component_results.values()))))
        body = {bt: {n: copy_value(zero) for n in range(1, top + 1)} for bt in ("cp", "nocp", "vmfc")}
        compute_dict = self.compute_map[mc]
        full = tuple(range(1, self.nfragments + 1))

        if BsseEnum.nocp in bsse_type:
            own = _by_real(component_results, lambda real, basis: basis == real)
            for n, weights in self.selection.weights(top).items():
                body["nocp"][n] = weighted_sum(weights, own.__getitem__, zero)
        if BsseEnum.cp in bsse_type:
            monomer_sum = zero
            if 1 in nbodies:
                monomers = {pair for pair in compute_dict["nocp"][1] if len(pair[1]) == 1}
                monomer_sum = sum_cluster_data(component_results, monomers, mc) if monomers else zero
            in_cluster = _by_real(component_results, lambda real, basis: basis == full)
            for n, weights in self.selection.weights(top, lowest=2).items():
                body["cp"][n] = monomer_sum + weighted_sum(weights, in_cluster.__getitem__, zero)
        if BsseEnum.vmfc in bsse_type:
            by_level = {
                nb: sum_cluster_data(component_results, pairs, mc, vmfc=True, nb=nb)
                for nb, pairs in compute_dict["vmfc_levels"].items()
                if pairs
            }
            for nb in nbodies:
                contributions = (by_level[k] for k in range(1, nb + 1) if k in by_level)
                body["vmfc"][nb] = sum(contributions, copy_value(zero))

        results: dict[str, Any] = {f"{bt}_{property_label}_body_dict": body[bt] for bt in body}
        returned = body[return_bsse_type.value]
        results[f"{property_label}_body_dict"] = returned
        results[f"ret_{property_label}"] = copy_value(returned[top])
        if not self.return_total_data:
            results[f"ret_{property_label}"] -= returned[1]
        return results


def _by_real(component_results: Mapping[str, Value], wanted: Any) -> dict[Subsystem, Value]:
    """Values keyed by their real subsystem, of the labels whose (real, basis) ``wanted`` accepts."""
    found: dict[Subsystem, Value] = {}
    for label, value in component_results.items():
        _, real, basis = delabeler(label)
        if wanted(tuple(real), tuple(basis)):
            found[tuple(real)] = value
    return found
