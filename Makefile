# Two entry points: `make dev` runs the whole system locally, `make test` runs every check.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The chart scanners live in their own venv: checkov's pins must not move the project's.
TOOLS  := .venv-tools

.PHONY: dev demo test system lint unit e2e browser screenshot chart crd clean controlplane seaweedfs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(BIN)/kubectl $(BIN)/helm: tools/install_kube_tools.py | $(STAMP)
	$(BIN)/python tools/install_kube_tools.py $(BIN)

$(TOOLS)/.installed: tests/chart/tools-requirements.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --upgrade pip
	$(TOOLS)/bin/pip install --quiet -r tests/chart/tools-requirements.txt
	touch $@

# Kubernetes' control plane from upstream's Go modules: built once per machine into
# ~/.cache/downloadjobs/controlplane/<digest of go.mod, go.sum, *.go and the Go version>.
controlplane: $(STAMP) ## build (once) the embedded cluster's kube-apiserver, controller-manager, etcd
	$(BIN)/python -m downloadjobs_embedded.controlplane

# SeaweedFS's S3 gateway for `benchmarks/bundle.py --s3 seaweedfs` only (not the tests):
# built once per machine into ~/.cache/downloadjobs/seaweedfs/<digest of go.mod, go.sum, Go>.
seaweedfs: $(STAMP) ## build (once) the S3 server the bundle benchmark can measure against
	$(BIN)/python benchmarks/s3servers.py seaweedfs

dev: $(STAMP) controlplane ## run API, operator, embedded cluster and S3 on localhost
	$(BIN)/downloadjobs dev

demo: $(STAMP) controlplane ## one download end to end, verified
	$(BIN)/downloadjobs demo

test: system lint unit controlplane chart e2e browser ## everything CI runs

system: ## Debian packages the tests drive (apt-get, when root and missing)
	$(PYTHON) tools/install_system_packages.py tools/system-packages.txt

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy src api operator job-image embedded-cluster cli
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

chart: $(STAMP) $(BIN)/helm $(TOOLS)/.installed ## helm lint, kubernetes-validate, checkov, hadolint
	PATH="$(CURDIR)/$(BIN):$(CURDIR)/$(TOOLS)/bin:$$PATH" $(BIN)/pytest tests/chart -q

e2e: $(STAMP) $(BIN)/kubectl $(BIN)/helm controlplane
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest tests/e2e -q

browser: $(STAMP) controlplane ## the demo page in Debian's Chromium (Playwright) and the JS client's unit tests
	$(BIN)/pytest tests/browser -q

screenshot: $(STAMP) ## refresh docs/screenshot.png (the README's) from the browser test
	DOWNLOADJOBS_SCREENSHOT=docs/screenshot.png $(BIN)/pytest tests/browser -q -k download_shows_progress

crd: $(STAMP) ## regenerate crds/ from the model
	$(BIN)/downloadjobs crd --write crds/downloadjob.yaml charts/downloadjobs/crds/downloadjob.yaml

clean:
	rm -rf $(VENV) $(TOOLS) .dev .pytest_cache .mypy_cache .ruff_cache
