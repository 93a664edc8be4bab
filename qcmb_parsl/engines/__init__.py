"""Engines as QCEngine sees them: the harnesses this project ships, and checks of any program."""

from .pyscf import register_pyscf_harness
from .xtb import register_xtb_harness


def register_harnesses() -> None:
    """The project's harnesses registered with QCEngine: PySCF as ``"pyscf"``, GFN-xTB as ``"xtb"``.

    Called at package import, in every worker and in every template, so a second call is a no-op.
    """
    register_pyscf_harness()
    register_xtb_harness()


__all__ = ["register_harnesses"]
