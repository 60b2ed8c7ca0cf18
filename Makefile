# Two commands: `make demo` (set up .venv, install, run the main job on the synthetic demo)
# and `make test` (set up .venv, install, run the test suite).
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[test,prod]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/riskcast demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest
