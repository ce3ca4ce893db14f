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
CPU_SWEEP := hydra/launcher=parallel hydra.launcher.n_jobs=$(JOBS) threads=1

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

# The whole GPU check in one command: ResNet50 training speed at 48 and 224 px for the baseline and the
# full model (bf16-mixed, channels_last, with and without torch.compile, suite against the raw loop),
# then a short experiment=paper sweep on FER2013 at 48 px with its wall time; both written as JSON.
gpu-check: install
	$(PY) -m fer_ablation.bench --device cuda --configs baseline full --sizes 48 224 --batch-sizes 256 \
		--precisions bf16-mixed --channels-last true --compile both --steps 30 \
		--paper-sweep data=fer2013 trainer=gpu data.image_size=48 trainer.max_epochs=2 seed=0 $(ARGS)
