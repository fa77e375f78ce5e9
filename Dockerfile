# syntax=docker/dockerfile:1
# The txp image: one binary, /usr/local/bin/txp, run as uid 65532 on a read-only root.
#   make image                      (docker or podman, whichever runs here; docs/deploy.md)
#   docker build -t txpatterns/txp:dev .
#   docker run --rm txpatterns/txp:dev --help
# Dependencies are compiled in their own layer (cargo-chef), rebuilt only when Cargo.lock or a
# Cargo.toml changes. TLS is rustls: no OpenSSL in either stage. The binary is built with the
# `dist` profile (Cargo.toml): release without debug info.
# `make test` checks that every file the build needs is copied before the step that needs it
# (deploy/image/check-context): a path dependency or [patch] outside the workspace's members must
# be copied before `cargo chef cook`, whose recipe holds only the members' manifests.

# Rust >= 1.94 (rust-version in Cargo.toml); the 1-slim-bookworm tag follows the latest stable.
FROM rust:1-slim-bookworm AS chef
ARG CARGO_CHEF_VERSION=0.1.78
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /src

# The dependency recipe: the workspace's manifests and Cargo.lock only.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json --bin txp

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# Cached layer: every dependency of txp, built with the dist profile.
RUN cargo chef cook --profile dist --locked --recipe-path recipe.json --bin txp
COPY . .
RUN cargo build --profile dist --locked --bin txp \
 && install -m 0755 target/dist/txp /usr/local/bin/txp

FROM debian:bookworm-slim AS runtime
# CA roots for https:// sources, S3 and SQS; /data for docker-compose's generated data volume
# (a named volume takes the owner of the directory it is mounted on).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data \
 && chown 65532:65532 /data
COPY --from=builder /usr/local/bin/txp /usr/local/bin/txp
# Metrics, /healthz and /readyz of consume, detect and upload.
ENV TXP_METRICS_ADDR=0.0.0.0:9464 \
    TXP_LOG=info
EXPOSE 9464
# Non-root (the same uid as distroless's `nonroot`); txp writes only to /tmp, so the root can be
# mounted read-only with an emptyDir (or tmpfs) on /tmp. The entrypoint is the binary itself: no
# shell runs at run time.
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["/usr/local/bin/txp"]
CMD ["--help"]
