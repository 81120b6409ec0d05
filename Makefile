# Two entry points for a newcomer: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test explore venv clean

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
	HYPOTHESIS_PROFILE=explore $(BIN)/pytest tests/unit/test_properties.py -q -p no:cacheprovider --hypothesis-show-statistics

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
