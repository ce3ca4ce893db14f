# Every target installs first, so each works on a fresh clone as the only command.
# PYTHON=/path/to/python uses an existing interpreter instead of .venv.
VENV ?= .venv
ifdef PYTHON
PY := $(PYTHON)
INSTALL_STAMP := .install-stamp-external
else
PY := $(VENV)/bin/python
INSTALL_STAMP := $(VENV)/.install-stamp
endif
ARGS ?=

.PHONY: install test test-slow demo demo-full ablation tables bench gpu-check models clean

install: $(INSTALL_STAMP)

$(INSTALL_STAMP): pyproject.toml
ifndef PYTHON
	test -x $(PY) || python3 -m venv $(VENV)
endif
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

models: install
	$(PY) -m fer_ablation.models

clean:
	rm -rf outputs multirun .cache

# Parallel CPU sweeps: one job per core, one thread each (two one-thread jobs beat one two-thread job).
JOBS ?= $(shell nproc)
CPU_SWEEP := hydra/launcher=parallel hydra.launcher.n_jobs=$(JOBS) threads=1 trainer.enable_progress_bar=false

# The embedded CPU ablation: Tables 1 and 3 and the gate control on the probe set, 3 seeds, then the tables.
demo: install
	$(PY) -m fer_ablation.run -m experiment=demo $(CPU_SWEEP) $(ARGS)
	$(MAKE) tables ARGS=

# Every configuration of the tables file (Table 2's modules and both controls too), 3 seeds, then the tables.
demo-full: install
	$(PY) -m fer_ablation.run -m experiment=demo_full $(CPU_SWEEP) $(ARGS)
	$(MAKE) tables ARGS=

# The paper's sweep; extra Hydra overrides via ARGS, e.g. make ablation ARGS="data=fer2013 trainer=gpu"
ablation: install
	$(PY) -m fer_ablation.run -m experiment=paper $(ARGS)

tables: install
	$(PY) -m fer_ablation.collect --out results/tables --figures results/figures $(ARGS)

bench: install
	$(PY) -m fer_ablation.bench $(ARGS)

# The whole GPU check in one command (fer_ablation/cli/gpu_check.py): versions and device, the bench at 48 and 224 px
# (baseline and full, bf16-mixed + channels_last, compiled and not, suite against the raw loop), then a
# from-scratch FER2013 48 px sweep of Table 1's rows, seed after seed while its 8-minute budget lasts; JSON after
# every step in results/gpu/<card>/. On the GPU machine (no network) it installs nothing and runs python3 from
# the checkout (PYTHONPATH; hydra's wheels from ../shared/device/prepare). DEVICE=cpu SMOKE=1: the same steps
# on a CPU in minutes, installing first like every other target.
DEVICE ?= cuda
SMOKE ?=
ifeq ($(DEVICE),cpu)
GPU_CHECK_PY := $(PY)
GPU_CHECK_DEPS := install
else
GPU_CHECK_PY := $(or $(PYTHON),python3)
GPU_CHECK_DEPS :=
endif
gpu-check: $(GPU_CHECK_DEPS)
	PYTHONPATH="$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH}" $(GPU_CHECK_PY) -m fer_ablation.gpu_check --device $(DEVICE) \
		$(if $(SMOKE),--smoke) $(ARGS)
