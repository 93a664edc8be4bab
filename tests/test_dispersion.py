"""DFT-D3 and D4 in the PySCF harness, against the dftd3 and dftd4 packages' own numbers.

Each corrected result must be the plain functional's result plus what the reference package computes
for the real atoms alone: ghost atoms (every counterpoise fragment has them) carry basis functions,
not nuclei, so they must not disperse. The functional's part is run on a coarse grid where the test
only compares differences: the correction does not depend on the grid, and both runs share it.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import dftd3.interface as dftd3
import dftd4.interface as dftd4
import numpy as np
import pytest
import qcengine as qcng
import qcmanybody
from molecules import DIMER, GHOSTED_DIMER, mbe_input
from qcelemental.models.v2 import AtomicInput, FailedOperation, Molecule

from qcmb_parsl import ManyBodyComputer, ParslExecutor, SequentialExecutor
from qcmb_parsl.cache import FragmentCache, fragment_key
from qcmb_parsl.engines.programs import program_identity
from qcmb_parsl.engines.pyscf import DISPERSION_CORRECTIONS, PySCFHarness, register_pyscf_harness

register_pyscf_harness()

ENERGY_TOL = 1e-8
GRADIENT_TOL = 1e-7

WATER = Molecule(
    symbols=["O", "H", "H"],
    geometry=[0.0, 0.0, 0.2217, 0.0, 1.4309, -0.8867, 0.0, -1.4309, -0.8867],
)
# A water beside a ghost helium: the smallest molecule whose Hessian has rows for a ghost atom.
WATER_AND_GHOST = Molecule(
    symbols=["O", "H", "H", "He"],
    geometry=[0.0, 0.0, 0.2217, 0.0, 1.4309, -0.8867, 0.0, -1.4309, -0.8867, 0.0, 0.0, 5.5],
    real=[True, True, True, False],
)
# Open shell and charged (D4's charge model reads the charge): the harness's UKS path.
WATER_CATION = Molecule(
    symbols=["O", "H", "H"],
    geometry=[0.0, 0.0, 0.2217, 0.0, 1.4309, -0.8867, 0.0, -1.4309, -0.8867],
    molecular_charge=1,
    molecular_multiplicity=2,
)
ATOMIC_NUMBERS = {"H": 1, "He": 2, "O": 8}


@cache
def run(molecule_json: str, method: str, basis: str, driver: str, grid_level: int) -> Any:
    """One single point through qcengine.compute (memoised: the plain runs serve several tests)."""
    spec = {
        "driver": driver,
        "model": {"method": method, "basis": basis},
        "keywords": {"grid_level": grid_level},
    }
    molecule = Molecule.model_validate_json(molecule_json)
    return qcng.compute(AtomicInput(molecule=molecule, specification=spec), "pyscf", raise_error=True)


def compute(molecule: Molecule, method: str, driver: str = "energy", basis: str = "6-31g", grid: int = 1):
    return run(molecule.model_dump_json(), method, basis, driver, grid)


def reference_parameters(functional: str, correction: str) -> Any:
    """The damping parameters the reference packages load for ``functional``: D3 two-body (as QCEngine's
    d3bj and d3zero are), D4 with its three-body term (as QCEngine's d4 is)."""
    if correction == "d3bj":
        return dftd3.RationalDampingParam(method=functional, atm=False)
    if correction == "d3zero":
        return dftd3.ZeroDampingParam(method=functional, atm=False)
    return dftd4.DampingParam(method=functional)


def real_atoms(molecule: Molecule) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(flags, atomic numbers, Bohr positions) of the real atoms only."""
    real = np.asarray(molecule.real)
    numbers = np.array([ATOMIC_NUMBERS[symbol] for symbol in molecule.symbols])[real]
    return real, numbers, np.asarray(molecule.geometry)[real]


def reference_model(correction: str, numbers: np.ndarray, positions: np.ndarray, charge: float) -> Any:
    if correction.startswith("d3"):
        return dftd3.DispersionModel(numbers, positions)
    return dftd4.DispersionModel(numbers, positions, charge=charge)


def reference_energy_and_gradient(
    molecule: Molecule, functional: str, correction: str
) -> tuple[float, np.ndarray]:
    """The reference package's correction over the real atoms; zero gradient rows for ghost atoms."""
    real, numbers, positions = real_atoms(molecule)
    model = reference_model(correction, numbers, positions, molecule.molecular_charge)
    result = model.get_dispersion(reference_parameters(functional, correction), grad=True)
    gradient = np.zeros((len(real), 3))
    gradient[real] = result["gradient"]
    return float(result["energy"]), gradient


def reference_hessian(molecule: Molecule, functional: str, correction: str) -> np.ndarray:
    """(3N, 3N): dftd3's analytic Hessian; for D4 (dftd4 has none) central differences of dftd4's
    analytic gradients, step 1e-4 Bohr. Zero rows and columns for ghost atoms."""
    real, numbers, positions = real_atoms(molecule)
    parameters = reference_parameters(functional, correction)
    charge = molecule.molecular_charge
    if correction.startswith("d3"):
        hessian = reference_model(correction, numbers, positions, charge).get_hessian(parameters)["hessian"]
    else:
        step, n = 1e-4, positions.size

        def gradient(displacement: np.ndarray) -> np.ndarray:
            moved = positions + displacement.reshape(positions.shape)
            model = reference_model(correction, numbers, moved, charge)
            return model.get_dispersion(parameters, grad=True)["gradient"].ravel()

        hessian = np.array([(gradient(step * e) - gradient(-step * e)) / (2 * step) for e in np.eye(n)])
    rows = (3 * np.flatnonzero(real)[:, np.newaxis] + np.arange(3)).ravel()
    full = np.zeros((3 * len(real), 3 * len(real)))
    full[np.ix_(rows, rows)] = hessian
    return full


CASES = [("b3lyp", "d3bj"), ("b3lyp", "d3zero"), ("b3lyp", "d4"), ("pbe0", "d4")]


@pytest.mark.parametrize("molecule", [DIMER, GHOSTED_DIMER], ids=["dimer", "ghosted-dimer"])
@pytest.mark.parametrize("functional,correction", CASES, ids=[f"{f}-{c}" for f, c in CASES])
def test_energy_and_gradient_are_the_functional_plus_the_reference(
    molecule: Molecule, functional: str, correction: str
) -> None:
    plain = compute(molecule, functional, "gradient")
    corrected = compute(molecule, f"{functional}-{correction}", "gradient")
    energy, gradient = reference_energy_and_gradient(molecule, functional, correction)
    assert energy < -1e-6  # a correction, not a zero that anything would match

    props = corrected.properties
    assert abs(props.return_energy - plain.properties.return_energy - energy) < ENERGY_TOL
    assert abs(props.scf_dispersion_correction_energy - energy) < ENERGY_TOL
    assert props.scf_total_energy == props.return_energy
    np.testing.assert_allclose(
        corrected.return_result - plain.return_result, gradient, atol=GRADIENT_TOL, rtol=0
    )
    np.testing.assert_array_equal(props.scf_total_gradient, corrected.return_result)
    # The ghost atoms' rows are the plain functional's: the correction puts nothing there.
    ghosts = ~np.asarray(molecule.real)
    np.testing.assert_array_equal(corrected.return_result[ghosts], plain.return_result[ghosts])


@pytest.mark.parametrize("molecule", [WATER_AND_GHOST, WATER_CATION], ids=["ghost", "cation"])
@pytest.mark.parametrize("correction", ["d3bj", "d4"])
def test_hessian_is_the_functional_plus_the_reference(molecule: Molecule, correction: str) -> None:
    plain = compute(molecule, "b3lyp", "hessian", basis="sto-3g", grid=0)
    corrected = compute(molecule, f"b3lyp-{correction}", "hessian", basis="sto-3g", grid=0)
    energy, _ = reference_energy_and_gradient(molecule, "b3lyp", correction)
    reference = reference_hessian(molecule, "b3lyp", correction)
    assert np.abs(reference).max() > 1e-5
    natom = len(molecule.symbols)
    assert corrected.return_result.shape == (3 * natom, 3 * natom)
    assert abs(corrected.properties.scf_dispersion_correction_energy - energy) < ENERGY_TOL
    np.testing.assert_allclose(
        corrected.return_result - plain.return_result, reference, atol=GRADIENT_TOL, rtol=0
    )
    np.testing.assert_array_equal(corrected.properties.scf_total_hessian, corrected.return_result)


@pytest.mark.parametrize("version", list(DISPERSION_CORRECTIONS))
def test_every_spelling_of_a_correction_is_the_same_calculation(version: str) -> None:
    _, spellings = DISPERSION_CORRECTIONS[version]
    energies = {
        s: compute(WATER, f"B3LYP-{s.upper()}", basis="sto-3g", grid=0).return_result for s in spellings
    }
    first = energies[spellings[0]]
    plain = compute(WATER, "b3lyp", basis="sto-3g", grid=0).return_result
    reference, _ = reference_energy_and_gradient(WATER, "b3lyp", version)
    assert abs(first - plain - reference) < ENERGY_TOL
    assert all(abs(energy - first) < 1e-12 for energy in energies.values()), energies


@pytest.mark.fast
@pytest.mark.parametrize(
    "method,suffix",
    [("b3lyp-d3foo", "-d3foo"), ("b3lyp-d3bjatm", "-d3bjatm"), ("b3lyp-d4:wb97x", "-d4:wb97x")],
)
def test_unknown_suffix_is_an_input_error_listing_the_supported(method: str, suffix: str) -> None:
    spec = {"driver": "energy", "model": {"method": method, "basis": "sto-3g"}}
    result = qcng.compute(AtomicInput(molecule=WATER, specification=spec), "pyscf")
    assert isinstance(result, FailedOperation)
    assert result.error.error_type == "input_error"
    message = result.error.error_message
    assert f"{suffix!r}" in message
    for supported in ("-d3bj (", "-d3zero (", "-d4 ("):
        assert supported in message


@pytest.mark.fast
def test_cache_keys_tell_the_corrections_apart() -> None:
    identity = program_identity("pyscf")
    keys = {
        method: fragment_key(
            "pyscf",
            identity,
            {
                "molecule": WATER.model_dump(),
                "specification": {"driver": "energy", "model": {"method": method, "basis": "6-31g"}},
            },
        )
        for method in ("b3lyp", "b3lyp-d3bj", "b3lyp-d4")
    }
    assert len(set(keys.values())) == 3
    # The corrected methods' keys hold pyscf-dispersion's version: new damping parameters, new keys.
    assert PySCFHarness.model_identity("b3lyp") is None
    assert PySCFHarness.model_identity("B3LYP-D3BJ") == f"pyscf-dispersion {dispersion_version()}"


def dispersion_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("pyscf-dispersion")


def test_one_cache_keeps_plain_and_corrected_results_apart(tmp_path) -> None:
    """Three model chemistries of one MBE share a cache: nothing is served across them, and a rerun
    serves each its own numbers."""
    methods = ("b3lyp", "b3lyp-d3bj", "b3lyp-d4")
    inputs = {m: mbe_input(2, method=m, bsse_type=["nocp"], keywords={"grid_level": 0}) for m in methods}

    def run_all() -> dict[str, Any]:
        executor = SequentialExecutor(cache=tmp_path / "cache")
        return {m: ManyBodyComputer.from_manybodyinput(mbin, executor=executor) for m, mbin in inputs.items()}

    first = run_all()
    assert [r.extras["qcmb_parsl"]["n_executed"] for r in first.values()] == [3, 3, 3]
    assert len(FragmentCache(tmp_path / "cache")) == 9
    energies = [r.return_result for r in first.values()]
    assert min(abs(a - b) for i, a in enumerate(energies) for b in energies[i + 1 :]) > 1e-5
    second = run_all()
    assert [r.extras["qcmb_parsl"]["n_cached"] for r in second.values()] == [3, 3, 3]
    assert [r.return_result for r in second.values()] == energies


def test_b3lyp_d3bj_mbe_on_threads_equals_upstream() -> None:
    """Water dimer B3LYP-D3(BJ)/6-31G, CP and no-CP, through Parsl against upstream's serial computer."""
    mbin = mbe_input(2, method="b3lyp-d3bj", basis="6-31g", bsse_type=["cp", "nocp"])
    with ParslExecutor("threads", max_workers=2, cache=False, progress=False) as executor:
        ours = ManyBodyComputer.from_manybodyinput(mbin, executor=executor)
    reference = qcmanybody.ManyBodyComputer.from_manybodyinput(json.loads(json.dumps(mbin)))
    assert ours.extras["qcmb_parsl"]["n_executed"] == 5
    assert abs(ours.return_result - reference.return_result) < 1e-9
    ours_props, reference_props = ours.properties.dict(), reference.properties.dict()
    numbers = {name for name, value in reference_props.items() if isinstance(value, float)}
    assert "cp_corrected_interaction_energy" in numbers and "nocp_corrected_interaction_energy" in numbers
    for name in numbers:
        assert abs(ours_props[name] - reference_props[name]) < 1e-9, name
    assert set(ours.component_results) == set(reference.component_results)
