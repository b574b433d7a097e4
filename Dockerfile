# syntax=docker/dockerfile:1
# routelb image: one binary for every role (`routelb allocator`, `routelb agent`, ...).
#
#   docker build -t routelb:0.1.0 .
#
# The allocator runs as the image's default non-root user (uid 65532). The agent DaemonSet
# overrides it to root: it needs NET_ADMIN/NET_RAW for netlink and gratuitous ARP, and the
# daemon's control sockets (FRR's vty sockets are frr:frrvty 0770, Debian's BIRD socket
# bird:bird 0660: reaching those takes DAC_OVERRIDE too). See deploy/README.md.
#
# Needs BuildKit (Docker >= 23 uses it by default) for the cache mounts.

# ---------------------------------------------------------------------------------------------
# Builder: Debian 12 with a current stable Rust (the crate is edition 2024: Rust >= 1.85).
FROM rust:1-bookworm AS builder
WORKDIR /src

# Only what the build reads (see .dockerignore): the templates are embedded with include_str!,
# and Cargo refuses a manifest whose declared [[bench]] and [[test]] targets are missing (the
# one declared test is only present, never built here).
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY tests/real_cluster.rs ./tests/
COPY templates ./templates

# Registry and target dir are BuildKit cache mounts (kept between builds, never in a layer),
# so the binary is copied out within the same step. The release profile keeps line tables
# (debug = "line-tables-only") for backtraces with file:line; compressing the debug sections
# keeps them readable by std's backtrace printer at about a third of the size (126 -> 45 MB).
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin routelb \
 && objcopy --compress-debug-sections=zlib target/release/routelb /usr/local/bin/routelb \
 && /usr/local/bin/routelb --version

# ---------------------------------------------------------------------------------------------
# Runtime: Debian 12 slim, with the daemons' command-line clients only.
#   frr    -> vtysh (and the FRR daemons' binaries, which are never started here)
#   bird2  -> birdc
# ca-certificates: a kubeconfig without certificate-authority falls back to the system roots.
FROM debian:bookworm-slim

ARG DEBIAN_FRONTEND=noninteractive
# /etc/bird is bird:bird 0750 in the package; it holds only Debian's sample bird.conf here.
# Opened to all so that processes without CAP_DAC_OVERRIDE reach what deploy/ mounts below it
# (the base bird.conf, the /etc/bird/routelb include dir): the BIRD sidecar (root, no
# DAC_OVERRIDE), the agent beside it, and the non-root init container seeding the include.
# Versions are not pinned: bookworm's point releases replace them (security fixes).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends frr bird2 ca-certificates \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* \
 && chmod 0755 /etc/bird

# A fixed non-root user. USER is numeric so the kubelet can verify `runAsNonRoot: true`
# (it refuses a non-numeric USER it cannot resolve).
RUN groupadd --gid 65532 routelb \
 && useradd --no-log-init --uid 65532 --gid 65532 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin routelb

COPY --from=builder /usr/local/bin/routelb /usr/local/bin/routelb
# The binary embeds the same templates; this copy is for reading and for --templates.
COPY templates/ /etc/routelb/templates/

LABEL org.opencontainers.image.title="routelb" \
      org.opencontainers.image.description="Kubernetes LoadBalancer for bare metal that announces through FRR or BIRD" \
      org.opencontainers.image.licenses="Apache-2.0"

# 9090: allocator metrics/health, 9091: agent metrics/health.
EXPOSE 9090 9091
USER 65532:65532
ENTRYPOINT ["routelb"]
CMD ["--help"]
