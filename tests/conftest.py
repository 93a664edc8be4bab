"""Shared test set-up: a private fragment cache per test, and one core per upstream fragment."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def private_cache_dir(tmp_path, monkeypatch):
    """Every test gets an empty default cache, so counts of executed fragments mean something."""
    directory = tmp_path / "fragment-cache"
    monkeypatch.setenv("QCMB_PARSL_CACHE_DIR", str(directory))
    return directory


@pytest.fixture(autouse=True)
def one_core_per_upstream_fragment(monkeypatch):
    """Upstream's serial references pass no task_config, so QCEngine would give every tiny fragment
    all cores: OpenMP threads only add synchronisation there (10x slower on a busy 2-core machine)."""
    monkeypatch.setenv("QCENGINE_NCORES", "1")
