"""qcmb_parsl: QCManyBody many-body expansions with fragments run in parallel through Parsl.

``ManyBodyComputer.from_manybodyinput(mbin, executor=ParslExecutor("slurm"))`` returns upstream's
``ManyBodyResult``; fragments run as Parsl apps, and a disk cache keeps every finished fragment.
``optimize(opt_input, executor=...)`` optimizes a cluster's geometry with geomeTRIC, each step's
fragments in parallel. Importing the package registers the project's harnesses with QCEngine: PySCF
as program ``"pyscf"``, GFN-xTB (through tblite) as ``"xtb"``.
"""

from __future__ import annotations

import importlib
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

from .engines import register_harnesses
from .errors import (
    CacheError,
    ConfigurationError,
    FragmentsFailedError,
    InputError,
    OptimizationFailed,
    QcmbParslError,
    RunInterrupted,
)

if TYPE_CHECKING:
    from . import v2
    from .computer import ManyBodyComputer
    from .execution.executors import ParslExecutor, RunReport, SequentialExecutor
    from .execution.outcomes import FailureKind, FragmentFailure, Source, TaskResult
    from .execution.shortcuts import ExecutorConfig
    from .optimization import optimize
    from .planning.plan import FragmentTask, plan_tasks, specifications_from_input

#: Public names and the modules that define them, imported on first use: a process that needs one
#: corner of the package (a fragment's template process: the harnesses and the isolation code) then
#: never loads Parsl, QCManyBody and the rest, and forks from 70 MB instead of 185 MB (measured: a
#: fork and exit cost 5 ms of CPU instead of 19).
_LAZY = {
    "ManyBodyComputer": ".computer",
    "ParslExecutor": ".execution.executors",
    "RunReport": ".execution.executors",
    "SequentialExecutor": ".execution.executors",
    "FailureKind": ".execution.outcomes",
    "FragmentFailure": ".execution.outcomes",
    "Source": ".execution.outcomes",
    "TaskResult": ".execution.outcomes",
    "ExecutorConfig": ".execution.shortcuts",
    "optimize": ".optimization",
    "FragmentTask": ".planning.plan",
    "plan_tasks": ".planning.plan",
    "specifications_from_input": ".planning.plan",
}


def __getattr__(name: str) -> Any:
    """``qcmb_parsl.v2`` (as ``qcmanybody.v2`` after ``import qcmanybody``) and the public names of
    ``_LAZY``, imported when first asked for."""
    if name == "v2":
        value: Any = importlib.import_module(".v2", __name__)
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


register_harnesses()

__version__ = version("qcmb_parsl")

__all__ = [
    "CacheError",
    "ConfigurationError",
    "ExecutorConfig",
    "FailureKind",
    "FragmentFailure",
    "FragmentTask",
    "FragmentsFailedError",
    "InputError",
    "ManyBodyComputer",
    "OptimizationFailed",
    "ParslExecutor",
    "QcmbParslError",
    "RunInterrupted",
    "RunReport",
    "SequentialExecutor",
    "Source",
    "TaskResult",
    "optimize",
    "plan_tasks",
    "specifications_from_input",
    "v2",
]
