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
HPO ?=
CKPT ?=
FORMAT ?= onnx
PRECISION ?=
INPUT ?=
OUT ?=
RESUME ?=
SPLIT ?= val
QUEUE ?= default
AUG ?=
MODELS ?= retinanet ssd ssdlite fcos faster_rcnn
BUDGET ?=
EPOCHS ?=
RUNTIMES ?=
SEEDS ?=
CKPTS ?=
STUDY ?= focal

# The variables reach the commands as data: exported to the environment, read by
# src/lightdet/makeargs.py (quoted for Hydra, ARGS split without a shell), never pasted into
# a recipe's shell text.
# Each is first redefined as its own unexpanded text ($(value ...)), so Make itself does not
# expand a $(...) inside a value either.
USER_VARS := MODEL DATA TRAINER EXPERIMENT ARGS SESSION HPO CKPT FORMAT PRECISION INPUT OUT RESUME \
             SPLIT QUEUE AUG MODELS BUDGET EPOCHS RUNTIMES SEEDS CKPTS \
             STUDY
$(foreach v,$(USER_VARS),$(eval override $(v) := $$(value $(v))))
export $(USER_VARS)
RUN = $(PY) -m lightdet.makeargs
# make test: one pytest worker per usable core, at most 4 (PYTEST_XDIST_AUTO_NUM_WORKERS=N for
# another count), each given whole test modules, the longest first (tests/conftest.py)
PARALLEL = -n auto --dist loadscope

.DEFAULT_GOAL := help
.PHONY: compare study help install train anchors show-augment eval evaluate predict export config doctor bench benchmark hpo remote docker-build docker-train clearml-server-up clearml-server-down test test-fast test-durations lint format clearml-import clean

help: ## show this help
	@echo "usage: make <target> [MODEL=retinanet|retinanet_v2|ssd|ssd300_vgg16|ssdlite|fcos|faster_rcnn]"
	@echo "                     [DATA=shapes|shapes_coco|shapes_yolo|voc|coco|yolo] [AUG=plain|zoom|none]"
	@echo "                     [TRAINER=default|cpu|gpu|ddp_cpu|multi_gpu|multi_node] [RESUME=auto|<ckpt>]"
	@echo "                     [EXPERIMENT=voc_retinanet_r50|coco_retinanet_r50] [ARGS='hydra overrides']"
	@echo
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-20s %s\n", $$1, $$2}'
	@echo
	@echo "example: make train MODEL=retinanet ARGS=\"model.net.focal_gamma=1.5 trainer.max_epochs=5\""

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[dev]"
	touch $@

install: $(VENV)/.installed ## create .venv and install lightdet with its dev tools

train: install ## train a detector (default: RetinaNet on the built-in shapes data); RESUME=auto|<ckpt> BUDGET=<minutes>
	$(RUN) train

anchors: install ## how the model's anchors cover the training boxes, and anchors fitted to them: [MODEL=...] [DATA=...]
	$(RUN) anchors

show-augment: install ## write a grid of augmented training samples with boxes: [AUG=plain|zoom|none] [DATA=...]
	$(RUN) show-augment

eval: install ## evaluation report of a checkpoint (COCO, per class, VOC AP, F1 threshold, plots): CKPT=<path> [SPLIT=val|test] [DATA=...]
	$(RUN) eval

evaluate: eval ## the same as eval

predict: install ## draw and list a checkpoint's detections: CKPT=<path> INPUT=<image|folder|glob> [OUT=<folder>]
	$(RUN) predict

export: install ## ONNX or TorchScript file of a checkpoint, verified against PyTorch: CKPT=<path> [FORMAT=onnx|torchscript] [PRECISION=fp32|int8] [DATA=...]
	$(RUN) export

compare: install ## single or two shot? accuracy against latency, equal budget: MODELS="retinanet ssd ..." [BUDGET=<min>|EPOCHS=<n>] [SEEDS=<n>] [RUNTIMES="pytorch onnx-fp32 onnx-int8"] [DATA=...] [CKPTS="name=path ..."]
	$(RUN) compare

