"""Shared test set-up: a private fragment cache per test, and how a missing component is reported.

Under ``CI=true`` a missing engine, scheduler or MPI is a failure, never a skip: CI must prove the
real components work. Elsewhere such a test skips with the reason.
"""

from __future__ import annotations

import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def require(condition: bool, reason: str) -> None:
    """Skip (or, under CI=true, fail) the calling test when a real component is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def require_nwchem() -> None:
    require(shutil.which("nwchem") is not None, "NWChem is not installed (apt-get install nwchem)")


@pytest.fixture(autouse=True)
def private_cache_dir(tmp_path, monkeypatch):
    """Every test gets an empty default cache, so counts of executed fragments mean something."""
    directory = tmp_path / "fragment-cache"
    monkeypatch.setenv("QCMB_PARSL_CACHE_DIR", str(directory))
    return directory
