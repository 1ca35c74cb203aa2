# Two-command quick start: `make train` and `make test` (each sets up .venv on first use).
PY ?= python3
VENV ?= .venv
SPEC ?= specs/ppo/ppo_cartpole.yaml
# Extra arguments for benchmarks/seed_scaling.py, e.g. BENCH_ARGS="--seeds 1 4 16 64 --frames 100000"
BENCH_ARGS ?=
BIN := $(VENV)/bin

.PHONY: setup train dev test lint bench clean

$(BIN)/jaxlab: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $(BIN)/jaxlab

# Every env suite's extra (brax, playground, craftax, jumanji, navix, xminigrid, envpool) and
# the trackers (wandb, mlflow): the tests use them.
$(VENV)/.envs: $(BIN)/jaxlab
	$(BIN)/pip install -q -e ".[dev,envs,trackers]"
	touch $(VENV)/.envs

setup: $(BIN)/jaxlab

train: setup
	$(BIN)/python -m jaxlab train $(SPEC)

dev: setup
	$(BIN)/python -m jaxlab dev $(SPEC)

test: $(VENV)/.envs
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check jaxlab tests benchmarks scripts
	$(BIN)/ruff format --check jaxlab tests benchmarks scripts

bench: setup
	$(BIN)/pip install -q -e ".[dev,bench]"
	$(BIN)/python benchmarks/seed_scaling.py --out bench_out $(BENCH_ARGS)

clean:
	rm -rf $(VENV)
