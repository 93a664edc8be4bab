"""The code that runs on a worker: one fragment job, its attempts, and an envelope back to the driver.

It lives in the installed package (not in a user's script or a test module) because Parsl's workers
import it by name. Jobs and envelopes are plain JSON-able dicts: nothing version-sensitive is pickled
between the driver and nodes that may run another build of pydantic or qcelemental.

Engine trouble never raises here: a crash, a timeout, a memory limit or an engine error is judged,
retried where another attempt may help, and reported in the envelope with each attempt's evidence.
What does raise (a lost worker, a dead block) is infrastructure, and Parsl's retries deal with it.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

from parsl.app.python import PythonApp

from ..mpi_syntax import mpi_task_config
from ..resources import node_task_config
from .isolation import ChildOutcome, EngineJob, FragmentLimits, isolated_compute, isolated_compute_many
from .isolation.files import private_temporary_files
from .lanes import run_on_lanes, split
from .outcomes import Evidence, FailureKind, engine_stamp

#: Engine error types worth one more attempt on the same input (QCEngine's vocabulary):
#: ``random_error`` by definition, ``unknown_error`` because a crash of the engine looks like one.
RETRYABLE_ERROR_TYPES = frozenset({"random_error", "unknown_error"})

#: What engines and runtimes say when an allocation fails.
_MEMORY_PATTERNS = (
    r"MemoryError",
    r"Unable to allocate",
    r"std::bad_alloc",
    r"Cannot allocate memory",
    r"out of memory",
    r"malloc\(\d*\) failed",
)


@dataclass(frozen=True)
class Verdict:
    """One attempt judged: ``kind`` None means success."""

    kind: FailureKind | None
    message: str = ""
    error_type: str | None = None


def compute_fragment(
    job: dict[str, Any] | str, parsl_resource_specification: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run one fragment job and return its envelope (see :func:`envelope`).

    ``job`` holds ``label``, ``program``, ``atomic_input``, ``task_config``, ``environment``,
    ``workers_per_node``, ``timeout``, ``memory_bytes``, ``max_retries`` and ``isolate``; or it is
    that dict's JSON text, as the Parsl back-end sends it (see :func:`job_text`).
    ``parsl_resource_specification`` is read by Parsl itself (MPI ranks, priority); it is a parameter
    here only so that Parsl passes it on.
    """
    return compute_fragments([_parsed(job)])[0]


