"""Shared test set-up: a private fragment cache per test, one core per upstream fragment, and the
real HPC services (a single-node Slurm, an MPI installation) that tests ask for by fixture name."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from components import require
from drivers import SESSION_MARKER
from hpc_services import MpiInstall, SlurmCluster, find_mpiexec, mpi4py_missing, slurm_missing

# Every process this session starts (drivers, interchanges, worker pools, templates, engines) inherits
# it, so that tests which look for processes find this session's and never another session's.
os.environ[SESSION_MARKER] = str(os.getpid())


@pytest.fixture(autouse=True)
def private_cache_dir(tmp_path, monkeypatch):
    """Every test gets an empty default cache, so counts of executed fragments mean something."""
    directory = tmp_path / "fragment-cache"
    monkeypatch.setenv("QCMB_PARSL_CACHE_DIR", str(directory))
    return directory


@pytest.fixture
def private_tmpdir() -> Iterator[Path]:
    """An empty ``$TMPDIR`` for the drivers a test starts, to see what they leave there. Its path is
    short, as a user's is: a worker pool's multiprocessing socket lives below it, and a socket's path
    holds 107 characters (pytest's ``tmp_path`` is longer than a run's blocks can use)."""
    directory = Path(tempfile.mkdtemp(prefix="qcmb-test-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(autouse=True)
def one_core_per_upstream_fragment(monkeypatch):
    """Upstream's serial references pass no task_config, so QCEngine would give every tiny fragment
    all cores: OpenMP threads only add synchronisation there (10x slower on a busy 2-core machine)."""
    monkeypatch.setenv("QCENGINE_NCORES", "1")


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A running single-node Slurm for the whole session (skips, or fails under CI, where impossible)."""
    reason = slurm_missing()
    require(reason is None, f"no local Slurm: {reason}")
    with SlurmCluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def mpi_install() -> MpiInstall:
    """Open MPI or MPICH's mpiexec plus mpi4py (skips, or fails under CI, where missing)."""
    install = find_mpiexec()
    require(install is not None, "no mpiexec: apt-get install -y openmpi-bin libopenmpi-dev (or mpich)")
    reason = mpi4py_missing()
    require(reason is None, reason or "")
    return install


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With pytest-xdist (``make test`` runs one pytest worker per core), the tests of one Slurm stay on
    one worker: a machine has one munged, so two test Slurms cannot run side by side."""
    for item in items:
        if "slurm_cluster" in getattr(item, "fixturenames", ()) or item.get_closest_marker("slurm"):
            item.add_marker(pytest.mark.xdist_group("slurm"))
