"""The machine and software a benchmark ran on: numbers mean little without them."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib.metadata import version
from typing import Any

import psutil

from common import REPO_DIR, load_average

PACKAGES = ("qcmb_parsl", "qcmanybody", "qcengine", "qcelemental", "parsl", "pyscf", "tblite", "numpy", "diskcache")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_state() -> dict[str, Any]:
    """Commit and whether the tree had local changes: others edit the package while benchmarks run."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO_DIR, capture_output=True, text=True).stdout.strip()

    return {"commit": git("rev-parse", "--short", "HEAD"), "modified_files": len(git("status", "--porcelain", "-uno").splitlines())}


def machine_info() -> dict[str, Any]:
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "nproc": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "packages": {name: version(name) for name in PACKAGES},
        "git": git_state(),
        "load_average_start": load_average(),
    }
