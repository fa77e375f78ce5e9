# The README's quick start: `make demo` and `make test`. Both build .venv from scratch when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint check-python check-java bench clean

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null || { \
	  echo "txpatterns needs Python 3.11 or newer as '$(PYTHON)'."; \
	  echo "Install it (Debian/Ubuntu: sudo apt-get install python3.11 python3.11-venv) or run: make PYTHON=/path/to/python3.11 ..."; \
	  exit 1; }

check-java:
	@sh scripts/check-java.sh

$(BIN)/.installed: pyproject.toml | check-python
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(BIN)/.installed-dev: pyproject.toml | check-python
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(BIN)/.installed $@

# The main job: generate, publish and detect side by side on embedded defaults, then verify.
demo: check-java $(BIN)/.installed
	$(BIN)/txpatterns run

lint: $(BIN)/.installed-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

test: check-java lint
	@sh scripts/install-chromium.sh
	$(BIN)/pytest

# The benchmark suite (docs/performance.md): `make bench` runs catchup, reference, live and the
# long growth run; pick one with e.g. `make bench BENCH="growth --rows 2000000"`.
BENCH ?= all
bench: check-java $(BIN)/.installed-dev
	SPARK_LOCAL_IP=127.0.0.1 $(BIN)/python -m bench $(BENCH)

clean:
	rm -rf $(VENV) txp-data build dist src/*.egg-info .mypy_cache .pytest_cache .ruff_cache
