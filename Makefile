# Every routine action. `make run` (everything, laptop profile) and `make test` (what CI runs) are the front door.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= laptop
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
TEST_ENV := FACTORED_PROFILE=smoke TQDM_DISABLE=1 MPLBACKEND=Agg

.PHONY: setup run render figures test lint unit notebooks-sync nbval sync bench

setup: $(VENV)/.installed
$(VENV)/.installed: requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

# Execute every notebook with papermill at $(PROFILE); executed copies land in outputs/notebooks/.
run: setup
	@mkdir -p outputs/notebooks
	@for nb in $(NOTEBOOKS); do \
	  echo "== $$nb (profile=$(PROFILE))"; \
	  $(VENV)/bin/papermill --cwd notebooks $$nb outputs/notebooks/$$(basename $$nb) -p profile $(PROFILE) || exit 1; \
	done

# Execute the notebooks in place at the default profile, so the committed .ipynb files show rendered outputs.
# No -p here: papermill would add an injected-parameters cell that pins the profile for every later run (and CI).
render: setup
	@for nb in $(NOTEBOOKS); do \
	  echo "== render $$nb"; \
	  env -u FACTORED_PROFILE TQDM_DISABLE=1 $(VENV)/bin/papermill --cwd notebooks $$nb $$nb || exit 1; \
	done
	$(VENV)/bin/jupytext --sync notebooks/*.ipynb

# The README's figures, copied from the rendered notebooks.
figures: setup
	$(PY) docs/extract_figures.py

test: setup lint unit notebooks-sync nbval

lint:
	$(VENV)/bin/ruff check lib tests benchmarks docs notebooks/*.py
	$(VENV)/bin/ruff format --check lib tests benchmarks docs

unit:
	$(TEST_ENV) $(VENV)/bin/pytest -q tests

notebooks-sync:
	$(VENV)/bin/python tests/check_notebook_pairs.py notebooks

nbval:
	cd notebooks && $(TEST_ENV) ../$(VENV)/bin/pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env $(notdir $(NOTEBOOKS))

# After editing a notebook's .py, bring its .ipynb up to date (keeps outputs of unchanged cells).
sync:
	$(VENV)/bin/jupytext --sync notebooks/*.py

# Throughput benchmarks; each appends its results (with the machine) to benchmarks/results.md.
bench: setup
	$(PY) benchmarks/bench_generation.py
	$(PY) benchmarks/bench_training.py
	$(PY) benchmarks/bench_analysis.py --run-all
