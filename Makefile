PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ASSETS_STAMP := ide/node_modules/.installed
CLIENTS_STAMP := tests/js/node_modules/.installed

.PHONY: help install assets run test test-fast lint fmt typecheck schema migrate bench clean lock

help: ## this list
	@awk 'BEGIN { FS = ":.*## " } /^[a-z-]+:.*## / { printf "  make %-10s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

install: $(STAMP) $(ASSETS_STAMP) $(CLIENTS_STAMP) ## install everything into .venv, ide/ and tests/js/ (idempotent)

# GraphiQL's browser assets, pinned by ide/package-lock.json and served from ide/node_modules.
# Without npm (or when it fails) the app still works: the GraphiQL page then uses a CDN.
assets: $(ASSETS_STAMP) ## GraphiQL's browser assets only

$(ASSETS_STAMP): ide/package.json ide/package-lock.json
	@if ! command -v npm >/dev/null 2>&1; then \
	  echo "npm not found: GraphiQL will load its assets from a CDN" >&2; \
	elif (cd ide && npm ci --no-audit --no-fund --loglevel=error); then \
	  touch $@; \
	else \
	  echo "npm ci failed: GraphiQL will load its assets from a CDN" >&2; \
	fi

# The JavaScript tools real clients use (graphql-http's audit, Apollo Client, Apollo composition,
# openapi-typescript), pinned by tests/js/package-lock.json for the tests in tests/clients/.
# Without npm those tests skip and say why; in CI (REQUIRE_NODE_CLIENTS=1) they fail instead.
$(CLIENTS_STAMP): tests/js/package.json tests/js/package-lock.json
	@if ! command -v npm >/dev/null 2>&1; then \
	  echo "npm not found: the JavaScript client tests will skip" >&2; \
	elif (cd tests/js && npm ci --no-audit --no-fund --loglevel=error); then \
	  touch $@; \
	else \
	  echo "npm ci failed in tests/js: the JavaScript client tests will skip" >&2; \
	fi

# Exact versions from requirements.lock (the fast paths rely on some libraries' private parts,
# pinned there and checked by tests/test_private_parts.py), then the project itself.
$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# After changing a dependency in pyproject.toml: resolve again and pin what was installed.
lock: ## resolve pyproject.toml again and pin what was installed in requirements.lock
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet -e ".[dev]"
	{ head -n 2 requirements.lock; .venv-lock/bin/pip freeze --exclude-editable; } > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf .venv-lock

run: install ## the demo server on http://127.0.0.1:8000 (GraphiQL at /graphql)
	DEMO=1 $(PY) -m app demo
	DEMO=1 $(PY) -m app serve

test: install lint typecheck ## lint, type check and the whole suite (PostgreSQL half with TEST_POSTGRES_URL)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install ## ruff check and ruff format --check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test-fast: install ## the suite without slow, fuzz or browser tests (no server processes)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

fmt: install ## ruff format and ruff check --fix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: install ## mypy in strict mode (configured in pyproject.toml)
	$(VENV)/bin/mypy

schema: install ## write schema.graphql, subgraph.graphql and docs/bundle.schema.json from the code
	$(PY) -m app export-schema > schema.graphql
	$(PY) -m app export-schema --federation > subgraph.graphql
	$(PY) -m app export-schema --bundle > docs/bundle.schema.json

migrate: install ## apply the migrations to DATABASE_URL
	$(PY) -m app migrate

# needs wrk for the load (apt-get install -y wrk), else a slower Python generator is used
bench: install ## the benchmark against PostGraphile (about 7 minutes; see bench/README.md)
	$(PY) bench/run.py

clean: ## remove .venv, node_modules and caches
	rm -rf $(VENV) data .pytest_cache .ruff_cache .mypy_cache ide/node_modules tests/js/node_modules
