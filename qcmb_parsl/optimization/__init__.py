"""Many-body geometry optimizations: geomeTRIC takes the steps, every step's fragments run in parallel.

``qcmb_parsl.optimize(opt_input, optimizer="geometric", executor=ParslExecutor("local"))`` takes a QCSchema
v2 ``OptimizationInput`` whose specification is a ``ManyBodySpecification`` and returns upstream's
``OptimizationResult``. Modules: :mod:`.inputs` (checks, per-step inputs), :mod:`.geometric_driver`
(geomeTRIC's custom-engine interface), :mod:`.driver` (the loop and the result).
"""

from .driver import FragmentTiming, StepRecord, optimize
from .inputs import OPTIMIZERS

__all__ = ["OPTIMIZERS", "FragmentTiming", "StepRecord", "optimize"]
