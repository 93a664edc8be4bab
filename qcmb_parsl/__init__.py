"""qcmb_parsl: QCManyBody many-body expansions with fragments run in parallel through Parsl.

``ManyBodyComputer.from_manybodyinput(mbin, executor=ParslExecutor("slurm"))`` returns upstream's
``ManyBodyResult``; fragments run as Parsl apps, and a disk cache keeps every finished fragment.
``optimize(opt_input, executor=...)`` optimizes a cluster's geometry with geomeTRIC, each step's
fragments in parallel. Importing the package registers the project's PySCF harness with QCEngine as
program ``"pyscf"``.
"""

from importlib.metadata import version

from . import v2  # qcmb_parsl.v2 after `import qcmb_parsl`, as qcmanybody.v2 after `import qcmanybody`
from .computer import ManyBodyComputer
from .engines.pyscf import register_pyscf_harness
from .errors import (
    CacheError,
    ConfigurationError,
    FragmentsFailedError,
    InputError,
    OptimizationFailed,
    QcmbParslError,
    RunInterrupted,
)
from .execution.executors import ParslExecutor, RunReport, SequentialExecutor
from .execution.outcomes import FailureKind, FragmentFailure, Source, TaskResult
from .execution.shortcuts import ExecutorConfig
from .optimization import optimize
from .planning.plan import FragmentTask, plan_tasks, specifications_from_input

register_pyscf_harness()

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
