"""The input of a many-body optimization, checked whole before anything is submitted.

The input is a QCSchema v2 ``OptimizationInput`` whose ``specification.specification`` is a
``ManyBodySpecification``: the shape of QCManyBody's ``tests/test_optimization.py``. QCSchema v1 has no
such shape (its ``input_specification`` is atomic only, and upstream retired the v1 generalized
optimization), so a v1 input is refused with the way to write it.

Each step of the optimization is a ManyBodyInput: the many-body specification with the gradient driver,
on the molecule at the step's geometry (:func:`step_input`). The driver validates the first step's
input with upstream's and our planner's checks before the optimizer or any executor starts.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
from qcelemental.models import v1 as qcel_v1
from qcelemental.models import v2 as qcel_v2
from qcmanybody.models.v2 import ManyBodySpecification

from ..errors import ConfigurationError, InputError
from ..planning.inputs import check_fragments, fill_fragment_charges, parse_json, validate_model

#: Optimizers by name: (module that must import, how to install it).
OPTIMIZERS = {
    "geometric": ("geometric", "pip install geometric"),
    "optking": ("optking", "conda install optking -c conda-forge"),
}

#: Drivers a many-body specification may name: the optimizer asks for gradients either way, as QCEngine's
#: procedures do with upstream's own examples (which say ``"energy"``).
OPTIMIZABLE_DRIVERS = ("gradient", "energy")

_V1_LAYOUT = (
    "QCSchema v1 OptimizationInput holds only an atomic input_specification; a many-body optimization is "
    "QCSchema v2 (as in upstream QCManyBody): put the ManyBodySpecification under specification.specification"
)


def check_optimizer(name: str) -> str:
    """The optimizer's canonical name, or a one-line ConfigurationError saying how to get it."""
    key = str(name).lower()
    if key not in OPTIMIZERS:
        raise ConfigurationError(f"optimizer {name!r} is unknown: choose 'geometric' (default) or 'optking'")
    module, install = OPTIMIZERS[key]
    if importlib.util.find_spec(module) is None:
        raise ConfigurationError(f"optimizer {key!r} is not installed: {install}")
    if key == "optking":
        raise ConfigurationError(
            "optimizer 'optking' takes a ManyBodySpecification only in its QCSchema v2 version, which is not "
            "released: use optimizer 'geometric'"
        )
    return key


def optimization_input(data: Any, optimizer: str) -> qcel_v2.OptimizationInput:
    """The v2 OptimizationInput of a model, dict or JSON text, with a specification ``optimizer`` can take.

    Raises InputError, one line, for a v1 input, an atomic (not many-body) specification, a driver other
    than gradient (or upstream's ``energy``), interaction-only data (``return_total_data: false``: the
    optimizer needs the total gradient), or a specification ``program`` naming another optimizer.
    """
    if isinstance(data, (str, bytes)):
        data = parse_json(data, "OptimizationInput JSON")
    if isinstance(data, qcel_v1.OptimizationInput):
        raise InputError(_V1_LAYOUT)
    if isinstance(data, dict):
        if "input_specification" in data or data.get("schema_version") == 1:
            raise InputError(_V1_LAYOUT)
        molecule = data.get("initial_molecule")
        if isinstance(molecule, dict) and "symbols" in molecule:
            check_fragments(len(molecule["symbols"]), molecule.get("fragments"))
            molecule = dict(molecule)  # filled in a copy: the caller's input stays as given
            fill_fragment_charges(molecule)
            data = {**data, "initial_molecule": molecule}
        data = validate_model(qcel_v2.OptimizationInput, data)
    if not isinstance(data, qcel_v2.OptimizationInput):
        raise InputError(f"expected an OptimizationInput (model, dict or JSON), got {type(data).__name__}")

    specification = data.specification
    program = specification.program
    if program and program != optimizer:
        raise InputError(
            f"specification.program is {program!r} but the optimizer is {optimizer!r}: make them agree "
            "or leave program empty"
        )
    many_body = specification.specification
    if not isinstance(many_body, ManyBodySpecification):
        raise InputError(
            "specification.specification is an AtomicSpecification: that is a single-program optimization "
            "(qcengine.compute_procedure); give a ManyBodySpecification (specification, keywords, driver)"
        )
    driver = many_body.driver.value
    if driver not in OPTIMIZABLE_DRIVERS:
        raise InputError(
            f"specification.specification.driver is {driver!r}: an optimization takes many-body gradients, "
            "set it to 'gradient'"
        )
    if many_body.keywords.return_total_data is False:
        raise InputError(
            "specification.specification.keywords.return_total_data is false: the optimizer needs the total "
            "many-body gradient, not the interaction gradient; remove it or set it to true"
        )
    return data


def gradient_specification(opt_input: qcel_v2.OptimizationInput) -> dict[str, Any]:
    """The many-body specification of every step, as JSON data, with the gradient driver."""
    return {**opt_input.specification.specification.model_dump(), "driver": "gradient"}


def step_input(
    opt_input: qcel_v2.OptimizationInput, specification: dict[str, Any], geometry: np.ndarray
) -> dict[str, Any]:
    """The ManyBodyInput of the step at ``geometry`` (Bohr), in the input frame.

    ``fix_com`` and ``fix_orientation`` are set, as QCEngine's geomeTRIC procedure sets them, so that no
    engine moves the molecule away from the frame the optimizer's coordinates live in.
    """
    molecule = {
        **opt_input.initial_molecule.model_dump(),
        "geometry": np.asarray(geometry, dtype=float).reshape(-1, 3),
        "fix_com": True,
        "fix_orientation": True,
    }
    return {"molecule": molecule, "specification": specification}
