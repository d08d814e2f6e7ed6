# Every routine action. `make run` (everything, laptop profile) and `make test` (what CI runs) are the front door.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= laptop
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
# Tests write their runs to a temporary outputs folder, never to the user's outputs/.
TEST_OUTPUTS := $(shell mktemp -d -u /tmp/factored-test-outputs.XXXXXX)
TEST_ENV := FACTORED_PROFILE=smoke TQDM_DISABLE=1 MPLBACKEND=Agg FACTORED_OUTPUTS=$(TEST_OUTPUTS)
# Executes a notebook into a target without ever leaving a half-written target (see lib/factored/render.py).
RENDER := $(PY) -m factored.render

.PHONY: setup run seeds render figures test lint unit notebooks-sync nbval sync bench sweep

# --no-compile: a module is compiled when first imported, not every module of every package at install (~20 s less)
setup: $(VENV)/.installed
$(VENV)/.installed: requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-compile -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

# Execute every notebook with papermill at $(PROFILE); executed copies land in outputs/notebooks/. Two lanes run at
# once, one torch thread each (two single-threaded trainings outrun one two-threaded one: benchmarks/recipe.md, and
# single-threaded runs are the ones the committed notebooks show, float for float). Each lane first trains one run
# with the train CLI (lane A the canonical run, lane B the same run on sampled tokens), then executes its notebooks;
# a notebook that needs a run the other lane is training waits for it (the run folder's lock), then loads it. The
# order balances the lanes (each about 10 minutes) and computes each analysis once: 03 analyses the canonical run
# (cached in its folder) before 04, 06 and 02 read it; 07, last, collects every run. Each lane's log is
# outputs/notebooks/lane-<a|b>.log.
LANE_A_RUN :=
LANE_A := 04_noise 05_architectures 08_factor_discovery
LANE_B_RUN := --target tokens
LANE_B := 03_factored_geometry 06_dependencies 02_training 01_theory 07_sweeps
# $(call lanes,<target folder>,<extra render arguments>,<extra train arguments>): both lanes, into that folder.
define lanes
@mkdir -p $(1) outputs/notebooks
@lane() { log=$$1; run=$$2; shift 2; \
  echo "== the lane's run ($(3) $$run) started $$(date +%T)"; \
  env -u FACTORED_PROFILE OMP_NUM_THREADS=1 $(PY) -m factored.train --no-progress $(3) $$run >> $$log 2>&1 \
    || { echo "== the lane's run failed: see $$log"; return 1; }; \
  for nb in "$$@"; do \
    echo "== $$nb started $$(date +%T)"; \
    env -u FACTORED_PROFILE OMP_NUM_THREADS=1 TQDM_DISABLE=1 $(RENDER) notebooks/$$nb.ipynb $(1)/$$nb.ipynb $(2) >> $$log 2>&1 \
      || { echo "== $$nb failed: see $$log"; return 1; }; \
  done; }; \
lane outputs/notebooks/lane-a.log "$(LANE_A_RUN)" $(LANE_A) & a=$$!; \
lane outputs/notebooks/lane-b.log "$(LANE_B_RUN)" $(LANE_B) & b=$$!; \
wait $$a; sa=$$?; wait $$b; sb=$$?; test $$sa = 0 -a $$sb = 0 && echo "== all notebooks done $$(date +%T)"
endef

run: setup
	$(call lanes,outputs/notebooks,-p profile $(PROFILE),--profile $(PROFILE))

# Train seeds 1 and 2 of $(PROFILE): the canonical run (via notebook 02) and the chain, for the tables across seeds
# of notebooks 03 and 06.
seeds: setup
	@mkdir -p outputs/notebooks
	@for s in 1 2; do \
	  $(RENDER) notebooks/02_training.ipynb outputs/notebooks/02_training_seed$$s.ipynb \
	    -p profile $(PROFILE) -p seed $$s -p compare_target false || exit 1; \
	  $(PY) -m factored.train --profile $(PROFILE) --structure chain --seed $$s || exit 1; \
	done

# Run a parameter sweep: one notebook over a grid (params/sweeps/*.yaml), outputs in outputs/sweeps/<name>/.
# Points already done are skipped. WORKERS (points at once) and THREADS (torch threads each) default to one
# single-threaded point per core; SCHEDULER=tcp://host:8786 runs the points on a Dask cluster instead.
sweep: setup
	@test -n "$(SWEEP)" || { echo "usage: make sweep SWEEP=params/sweeps/<name>.yaml [WORKERS=n] [THREADS=n] [SCHEDULER=tcp://host:8786]"; exit 2; }
	$(PY) -m factored.sweep $(SWEEP) $(if $(WORKERS),--workers $(WORKERS)) $(if $(THREADS),--threads $(THREADS)) $(if $(SCHEDULER),--scheduler $(SCHEDULER))

# Execute the notebooks in place at the default profile, exactly as `make run` executes them (two single-threaded
# lanes), so the committed .ipynb files show the numbers a fresh clone's `make run` reproduces. No -p here: papermill
# would add an injected-parameters cell that pins the profile for every later run (and CI).
render: setup
	$(call lanes,notebooks,)
	$(VENV)/bin/jupytext --sync notebooks/*.ipynb

# The README's figures, copied from the rendered notebooks.
figures: setup
	$(PY) docs/extract_figures.py

test: setup lint unit notebooks-sync nbval

lint:
	$(VENV)/bin/ruff check lib tests benchmarks docs notebooks/[0-9][0-9]_*.py
	$(VENV)/bin/ruff format --check lib tests benchmarks docs

unit:
	$(TEST_ENV) $(VENV)/bin/pytest -q tests; status=$$?; rm -rf $(TEST_OUTPUTS); exit $$status

notebooks-sync:
	$(VENV)/bin/python tests/check_notebook_pairs.py notebooks

nbval:
	cd notebooks && $(TEST_ENV) ../$(VENV)/bin/pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env \
	  $(notdir $(NOTEBOOKS)); status=$$?; rm -rf $(TEST_OUTPUTS); exit $$status

# After editing a notebook's .py, bring its .ipynb up to date (keeps outputs of unchanged cells).
sync:
	$(VENV)/bin/jupytext --sync notebooks/*.py

# Throughput benchmarks; each appends its results (with the machine) to benchmarks/results.md.
bench: setup
	$(PY) benchmarks/bench_generation.py
	$(PY) benchmarks/bench_training.py
	$(PY) benchmarks/bench_analysis.py --run-all
