# lightdet: `make help` lists the targets. Everything runs inside .venv (made by `make install`).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

# Config groups: empty means the default from conf/train.yaml.
MODEL ?=
DATA ?=
TRAINER ?=
EXPERIMENT ?=
ARGS ?=
SESSION ?=
QUEUE ?= default

GROUPS = $(if $(MODEL),model=$(MODEL)) $(if $(DATA),data=$(DATA)) \
         $(if $(TRAINER),trainer=$(TRAINER)) $(if $(EXPERIMENT),experiment=$(EXPERIMENT))

.DEFAULT_GOAL := help
.PHONY: help install train remote test test-fast lint clearml-import clean

help: ## show this help
	@echo "usage: make <target> [MODEL=retinanet] [DATA=shapes|shapes_coco|voc|coco] [TRAINER=default|cpu|gpu]"
	@echo "                     [EXPERIMENT=voc_retinanet_r50|coco_retinanet_r50] [ARGS='hydra overrides']"
	@echo
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'
	@echo
	@echo "example: make train MODEL=retinanet ARGS=\"model.net.focal_gamma=1.5 trainer.max_epochs=5\""

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[dev]"
	touch $@

install: $(VENV)/.installed ## create .venv and install lightdet with its dev tools

train: install ## train a detector (default: RetinaNet on the built-in shapes data)
	$(PY) -m lightdet.train $(GROUPS) $(ARGS)

remote: install ## enqueue this training config to a clearml-agent queue: QUEUE=default
	$(PY) -m lightdet.train $(GROUPS) logger.clearml.remote_queue=$(QUEUE) $(ARGS)

test: install ## run the whole test suite (slow tests included)
	$(PY) -m pytest $(ARGS)

test-fast: install ## run the tests not marked slow
	$(PY) -m pytest -m "not slow" $(ARGS)

lint: install ## ruff over src/ and tests/
	$(VENV)/bin/ruff check src tests

clearml-import: install ## upload an offline ClearML session to the configured server: SESSION=<folder or .zip>
	@test -n "$(SESSION)" || (echo "usage: make clearml-import SESSION=<offline session folder or .zip>"; exit 2)
	$(PY) -c "from clearml import Task; print('imported as task', Task.import_offline_session('$(SESSION)'))"

clean: ## remove run outputs (logs/), keep data/ and .venv
	rm -rf logs outputs multirun
