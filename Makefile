# Everything runs from the project's own virtualenv (.venv); `make test` and `make demo`
# create it on first use and install exact, hash-checked versions from requirements/dev.lock
# (see "Dependencies" in the README). `make lock` refreshes the lock files from pyproject.toml.
PYTHON ?= python3
DEMO_ARGS ?=
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCK   := requirements/dev.lock
UV_COMPILE = $(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes --upgrade -q

.PHONY: install demo test lint bench serve lock clean

$(STAMP): $(LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes -r $(LOCK)
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/csms demo $(DEMO_ARGS)

serve: $(STAMP)
	$(BIN)/csms serve

# on both cores (pytest-xdist); tests/conftest.py keeps the timing-sensitive ones on one worker
PYTEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/ruff check csms simulators tests bench
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check csms simulators tests bench
	$(BIN)/lint-imports --no-cache
	$(BIN)/ruff format --check csms simulators tests bench

bench: $(STAMP)
	$(BIN)/python -m bench.rpc_throughput
	$(BIN)/python -m bench.planner
	$(BIN)/python -m bench.console

# Re-resolve every dependency to the newest versions pyproject.toml allows and rewrite both
# lock files (runtime only, and runtime + dev). Review the diff, run `make test`, commit.
lock: $(STAMP)
	$(UV_COMPILE) -o requirements/runtime.lock
	$(UV_COMPILE) --extra dev -o requirements/dev.lock

clean:
	rm -rf $(VENV) .pytest_cache data
