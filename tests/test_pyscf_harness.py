"""The PySCF harness against real engines: NWChem references, finite differences, QCManyBody.

NWChem runs through QCEngine's stock harness with spherical basis functions (PySCF's default)
and a tight SCF threshold: NWChem's default leaves ~3e-7 Eh in a water trimer's HF energy.
"""

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import qcelemental.models as qcel_v1
import qcengine as qcng
from components import require_nwchem
from molecules import DIMER, GHOSTED_DIMER
from qcelemental.models.v2 import AtomicInput, FailedOperation, Molecule

from qcmb_parsl.engines.pyscf import KEYWORD_DEFAULTS, PySCFHarness, register_pyscf_harness

register_pyscf_harness()

pytestmark = pytest.mark.fast  # PySCF in this process (NWChem comparisons are marked nwchem)

NWCHEM_KEYWORDS = {"basis__spherical": True, "scf__thresh": 1e-8}

WATER = Molecule(
    symbols=["O", "H", "H"],
    geometry=[0.0, 0.0, 0.2217, 0.0, 1.4309, -0.8867, 0.0, -1.4309, -0.8867],
)
TRIMER = """
O      -2.76373224  -1.24377706  -0.15444566
H      -1.12357791  -2.06227970  -0.05243799
H      -3.80792362  -2.08705525   1.06090407
--
O       2.46924614  -1.75437739  -0.17092884
H       3.76368260  -2.21425403   1.00846104
H       2.30598330   0.07098445  -0.03942473
--
O       0.29127930   3.00875625   0.20308515
H      -1.21253048   1.95820900   0.10303324
H       0.10002049   4.24958115  -1.10222079
units bohr
"""
OH = Molecule(symbols=["O", "H"], geometry=[0.0, 0.0, 0.0, 0.0, 0.0, 1.8324], molecular_multiplicity=2)
OH_ANION = Molecule(symbols=["O", "H"], geometry=[0.0, 0.0, 0.0, 0.0, 0.0, 1.8324], molecular_charge=-1)


def run(
    molecule: Molecule,
    method: str,
    basis: str,
    driver: str = "energy",
    keywords: dict[str, Any] | None = None,
    program: str = "pyscf",
    **compute_kwargs: Any,
) -> Any:
    """One QCSchema v2 single point through qcengine.compute."""
    spec = {"driver": driver, "model": {"method": method, "basis": basis}, "keywords": keywords or {}}
    return qcng.compute(AtomicInput(molecule=molecule, specification=spec), program, **compute_kwargs)


def test_registration_is_idempotent() -> None:
    register_pyscf_harness()
    register_pyscf_harness()
    assert isinstance(qcng.get_program("pyscf"), PySCFHarness)


@pytest.mark.nwchem
@pytest.mark.parametrize("molecule", [WATER, DIMER, GHOSTED_DIMER], ids=["water", "dimer", "ghosted-dimer"])
@pytest.mark.parametrize("method,basis", [("hf", "6-31g*"), ("mp2", "cc-pvdz")])
def test_single_point_matches_nwchem(molecule: Molecule, method: str, basis: str) -> None:
    require_nwchem()
    ours = run(molecule, method, basis, raise_error=True)
    ref = run(molecule, method, basis, keywords=NWCHEM_KEYWORDS, program="nwchem", raise_error=True)
    assert abs(ours.return_result - ref.return_result) < 1e-6
    assert abs(ours.properties.scf_total_energy - ref.properties.scf_total_energy) < 1e-6
    assert ours.properties.calcinfo_nbasis == ref.properties.calcinfo_nbasis
    assert ours.properties.calcinfo_nalpha == ref.properties.calcinfo_nalpha
    if method == "mp2":
        assert abs(ours.properties.mp2_correlation_energy - ref.properties.mp2_correlation_energy) < 1e-6


@pytest.mark.nwchem
def test_ccsd_t_matches_nwchem() -> None:
    require_nwchem()
    ours = run(WATER, "ccsd(t)", "6-31g", raise_error=True)
    ref = run(WATER, "ccsd(t)", "6-31g", keywords=NWCHEM_KEYWORDS, program="nwchem", raise_error=True)
    assert abs(ours.return_result - ref.return_result) < 1e-6
    assert abs(ours.properties.ccsd_total_energy - ref.properties.ccsd_total_energy) < 1e-6


