"""PySCF as a QCEngine program, run in-process.

QCEngine 0.52 ships no PySCF harness, yet PySCF is the fastest engine here for the many small
fragment calculations of a many-body expansion: no process start, no input files.  This module
supplies one in the shape of QCEngine's own in-process harnesses (``qcengine/programs/xtb.py``)
and registers it as ``program="pyscf"``.  QCEngine hands harnesses QCSchema v2 inputs (v1 input
is converted by ``qcengine.compute``), so v1 and v2 callers both work.

Conventions, chosen to match Psi4 and QCEngine's stock NWChem harness so that engines can be
swapped or mixed within one expansion:

* MP2, CCSD and CCSD(T) correlate all electrons unless ``frozen_core`` is set; Psi4 and
  NWChem freeze nothing by default (measured: PySCF all-electron MP2/cc-pVDZ water equals
  NWChem's stock-harness MP2 to 4e-10 Eh, frozen core differs by 2.3e-3 Eh).
* Spherical basis functions unless ``cartesian`` is set (NWChem needs ``basis__spherical``).
* Closed shells use RHF/RKS, open shells UHF/UKS, chosen from the molecule's multiplicity.
* Ghost atoms (``real=False``, as in every counterpoise fragment) carry their element's basis
  functions and DFT grid but no nuclear charge and no electrons.
* No symmetry and no reorientation: gradients and Hessians are in the input frame, with rows
  for ghost atoms too, as QCManyBody's assembly expects.

Dispersion corrections (DFT-D3 and D4 through pyscf-dispersion) are written as QCEngine writes them,
a suffix to the functional: ``b3lyp-d3bj``, ``b3lyp-d3zero`` (or ``-d3``), ``pbe0-d4``; every spelling
is in ``DISPERSION_CORRECTIONS``. As in QCEngine and PySCF, D3 is two-body only and D4 includes its
three-body (ATM) term. PySCF's own composite names (``wb97x-d3bj``, ``wb97x-3c``, ``cf22d``, ...) keep
PySCF's meaning. The correction is evaluated over the real atoms alone and added to the functional's
energy, gradient and Hessian; the SCF never sees it (it does not change the density). Ghost atoms must
not disperse, and PySCF would hand them to pyscf-dispersion as atoms of nuclear charge 0, which D4
answers with a wrong energy and NaN gradients (measured, pyscf-dispersion 1.5.0: a water beside a ghost
water, D4 -5.07e-8 Eh instead of the lone water's -3.0956e-4 Eh) and D3 with a 4e-10 Eh error.
Hessians of the correction are PySCF's central differences of its analytic gradients (step 1e-5 Bohr),
measured within 1e-12 of dftd3's analytic Hessian for a water dimer.

Keywords (``specification.keywords``, case-insensitive; any other keyword, and two names that
differ only in case, are an InputError, so that a keyword meant for another engine is never silently
ignored and the order of two spellings never decides the numbers):

=============  ======  ========================================================================
keyword        default meaning
=============  ======  ========================================================================
conv_tol       1e-10   SCF energy threshold (Eh); also the CCSD energy threshold
conv_tol_grad  1e-6    SCF orbital-gradient threshold; also the CCSD amplitude threshold.
                       Tighter than PySCF's sqrt(conv_tol): gradients then lie within 1e-7
                       of fully converged ones (measured: water dimer B3LYP, MP2 with
                       ghosts); 1e-7 stalls near-degenerate open shells (UKS OH radical)
max_cycle      100     SCF iteration limit; an SCF that has not converged is a failed result
cartesian      False   cartesian (6d, 10f) instead of spherical basis functions
frozen_core    False   freeze PySCF's chemical core (``pyscf.data.elements.chemcore``) in
                       MP2, CCSD and CCSD(T)
grid_level     3       PySCF DFT grid level (0-9); level 3 is within 1e-8 Eh of level 9 for
                       B3LYP water
=============  ======  ========================================================================

A value equal to its default is the same calculation as leaving the keyword out; the fragment cache
keys keywords the way this harness reads them (``PySCFHarness.canonical_keywords``) and keys the
harness by this package's version, so a release that changes a default here never hits old results.

Task configuration: ``ncores`` sets PySCF's OpenMP threads, ``memory`` (GiB) its ``max_memory``,
and PySCF's temporary files go to a directory under ``scratch_directory`` that is removed
afterwards (kept with ``scratch_messy``).  PySCF's settings are process-global, so the harness
is not thread-safe; Parsl's process-based workers are the intended host.
"""

