"""qcmb_parsl: QCManyBody many-body expansions with fragments run in parallel through Parsl.

``ManyBodyComputer.from_manybodyinput(mbin, executor=ParslExecutor("slurm"))`` returns upstream's
``ManyBodyResult``; fragments run as Parsl apps, and a disk cache keeps every finished fragment.
``optimize(opt_input, executor=...)`` optimizes a cluster's geometry with geomeTRIC, each step's
fragments in parallel. Importing the package registers the project's PySCF harness with QCEngine as program ``"pyscf"``.
"""

from importlib.metadata import version

from .engines.pyscf import register_pyscf_harness

register_pyscf_harness()

from .computer import ManyBodyComputer  # noqa: E402
from .errors import (  # noqa: E402
    CacheError,
    ConfigurationError,
    FragmentsFailedError,
    InputError,
    OptimizationFailed,
    QcmbParslError,
    RunInterrupted,
)
from .execution.executors import ParslExecutor, RunReport, SequentialExecutor  # noqa: E402
from .execution.outcomes import FailureKind, FragmentFailure, Source, TaskResult  # noqa: E402
from .execution.shortcuts import ExecutorConfig  # noqa: E402
from .optimization import optimize  # noqa: E402
from .planning.plan import FragmentTask, plan_tasks, specifications_from_input  # noqa: E402

__version__ = version("qcmb_parsl")

__all__ = [
    "ManyBodyComputer",
    "optimize",
    "ParslExecutor",
    "SequentialExecutor",
    "ExecutorConfig",
    "FragmentTask",
    "TaskResult",
    "Source",
    "FailureKind",
    "FragmentFailure",
    "RunReport",
    "plan_tasks",
    "specifications_from_input",
    "QcmbParslError",
    "ConfigurationError",
    "InputError",
    "CacheError",
    "FragmentsFailedError",
    "OptimizationFailed",
    "RunInterrupted",
]
