# Two entry points: `make dev` runs the whole system locally, `make test` runs every check.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: dev demo test lint unit e2e crd clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(BIN)/kubectl $(BIN)/helm: tools/install_kube_tools.py | $(STAMP)
	$(BIN)/python tools/install_kube_tools.py $(BIN)

dev: $(STAMP) ## run API, operator, embedded cluster and S3 on localhost
	$(BIN)/downloadjobs dev

demo: $(STAMP) ## one download end to end, verified
	$(BIN)/downloadjobs demo

test: lint unit e2e ## everything CI runs

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy src api operator job-image
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

e2e: $(STAMP) $(BIN)/kubectl
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest tests/e2e -q

crd: $(STAMP) ## regenerate crds/ from the model
	$(BIN)/downloadjobs crd --write crds/downloadjob.yaml

clean:
	rm -rf $(VENV) .dev .pytest_cache .mypy_cache .ruff_cache
