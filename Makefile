# mlr1_titan developer entry points. `make test`, `make lint` and `make demo` work on a fresh machine:
# they create .venv and install the project (torch 2.14.1 first, then `pip install -e .[dev]`).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_SPEC ?= torch==2.14.1
PYTEST_ARGS ?=

.PHONY: install sandbox-tools test test-fast lint format demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: on these machines it comes from the local wheel cache.
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The code sandbox's strict level needs bubblewrap (Debian/Ubuntu package `bubblewrap`); as root
# with apt this installs it, elsewhere it stops with what to install.
sandbox-tools:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null || \
	    { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; }; \
	  else echo "the code sandbox needs bubblewrap: install the 'bubblewrap' package (it provides bwrap)" >&2; exit 1; fi; }
	@bwrap --version

test: $(STAMP) sandbox-tools
	$(PY) -m pytest -q -ra --durations=15 $(PYTEST_ARGS)

test-fast: $(STAMP) sandbox-tools
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

# ruff (lint + format check) and the import-linter contracts of pyproject.toml.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(VENV)/bin/ruff check --select I --fix .
	$(VENV)/bin/ruff format .

# The whole recipe at tiny scale (docs/demo.md); the evaluation's code sandbox needs bubblewrap.
demo: $(STAMP) sandbox-tools
	$(VENV)/bin/mlr1 demo

bench: $(STAMP)
	$(PY) benchmarks/model_step_cpu.py
	$(PY) benchmarks/gpu_check.py

clean:
	rm -rf outputs .pytest_cache
