# Two entry points for a fresh Debian machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_QUIET ?= -q
SYSTEM_PACKAGES := nwchem slurm-wlm munge openmpi-bin libopenmpi-dev

.PHONY: demo test test-fast lint docs dist configs bench system-deps venv clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_QUIET) --upgrade pip
	$(PY) -m pip install $(PIP_QUIET) -e ".[test,mpi,xtb]"
	touch $@

# Engines, scheduler and MPI for the tests, from Debian's packages (only where we are root with apt).
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(SYSTEM_PACKAGES); \
	else \
		echo "not root or no apt-get: tests needing $(SYSTEM_PACKAGES) will skip"; \
	fi

demo: venv
	$(PY) examples/water_cluster_demo.py

# One pytest worker per core; the tests of the one test Slurm stay together on one of them (tests/conftest.py).
test: system-deps venv
	$(PY) -m pytest -n auto --dist loadgroup

# Unit tests only (marker `fast`): no Parsl start-up, no Slurm, MPI or NWChem; under a minute.
test-fast: venv
	$(PY) -m pytest -m "fast and not (slow or nwchem or slurm or mpi)"

# The package (and the docs' build scripts) as CI checks it: ruff's rules and format, then mypy (settings in
# pyproject.toml).
LINTED := qcmb_parsl parsl_configs docs/*.py
lint: $(VENV)/.lint-installed
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/mypy

$(VENV)/.lint-installed: $(VENV)/.installed
	$(PY) -m pip install $(PIP_QUIET) -e ".[lint]"
	touch $@

# The documentation site in site/, every warning an error. Material for MkDocs and a plugin print
# notices about MkDocs 2.0 on every build, which are no warnings of this site: the variables silence them.
docs: $(VENV)/.docs-installed
	NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true $(VENV)/bin/mkdocs build --strict

$(VENV)/.docs-installed: $(VENV)/.installed
	$(PY) -m pip install $(PIP_QUIET) -e ".[docs]"
	touch $@

# The sdist and wheel in dist/, and twine's check that their metadata renders on a package index.
dist: $(VENV)/.release-installed
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(VENV)/bin/twine check --strict dist/*

$(VENV)/.release-installed: $(VENV)/.installed
	$(PY) -m pip install $(PIP_QUIET) -e ".[release]"
	touch $@

# parsl_configs/ written from the presets (a test fails when a preset changed and this was not run).
configs: venv
	$(PY) -m qcmb_parsl presets --write-configs parsl_configs

bench: venv
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) runinfo .pytest_cache site dist