@pytest.mark.parametrize(
    "molecule,method,basis,all_coordinates",
    [
        (WATER, "hf", "6-31g", True),
        (WATER, "mp2", "6-31g", True),
        (GHOSTED_DIMER, "hf", "sto-3g", True),
        (WATER, "ccsd", "sto-3g", False),
    ],
    ids=["hf-water", "mp2-water", "hf-ghosted-dimer", "ccsd-water"],
)
def test_gradient_matches_finite_differences(
    molecule: Molecule, method: str, basis: str, all_coordinates: bool
) -> None:
    """Central differences of energies along every coordinate, or (CCSD, to save time) along one
    random direction, which still involves every row of the gradient."""
    step = 1e-3
    ncoord = 3 * len(molecule.symbols)
    analytic = run(molecule, method, basis, driver="gradient", raise_error=True)
    assert analytic.return_result.shape == (len(molecule.symbols), 3)
    np.testing.assert_array_equal(analytic.return_result, analytic.properties.return_gradient)
    if all_coordinates:
        directions = np.eye(ncoord)
    else:
        direction = np.random.default_rng(7).normal(size=ncoord)
        directions = direction[np.newaxis, :] / np.linalg.norm(direction)

    def energy(displacement: np.ndarray) -> float:
        geometry = molecule.geometry.flatten() + displacement
        moved = Molecule(**{**molecule.model_dump(), "geometry": geometry})
        return run(moved, method, basis, raise_error=True).return_result

    numeric = [(energy(step * d) - energy(-step * d)) / (2 * step) for d in directions]
    np.testing.assert_allclose(directions @ analytic.return_result.flatten(), numeric, atol=1e-6, rtol=0)


def test_hessian_matches_finite_differences_of_gradients() -> None:
    step = 1e-3
    analytic = run(WATER, "hf", "sto-3g", driver="hessian", raise_error=True)
    assert analytic.return_result.shape == (9, 9)
    np.testing.assert_array_equal(analytic.return_result, analytic.properties.return_hessian)

    def gradient(index: int, sign: float) -> np.ndarray:
        geometry = WATER.geometry.flatten()
        geometry[index] += sign * step
        moved = Molecule(**{**WATER.model_dump(), "geometry": geometry})
        return run(moved, "hf", "sto-3g", driver="gradient", raise_error=True).return_result.flatten()

    numeric = np.array([(gradient(i, 1.0) - gradient(i, -1.0)) / (2 * step) for i in range(9)])
    np.testing.assert_allclose(analytic.return_result, numeric, atol=1e-5, rtol=0)


@pytest.mark.nwchem
def test_water_trimer_mbe_matches_nwchem() -> None:
    """The whole QCManyBody path (v1 ManyBodyInput, CP and no-CP, ghost atoms) on both engines."""
    require_nwchem()
    from qcmanybody import ManyBodyComputer
    from qcmanybody.models import ManyBodyInput

    def mbe(program: str, keywords: dict[str, Any]) -> Any:
        return ManyBodyComputer.from_manybodyinput(
            ManyBodyInput(
                molecule=qcel_v1.Molecule.from_data(TRIMER),
                specification={
                    "driver": "energy",
                    "keywords": {"bsse_type": ["cp", "nocp"], "max_nbody": 3, "return_total_data": True},
                    "specification": {
                        "program": program,
                        "driver": "energy",
                        "model": {"method": "hf", "basis": "6-31g"},
                        "keywords": keywords,
                    },
                },
            )
        )

    ours, ref = mbe("pyscf", {}), mbe("nwchem", NWCHEM_KEYWORDS)
    for name in (
        "cp_corrected_interaction_energy",
        "nocp_corrected_interaction_energy",
        "nocp_corrected_total_energy",
    ):
        assert abs(getattr(ours.properties, name) - getattr(ref.properties, name)) < 1e-6, name
    assert ours.properties.cp_corrected_interaction_energy < 0


def test_b3lyp_energy_is_sensible() -> None:
    dft = run(WATER, "B3LYP", "6-31g", raise_error=True)
    hf = run(WATER, "hf", "6-31g", raise_error=True)
    assert -76.5 < dft.return_result < hf.return_result
    assert dft.properties.scf_total_energy == dft.return_result


@pytest.mark.nwchem
def test_b3lyp_matches_nwchem_within_grid_error() -> None:
    require_nwchem()
    ours = run(WATER, "b3lyp", "6-31g", raise_error=True)
    ref = run(WATER, "b3lyp", "6-31g", keywords=NWCHEM_KEYWORDS, program="nwchem", raise_error=True)
    # Different quadrature grids: measured 6e-7 Eh apart with NWChem's default grid.
    assert abs(ours.return_result - ref.return_result) < 1e-5