from __future__ import annotations

import importlib.metadata
import io
import logging
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import qcengine
from qcelemental.models.v2 import AtomicInput, AtomicResult, Provenance
from qcelemental.util import safe_version, which_import
from qcengine.config import TaskConfig
from qcengine.exceptions import ConvergenceError, InputError
from qcengine.programs.model import ProgramHarness

from ..spelling import did_you_mean, squeeze
from .programs import keywords_without_defaults

if TYPE_CHECKING:
    from pyscf import gto, scf

__all__ = ["PySCFHarness", "check_request", "register_pyscf_harness"]

logger = logging.getLogger(__name__)

KEYWORD_DEFAULTS: dict[str, Any] = {
    "conv_tol": 1e-10,
    "conv_tol_grad": 1e-6,
    "max_cycle": 100,
    "cartesian": False,
    "frozen_core": False,
    "grid_level": 3,
}

#: Dispersion corrections by PySCF's name for them: what it is, and the suffixes that ask for it (QCEngine's
#: names and aliases, and the formal names written in the literature).
DISPERSION_CORRECTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "d3bj": ("D3(BJ), two-body", ("d3bj", "d3(bj)", "d3bj2b")),
    "d3zero": ("D3(0), two-body", ("d3zero", "d3", "d3(0)", "d3zero2b", "d32b")),
    "d4": ("D4 with its three-body term", ("d4", "d4bj", "d4(bj)", "d4bjeeqatm", "d4(bj,eeq)atm")),
}
_DISPERSION_SUFFIXES = {
    suffix: version for version, (_, suffixes) in DISPERSION_CORRECTIONS.items() for suffix in suffixes
}
SUPPORTED_DISPERSION = ", ".join(
    f"-{suffixes[0]} ({what}; also {', '.join('-' + s for s in suffixes[1:])})"
    for what, suffixes in DISPERSION_CORRECTIONS.values()
)

SUPPORTED_METHODS = (
    "hf (or scf), mp2, ccsd, ccsd(t), or a PySCF/libxc DFT functional (b3lyp, pbe0, wb97x-v, ...), "
    "optionally with a dispersion correction "
    f"({', '.join('-' + suffixes[0] for _, suffixes in DISPERSION_CORRECTIONS.values())})"
)

#: The methods that are not DFT functionals, as users write them.
WAVEFUNCTION_METHODS = ("hf", "scf", "mp2", "ccsd", "ccsd(t)")

#: Elements whose functions nearly every basis set of PySCF's library has: a name none of them loads
#: for is not a basis set PySCF knows, rather than one that lacks an element of the molecule.
_PROBE_ELEMENTS = ("H", "C", "O")

#: What PySCF's basis loader raises for a name it cannot read (a Pople name it cannot split is a
#: KeyError, a malformed ``@`` contraction an AssertionError).
_BASIS_ERRORS = (RuntimeError, KeyError, ValueError, IndexError, AssertionError, OSError, AttributeError)

#: A keyword's type in words, for messages.
_TYPE_WORDS = {float: "a number", int: "an integer", bool: "true or false"}

