# The two commands of README.md: `make demo` and `make test`.
# Both create .venv with the system python3 (3.11+) on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WORKDIR ?= runs/demo

# The demo needs the runtime dependencies only; the tests add the reference
# implementations they compare against (torch, transformers, ...).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[test]'
	touch $@

.PHONY: setup demo test clean
setup: $(VENV)/.installed

demo: setup
	$(PY) scripts/demo.py --workdir $(WORKDIR)

# Two workers (pytest-xdist), a test file each at a time: 1.4x faster than one on 2 cores.
TEST_WORKERS ?= 2
test: $(VENV)/.installed-test
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

clean:
	rm -rf $(VENV) runs
