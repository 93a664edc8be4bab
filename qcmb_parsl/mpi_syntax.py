"""MPI inside a fragment: QCEngine's mpiexec settings from what Parsl's MPIExecutor provides.

Parsl's MPIExecutor gives each task a ready launch prefix (``$PARSL_MPI_PREFIX``, e.g. ``srun --ntasks 2
--ntasks-per-node 2 --nodelist n1 --nodes 1 --mpi=pmix``) plus the counts as ``$PARSL_NUM_RANKS``,
``$PARSL_RANKS_PER_NODE`` and ``$PARSL_NUM_NODES``. QCEngine wants a template instead: its
``mpiexec_command`` must contain ``{total_ranks}`` (or ``{nnodes}``) and ``{ranks_per_node}``, which it
fills from ``nnodes``, ``ncores`` and ``cores_per_rank``. This module turns the one into the other, so a
fragment's engine (NWChem, ...) runs on exactly the ranks Parsl set aside for it.
"""

from __future__ import annotations

import functools
import logging
import os
import shlex
import shutil
import subprocess
from typing import Any, Literal

logger = logging.getLogger(__name__)

MpiFlavour = Literal["openmpi", "mpich", "unknown"]

#: Per launcher (the prefix's first word): the option giving the total rank count and the one giving
#: ranks per node, as Parsl's ``mpi_prefix_composer`` writes them.
_RANK_OPTIONS: dict[str, tuple[str, str]] = {
    "srun": ("--ntasks", "--ntasks-per-node"),
    "mpiexec": ("-n", "-ppn"),
    "aprun": ("-n", "-N"),
}


@functools.cache
def mpi_flavour(mpiexec: str = "mpiexec") -> MpiFlavour:
    """Which MPI ``mpiexec`` belongs to: Open MPI and MPICH spell their options differently."""
    path = shutil.which(mpiexec)
    if path is None:
        return "unknown"
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (out.stdout + out.stderr).lower()
    if "open mpi" in text or "openrte" in text:
        return "openmpi"
    if "hydra" in text or "mpich" in text:
        return "mpich"
    return "unknown"


def one_pool_per_node_options(mpiexec: str = "mpiexec") -> str:
    """mpiexec options that place one rank on each host of the hostfile, in this MPI's syntax."""
    return {"openmpi": "--map-by node", "mpich": "-ppn 1"}.get(mpi_flavour(mpiexec), "")


def mpiexec_template(prefix: str, flavour: MpiFlavour | None = None) -> str:
    """QCEngine's ``mpiexec_command`` from a Parsl launch prefix: the rank counts become placeholders.

    Parsl's ``mpiexec`` prefix is MPICH syntax (``-ppn``, ``-hosts``); under Open MPI those options are
    rewritten (``--npernode``, ``--host h:slots``) so that the same preset works with either MPI.
    """
    words = shlex.split(prefix)
    if not words:
        raise ValueError("empty MPI launch prefix")
    launcher = os.path.basename(words[0])
    if launcher not in _RANK_OPTIONS:
        raise ValueError(f"unsupported MPI launcher {words[0]!r} in prefix {prefix!r}")
    total_option, per_node_option = _RANK_OPTIONS[launcher]
    placeholders = {total_option: "{total_ranks}", per_node_option: "{ranks_per_node}", "--nodes": "{nnodes}"}
    if launcher == "mpiexec" and (flavour or mpi_flavour(words[0])) == "openmpi":
        return _openmpi_template(words)

    out = [words[0]]
    rest = iter(words[1:])
    for word in rest:
        if word in placeholders:
            out += [word, placeholders[word]]
            next(rest, None)
        else:
            out.append(word)
    return " ".join(out)


def _openmpi_template(words: list[str]) -> str:
    """Open MPI spelling of Parsl's MPICH-style ``mpiexec -n N -ppn P -hosts a,b ...`` prefix."""
    out = [words[0], "-n", "{total_ranks}", "--npernode", "{ranks_per_node}"]
    rest = iter(words[1:])
    for word in rest:
        if word in ("-n", "-ppn"):
            next(rest, None)
        elif word == "-hosts":
            hosts = next(rest, "")
            out += ["--host", ",".join(f"{host}:{{ranks_per_node}}" for host in hosts.split(",") if host)]
        else:
            out.append(word)
    return " ".join(out)


def _count(name: str) -> int:
    """A count Parsl exported; Parsl may write a derived one as a float string ("2.0")."""
    return int(float(os.environ[name]))


def mpi_task_config(task_config: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    """task_config for this worker, and the rank count when the fragment runs under MPI.

    Outside an MPIExecutor (no ``$PARSL_MPI_PREFIX``) the task_config is returned unchanged. Inside,
    QCEngine is told to launch the engine with ``use_mpiexec`` on the ranks Parsl allotted. The
    worker's ``ncores`` (the preset's cores_per_worker, which also set OMP_NUM_THREADS) become the
    cores of each rank, and ``ncores`` ranks per node times that, since QCEngine derives ranks from
    cores. A ``mpiexec_command`` already in ``task_config`` (a site's own launcher line) is kept.
    """
    prefix = os.environ.get("PARSL_MPI_PREFIX")
    if not prefix:
        return task_config, None
    nodes = _count("PARSL_NUM_NODES")
    ranks_per_node = _count("PARSL_RANKS_PER_NODE")
    total = _count("PARSL_NUM_RANKS")
    cores_per_rank = int(task_config.get("cores_per_rank") or task_config.get("ncores") or 1)
    config = {
        **task_config,
        "use_mpiexec": True,
        "nnodes": nodes,
        "ncores": ranks_per_node * cores_per_rank,
        "cores_per_rank": cores_per_rank,
        "mpiexec_command": task_config.get("mpiexec_command") or mpiexec_template(prefix),
    }
    logger.info("fragment on %d MPI ranks (%d nodes): %s", total, nodes, config["mpiexec_command"])
    return config, total