# Analytic derivatives PySCF provides, per method family.
_DRIVERS: dict[str, tuple[str, ...]] = {
    "hf": ("energy", "gradient", "hessian"),
    "dft": ("energy", "gradient", "hessian"),
    "mp2": ("energy", "gradient"),
    "ccsd": ("energy", "gradient"),
    "ccsd(t)": ("energy",),
}


def _coerce(name: str, value: Any) -> Any:
    """An int where a float is expected is that float; every other value stays as it is."""
    if type(KEYWORD_DEFAULTS.get(name)) is float and type(value) is int:
        return float(value)
    return value


def _parse_keywords(keywords: Mapping[str, Any]) -> dict[str, Any]:
    """Merge user keywords over the defaults, rejecting unknown names, case duplicates and wrong types."""
    options = dict(KEYWORD_DEFAULTS)
    given: dict[str, str] = {}
    for key, value in keywords.items():
        name = key.lower()
        if name not in KEYWORD_DEFAULTS:
            raise InputError(
                f"PySCF keyword {key!r} is not known{did_you_mean(name, KEYWORD_DEFAULTS, squeeze)} "
                f"(PySCF's keywords: {', '.join(KEYWORD_DEFAULTS)})"
            )
        if name in given:
            raise InputError(
                f"PySCF keywords {given[name]!r} and {key!r} differ only in case; give one of them."
            )
        given[name] = key
        value = _coerce(name, value)
        expected = type(KEYWORD_DEFAULTS[name])
        if type(value) is not expected:
            raise InputError(f"PySCF keyword {key!r} must be {_TYPE_WORDS[expected]}, got {value!r}")
        options[name] = value
    return options


@dataclass(frozen=True)
class Functional:
    """A DFT method as PySCF runs it.

    ``xc`` and ``nlc`` are PySCF's settings for the SCF (``nlc`` False turns off the VV10 part of a
    functional whose dispersion is an empirical correction instead, as in PySCF's ``wb97x-d3bj``);
    ``dispersion`` is PySCF's name of the correction (``"d3bj"``, ``"d3zero"``, ``"d4"``, or
    ``"d4:wb97x-3c"``-like for PySCF's composite methods), None for none.
    """

    xc: str
    nlc: str | bool
    dispersion: str | None


def _functional(method: str) -> Functional:
    """Split a DFT method name into functional and dispersion correction, as PySCF reads it.

    PySCF's ``parse_dft`` knows its composite methods; the suffix it splits off is then read in
    QCEngine's spellings. An unknown suffix is an InputError listing the supported ones.
    """
    from pyscf.scf.dispersion import parse_dft

    try:
        xc, nlc, dispersion = parse_dft(method)
    except NotImplementedError as err:
        raise InputError(f"method {method!r} is not known to PySCF ({err})") from err
    if dispersion is None:
        return Functional(xc, nlc, None)
    version, colon, parameters = dispersion.partition(":")
    if version not in _DISPERSION_SUFFIXES or ":" in method:
        suffix = method[len(xc) :] if method.startswith(xc) else dispersion
        raise InputError(
            f"dispersion correction {suffix!r} of method {method!r} is not one the PySCF harness knows; "
            f"supported suffixes: {SUPPORTED_DISPERSION}"
        )
    if not which_import("pyscf.dispersion", return_bool=True):
        raise InputError(
            f"Method {method!r} has a dispersion correction, which needs `pip install pyscf-dispersion` "
            "(a dependency of qcmb_parsl: reinstall qcmb_parsl in this environment)."
        )
    return Functional(xc, nlc, _DISPERSION_SUFFIXES[version] + colon + parameters)


def _classify_method(method: str) -> tuple[str, Functional | None]:
    """Return the method family ("hf", "dft", "mp2", "ccsd", "ccsd(t)") and, for DFT, the functional;
    or raise InputError."""
    if method in ("hf", "scf"):
        return "hf", None
    if method in ("mp2", "ccsd", "ccsd(t)"):
        return method, None

    functional = _functional(method)
    if not _is_functional(functional.xc):
        raise InputError(_unknown_functional(method, functional.xc))
    return "dft", functional


