# The two commands of the README: `make demo` and `make test`.
# Each creates .venv on first use and installs the package into it; both are idempotent.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Optional torch requirement installed first, e.g. `make test TORCH=torch==2.13.0` (a CPU wheel),
# from TORCH_INDEX if given (e.g. PyTorch's CPU-only index, see README). Default: neither.
TORCH ?=
TORCH_INDEX ?=

.PHONY: demo test test-all test-hf-suite lint install clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(if $(TORCH),$(PY) -m pip install -q $(if $(TORCH_INDEX),--index-url '$(TORCH_INDEX)') '$(TORCH)')
	$(PY) -m pip install -q -e '.[test,hf]'
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m tupe.demo --out runs/demo $(DEMO_ARGS)

lint: $(VENV)/.installed
	$(PY) -m ruff check .

test: lint
	$(PY) -m pytest -q

test-all: $(VENV)/.installed
	$(PY) -m pytest -q -m ''

# transformers' own common model tests (ModelTesterMixin, ConfigTester) against tupe.hf, from the
# source release of the installed transformers (fetched into .cache/hf-suite); see docs/huggingface.md.
test-hf-suite: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[conformance]'
	$(PY) conformance/hf_suite.py $(HF_SUITE_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
