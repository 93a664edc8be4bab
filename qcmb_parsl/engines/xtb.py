"""GFN-xTB as QCEngine's program ``"xtb"``, computed by tblite.

QCEngine's stock ``xtb`` harness drives the ``xtb`` Python package (PyPI 22.1, 2022), converting every
input to QCSchema v1 and back; tblite (the tight-binding library the xtb authors maintain now) speaks
QCSchema v2 itself and computes the same GFN2-xTB and GFN1-xTB models. Measured here (water monomer
to trimer, GFN2-xTB gradient, CPU time per call, one thread): the ``xtb`` library 2.2-3.6 ms against
tblite's 0.4-1.4 ms, and the stock harness's conversions add ~6 ms more per ``qcengine.compute``. In a
many-body expansion of 10^5 such fragments that difference is the whole run, so this harness, under
the stock harness's name and method names, hands the input to ``tblite.qcschema.run_schema``.

Energies agree with the ``xtb`` package to ~3e-9 Eh per water (not bit for bit: two
implementations): a result cache keys the harness and tblite's version, so results of one never
answer for the other.

Methods (any case): ``GFN2-xTB`` (or ``gfn2xtb``) and ``GFN1-xTB`` (or ``gfn1xtb``), no basis set.
Drivers: energy and gradient. Keywords use the stock harness's names, each translated to tblite's:

======================  =======  ==========================================================
keyword                 default  meaning
======================  =======  ==========================================================
accuracy                1.0      numerical accuracy of the self-consistent charges
max_iterations          250      iterations of the self-consistent charges at most
electronic_temperature  300.0    electronic temperature (K) of the Fermi smearing
======================  =======  ==========================================================

Any other keyword is an input error, never silently ignored. xtb has no ghost atoms: an atom marked
``real=False`` would be computed as real, so counterpoise (``cp``) and ``vmfc`` expansions are refused
before anything runs (:func:`check_xtb_model`, in :mod:`qcmb_parsl.engines.checks`), and a ghost atom
in a single input is an input error.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import qcengine
from qcelemental.models.v2 import AtomicInput, AtomicResult, FailedOperation
from qcelemental.util import which_import
from qcengine.config import TaskConfig
from qcengine.exceptions import InputError as QCEngineInputError
from qcengine.programs.model import ProgramHarness

from ..errors import InputError
from .programs import keywords_without_defaults

__all__ = ["METHODS", "XTBHarness", "check_xtb_model", "register_xtb_harness"]

logger = logging.getLogger(__name__)

#: Method names the stock harness accepts (lowercased) -> tblite's name of the model.
METHODS: dict[str, str] = {
    "gfn2-xtb": "GFN2-xTB",
    "gfn2xtb": "GFN2-xTB",
    "gfn1-xtb": "GFN1-xTB",
    "gfn1xtb": "GFN1-xTB",
}

#: Keywords (the stock harness's names) and their defaults: a value equal to its default is the same
#: calculation as leaving the keyword out.
KEYWORD_DEFAULTS: dict[str, float | int] = {
    "accuracy": 1.0,
    "max_iterations": 250,
    "electronic_temperature": 300.0,
}

#: Boltzmann's constant in Eh per K (CODATA 2018, as tblite's own conversion): tblite takes the
#: electronic temperature in Hartree.
_KELVIN_TO_HARTREE = 3.166811563e-6

#: What tblite computes: energies and analytic gradients.
DRIVERS = ("energy", "gradient")

#: Many-body treatments that need ghost atoms, which xtb does not have.
_GHOST_TREATMENTS = ("cp", "vmfc")


def _tblite_keywords(keywords: Mapping[str, Any]) -> dict[str, Any]:
    """The stock harness's keywords in tblite's names and units; unknown names are an input error."""
    translated: dict[str, Any] = {"verbosity": 0}
    for name, value in keywords.items():
        key = name.lower()
        if key == "accuracy":
            translated["accuracy"] = float(value)
        elif key == "max_iterations":
            translated["max-iter"] = int(value)
        elif key == "electronic_temperature":
            translated["temperature"] = float(value) * _KELVIN_TO_HARTREE
        else:
            raise QCEngineInputError(
                f"keyword {name!r} is not known to the xtb harness; known: {', '.join(KEYWORD_DEFAULTS)}"
            )
    return translated


def check_xtb_model(
    method: str, basis: Any, driver: str, keywords: Mapping[str, Any], bsse: Iterable[str]
) -> None:
    """One line naming what xtb cannot do with this model chemistry, before anything runs."""
    if method.lower() not in METHODS:
        raise InputError(f"method {method!r} is not known to xtb; use GFN2-xTB or GFN1-xTB")
    if basis:
        raise InputError(f"xtb takes no basis set (got {basis!r}): leave basis out for {method}")
    if driver not in DRIVERS:
        raise InputError(f"driver {driver!r} is not one xtb runs: {', '.join(DRIVERS)}")
    unknown = [name for name in keywords if name.lower() not in KEYWORD_DEFAULTS]
    if unknown:
        raise InputError(f"keyword {unknown[0]!r} is not known to xtb; known: {', '.join(KEYWORD_DEFAULTS)}")
    ghosts = [treatment for treatment in bsse if treatment in _GHOST_TREATMENTS]
    if ghosts:
        raise InputError(
            f"bsse_type {ghosts[0]} needs ghost atoms, which xtb does not have: use bsse_type nocp with xtb"
        )


class XTBHarness(ProgramHarness):
    """QCEngine harness for GFN-xTB through tblite, in-process; see the module docstring."""

    _defaults: ClassVar[dict[str, Any]] = {
        "name": "xtb",
        "scratch": False,
        "thread_safe": True,
        "thread_parallel": False,
        "node_parallel": False,
        "managed_memory": False,
    }

    @staticmethod
    def found(raise_error: bool = False) -> bool:
        """Look for tblite without importing it."""
        return which_import(
            "tblite",
            return_bool=True,
            raise_error=raise_error,
            raise_msg="Please install tblite via `pip install 'qcmb_parsl[xtb]'` (or `pip install tblite`).",
        )

    @staticmethod
    def canonical_keywords(keywords: Mapping[str, Any]) -> dict[str, Any]:
        """The keywords as this harness reads them, for cache keys (see ``keywords_without_defaults``)."""
        return keywords_without_defaults(keywords, KEYWORD_DEFAULTS)

    def get_version(self) -> str:
        """tblite's version (read from its installed metadata, without importing it)."""
        self.found(raise_error=True)
        return importlib.metadata.version("tblite")

    def compute(self, input_data: AtomicInput, config: TaskConfig) -> AtomicResult | FailedOperation:
        """Run one QCSchema v2 AtomicInput through ``tblite.qcschema.run_schema``."""
        self.found(raise_error=True)
        from tblite.qcschema import run_schema

        spec = input_data.specification
        method = METHODS.get(spec.model.method.lower())
        if method is None:
            raise QCEngineInputError(
                f"method {spec.model.method!r} is not known to xtb; use GFN2-xTB or GFN1-xTB"
            )
        if not all(input_data.molecule.real):
            raise QCEngineInputError("xtb has no ghost atoms: every atom must be real (use bsse_type nocp)")
        model = spec.model.model_copy(update={"method": method, "basis": None})
        tblite_spec = spec.model_copy(update={"model": model, "keywords": _tblite_keywords(spec.keywords)})
        output = run_schema(input_data.model_copy(update={"specification": tblite_spec}))
        # The result answers the input as given (the stock names), not tblite's translation of it.
        return output.model_copy(update={"input_data": input_data})


def register_xtb_harness() -> None:
    """Make ``program="xtb"`` this harness: in place of QCEngine's stock one, never of anyone else's.

    A harness named "xtb" that is not QCEngine's own (a user's) is left in place with a warning.
    """
    name = XTBHarness._defaults["name"]
    if name in qcengine.list_all_programs():
        current = qcengine.get_program(name, check=False)
        if isinstance(current, XTBHarness):
            return
        if not type(current).__module__.startswith("qcengine."):
            logger.warning(
                "QCEngine already has a %s harness named %r; not replacing it.", type(current).__name__, name
            )
            return
        qcengine.unregister_program(name)
    qcengine.register_program(XTBHarness())
