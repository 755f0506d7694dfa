# The single entry point: `make up` runs the product locally, `make test` checks everything.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
CHECKOV_VENV ?= .venv-checkov

.DEFAULT_GOAL := help
.PHONY: help up test lint typecheck unit integration bench checkov-venv build deploy clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(VENV)/.local-installed: pyproject.toml functions/requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[local]'
	touch $@

$(VENV)/.dev-installed: $(VENV)/.local-installed
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# checkov pins boto3, packaging and networkx below ours: it gets a venv of its own.
$(CHECKOV_VENV)/.installed:
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet checkov==3.3.30
	touch $@

checkov-venv: $(CHECKOV_VENV)/.installed ## checkov in its own venv (its pins clash with ours)

up: $(VENV)/.local-installed ## run the whole product locally on an embedded moto server (no Docker)
	$(PY) -m infra

test: lint typecheck ## run every check: lint, types, template checks, unit, handler and integration tests
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed $(CHECKOV_VENV)/.installed ## ruff (lint + format), cfn-lint and checkov
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/cfn-lint template.yaml
	$(CHECKOV_VENV)/bin/checkov --file template.yaml --framework cloudformation --skip-download --quiet --compact

typecheck: $(VENV)/.dev-installed ## mypy over functions, infra, tests
	$(VENV)/bin/mypy

unit: $(VENV)/.dev-installed ## fast tests only (no local stack)
	$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

integration: $(VENV)/.dev-installed ## tests over real HTTP against the local stack
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

bench: $(VENV)/.dev-installed ## rerun the benchmarks and rewrite docs/benchmarks.md (BENCH_ARGS=--quick for fewer samples)
	$(PY) -m bench $(BENCH_ARGS)

build: ## sam build (needs aws-sam-cli and a python3.12 on PATH; no Docker)
	sam build

deploy: build ## deploy to the AWS account of your current credentials
	sam deploy --guided

clean: ## remove the virtualenv and build output
	rm -rf $(VENV) $(CHECKOV_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache
