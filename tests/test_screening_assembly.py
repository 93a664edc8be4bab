"""The arithmetic of screened expansions against upstream QCManyBody's own assembly, no engine needed.

Upstream's ``ManyBodyCore.analyze`` is arithmetic on whatever fragment values it is given, so random
values stand in for engine results here (the engine is not what is tested; real-engine checks are in
``test_screening.py``). Two independent routes to the same numbers:

* a screen that keeps everything must give upstream's numbers on the same values;
* a screen that drops subsystems must give what upstream computes when each dropped fragment's value is
  replaced by the sum of the increments of its kept subsets (its increment is then zero): dropping an
  increment and making it zero are the same expansion. Multilevel, supersystem, CP, no-CP and VMFC
  all go through upstream's own composition on that route.
"""

from __future__ import annotations

import math
from itertools import combinations
from typing import Any

import numpy as np
import pytest
from qcmanybody.utils import delabeler, labeler

from qcmb_parsl import ManyBodyComputer
from qcmb_parsl.clusters import water_cluster
from qcmb_parsl.errors import InputError
from qcmb_parsl.planning._qcmanybody import ScreenedCore, fragment_calculations
from qcmb_parsl.screening import (
    Screening,
    coefficients,
    fragment_distances,
    increments,
    kept_subsystems,
    parse_screen,
)

pytestmark = pytest.mark.fast

TOL = 1e-10
EVERYTHING = {2: 1000.0}


def synthetic_input(
    n: int,
    bsse: list[str],
    *,
    max_nbody: int | None = None,
    levels: dict | None = None,
    driver: str = "energy",
    return_total_data: bool | None = None,
) -> dict[str, Any]:
    """A v1 ManyBodyInput of ``n`` waters; never computed, only planned and assembled."""
    spec = {"program": "pyscf", "model": {"method": "hf", "basis": "sto-3g"}, "driver": driver}
    keywords: dict[str, Any] = {"bsse_type": bsse}
    if max_nbody is not None:
        keywords["max_nbody"] = max_nbody
    if return_total_data is not None:
        keywords["return_total_data"] = return_total_data
    specification: Any = spec
    if levels is not None:
        keywords["levels"] = levels
        specification = {mc: spec for mc in levels.values()}
    return {
        "molecule": water_cluster(n),
        "specification": {"specification": specification, "keywords": keywords, "driver": driver},
    }


def fake_results(core: Any, driver: str, seed: int = 7) -> dict[str, dict[str, Any]]:
    """A random energy (and gradient, Hessian) per fragment calculation, in its natural size."""
    rng = np.random.default_rng(seed)
    data: dict[str, dict[str, Any]] = {}
    for _, label, _, basis in fragment_calculations(core):
        if label in data:
            continue
        natom = sum(core.fragment_size_dict[i] for i in basis)
        values: dict[str, Any] = {"energy": float(rng.normal(-76.0 * len(basis), 1.0))}
        if driver in ("gradient", "hessian"):
            values["gradient"] = rng.normal(size=(natom, 3))
        if driver == "hessian":
            values["hessian"] = rng.normal(size=(3 * natom, 3 * natom))
        data[label] = values
    return data


def labels(core: Any) -> set[str]:
    return {label for _, label, _, _ in fragment_calculations(core)}


