"""GFN-xTB as program "xtb" (computed by tblite): results equal to upstream QCManyBody's serial computer on
the same engine, in a process of its own and on local workers; what xtb cannot do refused before
anything runs; calls spread over every worker while fragments remain to share."""

from __future__ import annotations

import gc
import json
from dataclasses import replace

import numpy as np
import pytest
import qcengine
import qcmanybody
from components import require
from molecules import mbe_input

from qcmb_parsl import InputError, ManyBodyComputer, ParslExecutor, SequentialExecutor
from qcmb_parsl.cache import FragmentCache
from qcmb_parsl.engines.xtb import XTBHarness
from qcmb_parsl.execution.app import compute_bundle, job_text
from qcmb_parsl.execution.jobs import JobSettings
from qcmb_parsl.frontend.cli import main
from qcmb_parsl.resources import WorkerResources

require(XTBHarness.found(), "tblite is not installed (pip install 'qcmb_parsl[xtb]')")


def xtb_input(n: int, driver: str = "gradient", bsse: str = "nocp", **specification) -> dict:
    data = mbe_input(n, method="GFN2-xTB", basis=None, program="xtb", driver=driver, bsse_type=[bsse])
    data["specification"]["specification"].update(specification)
    return data


def assert_equal_to_upstream(result, data: dict) -> None:
    """Upstream's serial computer on the same engine: 1e-9 Eh for energies, 1e-8 for gradient elements."""
    reference = qcmanybody.ManyBodyComputer.from_manybodyinput(data)
    assert abs(result.properties.return_energy - reference.properties.return_energy) < 1e-9
    np.testing.assert_allclose(result.return_result, reference.return_result, rtol=0, atol=1e-8)


@pytest.mark.fast
def test_xtb_trimer_in_processes_of_their_own_equals_upstream_serial():
    data = xtb_input(3)
    result = ManyBodyComputer.from_manybodyinput(data, executor=SequentialExecutor())
    assert_equal_to_upstream(result, data)
    provenance = next(iter(result.component_results.values())).provenance
    assert provenance.creator == "tblite"


@pytest.mark.fast
def test_a_run_leaves_the_garbage_collector_as_it_found_it():
    """During a run, what was alive when it began (plan, keys) is frozen out of the collector's walks;
    after it, thawed again. Objects someone else froze stay frozen, and a collector turned off stays off."""
    data = xtb_input(2)
    computer = ManyBodyComputer.prepare(data)
    executor = SequentialExecutor(isolate=False)
    thresholds = gc.get_threshold()
    frozen_during: list[int] = []
    report = executor.run(computer.fragment_tasks(), lambda *_: frozen_during.append(gc.get_freeze_count()))
    assert min(frozen_during) > 0
    assert gc.get_freeze_count() == 0 and gc.isenabled() and gc.get_threshold() == thresholds
    assert_equal_to_upstream(computer.assemble(report), data)
    theirs = [[]]  # frozen by someone else: the collector's generations no longer list it
    gc.disable()
    gc.freeze()
    try:
        executor.run(computer.fragment_tasks())
        assert not gc.isenabled() and gc.get_freeze_count() > 0
        assert all(obj is not theirs for obj in gc.get_objects())
    finally:
        gc.unfreeze()
        gc.enable()


@pytest.mark.fast
def test_an_expansion_that_drops_fragment_results_keeps_their_return_properties_only(tmp_path):
    """Upstream drops the fragments' AtomicResults unless the protocol keeps them: the run then keeps
    only what upstream's analysis reads (computed and cached alike) and the cache the whole result;
    an identical fragment of an input that keeps them (a campaign's) still gets its whole result."""
    data = xtb_input(3, driver="energy")
    data["specification"]["protocols"] = {"component_results": "none"}
    computer = ManyBodyComputer.prepare(data)
    dropped = computer.fragment_tasks()
    twins = [
        replace(task, label=f"kept:{task.label}")
        for task in ManyBodyComputer.prepare(xtb_input(3, driver="energy")).fragment_tasks()[:2]
    ]
    assert not any(task.keep_result for task in dropped) and all(task.keep_result for task in twins)
    executor = SequentialExecutor(isolate=False, cache=tmp_path)
    for source in ("computed", "cached"):
        report = executor.run([*dropped, *twins])
        assert report.results[dropped[-1].label].source.value == source
        for task in dropped[2:]:
            result = report.results[task.label].result
            assert list(result) == ["properties"] and "return_energy" in result["properties"]
            assert set(result["properties"]) <= {"return_energy", "return_gradient", "return_hessian"}
        for task in twins:
            assert report.results[task.label].result["schema_name"] == "qcschema_output"
        assert_equal_to_upstream(computer.assemble(report), data)
    keys = computer.cache_keys()
    stored = FragmentCache(tmp_path).get_many({keys[task.label]: task.atomic_input for task in dropped})
    assert len(stored) == len(dropped)
    assert all(json.loads(hit.result_json)["molecule"]["symbols"] for hit in stored.values())


