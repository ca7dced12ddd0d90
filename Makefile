# weaksep: `make reproduce` runs the study, `make test` runs the tests (lint, unit tests,
# every notebook at the smoke profile, their outputs and the committed results),
# `make test-unit` the fast unit tests only, `make ablations` the ablations of notebook 07
# (SECTIONS=design,lr: only those).
# DATA=DIR: a folder of manifests or a MUSIC / VGGSound / AudioCaps root instead of the rendered instruments (01-04).
# EVENTS_DATA=DIR: the same for the sound-event setting of 08_captioned_events (a VGGSound or AudioCaps root);
# without it 08 trains on the rendered sound events and says so. 09 always reads the recorded corpus.
# CLAP_CKPT=FILE (CLAP_BACKEND=laion TOKENIZER=DIR for LAION-CLAP at the smoke or quick sizes;
# the paper profile uses laion by default): the CLAP to condition on instead of the default one.
# Each sets up .venv first; re-running setup when nothing changed takes seconds.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.weaksep-installed
PROFILE ?= quick
DATA ?=
EVENTS_DATA ?=
CLAP_CKPT ?=
CLAP_BACKEND ?=
TOKENIZER ?=
REUSE ?= 0
SEEDS ?=
STEPS ?=
# GPUS=k trains every run under torchrun with k processes (one per GPU). Each process draws its own
# share of the batch (seed, rank, step), so the weights differ from a one-process run of the same config.
GPUS ?=
# REUSE=1 lets the notebooks use committed models whose run config matches instead of training them.
# SEEDS=0,1,2 trains every headline cell with those seeds instead of the profile's (quick: 0 only).
# STEPS=N: a step budget per run other than the profile's (the tests run the study with a few).
NB_PARAMS := -p profile $(PROFILE) -p reuse $(if $(filter 1,$(REUSE)),True,False) \
	$(if $(CLAP_CKPT),-p clap_checkpoint $(abspath $(CLAP_CKPT))) \
	$(if $(CLAP_BACKEND),-p clap_backend $(CLAP_BACKEND)) \
	$(if $(TOKENIZER),-p tokenizer_dir $(abspath $(TOKENIZER))) \
	$(if $(SEEDS),-y "seeds: [$(SEEDS)]") $(if $(STEPS),-p steps $(STEPS))
# $WEAKSEP_RESULTS moves the results as it does for the library (weaksep/paths.py).
RESULTS := $(or $(WEAKSEP_RESULTS),results)$(if $(filter-out quick,$(PROFILE)),/$(PROFILE))
STUDY_NOTEBOOKS := 00_pretrain_clap 01_two_source 02_three_source 03_four_source 04_semi_supervised 08_captioned_events 09_recorded_events 05_summary 06_try_it
SOURCES := $(wildcard weaksep/*.py weaksep/*/*.py weaksep/*/*/*.py)

.PHONY: setup lint test test-unit reproduce recorded ablations confidence figures bench bench-runs bench-data gpu-check clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.9.1 torchvision==0.24.1 torchaudio==2.9.1
	$(BIN)/pip install --quiet --no-deps tinysoundfont==0.3.7
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: setup
	$(BIN)/ruff check weaksep tests
	$(BIN)/ruff format --check weaksep tests

test-unit: setup
	WEAKSEP_PROFILE=smoke $(BIN)/python -m pytest -q -m "not slow" tests

test: setup lint
	WEAKSEP_PROFILE=smoke $(BIN)/python -m pytest -q --durations=15 tests
	WEAKSEP_PROFILE=smoke $(BIN)/python -m pytest -q --durations=10 --nbval-lax notebooks
	WEAKSEP_PROFILE=smoke WEAKSEP_CHECK_NOTEBOOK_OUTPUTS=1 $(BIN)/python -m pytest -q tests/test_notebook_outputs.py

# The study: one file target per notebook. The targets are stamps in .cache
# (not the executed notebooks, which are committed), so a fresh clone runs
# every notebook; trained models are cached by config hash and reused.
# Keyed by the notebook parameters and the results folder, so that another DATA, CLAP or
# STEPS runs every notebook again instead of finding them done.
# Each setting reads its own data root: 08 EVENTS_DATA, 09 the recorded corpus, the others DATA.
DATA_PARAM = $(if $(filter 08_captioned_events,$*),$(if $(EVENTS_DATA),-p data $(abspath $(EVENTS_DATA))),$(if $(filter 09_recorded_events,$*),,$(if $(DATA),-p data $(abspath $(DATA)))))
STAMPS := .cache/stamps/$(PROFILE)-$(shell echo '$(NB_PARAMS) $(abspath $(DATA)) $(abspath $(EVENTS_DATA)) $(abspath $(RESULTS))' | sha1sum | cut -c1-10)
reproduce: setup $(foreach nb,$(STUDY_NOTEBOOKS),$(STAMPS)/$(nb).done)
	@cat $(RESULTS)/summary.md