def assert_same_analysis(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    assert set(ours["results"]) == set(theirs["results"])
    for name, value in theirs["results"].items():
        np.testing.assert_allclose(ours["results"][name], value, atol=TOL, rtol=0, err_msg=name)
    for name in ("ret_energy", "ret_gradient", "ret_hessian"):
        if name in theirs:
            np.testing.assert_allclose(ours[name], theirs[name], atol=TOL, rtol=0, err_msg=name)


def cores(mbin: dict[str, Any], screening: Any) -> tuple[Any, ScreenedCore]:
    upstream = ManyBodyComputer.prepare(mbin).qcmb_core
    screened = ManyBodyComputer.prepare(mbin, screening).qcmb_core
    assert type(upstream).__name__ == "ManyBodyCore" and isinstance(screened, ScreenedCore)
    return upstream, screened


CASES = {
    "nocp": dict(bsse=["nocp"], max_nbody=3),
    "cp": dict(bsse=["cp"], max_nbody=3),
    "vmfc": dict(bsse=["vmfc"], max_nbody=3),
    "all-three, every body": dict(bsse=["cp", "nocp", "vmfc"], max_nbody=4),
    "cp interaction only": dict(bsse=["cp"], max_nbody=3, return_total_data=False),
    "multilevel": dict(bsse=["cp", "nocp"], levels={1: "a", 2: "b", 3: "c"}),
    "multilevel vmfc": dict(bsse=["vmfc"], levels={1: "a", 3: "b"}),
    "multilevel cp, interaction only": dict(bsse=["cp"], levels={1: "a", 2: "b"}, return_total_data=False),
    "supersystem": dict(bsse=["nocp"], levels={1: "a", 2: "b", "supersystem": "c"}),
}


#: Hessians in two cases: their weights are those of energies and gradients.
KEEP_EVERYTHING = [
    (case, driver) for case in sorted(CASES) for driver in ("energy", "gradient")
] + [("nocp", "hessian"), ("multilevel", "hessian")]


@pytest.mark.parametrize(("case", "driver"), KEEP_EVERYTHING)
def test_a_screen_that_keeps_everything_is_upstreams_expansion(case, driver):
    mbin = synthetic_input(4, driver=driver, **CASES[case])
    upstream, screened = cores(mbin, EVERYTHING)
    assert labels(screened) == labels(upstream)
    data = fake_results(upstream, driver)
    assert_same_analysis(screened.analyze(data), upstream.analyze(data))


def zeroed_increments(upstream: Any, selection: Any, data: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``data`` with each dropped subsystem's value replaced so that its increment is zero.

    No-CP ``S@S`` and CP ``S@cluster``: the sum of the increments of S's subsets (dropped ones zero).
    VMFC: the signed sum over ``x@S`` vanishes through ``(first fragment)@S``. Values in full size.
    """
    nfr = upstream.nfragments
    cluster = tuple(range(1, nfr + 1))
    filled = {label: dict(values) for label, values in data.items()}

    def full(label: str, name: str) -> Any:
        value = filled[label][name]
        if name == "energy":
            return value
        resize = upstream.resize_gradient if name == "gradient" else upstream.resize_hessian
        return resize(value, tuple(delabeler(label)[2]))

    def store(label: str, name: str, value: Any) -> None:
        if name != "energy":
            resize = upstream.resize_gradient if name == "gradient" else upstream.resize_hessian
            value = resize(value, tuple(delabeler(label)[2]), reverse=True)
        filled[label][name] = value

    for mc in upstream.compute_map:
        for basis_of in (lambda s: s, lambda s: cluster):
            subsystems = sorted(
                {
                    tuple(real)
                    for _, real, basis in map(delabeler, data)
                    if tuple(basis) == basis_of(tuple(real))
                },
                key=len,
            )
            for name in data[next(iter(data))]:
                increment: dict[tuple[int, ...], Any] = {}
                for subsystem in subsystems:
                    label = labeler(mc, subsystem, basis_of(subsystem))
                    if label not in data or len(subsystem) > upstream.max_nbody:
                        continue
                    below = sum(
                        (
                            increment.get(part, 0.0)
                            for k in range(1, len(subsystem))
                            for part in combinations(subsystem, k)
                        ),
                        0.0 * full(label, name),
                    )
                    if selection.keeps(subsystem):
                        increment[subsystem] = full(label, name) - below
                    else:
                        store(label, name, below)
        for subsystem in (
            s for level in range(2, upstream.max_nbody + 1) for s in combinations(cluster, level)
        ):
            first = labeler(mc, (subsystem[0],), subsystem)
            own = labeler(mc, subsystem, subsystem)
            if selection.keeps(subsystem) or first not in data:
                continue
            for name in data[first]:
                for part in (p for k in range(1, len(subsystem)) for p in combinations(subsystem, k)):
                    if part != (subsystem[0],) and labeler(mc, part, subsystem) in data:
                        store(labeler(mc, part, subsystem), name, 0.0 * full(first, name))
                store(first, name, (-1) ** len(subsystem) * full(own, name))
    return filled


SCREENED_CASES = {
    "cp and nocp": dict(bsse=["cp", "nocp"], max_nbody=3),
    "vmfc": dict(bsse=["vmfc"], max_nbody=3),
    "multilevel": dict(bsse=["cp", "nocp"], levels={1: "a", 2: "b", 3: "c"}),
    "supersystem": dict(bsse=["nocp"], levels={1: "a", 2: "b", "supersystem": "c"}),
    "interaction only": dict(bsse=["nocp"], max_nbody=3, return_total_data=False),
}


DROP_SOME = [(case, driver) for case in sorted(SCREENED_CASES) for driver in ("energy", "gradient")] + [
    ("cp and nocp", "hessian")
]


@pytest.mark.parametrize(("case", "driver"), DROP_SOME)
def test_dropping_increments_is_making_them_zero_in_upstreams_expansion(case, driver):
    mbin = synthetic_input(5, driver=driver, **SCREENED_CASES[case])
    molecule = mbin["molecule"]
    pairs = fragment_distances(np.reshape(molecule["geometry"], (-1, 3)), molecule["fragments"])
    cutoff = float(np.median(pairs[np.triu_indices(5, 1)]))
    upstream, screened = cores(mbin, {2: cutoff})
    kept = labels(screened)
    assert kept < labels(upstream)
    data = fake_results(upstream, driver)
    ours = screened.analyze({label: values for label, values in data.items() if label in kept})
    assert_same_analysis(ours, upstream.analyze(zeroed_increments(upstream, screened.selection, data)))


def test_every_treatment_through_the_whole_cluster_by_hand():
    """max_nbody = the number of fragments: VMFC's top level and CP share the whole cluster's basis, and
    single-level VMFC brings no-CP and CP along. Each treatment's screened total by its definition:
    the sum over kept subsystems of their increments."""
    mbin = synthetic_input(4, ["vmfc"], max_nbody=4)
    molecule = mbin["molecule"]
    pairs = fragment_distances(np.reshape(molecule["geometry"], (-1, 3)), molecule["fragments"])
    upstream, screened = cores(mbin, {2: float(np.median(pairs[np.triu_indices(4, 1)]))})
    data = fake_results(upstream, "energy")
    kept_labels = labels(screened)
    analysis = screened.analyze({label: v for label, v in data.items() if label in kept_labels})["results"]
    mc = next(iter(upstream.compute_map))
    energy = {tuple(map(tuple, delabeler(label)[1:])): v["energy"] for label, v in data.items()}
    kept = screened.selection.all_kept(range(1, 5))
    cluster = (1, 2, 3, 4)
    assert len(kept) < 15 and mc

    def parts(s: tuple[int, ...]) -> list[tuple[tuple[int, ...], int]]:
        return [(p, (-1) ** (len(s) - k)) for k in range(1, len(s) + 1) for p in combinations(s, k)]

    monomers = math.fsum(energy[((i,), (i,))] for i in cluster)
    vmfc = math.fsum(sign * energy[(p, s)] for s in kept for p, sign in parts(s))
    nocp = math.fsum(sign * energy[(p, p)] for s in kept for p, sign in parts(s))
    cp = monomers + math.fsum(sign * energy[(p, cluster)] for s in kept if len(s) > 1 for p, sign in parts(s))
    for name, expected in (("vmfc", vmfc), ("nocp", nocp), ("cp", cp)):
        assert analysis[f"{name}_corrected_total_energy"] == pytest.approx(expected, abs=TOL), name


@pytest.mark.parametrize("nfragments", [3, 4, 6, 7])
@pytest.mark.parametrize("lowest", [1, 2])
def test_weights_over_every_subsystem_are_the_binomial_ones(nfragments, lowest):
    """QCManyBody's weight (-1)^(n-k) C(N-k-1, n-k) of a k-body fragment at order n (1 for the whole
    cluster); counterpoise sums leave the monomers' own increments out."""
    everything = [s for k in range(1, nfragments + 1) for s in combinations(range(1, nfragments + 1), k)]
    for order, weights in coefficients(everything, nfragments, lowest).items():
        for part in everything:
            size = len(part)
            if size > order:
                expected = 0
            elif size == nfragments:
                expected = 1
            else:
                expected = (-1) ** (order - size) * math.comb(nfragments - size - 1, order - size)
            if lowest == 2 and size == 1:
                expected -= 1
            assert weights.get(part, 0) == expected, (order, part)


def test_weighted_energies_are_the_sum_of_kept_increments():
    rng = np.random.default_rng(3)
    everything = [s for k in range(1, 6) for s in combinations(range(1, 6), k)]
    energies = {s: float(rng.normal()) for s in everything}
    kept = [s for s in everything if len(s) == 1 or (s[-1] - s[0] <= 2 and len(s) <= 3)]
    found = increments(energies)
    for order, weights in coefficients(kept, 3).items():
        direct = math.fsum(found[s] for s in kept if len(s) <= order)
        weighted = math.fsum(c * energies[part] for part, c in weights.items())
        assert abs(weighted - direct) < 1e-12


def test_kept_subsystems_are_the_cliques_within_the_cutoffs():
    molecule = water_cluster(12)
    distances = fragment_distances(np.reshape(molecule["geometry"], (-1, 3)), molecule["fragments"])
    pairs = distances[np.triu_indices(12, 1)]
    screening = Screening.from_user({2: float(np.quantile(pairs, 0.7)), 4: float(np.quantile(pairs, 0.5))})
    kept = kept_subsystems(distances, screening.cutoff, 4)
    for level in range(2, 5):
        cutoff = screening.cutoff(level)
        brute = [
            s
            for s in combinations(range(1, 13), level)
            if all(distances[a - 1, b - 1] <= cutoff for a, b in combinations(s, 2))
        ]
        assert kept[level] == brute and 0 < len(brute) < math.comb(12, level)
        assert all(part in set(kept[level - 1]) for s in kept[level] for part in combinations(s, level - 1))


def test_fragment_distances_minimum_and_centroid():
    molecule = water_cluster(2)
    xyz = np.reshape(molecule["geometry"], (-1, 3)) * 0.52917721067
    minimum = fragment_distances(xyz / 0.52917721067, molecule["fragments"])
    centroid = fragment_distances(xyz / 0.52917721067, molecule["fragments"], "centroid")
    expected_min = min(np.linalg.norm(xyz[a] - xyz[b]) for a in range(3) for b in range(3, 6))
    expected_centroid = np.linalg.norm(xyz[:3].mean(axis=0) - xyz[3:].mean(axis=0))
    assert minimum[0, 1] == pytest.approx(expected_min, abs=1e-12) and minimum[0, 0] == 0
    assert centroid[1, 0] == pytest.approx(expected_centroid, abs=1e-12)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({}, "names no n-body level"),
        ([8.0], "must map n-body levels"),
        ({1: 5.0}, "monomers are always kept"),
        ({"two": 5.0}, "level 'two' is not an n-body level"),
        ({2: "far"}, "cutoff 'far' of level 2 is not a distance"),
        ({2: -1.0}, "must be a positive distance"),
        ({2: float("inf")}, "must be a positive distance"),
        ({2: True}, "is not a distance"),
        ({2: 5.0, 3: 8.0}, "the 3-body cutoff 8 is larger than the 2-body cutoff 5"),
    ],
)
def test_bad_screenings_are_one_line_input_errors(value, message):
    with pytest.raises(InputError, match=message) as caught:
        Screening.from_user(value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2", "'2' is not LEVEL:ANGSTROM"),
        ("2:", "'2:' is not LEVEL:ANGSTROM"),
        ("2:8,2:6", "level 2 is given twice"),
        ("2:8;3:6", "cutoff '8;3:6' of level 2"),
    ],
)
def test_bad_screen_options_name_what_was_written(text, message):
    with pytest.raises(InputError, match=message) as caught:
        parse_screen(text)
    assert str(caught.value).startswith(f"--screen {text!r}: ")


def test_screen_option_and_levels_without_a_cutoff():
    screening = parse_screen(" 3:6 , 2:8.5")
    assert screening.cutoffs == {2: 8.5, 3: 6.0} and screening.record() == {"2": 8.5, "3": 6.0}
    only_trimers = Screening.from_user({"3": 6})
    assert [only_trimers.cutoff(n) for n in (2, 3, 4)] == [None, 6.0, 6.0]


def test_screenings_that_do_not_fit_the_expansion_are_refused():
    with pytest.raises(InputError, match="level 3 is above the expansion's max_nbody 2"):
        ManyBodyComputer.prepare(synthetic_input(3, ["nocp"], max_nbody=2), {3: 5.0})
    with pytest.raises(InputError, match="supersystem_ie_only"):
        mbin = synthetic_input(3, ["cp"])
        mbin["specification"]["keywords"]["supersystem_ie_only"] = True
        ManyBodyComputer.prepare(mbin, {2: 5.0})
    with pytest.raises(InputError, match="drops every calculation of model chemistry 'b'"):
        ManyBodyComputer.prepare(synthetic_input(4, ["vmfc"], levels={1: "a", 2: "b"}), {2: 0.5})