@pytest.mark.fast
def test_jobs_cross_to_parsl_workers_as_json_text_and_are_answered_alike():
    """The Parsl back-end sends a call's jobs as JSON text (Parsl's dill pickles a nested dict item by item,
    in pure Python): the text holds the same jobs, and a worker answers it as it answers the dicts."""
    tasks = ManyBodyComputer.prepare(xtb_input(2)).fragment_tasks()
    jobs = [JobSettings(WorkerResources(), isolate=False).job(task) for task in tasks]
    text = job_text(jobs)
    assert json.loads(text) == jobs
    answers = [[json.loads(e["result_json"]) for e in compute_bundle(call)] for call in (text, jobs)]
    for from_text, from_dicts in zip(*answers, strict=True):
        assert abs(from_text["properties"]["return_energy"] - from_dicts["properties"]["return_energy"]) < 1e-9
        np.testing.assert_allclose(from_text["return_result"], from_dicts["return_result"], rtol=0, atol=1e-8)


@pytest.mark.fast
def test_stock_keywords_reach_tblite_in_its_units():
    """electronic_temperature is in K for the stock harness and in Eh for tblite: the harness converts.
    A stretched H2 has a gap small enough for the Fermi smearing to show (1e-2 Eh from 300 to 3000 K)."""
    from tblite.interface import Calculator

    geometry = [0.0, 0.0, 0.0, 0.0, 0.0, 5.0]
    task = {"molecule": {"symbols": ["H", "H"], "geometry": geometry}, "driver": "energy",
            "model": {"method": "gfn2-xtb"},
            "keywords": {"electronic_temperature": 3000.0, "max_iterations": 100, "accuracy": 0.5}}
    result = qcengine.compute(task, "xtb", raise_error=True, task_config={"ncores": 1, "retries": 0})
    direct = Calculator("GFN2-xTB", np.array([1, 1]), np.array(geometry).reshape(-1, 3))
    direct.set("verbosity", 0)
    direct.set("temperature", 3000.0 * 3.166811563e-6)
    direct.set("max-iter", 100)
    direct.set("accuracy", 0.5)
    assert abs(result.return_result - direct.singlepoint().get("energy")) < 1e-9
    default = qcengine.compute({**task, "keywords": {}}, "xtb", raise_error=True, task_config={"ncores": 1})
    assert abs(result.return_result - default.return_result) > 1e-3
    assert result.model.method == "gfn2-xtb"  # answers the input as given
    assert XTBHarness.canonical_keywords({"Electronic_Temperature": 300, "max_iterations": 250}) == {}


@pytest.mark.fast
@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"bsse": "cp"}, "bsse_type cp needs ghost atoms, which xtb does not have: use bsse_type nocp"),
        ({"bsse": "vmfc"}, "bsse_type vmfc needs ghost atoms"),
        ({"model": {"method": "GFN0-xTB"}}, "method 'GFN0-xTB' is not known to xtb; use GFN2-xTB or GFN1-xTB"),
        ({"model": {"method": "GFN2-xTB", "basis": "sto-3g"}}, "xtb takes no basis set (got 'sto-3g')"),
        ({"keywords": {"solvent": "water"}}, "keyword 'solvent' is not known to xtb"),
        ({"driver": "hessian"}, "driver 'hessian' is not one xtb runs: energy, gradient"),
    ],
)
def test_what_xtb_cannot_do_is_one_line_before_anything_runs(tmp_path, capsys, change, reason):
    change = dict(change)
    data = xtb_input(2, change.pop("driver", "gradient"), change.pop("bsse", "nocp"), **change)
    with pytest.raises(InputError) as refused:
        ManyBodyComputer.prepare(data)
    assert str(refused.value) == reason or str(refused.value).startswith(reason)
    path = tmp_path / "dimer.json"
    path.write_text(json.dumps(data))
    assert main(["run", str(path), "--preset", "threads", "--out", str(tmp_path / "out.json")]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and reason in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dimer.json"]


def test_a_few_tiny_fragments_travel_in_a_call_per_worker_and_equal_upstream_serial():
    """Three fragments cached (the dimer's), four new ones of the same model chemistry: the cache's wall
    times say they are tiny (bundles of 60 s: tiny however loaded the machine), and they go in two
    calls of two, one per worker, never in one call of four."""
    with ParslExecutor("local", max_workers=2, progress=False, cache=True, bundle_seconds=60) as executor:
        ManyBodyComputer.from_manybodyinput(xtb_input(2), executor=executor)
        data = xtb_input(3)
        result = ManyBodyComputer.from_manybodyinput(data, executor=executor)
    assert_equal_to_upstream(result, data)
    computed = [
        atomic.extras["qcmb_parsl"] for atomic in result.component_results.values()
        if atomic.extras["qcmb_parsl"]["source"] == "computed"
    ]
    assert len(computed) == 4
    calls = {provenance["parsl_task_id"] for provenance in computed}
    assert len(calls) == 2, computed
