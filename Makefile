# Stance and sentiment classifier for coverage of the US–Russia talks in Riyadh.
# `make` lists the targets. Every target that needs Python first builds .venv.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   ?= .venv
PY     := $(VENV)/bin/python
PORT   ?= 3000
ARGS   ?=
MODEL  ?= stance_classifier:latest

# Models go to BentoML's own store (~/bentoml, or $$BENTOML_HOME if set), where `stance`,
# `bentoml list` and the service find them. Every entry point sets the offline environment
# itself (model/runtime.py): nothing is fetched from a model or dataset hub.

.PHONY: help install validate train evaluate faithfulness serve score build test test-fast bench-serve bench-score bench-scale bench-train clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# torch is pinned to a CPU build first: an unpinned torch pulls a multi-GB CUDA build.
# The scale extra (Ray) is installed too, so the tests of `stance score --engine ray` run.
$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,scale]'
	@touch $@

install: $(VENV)/.installed ## create .venv and install the project, its dev tools and Ray

validate: $(VENV)/.installed ## check the annotation files against labels, registry and articles
	$(PY) -m training.validate

train: $(VENV)/.installed ## fine-tune and register stance_classifier in the BentoML store (ARGS="--epochs 3")
	$(PY) -m training.train $(ARGS)

evaluate: $(VENV)/.installed ## leave-one-article-out evaluation with baselines -> reports/
	$(PY) -m training.evaluate $(ARGS)

faithfulness: $(VENV)/.installed ## measure how faithful the evidence of `explain` is, on the dev set -> reports/faithfulness.md
	$(PY) -m training.faithfulness $(ARGS)

serve: $(VENV)/.installed ## serve the HTTP API on 127.0.0.1:$$PORT (default 3000), training a model first if the store has none (ARGS="--workers 2")
	@$(PY) -m model.store --exists $(MODEL) || $(MAKE) train
	$(PY) -m serving.serve --port $(PORT) $(ARGS)

score: $(VENV)/.installed ## batch-score files: make score ARGS="data/articles/*.txt --out scored.csv"
	$(VENV)/bin/stance score $(ARGS)

build: $(VENV)/.installed ## build a Bento (model + service) for deployment
	@$(PY) -m model.store --exists $(MODEL) || $(MAKE) train
	BENTOML_DO_NOT_TRACK=true $(VENV)/bin/bentoml build

# The page's browser test (tests/test_ui.py) drives Debian's chromium through Playwright,
# which then downloads no browser of its own. Installed once, with apt, where it is missing.
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "error: the browser test needs Chromium at $(CHROMIUM); install Debian's chromium package"; exit 1; }
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium

test: $(VENV)/.installed $(CHROMIUM) ## run all tests, fast and slow (what CI runs; installs Debian's chromium for the browser test)
	$(PY) -m pytest $(ARGS)

test-fast: $(VENV)/.installed ## run the fast offline tests only
	$(PY) -m pytest -m "not slow" $(ARGS)

bench-serve: $(VENV)/.installed ## benchmark the HTTP service against the raw model
	$(PY) benchmarks/bench_serve.py $(ARGS)

bench-score: $(VENV)/.installed ## benchmark `stance score` against the raw model and a HF pipeline
	$(PY) benchmarks/bench_score.py $(ARGS)

bench-scale: $(VENV)/.installed ## benchmark `stance score` on Ray (local mode) against the local engine
	$(PY) benchmarks/bench_scale.py $(ARGS)

bench-train: $(VENV)/.installed ## benchmark training steps in fp32 against bf16 autocast
	$(PY) benchmarks/bench_train.py $(ARGS)

clean: ## remove generated reports and caches (keeps .venv and the model store)
	rm -rf reports .pytest_cache build dist