def test_open_shell_and_charged() -> None:
    """UHF/UMP2 for the OH radical and RHF for OH-.

    No NWChem reference: its stock harness lands OH in an excited state (-75.206 Eh, UHF) and
    cannot run MP2 on its default ROHF.  UHF/6-31G for the X 2Pi ground state is -75.363 Eh.
    """
    radical = run(OH, "mp2", "6-31g", raise_error=True)
    assert (radical.properties.calcinfo_nalpha, radical.properties.calcinfo_nbeta) == (5, 4)
    assert -75.37 < radical.properties.scf_total_energy < -75.36
    assert radical.properties.mp2_total_energy < radical.properties.scf_total_energy
    anion = run(OH_ANION, "hf", "6-31g", raise_error=True)
    assert (anion.properties.calcinfo_nalpha, anion.properties.calcinfo_nbeta) == (5, 5)
    assert anion.properties.nuclear_repulsion_energy == radical.properties.nuclear_repulsion_energy
    assert -75.5 < anion.return_result < -75.0


def test_keywords_cartesian_and_frozen_core() -> None:
    spherical = run(WATER, "mp2", "6-31g*", raise_error=True)
    cartesian = run(WATER, "mp2", "6-31g*", keywords={"cartesian": True}, raise_error=True)
    assert (spherical.properties.calcinfo_nbasis, cartesian.properties.calcinfo_nbasis) == (18, 19)
    assert cartesian.return_result < spherical.return_result
    frozen = run(WATER, "mp2", "6-31g*", keywords={"FROZEN_CORE": True}, raise_error=True)
    assert spherical.properties.mp2_correlation_energy < frozen.properties.mp2_correlation_energy < 0


def test_unconverged_scf_is_a_failure_not_a_number() -> None:
    result = run(WATER, "hf", "6-31g", keywords={"max_cycle": 1})
    assert isinstance(result, FailedOperation) and not result.success
    assert result.error.error_type == "convergence_error"
    assert "converge" in result.error.error_message


@pytest.mark.parametrize(
    "method,driver,keywords,fragment",
    [
        ("nonsense", "energy", {}, "method 'nonsense' is not known to PySCF (methods: hf (or scf), mp2"),
        ("ccsd(t)", "gradient", {}, "no analytic gradient"),
        ("hf", "properties", {}, "energy, gradient or hessian"),
        ("hf", "energy", {"basis__spherical": True}, "(PySCF's keywords: conv_tol, conv_tol_grad"),
        ("hf", "energy", {"max_cycle": "ten"}, "PySCF keyword 'max_cycle' must be an integer, got 'ten'"),
    ],
    ids=["method", "method-driver", "driver", "keyword", "keyword-type"],
)
def test_input_errors(method: str, driver: str, keywords: dict[str, Any], fragment: str) -> None:
    result = run(WATER, method, "sto-3g", driver=driver, keywords=keywords)
    assert isinstance(result, FailedOperation)
    assert result.error.error_type == "input_error"
    assert fragment in result.error.error_message


def test_v1_and_v2_inputs_agree() -> None:
    v2 = run(WATER, "hf", "sto-3g", driver="gradient", raise_error=True)
    v1_input = qcel_v1.AtomicInput(
        molecule=qcel_v1.Molecule(**WATER.model_dump(exclude={"schema_version", "schema_name"})),
        driver="gradient",
        model={"method": "HF", "basis": "STO-3G"},
    )
    v1 = qcng.compute(v1_input, "pyscf", raise_error=True)
    assert isinstance(v1, qcel_v1.AtomicResult) and v1.success
    assert v1.provenance.creator == "PySCF"
    np.testing.assert_allclose(v1.return_result, v2.return_result, atol=1e-10)


def test_task_config_scratch_threads_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pyscf import lib

    scratch, cwd = tmp_path / "scratch", tmp_path / "cwd"
    scratch.mkdir()
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    threads_before = lib.num_threads()
    result = run(
        WATER,
        "ccsd(t)",
        "sto-3g",
        raise_error=True,
        task_config={"ncores": threads_before + 1, "memory": 0.5, "scratch_directory": str(scratch)},
    )
    assert result.properties.ccsd_prt_pr_total_energy == result.return_result
    assert result.return_result < result.properties.ccsd_total_energy
    assert lib.num_threads() == threads_before
    assert list(scratch.iterdir()) == [] and list(cwd.iterdir()) == []


def test_keyword_defaults_are_documented() -> None:
    import qcmb_parsl.engines.pyscf as harness

    for keyword in KEYWORD_DEFAULTS:
        assert keyword in harness.__doc__
