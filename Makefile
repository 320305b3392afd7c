# Two commands do all set-up: `make run` and `make test` (each creates .venv on first use).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test reliability fuzz bench schema clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

run: $(STAMP)  ## Serve Keel (embedded PostgreSQL when DATABASE_URL is unset)
	$(BIN)/keel serve $(ARGS)

test: $(STAMP)  ## Run the test suite against a real PostgreSQL
	$(BIN)/python -m pytest $(ARGS)

reliability: $(STAMP)  ## Fault-injection suites at full length (docs/reliability.md)
	KEEL_RELIABILITY=full $(BIN)/python -m pytest -m reliability -s $(ARGS)

fuzz: $(STAMP)  ## Schemathesis over the whole API and the tenant sweep (KEEL_FUZZ_SECONDS etc. to go deeper)
	KEEL_FUZZ=1 $(BIN)/python -m pytest -s tests/test_reliability_fuzz.py tests/test_reliability_tenant_sweep.py $(ARGS)

bench: $(STAMP)  ## Run the benchmarks (ARGS=--quick for a short run)
	$(BIN)/python -m bench $(ARGS)

schema: $(STAMP)  ## Regenerate docs/schema.sql (pg_dump --schema-only of a freshly migrated database)
	$(BIN)/python -m tests.schema_dump --write

clean:
	rm -rf $(VENV) .pytest_cache