def _is_functional(xc: str) -> bool:
    """Whether libxc, through PySCF, reads ``xc`` as an exchange-correlation functional."""
    from pyscf.dft import libxc

    try:
        libxc.parse_xc(xc)
    except (KeyError, ValueError, NotImplementedError):
        return False
    return True


def _unknown_functional(method: str, xc: str) -> str:
    """What is wrong with a method whose functional libxc does not read: a suffix after a functional it
    reads is a dispersion correction this harness does not know; else the nearest methods it runs."""
    base, dash, suffix = method.rpartition("-")
    if xc == method and dash and _is_functional(base):
        return (
            f"dispersion correction {dash + suffix!r} of method {method!r} is not one the PySCF harness "
            f"knows; supported suffixes: {SUPPORTED_DISPERSION}"
        )
    what = f"method {method!r}" if xc == method else f"functional {xc!r} of method {method!r}"
    hint = did_you_mean(xc, _method_names(), squeeze)
    return f"{what} is not known to PySCF{hint or f' (methods: {SUPPORTED_METHODS})'}"


@cache
def _method_names() -> tuple[str, ...]:
    """Every method name the harness takes without a dispersion suffix: offered for a mistyped one."""
    from pyscf.dft import libxc

    functionals = {name.lower() for name in (*libxc.XC_ALIAS, *libxc.XC_CODES)}
    return (*WAVEFUNCTION_METHODS, *sorted(functionals))


def check_basis(basis: Any, elements: Iterable[str]) -> None:
    """InputError unless ``basis`` names a basis set PySCF loads for every element in ``elements`` (with
    no elements: for some element at all, so that a mistyped name is refused before a molecule is read).

    The loading is PySCF's own (``pyscf.gto.basis.load``, what building the molecule does), so a name
    refused here is one every fragment would fail on; ghost atoms take their element's functions.
    """
    if basis is None or basis == "":
        raise InputError("no basis set given: PySCF's methods need one, e.g. cc-pvdz")
    if not isinstance(basis, str):
        raise InputError(f"The PySCF harness needs a basis-set name (e.g. 'cc-pvdz'), got {basis!r}.")
    present = sorted(set(elements))
    missing = [element for element in present if not _loads(basis, element)]
    if present and not missing:
        return
    if len(missing) == len(present) and not any(_loads(basis, element) for element in _PROBE_ELEMENTS):
        hint = did_you_mean(basis, _basis_names(), squeeze)
        raise InputError(f"basis {basis!r} is not known to PySCF{hint or ' (nor to its basis-set library)'}")
    if missing:
        raise InputError(
            f"basis {basis!r} has no functions for {', '.join(missing)} in PySCF's library: "
            "choose a basis set that covers every element"
        )


@cache
def _loads(basis: str, element: str) -> bool:
    """Whether PySCF loads ``basis`` for ``element`` (its own warnings, such as the suggestion to install
    basis-set-exchange, kept quiet: the refusal says what is wrong)."""
    from pyscf.gto import basis as library

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            library.load(basis, element)
        except _BASIS_ERRORS:
            return False
    return True


@cache
def _basis_names() -> tuple[str, ...]:
    """The names of PySCF's library, spelled as its files are where they match (``6-31g``, ``cc-pvdz``)."""
    from pyscf.gto.basis import ALIAS

    names = []
    for name, target in ALIAS.items():
        stem = os.path.basename(target)[: -len(".dat")] if isinstance(target, str) else ""
        names.append(stem.lower() if stem and squeeze(stem) == name else name)
    return tuple(names)


def check_request(
    method: str, basis: Any, driver: str, keywords: Mapping[str, Any], elements: Iterable[str]
) -> None:
    """Raise the InputError a fragment of this model chemistry would fail with, without computing.

    Method, driver and keywords as :meth:`PySCFHarness.compute` reads them, the basis set for every
    element present as building the molecule loads it: a check on the driver before anything starts.
    """
    _method_driver_options(method.lower(), driver, keywords)
    check_basis(basis, elements)


