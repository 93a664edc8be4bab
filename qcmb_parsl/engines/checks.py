"""Model chemistries checked on the driver before anything starts: a typo costs a second, not a queue wait.

Every fragment of a model chemistry runs the same method, basis set, driver and keywords, so a value its
program cannot run fails every one of them, after Parsl has started, a batch job has waited in the queue
and the engines have started. What can be refused without computing is refused here, by the program's
own rules where they can be read cheaply:

=========  ===================================================================================
program    checked
=========  ===================================================================================
pyscf      method (HF, MP2, CCSD, CCSD(T), a PySCF/libxc functional with or without a dispersion
           suffix), the driver for that method, the basis set for every element present (loaded
           as building the molecule loads it) and the keywords, names and value types
           (:func:`qcmb_parsl.engines.pyscf.check_request`)
nwchem     method and driver through QCEngine's own translation into NWChem's input
           (``muster_modelchem``); a basis-set name is given
psi4       the driver; a basis set is given unless the method is a ``-3c`` composite
xtb        method (GFN2-xTB, GFN1-xTB), no basis set, the driver, the keywords, and no ``cp`` or
           ``vmfc`` treatment: xtb has no ghost atoms (:func:`qcmb_parsl.engines.xtb.check_xtb_model`)
=========  ===================================================================================

:data:`PROGRAM_CHECKS` maps a program's name (lower case) to its check, a function of a
:class:`ModelChemistry` raising :class:`~qcmb_parsl.errors.InputError` with one line naming the value as
the user wrote it and, where there are some, the nearest valid ones. A program without an entry is
checked no further here (its engine still refuses what it cannot run, fragment by fragment); another
program's check is one more entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from qcengine.exceptions import InputError as QCEngineInputError

from ..errors import InputError
from ..spelling import did_you_mean

__all__ = ["PROGRAM_CHECKS", "ModelChemistry", "check_model_chemistry", "check_specifications"]


@dataclass(frozen=True)
class ModelChemistry:
    """One model chemistry of an input as its program gets it: what every fragment of it runs.

    ``elements`` are the element symbols of the whole molecule (a fragment's ghost atoms carry their
    element's basis functions, so every element present needs them); ``bsse_types`` the expansion's
    treatments (``cp``, ``nocp``, ``vmfc``: the first and the last need ghost atoms).
    """

    program: str
    method: str
    basis: Any
    driver: str
    keywords: Mapping[str, Any] = field(default_factory=dict)
    elements: tuple[str, ...] = ()
    bsse_types: tuple[str, ...] = ()


ProgramCheck = Callable[[ModelChemistry], None]


def _check_pyscf(model: ModelChemistry) -> None:
    from .pyscf import check_request

    check_request(model.method, model.basis, model.driver, model.keywords, model.elements)


#: Methods offered when an NWChem method is mistyped, besides QCEngine's list of NWChem's functionals;
#: only those QCEngine's translation accepts are offered.
_NWCHEM_METHODS = (
    *("hf", "scf", "mp2", "mp3", "mp4", "ccd", "ccsd", "ccsd(t)", "ccsdt", "ccsd+t(ccsd)"),
    *("tddft", "pbe", "b3lyp5", "dft"),
)


def _check_nwchem(model: ModelChemistry) -> None:
    from qcengine.programs.nwchem.germinate import muster_modelchem, xc_functionals

    use_tce = bool(model.keywords.get("qc_module", False))
    try:
        muster_modelchem(model.method, model.driver, use_tce)
    except KeyError:
        raise InputError(
            f"driver {model.driver!r} is not one QCEngine's NWChem harness runs: energy, gradient, hessian"
        ) from None
    except QCEngineInputError as exc:
        known = [*xc_functionals, *(m for m in _NWCHEM_METHODS if _nwchem_runs(m, use_tce))]
        raise InputError(
            f"method {model.method!r} is not one QCEngine's NWChem harness runs ({exc.raw_message})"
            f"{did_you_mean(model.method, known)}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - the harness's own translation fails: so would every fragment
        raise InputError(
            f"QCEngine's NWChem harness cannot set up method {model.method!r} for {model.driver} "
            f"({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(model.basis, str) or not model.basis:
        raise InputError(f"no basis set given: NWChem's method {model.method!r} needs one, e.g. cc-pvdz")


def _nwchem_runs(method: str, use_tce: bool) -> bool:
    from qcengine.programs.nwchem.germinate import muster_modelchem

    try:
        muster_modelchem(method, "energy", use_tce)
    except Exception:  # noqa: BLE001 - a method QCEngine's translation cannot set up is not offered
        return False
    return True


def _check_psi4(model: ModelChemistry) -> None:
    if model.driver not in ("energy", "gradient", "hessian", "properties"):
        raise InputError(f"driver {model.driver!r} is not one Psi4 runs: energy, gradient, hessian")
    if not model.basis and not model.method.lower().endswith("3c"):
        raise InputError(f"no basis set given: Psi4's method {model.method!r} needs one, e.g. cc-pvdz")


def _check_xtb(model: ModelChemistry) -> None:
    from .xtb import check_xtb_model

    check_xtb_model(model.method, model.basis, model.driver, model.keywords, model.bsse_types)


#: The check of each program, by its QCEngine name in lower case.
PROGRAM_CHECKS: dict[str, ProgramCheck] = {
    "pyscf": _check_pyscf,
    "nwchem": _check_nwchem,
    "psi4": _check_psi4,
    "xtb": _check_xtb,
}


def check_model_chemistry(model: ModelChemistry) -> None:
    """One-line InputError (ours) for what ``model``'s program cannot run; nothing for a program without a
    check in :data:`PROGRAM_CHECKS`."""
    check = PROGRAM_CHECKS.get(model.program.lower())
    if check is None:
        return
    try:
        check(model)
    except QCEngineInputError as exc:  # a harness's own words, as its engine would say them
        raise InputError(" ".join(str(exc.raw_message).split()).rstrip(".")) from None


def check_specifications(
    specifications: Mapping[str, Mapping[str, Any]], symbols: Iterable[str], bsse_types: Iterable[str] = ()
) -> None:
    """Check every model chemistry of an input before anything is planned or started.

    ``specifications`` maps each model chemistry's name to ``{"program": ..., "specification": {...}}``
    as :func:`~qcmb_parsl.planning.plan.specifications_from_input` gives them (the many-body driver
    imposed); ``symbols`` are the molecule's, ``bsse_types`` the expansion's. A message names the model
    chemistry when there are several (a single one's name is QCManyBody's internal label, which nobody
    wrote).
    """
    elements = tuple(sorted({str(symbol).capitalize() for symbol in symbols}))
    for name, entry in specifications.items():
        spec = entry["specification"]
        model = spec.get("model") or {}
        chemistry = ModelChemistry(
            program=str(entry["program"]),
            method=str(model.get("method") or ""),
            basis=model.get("basis"),
            driver=str(spec.get("driver", "energy")),
            keywords=spec.get("keywords") or {},
            elements=elements,
            bsse_types=tuple(getattr(bsse, "value", bsse) for bsse in bsse_types),
        )
        try:
            check_model_chemistry(chemistry)
        except InputError as exc:
            if len(specifications) == 1:
                raise
            raise InputError(f"model chemistry {name!r}: {exc}") from None
