# The single entry point: `make up` runs the product locally, `make test` checks everything.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
CHECKOV_VENV ?= .venv-checkov
SAM_VENV ?= .venv-sam
# sam build needs a python3.12 (Lambda's runtime) on PATH to build without Docker; pyenv's will do.
PYTHON312 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12.*/bin/python3.12) $(shell command -v python3.12))
SAM := PATH="$(dir $(PYTHON312)):$$PATH" SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam
# LEYLINE_BACKEND=localstack runs LocalStack's runtime from a venv of its own on Python 3.13 (its only version);
# tests/localstack/ finds the interpreter the same way, and skips only when there is none.
LOCALSTACK_VENV ?= .venv-localstack
PYTHON313 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13.*/bin/python3.13) $(shell command -v python3.13))

# The browser tests drive Debian's Chromium through Playwright, at the path tests/browser/chromium.py names
# (Playwright's own browser download is not used).
CHROMIUM := /usr/bin/chromium
SUDO = $(if $(filter 0,$(shell id -u)),,sudo)

.DEFAULT_GOAL := help
.PHONY: help up test lint typecheck unit integration bench package-size checkov-venv localstack-venv sam-env chromium build deploy clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(VENV)/.local-installed: pyproject.toml functions/requirements.txt functions/layers/media/requirements.txt
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

# LocalStack (infra/localstack-requirements.txt) in its own venv: it needs Python 3.13 and pins its own boto3.
# Without a python3.13 this says so and installs nothing: LEYLINE_BACKEND=localstack then refuses to start
# and tests/localstack/ is skipped.
$(LOCALSTACK_VENV)/.installed: infra/localstack-requirements.txt
	@if [ -z "$(PYTHON313)" ]; then \
		echo "no python3.13: LEYLINE_BACKEND=localstack is unavailable and its tests will be skipped" >&2; \
	else \
		set -e; \
		test -x $(LOCALSTACK_VENV)/bin/python || $(PYTHON313) -m venv $(LOCALSTACK_VENV); \
		$(LOCALSTACK_VENV)/bin/python -m pip install --quiet --upgrade pip; \
		$(LOCALSTACK_VENV)/bin/python -m pip install --quiet -r infra/localstack-requirements.txt; \
		touch $@; \
	fi

localstack-venv: $(LOCALSTACK_VENV)/.installed ## LocalStack's runtime in its own venv (Python 3.13), for LEYLINE_BACKEND=localstack

# aws-sam-cli pins its own boto3 and more: it gets a venv of its own too.
$(SAM_VENV)/.installed:
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet aws-sam-cli==1.170.0
	touch $@

# Installed only when missing, with apt-get (Debian/Ubuntu, as in CI; sudo unless root). Without apt-get the
# browser tests skip themselves, and this says so.
$(CHROMIUM):
	@if command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium for the browser tests (apt-get)"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "no apt-get here: the browser tests will be skipped (they need Chromium as $(CHROMIUM))" >&2; \
	fi

chromium: $(CHROMIUM) ## Debian's chromium for the browser tests, installed with apt-get if missing

up: $(VENV)/.local-installed $(if $(filter localstack,$(LEYLINE_BACKEND)),$(LOCALSTACK_VENV)/.installed) ## run the whole product locally, no Docker: on an embedded moto server, or LEYLINE_BACKEND=localstack
	$(PY) -m infra

sam-env: $(VENV)/.local-installed ## print the --env-vars JSON of `sam local invoke` for the running local stack
	@$(PY) -m infra sam-env

test: lint typecheck $(CHROMIUM) $(LOCALSTACK_VENV)/.installed $(SAM_VENV)/.installed ## run every check: lint, types, template checks, unit, handler, integration and browser tests
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed $(CHECKOV_VENV)/.installed ## ruff (lint + format), cfn-lint and checkov
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/cfn-lint template.yaml
	$(CHECKOV_VENV)/bin/checkov --file template.yaml --framework cloudformation --skip-download --quiet --compact

typecheck: $(VENV)/.dev-installed ## mypy over functions, infra, tests
	$(VENV)/bin/mypy

# schemathesis' and hypothesis' pytest plugins load both (seconds) for tests/security/test_fuzzing.py alone,
# which is integration: unit goes without them.
unit: $(VENV)/.dev-installed ## fast tests (< 30 s) that start no process: logic on fakes, handlers and provisioning on moto's in-process mock
	$(PY) -m pytest -m "not integration and not slow" -p no:schemathesis -p no:hypothesispytest $(PYTEST_ARGS)

integration: $(VENV)/.dev-installed $(CHROMIUM) $(LOCALSTACK_VENV)/.installed $(SAM_VENV)/.installed ## all that unit leaves out: local stacks, subprocesses, forks, browser, and the slow tests
	$(PY) -m pytest -m "integration or slow" $(PYTEST_ARGS)

bench: $(VENV)/.dev-installed $(SAM_VENV)/.installed $(LOCALSTACK_VENV)/.installed ## rerun the benchmarks and rewrite docs/benchmarks.md (BENCH_ARGS=--quick for fewer samples)
	$(PY) -m bench $(BENCH_ARGS)

package-size: $(VENV)/.dev-installed $(SAM_VENV)/.installed ## sam build, then each function's Lambda package size against the limits
	$(PY) -m bench package

build: $(SAM_VENV)/.installed ## sam build without Docker (needs a python3.12: pyenv's or on PATH)
	@test -n "$(PYTHON312)" || { echo "sam build needs a python3.12 (set PYTHON312=/path/to/python3.12)"; exit 1; }
	$(SAM) build

deploy: build ## deploy to the AWS account of your current credentials
	$(SAM) deploy --guided

clean: ## remove the virtualenv and build output
	rm -rf $(VENV) $(CHECKOV_VENV) $(SAM_VENV) $(LOCALSTACK_VENV) .leyline .aws-sam .pytest_cache .mypy_cache .ruff_cache
