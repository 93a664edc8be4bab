"""Real HPC services for the tests: a single-node Slurm (with munge) on localhost, and MPI look-ups.

Nothing here is mocked. :class:`SlurmCluster` writes a slurm.conf into a temporary directory, starts
munged (unless one already answers), slurmctld and slurmd in the foreground as children of the test
process, and stops them in the only order that does not hang: jobs cancelled and gone, then slurmd,
then slurmctld, then munged. The facts behind each step are in shared/notes/hpc-on-one-machine.md.

Where a component is missing the tests skip with the reason; under ``CI=true`` they fail instead, so
that a CI image that lost a package cannot go green by skipping.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from typing_extensions import Self

logger = logging.getLogger(__name__)

MUNGE_KEY = Path("/etc/munge/munge.key")
MUNGE_SOCKET_DIR = Path("/run/munge")
SLURM_BINARIES = ("slurmctld", "slurmd", "sbatch", "srun", "squeue", "sinfo", "scancel", "scontrol")
#: Open MPI refuses to run as root without these two.
OPENMPI_ROOT_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


def slurm_missing() -> str | None:
    """Why a local Slurm cannot be started here, or None when it can."""
    if os.geteuid() != 0:
        return "starting slurmd/slurmctld/munged needs root"
    missing = [name for name in (*SLURM_BINARIES, "munged", "munge", "unmunge") if shutil.which(name) is None]
    if missing:
        return f"missing {', '.join(missing)}: apt-get install -y slurm-wlm munge"
    try:
        pwd.getpwnam("munge")
    except KeyError:
        return "no munge user (Debian's munge package creates it)"
    return None


def _alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _wait_until(predicate, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def _stop_process(proc: subprocess.Popen, name: str, timeout: float = 15.0) -> None:
    """SIGTERM, wait (reaping it: it is our child), SIGKILL if it will not go."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        logger.warning("%s (pid %d) ignored SIGTERM for %s s; killing it", name, proc.pid, timeout)
        proc.kill()
        proc.wait(5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _munge_answers() -> bool:
    """A munged is up when a credential made now decodes."""
    try:
        made = subprocess.run(["munge", "-n"], capture_output=True, timeout=5, check=False)
        if made.returncode != 0:
            return False
        return (
            subprocess.run(
                ["unmunge"], input=made.stdout, capture_output=True, timeout=5, check=False
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


class Munge:
    """munged as the munge user, started only if no munged already answers (then that one is left alone)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        if _munge_answers():
            logger.info("using the munged already running")
            return
        if not MUNGE_KEY.exists():
            self._create_key()
        MUNGE_SOCKET_DIR.mkdir(parents=True, exist_ok=True)
        shutil.chown(MUNGE_SOCKET_DIR, "munge", "munge")
        MUNGE_SOCKET_DIR.chmod(0o755)
        self.proc = subprocess.Popen(
            ["munged", "--foreground", "--force"],
            user="munge",
            group="munge",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _wait_until(lambda: _munge_answers() or self.proc.poll() is not None, 10, "munged to answer")
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"munged exited {self.proc.returncode}: {self.proc.stderr.read().decode()[-500:]}"
            )

    @staticmethod
    def _create_key() -> None:
        """A fresh key, as the Debian package's postinst would have made it."""
        MUNGE_KEY.parent.mkdir(parents=True, exist_ok=True)
        if shutil.which("mungekey"):
            subprocess.run(["mungekey", "--create", f"--keyfile={MUNGE_KEY}"], check=True)
        else:
            MUNGE_KEY.write_bytes(os.urandom(1024))
        shutil.chown(MUNGE_KEY, "munge", "munge")
        MUNGE_KEY.chmod(0o400)

    def stop(self) -> None:
        if self.proc is not None:
            _stop_process(self.proc, "munged")
            self.proc = None


#: KillWait (seconds between Slurm's SIGTERM and SIGKILL) is Slurm's default, 30: a stopped driver is
#: promised its stop within 20 s (``execution/teardown.py``), and a shorter KillWait would test a promise
#: the product does not make (a stop that took 11 s on a loaded machine was SIGKILLed at 10).
SLURM_CONF_TEMPLATE = """\
ClusterName=qcmbtest
SlurmctldHost=localhost
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SchedulerType=sched/backfill
MailProg=/bin/true
KillWait=30
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
NodeName=localhost CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


@dataclass
class SlurmCluster:
    """A one-node Slurm cluster on localhost, all of its files in a temporary directory.

    Use as a context manager; while it is open, ``SLURM_CONF`` in this process's environment points
    at its slurm.conf, so sbatch/squeue (and Parsl's SlurmProvider) talk to it.
    """

    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)
    root: Path | None = None
    start_seconds: float = 0.0
    stop_seconds: float = 0.0
    _tmp: tempfile.TemporaryDirectory | None = None
    _munge: Munge = field(default_factory=Munge)
    _ctld: subprocess.Popen | None = None
    _slurmd: subprocess.Popen | None = None
    _saved_conf: str | None = None

    @property
    def conf(self) -> Path:
        assert self.root is not None
        return self.root / "slurm.conf"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        started = time.perf_counter()
        self._tmp = tempfile.TemporaryDirectory(prefix="qcmb_slurm_")
        self.root = Path(self._tmp.name)
        for sub in ("state", "spool"):
            (self.root / sub).mkdir()
        memory_mb = int(psutil.virtual_memory().total / 2**20 * 0.8)
        self.conf.write_text(
            SLURM_CONF_TEMPLATE.format(
                root=self.root,
                cpus=self.cpus,
                memory_mb=memory_mb,
                ctld_port=_free_port(),
                slurmd_port=_free_port(),
            )
        )
        self._saved_conf = os.environ.get("SLURM_CONF")
        os.environ["SLURM_CONF"] = str(self.conf)
        try:
            self._munge.start()
            self._ctld = self._daemon(["slurmctld", "-D", "-f", str(self.conf)])
            self._slurmd = self._daemon(["slurmd", "-D", "-f", str(self.conf), "-N", "localhost"])
            _wait_until(self._idle, 30, "sinfo to show the node idle", interval=0.1)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.perf_counter() - started
        logger.info("Slurm up in %.2f s (%s)", self.start_seconds, self.conf)

    def _daemon(self, argv: list[str]) -> subprocess.Popen:
        log = open(self.root / f"{argv[0]}.stdout", "wb")  # noqa: SIM115 - the daemon owns it until it exits
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def _idle(self) -> bool:
        for name, proc in (("slurmctld", self._ctld), ("slurmd", self._slurmd)):
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{name} exited {proc.returncode}: see {self.root}/{name}.log")
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, check=False)
        return out.returncode == 0 and out.stdout.strip() == "idle"

    def job_ids(self) -> list[str]:
        """Ids of the jobs Slurm still lists (pending, running, completing)."""
        out = subprocess.run(
            ["squeue", "-h", "-o", "%i"], capture_output=True, text=True, timeout=30, check=False
        )
        return out.stdout.split()

    def wait_for_jobs(self, timeout: float) -> bool:
        """Wait until squeue lists no job; False if some are still there after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self.job_ids():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def job_state(self, job_id: str) -> str | None:
        """The JobState that slurmctld holds for ``job_id`` (kept for MinJobAge after it ends)."""
        out = subprocess.run(
            ["scontrol", "show", "job", job_id], capture_output=True, text=True, timeout=30, check=False
        )
        for word in out.stdout.split():
            if word.startswith("JobState="):
                return word.split("=", 1)[1]
        return None

    def stop(self) -> None:
        """Jobs cancelled and gone, then slurmd, slurmctld and munged, each waited for in turn."""
        started = time.perf_counter()
        try:
            if self._ctld is not None and self._ctld.poll() is None:
                ids = self.job_ids()
                if ids:
                    subprocess.run(["scancel", *ids], capture_output=True, timeout=30, check=False)
                    if not self.wait_for_jobs(60):
                        raise TimeoutError(f"jobs {self.job_ids()} still in squeue 60 s after scancel")
        finally:
            for name in ("_slurmd", "_ctld"):
                proc = getattr(self, name)
                if proc is not None:
                    _stop_process(proc, name.strip("_"))
                    _wait_until(lambda pid=proc.pid: not _alive(pid), 15, f"{name.strip('_')} to exit")
                    setattr(self, name, None)
            self._munge.stop()
            if self._saved_conf is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = self._saved_conf
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None
        self.stop_seconds = time.perf_counter() - started
        logger.info("Slurm stopped in %.2f s", self.stop_seconds)


@dataclass(frozen=True)
class MpiInstall:
    """An MPI launcher found on this machine."""

    flavour: str
    mpiexec: str


def find_mpiexec(flavour: str | None = None) -> MpiInstall | None:
    """The default ``mpiexec`` (or that of ``flavour``: "openmpi"/"mpich"), or None."""
    from qcmb_parsl.mpi_syntax import mpi_flavour

    candidates = ["mpiexec"] if flavour is None else [f"mpiexec.{flavour}", "mpiexec"]
    for name in candidates:
        path = shutil.which(name)
        if path is None:
            continue
        found = mpi_flavour(path)
        if flavour is None or found == flavour:
            return MpiInstall(found, path)
    return None


def mpi4py_missing() -> str | None:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed in this venv (pip install mpi4py)"
    return None


def mpi_environment() -> dict[str, str]:
    """Environment an MPI launch needs here: Open MPI's consent to run as root, when root."""
    return dict(OPENMPI_ROOT_ENV) if os.geteuid() == 0 else {}


PARSL_PROCESS_NAMES = ("interchange", "process_worker_pool")  # the interchange retitles itself


def parsl_processes() -> set[int]:
    """Pids of live Parsl interchanges and worker pools started from this process (zombies ignored).

    Only descendants count: other sessions on the machine may run Parsl too. Worker pools inside a
    Slurm job descend from slurmstepd instead; that the job left squeue is the check for those.
    """
    found = set()
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            line = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if any(name in line for name in PARSL_PROCESS_NAMES):
            found.add(proc.pid)
    return found


def new_parsl_processes(before: set[int], timeout: float = 20.0) -> set[int]:
    """Parsl processes not in ``before`` that are still alive after up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while (extra := parsl_processes() - before) and time.monotonic() < deadline:
        time.sleep(0.2)
    return extra
