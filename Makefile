# Two set-up commands on a fresh machine: `make demo` and `make test` (each creates .venv itself).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
	$(BIN)/pip install -q -e ".[dev]" 2>&1 | grep -v "is ignored" || true
	$(BIN)/python -c "import mer_fastai, fastai, torchvision, librosa"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mer-fastai demo --out demo-output

test: $(STAMP)
	$(BIN)/ruff check mer_fastai tests benchmarks
	$(BIN)/ruff format --check --quiet mer_fastai tests benchmarks
	$(BIN)/python -m pytest -q -n 2 --durations=15

lint: $(STAMP)
	$(BIN)/ruff check mer_fastai tests benchmarks
	$(BIN)/ruff format --check mer_fastai tests benchmarks

clean:
	rm -rf $(VENV) demo-output .pytest_cache
