PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ASSETS_STAMP := ide/node_modules/.installed
CLIENTS_STAMP := tests/js/node_modules/.installed

.PHONY: install assets run test lint schema migrate bench clean lock

install: $(STAMP) $(ASSETS_STAMP) $(CLIENTS_STAMP)

# GraphiQL's browser assets, pinned by ide/package-lock.json and served from ide/node_modules.
# Without npm (or when it fails) the app still works: the GraphiQL page then uses a CDN.
assets: $(ASSETS_STAMP)

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
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet -e ".[dev]"
	{ head -n 2 requirements.lock; .venv-lock/bin/pip freeze --exclude-editable; } > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf .venv-lock

run: install
	DEMO=1 $(PY) -m app demo
	DEMO=1 $(PY) -m app serve

test: install lint
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

schema: install
	$(PY) -m app export-schema > schema.graphql
	$(PY) -m app export-schema --federation > subgraph.graphql

migrate: install
	$(PY) -m app migrate

# needs wrk for the load (apt-get install -y wrk), else a slower Python generator is used
bench: install
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache ide/node_modules
