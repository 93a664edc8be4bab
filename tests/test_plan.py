"""The planner: the same fragments as upstream, built fast, and inputs that cannot hang in inference."""

from __future__ import annotations

import gc
import json
import logging
import random
import time

import pytest
import qcmanybody
import qcmanybody.v2
from qcelemental.models import v1 as qcel_v1
from qcelemental.models import v2 as qcel_v2

import qcmb_parsl.v2
from qcmb_parsl import InputError, ManyBodyComputer
from qcmb_parsl.clusters import water_cluster
from qcmb_parsl.planning.plan import FragmentMoleculeBuilder

pytestmark = pytest.mark.fast  # planning only, in this process


def mbin_for(n: int, bsse: list[str], *, levels=None, max_nbody=3, charges=True) -> dict:
    specs = {"program": "pyscf", "driver": "energy", "model": {"method": "hf", "basis": "sto-3g"}}
    keywords = {"bsse_type": bsse, "max_nbody": max_nbody}
    if levels:
        specs = {mc: {**specs, "model": {"method": mc, "basis": "sto-3g"}} for mc in set(levels.values())}
        keywords["levels"] = levels
    return {
        "molecule": water_cluster(n, with_charges=charges),
        "specification": {"specification": specs, "keywords": keywords, "driver": "energy"},
    }


def assert_same_fragment(ours: dict, upstream_molecule, molecule_model) -> None:
    mine = molecule_model(**ours)
    assert mine == upstream_molecule  # qcelemental compares symbols, masses, charges, geometry, real, fragments
    assert mine.name == upstream_molecule.name
    assert list(mine.real) == list(upstream_molecule.real)
    assert mine.molecular_charge == upstream_molecule.molecular_charge
    assert mine.molecular_multiplicity == upstream_molecule.molecular_multiplicity
    assert (mine.fix_com, mine.fix_orientation) == (upstream_molecule.fix_com, upstream_molecule.fix_orientation)


CASES = [
    (4, ["cp"], None),
    (5, ["nocp"], None),
    (4, ["vmfc"], None),
    (6, ["cp", "nocp"], None),
    (5, ["cp"], {1: "mp2", 3: "hf"}),
    (8, ["nocp"], None),
]


@pytest.mark.parametrize("n, bsse, levels", CASES)
@pytest.mark.parametrize("schema_version", [1, 2])
def test_fragments_identical_to_upstream(n, bsse, levels, schema_version):
    mbin = mbin_for(n, bsse, levels=levels)
    if schema_version == 1:
        ours, upstream, molecule_model = ManyBodyComputer, qcmanybody.ManyBodyComputer, qcel_v1.Molecule
    else:
        ours, upstream, molecule_model = qcmb_parsl.v2.ManyBodyComputer, qcmanybody.v2.ManyBodyComputer, qcel_v2.Molecule
    tasks = {task.label: task for task in ours.prepare(mbin).fragment_tasks()}
    core = upstream.from_manybodyinput(mbin, build_tasks=False).qcmb_core
    expected = list(core.iterate_molecules())
    assert [label for _, label, _ in expected] == list(tasks)
    for mc, label, molecule in expected:
        task = tasks[label]
        assert task.mc == mc and task.program == "pyscf"
        assert_same_fragment(task.atomic_input["molecule"], molecule, molecule_model)
        spec = task.atomic_input["specification"] if schema_version == 2 else task.atomic_input
        assert spec["driver"] == "energy"
        assert spec["model"]["method"] == (mc if levels else "hf")


@pytest.mark.slow
def test_large_cluster_plans_quickly_and_samples_match_upstream():
    mbin = mbin_for(32, ["cp"], charges=False)
    start = time.perf_counter()
    computer = ManyBodyComputer.prepare(mbin)
    tasks = computer.fragment_tasks()
    elapsed = time.perf_counter() - start
    assert len(tasks) == 32 + 32 * 31 // 2 + 32 * 31 * 30 // 6
    assert elapsed < 60, f"planning (H2O)32 MBE(3) CP took {elapsed:.1f} s"
    parent = computer.qcmb_core.molecule
    for task in random.Random(7).sample(tasks, 25):
        ghost = sorted(set(task.basis_fragments) - set(task.real_fragments))
        upstream = parent.get_fragment(
            [i - 1 for i in task.real_fragments], [i - 1 for i in ghost], orient=False, group_fragments=False
        ).copy(update={"fix_com": True, "fix_orientation": True})
        assert_same_fragment(task.atomic_input["molecule"], upstream, qcel_v1.Molecule)


@pytest.mark.parametrize("enabled", [True, False])
def test_planning_leaves_the_garbage_collector_as_it_found_it(enabled):
    """Planning pauses the cyclic collector while it builds the tasks, then puts it back as it was."""
    computer = ManyBodyComputer.prepare(mbin_for(3, ["nocp"]))
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        assert len(computer.fragment_tasks()) == 7
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_cp_fragments_share_one_layout():
    """Every fragment in the full cluster basis reuses the same lists: memory stays flat."""
    computer = ManyBodyComputer.prepare(mbin_for(6, ["cp"], max_nbody=6))
    full = [t for t in computer.fragment_tasks() if len(t.basis_fragments) == 6]
    assert len(full) > 1
    assert len({id(t.atomic_input["molecule"]["geometry"]) for t in full}) == 1


def test_missing_fragment_charges_filled_when_unambiguous(caplog):
    mbin = mbin_for(12, ["nocp"], max_nbody=1, charges=False)
    with caplog.at_level(logging.INFO, logger="qcmb_parsl"):
        computer = ManyBodyComputer.prepare(json.dumps(mbin))
    assert list(computer.molecule.fragment_charges) == [0.0] * 12
    assert list(computer.molecule.fragment_multiplicities) == [1] * 12
    assert "filled neutral closed-shell fragments" in caplog.text


def test_missing_fragment_charges_ambiguous_is_an_error():
    mbin = mbin_for(12, ["nocp"], max_nbody=1, charges=False)
    molecule = mbin["molecule"]
    molecule["symbols"][0] = "N"  # NH2 fragment: odd electron count, no unique answer
    with pytest.raises(InputError, match="fragment 1 has an odd number of electrons") as excinfo:
        ManyBodyComputer.prepare(mbin)
    assert "add molecule.fragment_charges and molecule.fragment_multiplicities" in str(excinfo.value)
    molecule["symbols"][0] = "O"
    molecule["molecular_charge"] = -1.0
    with pytest.raises(InputError, match="charged or open-shell"):
        ManyBodyComputer.prepare(mbin)


def test_builder_keeps_symmetry_cancellation():
    molecule = qcel_v1.Molecule(**{**water_cluster(2), "fix_symmetry": "c1"})
    built = FragmentMoleculeBuilder(molecule).build((1,), (1, 2))
    assert built["fix_symmetry"] == "c1" and built["real"] == [True] * 3 + [False] * 3
