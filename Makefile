# Everything runs from the project's own virtualenv (.venv); `make test` and `make demo`
# create it and install the project on first use.
PYTHON ?= python3
DEMO_ARGS ?=
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench serve clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/csms demo $(DEMO_ARGS)

serve: $(STAMP)
	$(BIN)/csms serve

test: $(STAMP)
	$(BIN)/ruff check csms simulators tests bench
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check csms simulators tests bench
	$(BIN)/ruff format --check csms simulators tests bench

bench: $(STAMP)
	$(BIN)/python -m bench.rpc_throughput
	$(BIN)/python -m bench.planner

clean:
	rm -rf $(VENV) .pytest_cache data
