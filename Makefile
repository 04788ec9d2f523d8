# Two commands: `make up` brings Kefu up on its embedded defaults; `make test` runs every check.
# Both create .venv when it is missing and install the exact versions of the lock files.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kefu-installed

.PHONY: up up-scaled test install lint typecheck pytest bench clean

$(STAMP): requirements.lock requirements-dev.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.9
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements-dev.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

up: $(STAMP)
	$(BIN)/kefu up

up-scaled: $(STAMP)  # the scaled topology on this machine (PostgreSQL and Redis): see README "Production"
	$(BIN)/kefu up --scaled

lint: $(STAMP)
	$(BIN)/ruff check kefu tests bench
	$(BIN)/ruff format --check kefu tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python bench/deadlines.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