# The recorded corpus of notebook 09 (real recordings from Debian packages, fetched once with
# apt-get download into .cache/recorded; weaksep/data/recorded_rules.py says what is used).
recorded: setup
	$(BIN)/python -m weaksep data recorded

# SECTIONS=design,lr: only those sections of notebook 07 (weaksep/reproduce/ablation_runs.py lists them), made
# every time they are asked for.
NB07_PARAMS := $(if $(SECTIONS),-p sections $(SECTIONS))
ablations: setup
	$(if $(SECTIONS),rm -f $(STAMPS)/07_ablations.done)
	$(MAKE) --no-print-directory $(STAMPS)/07_ablations.done
	rm -f $(STAMPS)/05_summary.done
	$(MAKE) --no-print-directory $(STAMPS)/05_summary.done PROFILE=$(PROFILE)

$(STAMPS)/%.done: notebooks/%.ipynb $(SOURCES) | setup
	@mkdir -p $(RESULTS)/notebooks $(STAMPS)
	$(if $(GPUS),WEAKSEP_GPUS=$(GPUS)) $(BIN)/papermill --cwd notebooks $< $(RESULTS)/notebooks/$*.ipynb.tmp $(NB_PARAMS) $(DATA_PARAM) \
		$(if $(filter 07_ablations,$*),$(NB07_PARAMS)) --log-output --no-progress-bar
	@# The notebook keeps every redraw of a progress bar (about 0.9 MB per training notebook):
	@# keep only the last, as a terminal shows it.
	$(BIN)/python -m weaksep collapse-progress $(RESULTS)/notebooks/$*.ipynb.tmp
	mv $(RESULTS)/notebooks/$*.ipynb.tmp $(RESULTS)/notebooks/$*.ipynb
	touch $@

# Later notebooks read the earlier ones' results.
$(foreach nb,01_two_source 02_three_source 03_four_source 04_semi_supervised 08_captioned_events 09_recorded_events,$(STAMPS)/$(nb).done): $(STAMPS)/00_pretrain_clap.done
$(STAMPS)/05_summary.done: $(foreach nb,01_two_source 02_three_source 03_four_source 04_semi_supervised 08_captioned_events 09_recorded_events,$(STAMPS)/$(nb).done)
# The ablations (about an hour more at quick) reuse the runs of 01-04, cached by config
# hash; the summary is then run again to link their tables.
$(STAMPS)/07_ablations.done: $(foreach nb,01_two_source 02_three_source 04_semi_supervised,$(STAMPS)/$(nb).done)
$(STAMPS)/06_try_it.done: $(STAMPS)/01_two_source.done

# The level of the CLAP's mixture-to-prompt score below which `weaksep separate` warns that a
# prompted sound may be absent, measured on the test mixtures (weaksep/inference/confidence.py).
confidence: setup $(STAMPS)/00_pretrain_clap.done
	$(BIN)/python -m weaksep confidence --profile $(PROFILE) --no-progress $(if $(CLAP_CKPT),--clap-checkpoint $(abspath $(CLAP_CKPT)))

figures: setup
	$(BIN)/python -m weaksep figures $(RESULTS)

# Training steps are timed beside those of BENCH_BEFORE (the commit before the training step was
# made faster), checked out into .cache/bench, in alternating fresh processes.
BENCH_BEFORE ?= efaac6a
bench: setup
	$(BIN)/python -m weaksep bench --before $(BENCH_BEFORE)

# One whole quick training run per cell (its own steps, validation and stopping), each beside
# BENCH_BEFORE's, in fresh processes: about 30 min for these four. Needs quick's CLAP (notebook 00).
BENCH_RUNS ?= unsup:2 weak:2 sup:2 semi:2
bench-runs: setup
	$(BIN)/python -m weaksep bench --before $(BENCH_BEFORE) --whole-runs $(BENCH_RUNS)

# The data path at a real dataset's size (weaksep/tools/bench_data.py): results/bench_data.json.
bench-data: setup
	$(BIN)/python -m weaksep bench-data --out $(or $(WEAKSEP_RESULTS),results)/bench_data.json

# A few timed training steps and one validation of GPU_CHECK_PROFILE on this machine's device (a GPU
# where there is one): results/gpu_check.json. GPU_CHECK_ARGS adds options of `weaksep gpu-check`.
GPU_CHECK_PROFILE ?= paper
GPU_CHECK_ARGS ?=
gpu-check: setup
	$(BIN)/python -m weaksep gpu-check --profile $(GPU_CHECK_PROFILE) $(GPU_CHECK_ARGS) \
		--out $(or $(WEAKSEP_RESULTS),results)/gpu_check$(if $(filter-out paper,$(GPU_CHECK_PROFILE)),_$(GPU_CHECK_PROFILE)).json

clean:
	rm -rf .cache results/smoke results/paper .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
