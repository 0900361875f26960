# Set-up is part of every target: the first run creates .venv with the CPU build of
# torch, then installs the project against the lock (which pins torch, so no resolver
# can swap in a CUDA build).
PYTHON ?= python3
VENV   ?= .venv
PORT   ?= 3000
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | cksum | cut -d' ' -f1)

.PHONY: demo test lint bench dev clean

$(STAMP): pyproject.toml requirements.lock
	@echo "setting up $(VENV) (first run: about 2 minutes)"
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check torch==2.13.0 2>&1 | grep -v "is ignored" || true
	@$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]' 2>&1 | grep -v "is ignored" || true
	@$(VENV)/bin/python -c "import torch, dagster, duckdb, polars" || (echo "set-up failed"; exit 1)
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

demo: $(STAMP)  ## the main job on the offline synthetic world
	$(VENV)/bin/guwm demo

test: $(STAMP)  ## the test suite
	$(VENV)/bin/python -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(STAMP)  ## every benchmark; writes bench/results/report.{md,json}
	$(VENV)/bin/python -m bench

dev: $(STAMP)  ## the Dagster UI on http://127.0.0.1:$(PORT)
	$(VENV)/bin/guwm dev --port $(PORT)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
