# The two commands a newcomer runs: `make demo` and `make test`. Both create .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-memory test test-wheel docs lint bench mutation results-check clean

# constraints.txt pins what our runs install (torch's CPU wheel); lstmkit asks only lower bounds
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# data: $LSTMKIT_DATA if set, else ../shared/data when it exists, else the user cache / download
LSTMKIT_DATA ?= $(wildcard $(abspath ../shared/data))
export LSTMKIT_DATA

demo: $(STAMP)
	$(BIN)/lstmkit demo

demo-memory: $(STAMP)
	$(BIN)/lstmkit demo memory --out runs/demo-memory

lint: $(STAMP)
	$(BIN)/ruff check lstmkit tests benchmarks examples
	$(BIN)/ruff format --check lstmkit tests benchmarks examples
	$(BIN)/mypy lstmkit
	$(BIN)/lint-imports

test: $(STAMP) lint
	OMP_NUM_THREADS=1 KERAS_BACKEND=torch $(BIN)/python -m pytest -n 2 -q

# the wheel as users get it: built, installed core-only and then with [all] into fresh venvs
# outside the checkout, and run from an empty folder (tests/wheel_check.py)
test-wheel: $(STAMP)
	$(BIN)/python tests/wheel_check.py --constraints constraints.txt

# the documentation site (mkdocs.yml): any warning is an error
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir build/site

bench: $(STAMP)
	$(BIN)/python benchmarks/recurrent.py --quick

# mutation testing of the guards (mutmut, slow: not in `make test`): kill rate per file into
# results/mutation.json; exit 1 when a file is below the goal (benchmarks/mutation.py --help)
mutation: $(STAMP)
	$(BIN)/python benchmarks/mutation.py

# re-run every recorded figure whose run takes under 5 minutes; exit 1 when one moved beyond
# its recorded spread (0.5 points for a single run)
results-check: $(STAMP)
	$(BIN)/python benchmarks/results_check.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
