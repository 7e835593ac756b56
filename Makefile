# Two commands do everything on a fresh machine with Python ≥ 3.11 and pip:
#   make demo   set up .venv, run a real small sweep on the embedded data (ranking, plots, best model)
#   make test   set up .venv, lint, run the test suite
# TORCH picks the torch to install when none is importable yet (an installed one is always kept),
# e.g. make demo TORCH="torch==2.13.0 --index-url <PyTorch CPU wheel index>".

PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin
PY     := $(BIN)/python

.PHONY: setup demo test lint format bench clean

setup: $(VENV)/.installed

# Quiet (pip -qq: errors only), one line per step; `make setup V=1` shows pip's warnings too.
PIP_Q := $(if $(V),-q,-qq)

$(VENV)/.installed: pyproject.toml Makefile
	@# A torch already importable by $(PYTHON) (say a CUDA build) stays visible inside the venv.
	@echo "setup: $(VENV) (an importable torch is kept, else $(TORCH)), the project with its extras, toto-ts"
	@if $(PYTHON) -c "import torch" 2>/dev/null; then $(PYTHON) -m venv --system-site-packages $(VENV); \
	else $(PYTHON) -m venv $(VENV); fi
	@$(PY) -m pip install $(PIP_Q) --upgrade pip
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install $(PIP_Q) $(TORCH)
	@$(PY) -m pip install $(PIP_Q) -e ".[foundation,dev]"
	@$(PY) -m pip install $(PIP_Q) --no-deps toto-ts==0.2.0
	@touch $@

demo: setup
	$(PY) sweeps/tft.py --mode quick --max-runs 3 --folds 2 --seeds 2 --name demo_tft --overwrite --baselines
	$(PY) sweeps/chronos2.py --config sweeps/examples/chronos2_tiny.json --mode grid --init scratch --size tiny --overwrite
	$(PY) analysis/best.py --metric val_pct_mae --export-path results/best_model.json

# The docs build first (seconds): a broken link, anchor or API page fails before the suite runs.
test: setup lint
	$(DOCS_ENV) $(BIN)/mkdocs build --strict --quiet -d site
	$(PY) -m pytest

# The docs site (mkdocs.yml) into site/ (git-ignored); `$(BIN)/mkdocs serve` previews it live.
# NO_MKDOCS_2_WARNING: Material for MkDocs' notice about MkDocs 2.0 (not a warning of the build).
DOCS_ENV := NO_MKDOCS_2_WARNING=1
.PHONY: docs
docs: setup
	$(DOCS_ENV) $(BIN)/mkdocs build --strict -d site

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	$(PY) bench/overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
