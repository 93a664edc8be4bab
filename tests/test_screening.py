"""Screened expansions end to end: real PySCF HF/STO-3G, real executors and cache, upstream's numbers.

The water trimer of the tests has its fragment pairs 1.95, 3.07 (waters 2-3) and 3.16 Å (waters 1-3)
apart (minimum interatomic distance), so a 3.1 Å cutoff drops the dimer 1-3 and with it the trimer:
small enough for the dropped increments to be computed from upstream's own fragments and summed by
hand.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import qcmanybody
from drivers import run_cli
from molecules import mbe_input

from qcmb_parsl import ManyBodyComputer, ParslExecutor, SequentialExecutor
from qcmb_parsl.frontend.campaign import run_campaign
from qcmb_parsl.frontend.cli import main
from qcmb_parsl.screening import Screening

ENERGY_TOL = 1e-10
GRADIENT_TOL = 1e-9
DROPS_1_3 = {2: 3.1}
BEYOND = {2: 50.0}


def gradient_input() -> dict[str, Any]:
    return mbe_input(3, driver="gradient", bsse_type=["cp", "nocp"], max_nbody=3)


@pytest.fixture(scope="module")
def upstream_gradient():
    """Upstream's serial ManyBodyComputer on the trimer: the reference and its fragments."""
    return qcmanybody.ManyBodyComputer.from_manybodyinput(gradient_input())


@pytest.fixture(scope="module")
def threads(tmp_path_factory):
    """A Parsl thread pool with a cache of its own, shared by the tests that reuse each other's fragments."""
    cache = tmp_path_factory.mktemp("screening") / "cache"
    with ParslExecutor("threads", max_workers=2, cache_dir=str(cache), progress=False) as executor:
        yield executor


@pytest.fixture(scope="module")
def beyond_the_cluster(threads):
    return ManyBodyComputer.from_manybodyinput(gradient_input(), executor=threads, screening=BEYOND)


def test_cutoffs_beyond_the_cluster_give_upstreams_numbers(beyond_the_cluster, upstream_gradient):
    ours, ref = beyond_the_cluster, upstream_gradient
    assert type(ours) is type(ref)
    ours_props, ref_props = ours.properties.dict(), ref.properties.dict()
    assert {k for k, v in ours_props.items() if v is not None} == {k for k, v in ref_props.items() if v is not None}
    for name, value in ref_props.items():
        if isinstance(value, float):
            assert abs(ours_props[name] - value) <= ENERGY_TOL, name
        elif value is not None and not isinstance(value, (str, int)):
            np.testing.assert_allclose(ours_props[name], value, atol=GRADIENT_TOL, rtol=0, err_msg=name)
    np.testing.assert_allclose(ours.return_result, ref.return_result, atol=GRADIENT_TOL, rtol=0)
    assert set(ours.component_results) == set(ref.component_results)
    levels = ours.extras["qcmb_parsl"]["screening"]["levels"]
    assert {n: (level["n_kept"], level["n_dropped"]) for n, level in levels.items()} == {"2": (3, 0), "3": (1, 0)}


def increment(values: dict[str, Any], mc: str, subsystem: tuple[int, ...], basis: tuple[int, ...] | None) -> Any:
    """ΔE (or ΔG) of ``subsystem`` by hand, from upstream's fragment values (``basis`` None: each part in
    its own basis, no-CP; else every part in ``basis``, CP)."""
    parts = {
        (1, 3): [((1, 3), 1), ((1,), -1), ((3,), -1)],
        (1, 2, 3): [((1, 2, 3), 1), ((1, 2), -1), ((1, 3), -1), ((2, 3), -1), ((1,), 1), ((2,), 1), ((3,), 1)],
    }[subsystem]
    return sum(sign * values[json.dumps([mc, list(p), list(basis or p)])] for p, sign in parts)


