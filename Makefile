# Two commands on a fresh machine: `make run` (the console on the demo warehouse) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WAREHOUSE ?= data/warehouse.duckdb
PORT ?= 8501

.PHONY: run test test-fast lint format demo bench clean help

FAST := not slow and not browser and not emulator and not postgres
# Tests run in this many processes (pytest-xdist); 0 runs them in this one. Three on 2 cores: many
# tests wait on processes they start, and a third process fills those waits.
WORKERS ?= 3
# The browser journeys by themselves: two at once took 143 s against 200 s one at a time; four
# overloaded 2 cores (load 12) and three journeys failed on timing.
BROWSER_WORKERS ?= 2

help:  ## list the targets
	@grep -E '^[a-z]+:.*##' Makefile | sed 's/:.*## /\t/'

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

$(WAREHOUSE): | $(VENV)/.installed
	$(PY) -m backfill demo --warehouse $(WAREHOUSE)

# The warehouse is BACKFILL_WAREHOUSE or backfill.toml's when set (as for every command), else the
# demo, built on first start; `make run WAREHOUSE=path` names one for this run.
run: $(VENV)/.installed  ## serve the console on the configured warehouse, else the demo (PORT=8501)
	$(PY) -m backfill console --port $(PORT) $(if $(filter command line,$(origin WAREHOUSE)),--warehouse $(WAREHOUSE))

# Each suite prints its wall time beside its target (issue 13), whatever the outcome.
TIMED = started=$$(date +%s); $(1); status=$$?; \
	echo "$(2): $$(( $$(date +%s) - started )) s on $$(nproc) cores (target: under $(3) s)"; exit $$status

test: $(VENV)/.installed  ## lint, then run the whole test suite (what CI runs)
	@$(call TIMED,$(MAKE) --no-print-directory lint && \
	$(PY) -m pytest -n $(WORKERS) --durations=15 -m "not browser" && \
	$(PY) -m pytest -n $(BROWSER_WORKERS) --durations=5 -m browser,make test,360)
# The browser journeys run after the rest, by themselves: beside the rest on 2 cores their timing wavered.

test-fast: $(VENV)/.installed  ## the suite without browser, emulator, PostgreSQL or slow tests
	@$(call TIMED,HYPOTHESIS_PROFILE=fast $(PY) -m pytest -q -n $(WORKERS) -m "$(FAST)",make test-fast,60)

lint: $(VENV)/.installed  ## ruff lint and format check, mypy on backfill/
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(VENV)/.installed  ## apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

demo: $(VENV)/.installed  ## rebuild the demo warehouse from scratch
	$(PY) -m backfill demo --warehouse $(WAREHOUSE)

bench: $(VENV)/.installed  ## SPEC 5 benchmark on 5-, 20- and 50-season demos; writes BENCHMARKS.md (~15 min)
	$(PY) -m bench

clean:  ## remove the virtual environment and generated data
	rm -rf $(VENV) data artifacts .pytest_cache .ruff_cache
