# analog-train: `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch (a bare `torch` would pull a multi-GB CUDA build); override for GPUs.
TORCH_SPEC ?= torch==2.13.0
export ANALOG_TRAIN_DATA ?= $(abspath ../shared/data)

.PHONY: help install run test test-slow figures report bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(BIN)/analog-train: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[test]"
	@touch $@

install: $(BIN)/analog-train  ## create .venv and install the package with its test extras

run: install  ## the main job: FC on MNIST with AGAD on the ReRAM preset (analog-train's defaults)
	$(BIN)/analog-train

test: install  ## the default test suite (about 10-15 minutes on 2 cores)
	$(BIN)/pytest -q

test-slow: install  ## the slow tier (long training runs)
	$(BIN)/pytest -q -m slow

figures: install  ## paper Figs. 2-6, Table 1 (PNG, PDF, CSV) and REPORT.md into figures/ (~45 min; reuses what is done; PAPER=1: paper scale)
	$(BIN)/analog-train figures --out figures $(if $(PAPER),--paper-scale)

report: install  ## figures/REPORT.md again from the CSVs in figures/ (no simulation)
	$(BIN)/analog-train report --figures figures

bench: install  ## speed of every algorithm beside the same network in torch: FC, LeNet-5, LSTM (ratios, peak memory)
	$(BIN)/analog-train bench --model fc --exact
	$(BIN)/analog-train bench --model lenet5
	$(BIN)/analog-train bench --model lstm

clean:  ## remove run outputs, figures and caches, numba's compiled kernels included (keeps .venv)
	rm -rf outputs multirun figures .pytest_cache
	find . -path ./.venv -prune -o -name __pycache__ -prune -exec rm -rf {} +
