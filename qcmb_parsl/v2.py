"""QCSchema v2 flavour: ``from qcmb_parsl.v2 import ManyBodyComputer``, as ``qcmanybody.v2`` does."""

from .computer import ManyBodyComputerV2 as ManyBodyComputer

__all__ = ["ManyBodyComputer"]