def compute_bundle(
    jobs: list[dict[str, Any]] | str, parsl_resource_specification: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Run a bundle of tiny fragment jobs in one app call (a list, or its JSON text); one envelope per
    job, in order."""
    return compute_fragments(_parsed(jobs))


def job_text(jobs: dict[str, Any] | list[dict[str, Any]]) -> str:
    """A call's job or jobs as JSON text, as they cross to a Parsl worker.

    Parsl serializes an app's arguments with dill, whose pickler is pure Python and visits every item
    of a nested dict: it took the driver's launch thread about 0.5 ms of CPU per fragment, more than
    the rest of the driver's work on a fragment. A text is one item to it, and JSON is what the jobs
    are anyway.
    """
    return json.dumps(jobs, separators=(",", ":"))


def _parsed(jobs: Any) -> Any:
    return json.loads(jobs) if isinstance(jobs, str) else jobs


def compute_fragments(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every job's envelope, in order: the call's groups side by side on the worker's lanes
    (:mod:`.lanes`), or, without lanes, all of them as one group."""
    lanes = int(jobs[0].get("lanes", 1))
    if lanes > 1:
        return run_on_lanes(split(jobs), lanes, _compute_group)
    return _compute_group(jobs)


def _compute_group(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """First attempts of all ``jobs`` together (one engine process for all when isolated), then
    further attempts one by one for those whose failure may be transient."""
    first = jobs[0]
    task_config, mpi_ranks = mpi_task_config(
        node_task_config(first["task_config"], first["workers_per_node"])
    )
    limits = FragmentLimits(timeout=first.get("timeout"), memory_bytes=first.get("memory_bytes"))
    engine_jobs = [
        EngineJob(job["program"], job["atomic_input"], task_config, job["environment"]) for job in jobs
    ]
    if first.get("isolate", True):
        firsts = isolated_compute_many(engine_jobs, limits)
    else:
        firsts = [_in_process(engine_job) for engine_job in engine_jobs]
    envelopes = []
    for job, engine_job, outcome in zip(jobs, engine_jobs, firsts, strict=True):
        outcomes, verdicts = [outcome], [judge(outcome, limits)]
        while _worth_another(verdicts, int(job.get("max_retries", 0))):
            outcomes.append(_attempt(engine_job, limits, job.get("isolate", True)))
            verdicts.append(judge(outcomes[-1], limits))
        envelopes.append(envelope(job["label"], outcomes, verdicts, mpi_ranks, len(jobs)))
    return envelopes


def _attempt(job: EngineJob, limits: FragmentLimits, isolate: bool) -> ChildOutcome:
    return isolated_compute(job, limits) if isolate else _in_process(job)


def _in_process(job: EngineJob) -> ChildOutcome:
    """Without isolation (an option for floods of tiny fragments): the engine shares this process."""
    import qcengine

    from ..engines import register_harnesses

    os.environ.update(job.environment)
    os.environ.update(_open_mpi_directory())
    register_harnesses()
    started = time.time()
    result = qcengine.compute(job.atomic_input, job.program, raise_error=False, task_config=job.task_config)
    return ChildOutcome(result.model_dump_json(), started, time.time() - started, os.getpid(), exit_status=0)


@functools.cache
def _open_mpi_directory() -> dict[str, str]:
    """Without isolation, one Open MPI session directory per worker process, not the node's shared one:
    engines of different workers no longer remove it under each other (engines of one process, the
    ``threads`` preset, still share theirs: isolation is the cure there)."""
    directory = tempfile.mkdtemp(prefix="qcmb-openmpi-")
    atexit.register(shutil.rmtree, directory, True)
    return {
        name: value for name, value in private_temporary_files(directory).items() if name.startswith("OMPI_")
    }


def judge(outcome: ChildOutcome, limits: FragmentLimits) -> Verdict:
    """What one attempt amounts to, from how its process ended and what it left."""
    if outcome.killed_for == "cancelled":
        return Verdict(FailureKind.CANCELLED, "cancelled: the run was stopped")
    if outcome.killed_for == "timeout":
        return Verdict(FailureKind.TIMEOUT, f"timed out after {limits.timeout:g} s (timeout_per_task)")
    if outcome.killed_for == "memory":
        return Verdict(
            FailureKind.MEMORY, f"used {outcome.peak_memory_mib or 0:.0f} MiB, over its limit{_limit(limits)}"
        )
    if outcome.template_lost:
        return Verdict(FailureKind.CRASHED, "the fragment's template process died")
    if outcome.signal is not None:
        return Verdict(FailureKind.CRASHED, f"engine process killed by {outcome.signal}")
    if outcome.result_json is None or outcome.exit_status:
        last = _last_line(outcome.stderr_tail) or "no result"
        if _mentions_memory(outcome.stderr_tail):
            return Verdict(FailureKind.MEMORY, f"out of memory{_limit(limits)}: {last}")
        return Verdict(
            FailureKind.CRASHED, f"engine process exited with status {outcome.exit_status}: {last}"
        )
    result = json.loads(outcome.result_json)
    if result.get("success"):
        return Verdict(None)
    error = result.get("error") or {}
    error_type = error.get("error_type") or "unknown_error"
    message = error.get("error_message") or "the engine gave no message"
    if _mentions_memory(message, outcome.stderr_tail):
        return Verdict(
            FailureKind.MEMORY, f"out of memory{_limit(limits)}: {_last_line(message)}", error_type
        )
    kind = FailureKind.INPUT if error_type == "input_error" else FailureKind.ENGINE
    return Verdict(kind, message, error_type)


def _mentions_memory(*texts: str) -> bool:
    return any(re.search(pattern, text, re.IGNORECASE) for text in texts for pattern in _MEMORY_PATTERNS)


def _limit(limits: FragmentLimits) -> str:
    return (
        "" if limits.memory_bytes is None else f" of {limits.memory_bytes / 2**30:g} GiB (memory_per_worker)"
    )


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _worth_another(verdicts: list[Verdict], max_retries: int) -> bool:
    """A crash or an engine error that may be transient gets one more attempt; a random error up to
    ``max_retries``; input errors, timeouts, memory and cancellations repeat, so never."""
    last = verdicts[-1]
    retries = len(verdicts) - 1
    if last.kind is None or retries >= max_retries:
        return False
    if last.kind is FailureKind.CRASHED:
        return retries < 1
    if last.kind is FailureKind.ENGINE and last.error_type in RETRYABLE_ERROR_TYPES:
        return last.error_type == "random_error" or retries < 1
    return False


def envelope(
    label: str, outcomes: list[ChildOutcome], verdicts: list[Verdict], mpi_ranks: int | None, bundle: int = 1
) -> dict[str, Any]:
    """The JSON-able report of a fragment: the last attempt's result or failure, every attempt's evidence."""
    last, verdict = outcomes[-1], verdicts[-1]
    provenance: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "thread": threading.get_native_id(),
        "engine_pid": last.engine_pid,
        "started": last.started,
        "wall_time": last.wall_time,
        "attempts": len(outcomes),
    }
    if last.peak_rss_mib is not None:
        provenance["peak_rss_mib"] = round(last.peak_rss_mib, 1)
    if os.environ.get("SLURM_JOB_ID"):
        provenance["slurm_job_id"] = os.environ["SLURM_JOB_ID"]
    if mpi_ranks:
        provenance["mpi_ranks"] = mpi_ranks
    if bundle > 1:
        provenance["bundle"] = bundle
    failure = None
    if verdict.kind is not None:
        failure = {"kind": verdict.kind.value, "message": verdict.message, "error_type": verdict.error_type}
    return {
        "label": label,
        "result_json": last.result_json,
        "failure": failure,
        "evidence": [
            _evidence(o, v).as_dict() for o, v in zip(outcomes, verdicts, strict=True) if v.kind is not None
        ],
        "provenance": provenance,
    }


def _evidence(outcome: ChildOutcome, verdict: Verdict) -> Evidence:
    """What one failed attempt left: for an engine that QCEngine ran as an executable (NWChem, ...),
    its stdout and stderr come out of QCEngine's error stamp, since they never reach the child's own."""
    stdout, stderr = outcome.stdout_tail, outcome.stderr_tail
    stamp = engine_stamp(verdict.message)
    if stamp is not None:
        stdout = stdout or _tail(stamp["stdout"])
        stderr = stderr or _tail(stamp["stderr"])
    return Evidence(
        exit_status=outcome.exit_status,
        signal=outcome.signal,
        error_type=verdict.error_type,
        error_message=verdict.message,
        stdout_tail=stdout,
        stderr_tail=stderr,
    )


def _tail(text: str, max_lines: int = 25, max_chars: int = 2000) -> str:
    return "\n".join(text[-max_chars:].splitlines()[-max_lines:])


def fragment_app(data_flow_kernel: Any, executors: list[str] | str = "all") -> PythonApp:
    """``compute_fragment`` as a Parsl python_app bound to one DataFlowKernel (not the global one)."""
    return PythonApp(compute_fragment, data_flow_kernel=data_flow_kernel, executors=executors)


def bundle_app(data_flow_kernel: Any, executors: list[str] | str = "all") -> PythonApp:
    """``compute_bundle`` as a Parsl python_app bound to one DataFlowKernel."""
    return PythonApp(compute_bundle, data_flow_kernel=data_flow_kernel, executors=executors)