def test_dropped_increments_summed_by_hand_and_fragments_from_the_unscreened_cache(
    threads, beyond_the_cluster, upstream_gradient
):
    screened = ManyBodyComputer.from_manybodyinput(gradient_input(), executor=threads, screening=DROPS_1_3)
    run = screened.extras["qcmb_parsl"]
    assert run["n_tasks"] == 10 and run["n_cached"] == 10 and run["n_executed"] == 0  # of 13
    levels = run["screening"]["levels"]
    assert levels["2"] == {"cutoff": 3.1, "n_kept": 2, "n_dropped": 1, "kept": [[1, 2], [2, 3]]}
    assert levels["3"] == {"cutoff": 3.1, "n_kept": 0, "n_dropped": 1, "kept": []}
    assert run["screening"]["cutoffs"] == {"2": 3.1}

    ref = upstream_gradient.properties.dict()
    ours = screened.properties.dict()
    mc = json.loads(next(iter(upstream_gradient.component_properties)))[0]
    cluster = (1, 2, 3)
    for kind, name, basis in (("energy", "return_energy", None), ("gradient", "return_gradient", None)):
        values = {label: getattr(p, name) for label, p in upstream_gradient.component_properties.items()}
        nocp = [increment(values, mc, s, None) for s in ((1, 3), (1, 2, 3))]
        cp = [increment(values, mc, s, cluster) for s in ((1, 3), (1, 2, 3))]
        tol = ENERGY_TOL if kind == "energy" else GRADIENT_TOL
        expected = {
            f"nocp_corrected_total_{kind}_through_2_body": ref[f"nocp_corrected_total_{kind}_through_2_body"] - nocp[0],
            f"nocp_corrected_total_{kind}_through_3_body": ref[f"nocp_corrected_total_{kind}_through_3_body"]
            - nocp[0]
            - nocp[1],
            f"cp_corrected_interaction_{kind}_through_2_body": ref[f"cp_corrected_interaction_{kind}_through_2_body"]
            - cp[0],
            f"cp_corrected_total_{kind}_through_3_body": ref[f"cp_corrected_total_{kind}_through_3_body"]
            - cp[0]
            - cp[1],
        }
        for prop, value in expected.items():
            np.testing.assert_allclose(ours[prop], value, atol=tol, rtol=0, err_msg=prop)
        assert np.max(np.abs(np.asarray(nocp[1]))) > 100 * tol  # the check can tell what was dropped
    np.testing.assert_allclose(screened.return_result, ours["cp_corrected_total_gradient"], atol=0, rtol=0)


def test_screened_gradient_is_the_derivative_of_the_screened_energy(threads):
    """Central differences of the screened energy (the kept set frozen) against its gradient."""
    gradient = ManyBodyComputer.from_manybodyinput(gradient_input(), executor=threads, screening=DROPS_1_3)
    selection = ManyBodyComputer.prepare(gradient_input(), DROPS_1_3).qcmb_core.selection
    step, atom = 2e-3, 6  # Bohr; the oxygen of water 3, in the kept dimer 2-3 and the dropped 1-3
    energies = []
    for sign in (1, -1):
        mbin = mbe_input(3, bsse_type=["nocp"], max_nbody=3)
        geometry = np.reshape(mbin["molecule"]["geometry"], (-1, 3))
        geometry[atom, 0] += sign * step
        mbin["molecule"]["geometry"] = geometry.ravel().tolist()
        result = ManyBodyComputer.from_manybodyinput(mbin, executor=threads, screening=selection)
        energies.append(result.properties.nocp_corrected_total_energy)
    numerical = (energies[0] - energies[1]) / (2 * step)
    analytic = np.asarray(gradient.properties.nocp_corrected_total_gradient)[atom, 0]
    assert abs(numerical - analytic) < 2e-6, (numerical, analytic)


def test_unscreened_runs_reuse_the_fragments_of_screened_ones(tmp_path):
    mbin = mbe_input(3, bsse_type=["nocp"], max_nbody=3)
    with SequentialExecutor(cache=tmp_path / "cache") as executor:
        screened = ManyBodyComputer.from_manybodyinput(mbin, executor=executor, screening=DROPS_1_3)
        complete = ManyBodyComputer.from_manybodyinput(mbin, executor=executor)
    assert (screened.extras["qcmb_parsl"]["n_executed"], screened.extras["qcmb_parsl"]["n_tasks"]) == (5, 5)
    run = complete.extras["qcmb_parsl"]
    assert (run["n_tasks"], run["n_cached"], run["n_executed"]) == (7, 5, 2)
    assert "screening" not in run


def test_campaign_recomputes_a_result_screened_otherwise_from_the_cache(tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "trimer.json").write_text(json.dumps(mbe_input(3, bsse_type=["nocp"], max_nbody=2)))
    out = tmp_path / "out"
    with SequentialExecutor(cache=tmp_path / "cache") as executor:
        first = run_campaign([inputs], executor, out, screening=Screening.from_user(DROPS_1_3))
        same = run_campaign([inputs], executor, out, screening=Screening.from_user(DROPS_1_3))
        complete = run_campaign([inputs], executor, out)
    assert [e.status for e in (first.entries[0], same.entries[0], complete.entries[0])] == [
        "computed",
        "skipped",
        "computed",
    ]
    assert (first.entries[0].n_executed, complete.entries[0].n_executed, complete.entries[0].n_cached) == (5, 1, 5)
    result = json.loads((out / "trimer.result.json").read_text())
    assert "screening" not in result["extras"]["qcmb_parsl"]


