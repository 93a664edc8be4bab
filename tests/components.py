"""How a test reports a missing real component (engine, scheduler, MPI).

Under ``CI=true`` a missing component is a failure, never a skip: CI must prove the real components
work. Elsewhere the test skips with the reason.
"""

from __future__ import annotations

import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def require(available: bool, reason: str) -> None:
    """Skip (or, under CI=true, fail) the calling test when a real component is missing."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def require_nwchem() -> None:
    require(shutil.which("nwchem") is not None, "NWChem is not installed (apt-get install -y nwchem)")