def _method_driver_options(
    method: str, driver: str, keywords: Mapping[str, Any]
) -> tuple[str, Functional | None, dict[str, Any]]:
    """The method's family and functional and the keywords over their defaults; InputError for a
    method, a driver or keywords the harness cannot run."""
    if driver not in ("energy", "gradient", "hessian"):
        raise InputError(
            f"driver {driver!r} is not supported by the PySCF harness; use energy, gradient or hessian"
        )
    family, functional = _classify_method(method)
    if driver not in _DRIVERS[family]:
        raise InputError(
            f"PySCF has no analytic {driver} for {method!r}; drivers it has: {', '.join(_DRIVERS[family])}"
        )
    return family, functional, _parse_keywords(keywords)


def _integer(value: float, what: str) -> int:
    """PySCF needs integral charge and multiplicity; QCSchema allows floats."""
    if abs(value - round(value)) > 1e-8:
        raise InputError(f"The PySCF harness needs an integral {what}, got {value}.")
    return round(value)


@contextmanager
def _pyscf_environment(config: TaskConfig) -> Iterator[None]:
    """Apply the task's threads and scratch directory to PySCF's process-global settings.

    The settings are process-wide and fragments may run in several threads of one process (the
    ``threads`` preset), so they are set to the same values by every fragment and never swapped
    back: PySCF names its temporary files uniquely inside the scratch directory and removes them
    itself. SCF checkpoint files are muted (PySCF's ``scf_hf_SCF_mute_chkfile`` setting): nothing
    reads them.
    """
    from pyscf import lib
    from pyscf.scf import hf as scf_hf

    lib.param.TMPDIR = str(config.scratch_directory or tempfile.gettempdir())
    scf_hf.MUTE_CHKFILE = True
    with lib.with_omp_threads(config.ncores):
        yield


def _build_mole(
    input_data: AtomicInput, options: dict[str, Any], config: TaskConfig, log: io.StringIO
) -> gto.Mole:
    """Translate the QCSchema molecule (Bohr) into a PySCF Mole with ghost atoms as ``ghost-X``."""
    from pyscf import gto, lib

    basis = input_data.specification.model.basis
    if not isinstance(basis, str):
        raise InputError(f"The PySCF harness needs a basis-set name (e.g. 'cc-pvdz'), got {basis!r}.")
    molecule = input_data.molecule
    mol = gto.Mole()
    mol.atom = [
        (symbol if real else f"ghost-{symbol}", tuple(float(x) for x in xyz))
        for symbol, real, xyz in zip(molecule.symbols, molecule.real, molecule.geometry, strict=True)
    ]
    mol.unit = "Bohr"
    mol.basis = basis
    mol.charge = _integer(molecule.molecular_charge, "molecular charge")
    mol.spin = _integer(molecule.molecular_multiplicity, "multiplicity") - 1
    mol.cart = options["cartesian"]
    mol.symmetry = False
    # PySCF counts memory in MB of 10**6 bytes; QCEngine gives GiB.
    mol.max_memory = config.memory * 1024**3 / 1e6
    mol.verbose = lib.logger.NOTE
    mol.stdout = log
    try:
        mol.build(dump_input=False, parse_arg=False)
    except (RuntimeError, KeyError) as err:
        raise InputError(f"PySCF cannot build the molecule with basis {basis!r}: {err}") from err
    return mol


def _require_converged(solver: Any, what: str, hint: str) -> None:
    """A non-converged iteration must fail the task, never return a number."""
    if not solver.converged:
        raise ConvergenceError(
            f"PySCF {what} did not converge within {solver.max_cycle} cycles "
            f"(conv_tol={solver.conv_tol}); {hint}."
        )


