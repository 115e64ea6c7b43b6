# `make demo` sets up and opens the dashboard with a built-in CPU demo; `make test` sets up and tests.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup demo test test-fast bench lint gpu-check compat

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned (the CPU wheel); a GPU user installs their own torch into the venv first.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

demo: setup
	$(VENV)/bin/nexus demo

# lint first: a type error, a forbidden import or a ruff finding fails CI before the suite runs.
test: setup compat lint
	$(PY) -m pytest -q

# The inner loop: tests/unit only (no engines, no child processes, no app), well under a minute.
# tests/integration (real engines, processes, signals) and tests/ui (Pilot, snapshots) run in `make test`.
test-fast: setup
	$(PY) -m pytest -q -p no:randomly tests/unit

bench: setup
	$(PY) bench/engine_speed.py

gpu-check: setup
	$(PY) bench/gpu_check.py --out gpu-check-out

# Python 3.10 is claimed but no 3.10 interpreter can be installed here (Debian 12 ships only 3.11; no
# registry we reach has a CPython 3.10 build): check statically that nothing needs more than 3.10
# (tomllib, typing.Self, except*, ...; a version-guarded import is fine).
compat: setup
	$(VENV)/bin/vermin -q -t=3.10- --no-tips --violations --eval-annotations engine nexus_core nexus_tui nexus

# Types (mypy; [tool.mypy] in pyproject.toml: strict on nexus_core and nexus, standard elsewhere),
# ruff's checks, and the import contracts (import-linter; each contract states its reason).
lint: setup
	$(VENV)/bin/mypy
	$(VENV)/bin/ruff check engine nexus_core nexus_tui nexus tests bench examples
	$(VENV)/bin/ruff format --check engine nexus_core nexus_tui nexus tests bench examples
	$(VENV)/bin/lint-imports