study: install ## an ablation study of conf/study/*.yaml (focal, anchors, zoom, yours): STUDY=focal [BUDGET=<min>|EPOCHS=<n>] [SEEDS=<n>] [RUNTIMES=...] [DATA=...]
	$(RUN) study

hpo: install ## hyperparameter search (conf/hpo/*.yaml): HPO=focal_lr; run again to resume
	$(RUN) hpo

remote: install ## enqueue this training config to a clearml-agent queue: QUEUE=default
	$(RUN) remote

test: install ## run the whole test suite (slow tests included), one worker per core (at most 4)
	set -f; $(PY) -m pytest $(PARALLEL) $$ARGS

test-fast: install ## run the tests not marked slow
	set -f; $(PY) -m pytest $(PARALLEL) -m "not slow" $$ARGS

test-durations: install ## run the whole suite and record what each test took (tests/durations.json: longest start first)
	set -f; $(PY) -m pytest $(PARALLEL) --record-durations $$ARGS

lint: install ## ruff's checks and its format check over src/, tests/ and benchmarks/ (CI runs it)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

format: install ## format src/, tests/ and benchmarks/ with ruff format (and sort imports)
	$(VENV)/bin/ruff check --select I --fix src tests benchmarks
	$(VENV)/bin/ruff format src tests benchmarks

config: install ## check the training config `make train` would run (same MODEL/DATA/ARGS), without training; YAML=1 prints it
	$(RUN) config

doctor: install ## versions, CPU and bf16, GPUs, ClearML server, free disk
	$(PY) -m lightdet.doctor

bench: install ## benchmark reports into benchmarks/results/ (run alone, ~25 min on 2 cores): start-up, evaluation against pycocotools, training throughput against a plain loop, data pipeline, memory, indexing 100k images
	$(PY) benchmarks/startup.py --out benchmarks/results
	$(PY) benchmarks/eval_speed.py --out benchmarks/results
	$(PY) benchmarks/train_throughput.py --repeats 3 --out benchmarks/results
	$(PY) benchmarks/data_pipeline.py --out benchmarks/results
	$(PY) benchmarks/memory.py --out benchmarks/results
	$(PY) benchmarks/indexing.py --out benchmarks/results

benchmark: install ## parameters and CPU seconds per training iteration of each model config
	$(PY) benchmarks/train_speed.py $${MODEL:+"$$MODEL"}

clearml-import: install ## upload an offline ClearML session to the configured server: SESSION=<folder or .zip>
	@test -n "$$SESSION" || (echo "usage: make clearml-import SESSION=<offline session folder or .zip>"; exit 2)
	$(PY) -m lightdet.tracking.server "$$SESSION"

docker-build: ## build the CUDA training image (lightdet:latest)
	docker build -f docker/Dockerfile -t lightdet:latest .

docker-train: ## train in the image on all GPUs: MODEL=... ARGS=...
	docker run --rm --gpus all --ipc=host -v "$(CURDIR)/data:/lightdet/data" -v "$(CURDIR)/logs:/lightdet/logs" \
		-e MODEL -e DATA -e AUG -e EXPERIMENT -e ARGS -e TRAINER=gpu lightdet:latest make train

clearml-server-up: ## start a ClearML server + GPU agent (docker/docker-compose.yml), web UI on :8080
	docker compose -f docker/docker-compose.yml up -d

clearml-server-down: ## stop the ClearML server and agent (data stays in CLEARML_DATA, default /opt/clearml)
	docker compose -f docker/docker-compose.yml down

clean: ## remove lightdet's run outputs (marked folders in logs/, outputs/, multirun/) and their offline ClearML sessions, saying what and how much; KEEP_SESSIONS=1 keeps and lists the sessions; keeps data/, .venv and anything lightdet did not make
	@if [ -x $(PY) ]; then $(PY) -m lightdet.clean $(if $(KEEP_SESSIONS),--keep-sessions); else echo "make clean: no $(VENV) (make install first): it tells lightdet's folders from yours; nothing removed"; exit 2; fi