def _run_scf(mol: gto.Mole, functional: Functional | None, options: dict[str, Any]) -> scf.hf.SCF:
    """Converge the restricted or unrestricted HF/KS reference that the multiplicity calls for."""
    from pyscf import dft, scf

    restricted = mol.spin == 0
    if functional is not None:
        mf = dft.RKS(mol, xc=functional.xc) if restricted else dft.UKS(mol, xc=functional.xc)
        if functional.nlc != "":
            mf.nlc = functional.nlc
        # The dispersion correction is added over the real atoms afterwards (see _dispersion); PySCF's
        # own would take ghost atoms for atoms.
        mf.disp = False
        mf.grids.level = options["grid_level"]
    else:
        mf = scf.RHF(mol) if restricted else scf.UHF(mol)
    mf.conv_tol = options["conv_tol"]
    mf.conv_tol_grad = options["conv_tol_grad"]
    mf.max_cycle = options["max_cycle"]
    mf.kernel()
    _require_converged(
        mf,
        f"{type(mf).__name__} SCF",
        "raise 'max_cycle', loosen 'conv_tol_grad' if the orbital gradient stalls, "
        "or check charge and multiplicity",
    )
    return mf


def _scf_properties(mol: gto.Mole, mf: scf.hf.SCF, family: str) -> dict[str, Any]:
    """SCF-level properties.

    DFT gets no two-electron/XC split: PySCF folds exact exchange into its XC energy, and
    separating it would cost an extra exchange build per fragment.
    """
    dm = mf.make_rdm1()
    nalpha, nbeta = mol.nelec
    props: dict[str, Any] = {
        "calcinfo_natom": mol.natm,
        "calcinfo_nbasis": mol.nao_nr(),
        "calcinfo_nmo": mf.mo_coeff.shape[-1],
        "calcinfo_nalpha": nalpha,
        "calcinfo_nbeta": nbeta,
        "nuclear_repulsion_energy": mol.energy_nuc(),
        "scf_total_energy": mf.e_tot,
        "scf_iterations": mf.cycles,
        "scf_one_electron_energy": float(np.einsum("ij,...ji->...", mf.get_hcore(), dm).sum()),
        "return_energy": mf.e_tot,
    }
    if family == "hf":
        props["scf_two_electron_energy"] = float(mf.energy_elec(dm)[1])
    return props


@dataclass(frozen=True)
class Dispersion:
    """A dispersion correction on every atom of a molecule: PySCF's layouts, zero on ghost atoms."""

    energy: float
    gradient: np.ndarray | None = None  # (natom, 3)
    hessian: np.ndarray | None = None  # (natom, natom, 3, 3)


def _dispersion(mol: gto.Mole, real: Sequence[bool], functional: Functional, driver: str) -> Dispersion:
    """The correction over the real atoms alone, through PySCF's dispersion routines, on all atoms.

    A molecule of the real atoms (same charge, which D4's charge model reads) stands in for the
    fragment; the derivatives are scattered back onto the rows of the real atoms.
    """
    from pyscf import dft, gto
    from pyscf.scf.dispersion import get_dispersion

    atoms = [index for index, flag in enumerate(real) if flag]
    coordinates = mol.atom_coords()
    bare = gto.Mole()
    bare.atom = [(mol.atom_pure_symbol(index), tuple(coordinates[index])) for index in atoms]
    bare.unit = "Bohr"
    bare.basis = mol.basis
    bare.charge, bare.spin = mol.charge, mol.spin
    bare.verbose = 0
    bare.build(dump_input=False, parse_arg=False)
    mf = dft.UKS(bare, xc=functional.xc)  # never run: a holder of xc and disp; UKS has a Hessian for any spin
    mf.disp = functional.dispersion
    energy = float(get_dispersion(mf))
    if driver == "energy":
        return Dispersion(energy)
    gradient = np.zeros((mol.natm, 3))
    gradient[atoms] = mf.nuc_grad_method().get_dispersion()
    if driver == "gradient":
        return Dispersion(energy, gradient)
    hessian = np.zeros((mol.natm, mol.natm, 3, 3))
    hessian[np.ix_(atoms, atoms)] = mf.Hessian().get_dispersion()
    return Dispersion(energy, gradient, hessian)


