"""qcmb_parsl: QCManyBody many-body expansions with fragments run in parallel through Parsl.

``ManyBodyComputer.from_manybodyinput(mbin, executor=ParslExecutor("slurm"))`` returns upstream's
``ManyBodyResult``; fragments run as Parsl apps, and a disk cache keeps every finished fragment.
``optimize(opt_input, executor=...)`` optimizes a cluster's geometry with geomeTRIC, each step's
fragments in parallel. Importing the package registers the project's harnesses with QCEngine: PySCF
as program ``"pyscf"``, GFN-xTB (through tblite) as ``"xtb"``.

The public names are imported when first used (:pep:`562`), not with the package: Parsl alone costs
about a second of imports, which ``qcmb-parsl`` would pay before it could refuse a mistyped basis, and
which every worker and engine process would pay too (a fragment's template then forks from 70 MB
instead of 185 MB, measured: a fork and exit cost 5 ms of CPU instead of 19).
"""

from importlib import import_module
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

register_harnesses()

__version__ = version("qcmb_parsl")

#: Where each lazily imported public name lives (a module of this package).
_LAZY = {
    "ExecutorConfig": ".execution.shortcuts",
    "FailureKind": ".execution.outcomes",
    "FragmentFailure": ".execution.outcomes",
    "FragmentTask": ".planning.plan",
    "ManyBodyComputer": ".computer",
    "ParslExecutor": ".execution.executors",
    "RunReport": ".execution.executors",
    "SequentialExecutor": ".execution.executors",
    "Source": ".execution.outcomes",
    "TaskResult": ".execution.outcomes",
    "optimize": ".optimization",
    "plan_tasks": ".planning.plan",
    "specifications_from_input": ".planning.plan",
}


def __getattr__(name: str) -> Any:
    """The public name ``name``, imported from its module on first use (``qcmb_parsl.v2`` likewise)."""
    if name == "v2":
        value: Any = import_module(".v2", __name__)
    elif name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


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
