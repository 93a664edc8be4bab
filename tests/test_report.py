"""Report pictures: the fragment timeline from provenance and the n-body convergence, as PNG files.

Results come from real runs (PySCF on the ``threads`` preset); the lane assignment is also checked on
hand-made records, where the expected rows are known exactly.
"""

from __future__ import annotations

import json
import os
import socket

import pytest
from matplotlib.image import imread
from molecules import mbe_input

from qcmb_parsl import ManyBodyComputer, ParslExecutor
from qcmb_parsl.errors import InputError
from qcmb_parsl.frontend.files import write_result
from qcmb_parsl.frontend.pictures import (
    FragmentRecord,
    assign_lanes,
    fragment_records,
    model_label,
    plot_convergence,
    plot_timeline,
    write_report,
)
from qcmb_parsl.v2 import ManyBodyComputer as ManyBodyComputerV2

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 1000
    image = imread(path)
    assert image.ndim == 3 and min(image.shape[:2]) > 100


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A trimer no-CP/CP MBE(3) computed, then the same again from the cache, and a v2 dimer."""
    cache = tmp_path_factory.mktemp("report_cache")
    mbin = mbe_input(3, bsse_type=["nocp", "cp"])
    with ParslExecutor("threads", max_workers=2, cache_dir=cache, progress=False) as executor:
        computed = ManyBodyComputer.from_manybodyinput(mbin, executor=executor)
        cached = ManyBodyComputer.from_manybodyinput(mbin, executor=executor)
        v2 = ManyBodyComputerV2.from_manybodyinput(mbe_input(2, schema_version=2), executor=executor)
    return {"computed": computed, "cached": cached, "v2": v2}


def test_records_come_from_provenance(results):
    result = results["computed"]
    records = fragment_records(result)
    assert len(records) == len(result.component_results) == result.extras["qcmb_parsl"]["n_tasks"]
    assert {r.nbody for r in records} == {1, 2, 3}
    assert {r.worker for r in records} == {f"{socket.gethostname()}:{os.getpid()}"}  # threads: this process
    assert not any(r.cached for r in records)
    trimer = [r for r in records if r.nbody == 3]
    assert len(trimer) == 1 and trimer[0].wall_time > 0
    assert all(r.cached for r in fragment_records(results["cached"]))
    assert {r.nbody for r in fragment_records(results["v2"])} == {1, 2}


@pytest.mark.fast
def test_lanes_split_a_process_only_where_fragments_overlap():
    def record(label, worker, start, wall):
        return FragmentRecord(label, "mc", 1, worker, start, wall, cached=False)

    records = [
        record("a", "n1:10", 0.0, 2.0),
        record("b", "n1:10", 1.0, 2.0),  # overlaps a: a second lane of the same process
        record("c", "n1:10", 2.0, 1.0),  # starts when a ends: back in lane 1
        record("d", "n2:20", 0.5, 5.0),
        record("e", "n2:20", 5.5, 1.0),
    ]
    assert assign_lanes(records) == {
        "a": "n1:10 #1", "b": "n1:10 #2", "c": "n1:10 #1", "d": "n2:20", "e": "n2:20",
    }


def test_pictures_are_png(results, tmp_path):
    for name, result in results.items():
        timeline = plot_timeline(result, tmp_path / f"{name}_timeline.png")
        convergence = plot_convergence(result, tmp_path / f"{name}_convergence.png")
        assert_png(timeline)
        assert_png(convergence)


def test_write_report_from_files(results, tmp_path):
    path = write_result(results["computed"], tmp_path / "trimer.result.json")
    written = write_report(path, tmp_path / "pictures")
    assert written == {
        "timeline": tmp_path / "pictures" / "trimer_timeline.png",
        "convergence": tmp_path / "pictures" / "trimer_convergence.png",
    }
    for picture in written.values():
        assert_png(picture)
    assert model_label(results["computed"]) == "hf/sto-3g"


def test_result_without_fragment_results_gets_the_convergence_only(results, tmp_path, caplog):
    data = json.loads(write_result(results["computed"], tmp_path / "full.json").read_text())
    data["component_results"] = {}
    bare = tmp_path / "bare.result.json"
    bare.write_text(json.dumps(data))
    written = write_report(bare, tmp_path)
    assert list(written) == ["convergence"]
    assert_png(written["convergence"])
    assert "no fragment provenance" in caplog.text and "component_results" in caplog.text


@pytest.mark.fast
def test_not_a_result_is_an_input_error(tmp_path):
    (tmp_path / "broken.json").write_text("[1, 2")
    with pytest.raises(InputError, match="not valid JSON"):
        write_report(tmp_path / "broken.json", tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        write_report(tmp_path / "absent.json", tmp_path)
