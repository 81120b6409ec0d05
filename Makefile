# Two entry points for a newcomer: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test explore mutate venv clean

$(BIN)/talksync: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/talksync

## Set up and run the main job: a full two-way sync on the built-in sandbox.
demo: venv
	$(BIN)/talksync demo

## Set up and run the whole check: lint, format, types, tests.
test: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q

## Search harder than CI: the hypothesis properties with random seeds and many examples
## (TALKSYNC_EXPLORE_EXAMPLES, default 2000 each). Run before calling a planning change done.
explore: venv
	HYPOTHESIS_PROFILE=explore $(BIN)/pytest tests/unit -q -p no:cacheprovider --hypothesis-show-statistics

## How many planted bugs the unit tests catch: a sampled mutation run over src/talkcore
## (bench/mutation.py; figures and the judged survivors are in docs/testing.md).
mutate: venv
	$(BIN)/python bench/mutation.py --per-module 30 --seed 1 --jobs 2 --json mutation.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