def _correlate(mf: scf.hf.SCF, family: str, options: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """Run MP2 or CCSD[(T)] on the converged reference; return its properties and the solver,
    which is also what PySCF differentiates for gradients."""
    from pyscf import cc, mp
    from pyscf.data.elements import chemcore

    frozen = chemcore(mf.mol) if options["frozen_core"] else 0
    if family == "mp2":
        pt = mp.MP2(mf, frozen=frozen)
        pt.kernel()
        return {
            "mp2_same_spin_correlation_energy": pt.e_corr_ss,
            "mp2_opposite_spin_correlation_energy": pt.e_corr_os,
            "mp2_doubles_energy": pt.e_corr,
            "mp2_correlation_energy": pt.e_corr,
            "mp2_total_energy": pt.e_tot,
            "return_energy": pt.e_tot,
        }, pt

    ccsd = cc.CCSD(mf, frozen=frozen)
    ccsd.conv_tol = options["conv_tol"]
    ccsd.conv_tol_normt = options["conv_tol_grad"]
    ccsd.kernel()
    _require_converged(ccsd, type(ccsd).__name__, "loosen 'conv_tol' and 'conv_tol_grad'")
    props = {
        "ccsd_correlation_energy": ccsd.e_corr,
        "ccsd_total_energy": ccsd.e_tot,
        "return_energy": ccsd.e_tot,
    }
    if family == "ccsd(t)":
        triples = ccsd.ccsd_t()
        props.update(
            ccsd_prt_pr_correlation_energy=ccsd.e_corr + triples,
            ccsd_prt_pr_total_energy=ccsd.e_tot + triples,
            return_energy=ccsd.e_tot + triples,
        )
    return props, ccsd


def _run(
    mol: gto.Mole,
    real: Sequence[bool],
    family: str,
    functional: Functional | None,
    driver: str,
    options: dict[str, Any],
) -> tuple[dict[str, Any], Any]:
    """Run the calculation and return (properties, return_result)."""
    mf = _run_scf(mol, functional, options)
    props = _scf_properties(mol, mf, family)
    dispersion = None
    if functional is not None and functional.dispersion is not None:
        dispersion = _dispersion(mol, real, functional, driver)
        props["scf_dispersion_correction_energy"] = dispersion.energy
        props["scf_total_energy"] += dispersion.energy
        props["return_energy"] = props["scf_total_energy"]
    solver: Any = mf
    if family in ("mp2", "ccsd", "ccsd(t)"):
        correlated, solver = _correlate(mf, family, options)
        props.update(correlated)

    if driver == "energy":
        return props, props["return_energy"]
    if driver == "gradient":
        if family == "ccsd":
            # PySCF only logs a non-converged lambda solve; its gradient would be silently wrong.
            solver.solve_lambda()
            if not solver.converged_lambda:
                raise ConvergenceError(
                    f"PySCF CCSD lambda equations did not converge in {solver.max_cycle} cycles."
                )
        gradient = np.asarray(solver.nuc_grad_method().kernel())
        if dispersion is not None:
            gradient = gradient + dispersion.gradient
        props["return_gradient"] = gradient
        if family in ("hf", "dft"):
            props["scf_total_gradient"] = gradient
        return props, gradient
    natom = mol.natm
    hessian = mf.Hessian().kernel()
    if dispersion is not None:
        hessian = hessian + dispersion.hessian
    # PySCF's Hessian is [atom_i, atom_j, xyz_i, xyz_j]; QCSchema wants (3N, 3N).
    hessian = hessian.transpose(0, 2, 1, 3).reshape(3 * natom, 3 * natom)
    props.update(return_hessian=hessian, scf_total_hessian=hessian)
    return props, hessian


class PySCFHarness(ProgramHarness):
    """QCEngine harness running PySCF in-process; see the module docstring for conventions and keywords."""

    _defaults: ClassVar[dict[str, Any]] = {
        "name": "pyscf",
        "scratch": True,
        "thread_safe": False,
        "thread_parallel": True,
        "node_parallel": False,
        "managed_memory": True,
    }

    @staticmethod
    def found(raise_error: bool = False) -> bool:
        """Look for PySCF without importing it, so registration and discovery stay cheap."""
        return which_import(
            "pyscf",
            return_bool=True,
            raise_error=raise_error,
            raise_msg="Please install PySCF via `pip install pyscf`.",
        )

    @staticmethod
    def canonical_keywords(keywords: Mapping[str, Any]) -> dict[str, Any]:
        """The keywords as this harness reads them, for cache keys: equal exactly when the options are.

        Names are lowercased, ints coerced where floats are expected, and values equal to
        ``KEYWORD_DEFAULTS`` (and of the default's type: ``cartesian=0`` is refused, not false) left
        out, since leaving them out gives the same calculation. Names that differ only in case are
        refused by the harness; they stay as given, so they never share a key with an input that runs.
        """
        return keywords_without_defaults(keywords, KEYWORD_DEFAULTS)

    @staticmethod
    def model_identity(method: str) -> str | None:
        """What besides PySCF makes ``method``'s numbers, for cache keys: ``"pyscf-dispersion 1.5.0"``
        for a dispersion-corrected functional (a release with new damping parameters must not hit old
        results), None for every other method, including those this harness refuses."""
        try:
            functional = _functional(method.lower())
        except InputError:
            return None
        if functional.dispersion is None:
            return None
        return f"pyscf-dispersion {importlib.metadata.version('pyscf-dispersion')}"

    def get_version(self) -> str:
        """Return PySCF's version (imports PySCF)."""
        self.found(raise_error=True)
        import pyscf

        return safe_version(pyscf.__version__)

    def compute(self, input_data: AtomicInput, config: TaskConfig) -> AtomicResult:
        """Run one QCSchema v2 AtomicInput.

        Failures are raised as QCEngine errors, which ``qcengine.compute`` turns into a
        FailedOperation carrying the error type.
        """
        self.found(raise_error=True)
        spec = input_data.specification
        driver = spec.driver.value
        method = spec.model.method.lower()
        family, functional, options = _method_driver_options(method, driver, spec.keywords)
        logger.debug("PySCF %s/%s %s with %s", method, spec.model.basis, driver, options)

        log = io.StringIO()
        with _pyscf_environment(config):
            mol = _build_mole(input_data, options, config, log)
            real = input_data.molecule.real
            properties, return_result = _run(mol, real, family, functional, driver, options)

        return AtomicResult(
            input_data=input_data,
            molecule=input_data.molecule,
            properties=properties,
            return_result=return_result,
            provenance=Provenance(creator="PySCF", version=self.get_version(), routine=__name__),
            stdout=log.getvalue() or None,
            success=True,
        )


def register_pyscf_harness() -> None:
    """Make ``program="pyscf"`` available to ``qcengine.compute``.

    Called at package import and again in every Parsl worker, so a second call is a no-op.  A
    different harness already registered as "pyscf" (a user's, or a future QCEngine's) is left
    in place with a warning rather than replaced behind its owner's back.
    """
    name = PySCFHarness._defaults["name"]
    if name in qcengine.list_all_programs():
        current = qcengine.get_program(name, check=False)
        if not isinstance(current, PySCFHarness):
            logger.warning(
                "QCEngine already has a %s harness named %r; not replacing it.", type(current).__name__, name
            )
        return
    qcengine.register_program(PySCFHarness())
