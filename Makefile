# The two commands that matter: `make dev` runs the system locally, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test lint format bench fuzz package clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

dev: $(STAMP)
	$(BIN)/izgens dev

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# every benchmark, then one summary table (benchmarks/report.py); each writes its figures
# as JSON to BENCH_OUT. A failing benchmark does not stop the others: the report names it.
BENCH_OUT ?= /tmp/izgens-bench-results
BENCHMARKS := ledger cold_start cold_start_artifacts warm routes status_read export burst margin

bench: $(STAMP)
	@rm -rf $(BENCH_OUT) && mkdir -p $(BENCH_OUT)
	@$(BIN)/python benchmarks/report.py --begin $(BENCH_OUT)
	@for b in $(BENCHMARKS); do \
		echo "== benchmarks/$$b.py"; \
		case $$b in cold_start_artifacts) script=cold_start.py; args=--artifacts;; *) script=$$b.py; args=;; esac; \
		BENCH_RESULTS=$(BENCH_OUT) $(BIN)/python benchmarks/$$script $$args || echo "benchmarks/$$b.py failed"; \
	done
	@$(BIN)/python benchmarks/report.py $(BENCH_OUT)

# the CI run of tests/fuzz is bounded (a dozen examples per route, repeatable); this one
# explores: IZGENS_FUZZ_EXAMPLES per route, a new random seed each run
IZGENS_FUZZ_EXAMPLES ?= 500
fuzz: $(STAMP)
	IZGENS_FUZZ_EXAMPLES=$(IZGENS_FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/fuzz -p no:cacheprovider

package: $(STAMP)
	$(BIN)/python infra/package.py

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache .package