def test_run_with_screen_writes_the_record_and_marks_the_table(tmp_path):
    (tmp_path / "trimer.json").write_text(json.dumps(mbe_input(3, bsse_type=["nocp"], max_nbody=3)))
    proc = run_cli("run", "trimer.json", "--screen", "2:3.1", "--preset", "local", "--workers", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "trimer.result.json").read_text())
    run = result["extras"]["qcmb_parsl"]
    assert run["n_tasks"] == run["n_executed"] == 5 and run["executor"] == "local"
    assert run["screening"]["levels"]["2"]["kept"] == [[1, 2], [2, 3]]
    assert "Many-body expansion (Eh), screened" in proc.stdout
    assert "≤ 3.1 Å: 2 of 3" in proc.stdout and "≤ 3.1 Å: 0 of 1" in proc.stdout


@pytest.mark.fast
@pytest.mark.parametrize(
    ("screen", "reason"),
    [
        ("2:near", "--screen '2:near': cutoff 'near' of level 2 is not a distance in Angstrom"),
        ("1:5", "--screen '1:5': level '1': monomers are always kept"),
        ("2:5,3:8", "the 3-body cutoff 8 is larger than the 2-body cutoff 5"),
        ("3:5", "level 3 is above the expansion's max_nbody 2"),
    ],
)
@pytest.mark.parametrize("command", ["run", "campaign", "optimize"])
def test_bad_screens_are_one_line_and_exit_2_before_anything_runs(tmp_path, capsys, command, screen, reason):
    dimer = tmp_path / "dimer.json"
    dimer.write_text(json.dumps(mbe_input(2, bsse_type=["nocp"])))
    argv = [command, str(dimer), "--screen", screen, "--preset", "threads", "--cache-dir", str(tmp_path / "c")]
    if command == "campaign":
        argv += ["--out-dir", str(tmp_path / "out")]
    if command == "optimize":
        dimer.write_text(json.dumps(optimization_input(max_nbody=2)))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("qcmb-parsl: error: ") and reason in err, err
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("*.result.json"))


def optimization_input(max_nbody: int = 2) -> dict[str, Any]:
    """Upstream's shape: the trimer at HF/STO-3G, no-CP, loose convergence."""
    mbin = mbe_input(3, bsse_type=["nocp"], max_nbody=max_nbody, schema_version=2)
    specification = mbin["specification"]
    specification["schema_name"] = "qcschema_many_body_specification"
    specification["protocols"] = {"cluster_results": "none"}
    return {
        "initial_molecule": mbin["molecule"],
        "specification": {
            "specification": specification,
            "keywords": {"convergence_set": "GAU_LOOSE"},
            "protocols": {"trajectory_results": "all"},
        },
    }


def test_screened_optimization_keeps_the_subsystems_of_its_first_geometry(tmp_path, capsys):
    """Water 3 moved 4 Å away from the dimer: a 4 Å cutoff keeps the dimer 1-2 only, at every step."""
    data = optimization_input()
    geometry = np.reshape(data["initial_molecule"]["geometry"], (-1, 3))
    geometry[6:] += [0.0, 0.0, 4.0 / 0.52917721067]
    data["initial_molecule"]["geometry"] = geometry.ravel().tolist()
    (tmp_path / "opt.json").write_text(json.dumps(data))
    argv = ["optimize", str(tmp_path / "opt.json"), "--screen", "2:4", "--preset", "threads", "--quiet"]
    assert main(argv) == 0
    printed = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert "screened: 1 of 3 2-body kept at the initial geometry, 0 subsystems across a cutoff" in printed
    summary = json.loads((tmp_path / "opt.result.json").read_text())["extras"]["qcmb_parsl"]
    assert {step["run"]["n_tasks"] for step in summary["steps"]} == {4}  # 3 monomers, the dimer 1-2
    record = summary["screening"]
    assert record["kept_at"] == "initial geometry" and record["levels"]["2"]["kept"] == [[1, 2]]
    assert record["at_final_geometry"] == {"added": [], "removed": []}
    assert all(step["run"]["screening"]["levels"]["2"]["kept"] == [[1, 2]] for step in summary["steps"])
