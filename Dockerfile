# The sluice daemon in a container: the same sources and toolchain as
# `cargo build --release --bin sluice --bin sluicectl` on a host
# (rust-toolchain.toml), but the image's binaries are stripped; the host build keeps its symbols for
# profiles and flame graphs. Needs BuildKit (the default builder of
# Docker 23 and later, and of `docker compose`).
#
#   docker build -t sluice .
#   docker run -d --name sluice --stop-timeout 30 \
#     -e SLUICE_TRACKING__BASE_URL=https://t.example.com \
#     -e SLUICE_API_TOKENS=crm:TOKEN1,admin:TOKEN2 \
#     -p 127.0.0.1:7800:7800 -p 7801:7801 -p 2525:2525 \
#     -v sluice-data:/var/lib/sluice sluice
#
# docs/operations.md ("Docker and compose") has the details, and
# deploy/compose.yaml runs it with Prometheus and Grafana.

# Keep in step with rust-toolchain.toml.
FROM rust:1.95.0-bookworm AS build
WORKDIR /src
COPY . .
# Stripped in the image only (the environment overrides Cargo.toml's
# [profile.release] here, not on a host); the build fails if a symbol table
# is left. The cache mounts keep the registry and the compiled dependencies
# between builds, so the binary is copied out of target/ in the same step.
ENV CARGO_PROFILE_RELEASE_DEBUG=false \
    CARGO_PROFILE_RELEASE_STRIP=symbols
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin sluice --bin sluicectl \
 && install -D -m 0755 target/release/sluice /out/sluice \
 && install -D -m 0755 target/release/sluicectl /out/sluicectl \
 && for bin in sluice sluicectl; do \
      readelf -W -S /out/$bin > /tmp/sections \
      && if grep -q '\.symtab' /tmp/sections; then echo "$bin is not stripped" >&2; exit 1; fi; \
    done

FROM debian:bookworm-slim
# ca-certificates: https webhooks (and other TLS peers) are verified against
# the system's CAs. The user and group are fixed (999) so that volumes and
# bind mounts keep their owner across rebuilds, and numeric in USER so that
# an orchestrator can check that the container does not run as root.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 999 sluice \
 && useradd --system --uid 999 --gid sluice --home-dir /var/lib/sluice \
      --create-home --shell /usr/sbin/nologin sluice
COPY --from=build /out/sluice /usr/local/bin/sluice
# The operator's CLI: `docker exec -e SLUICE_TOKEN=... sluice sluicectl channels`.
COPY --from=build /out/sluicectl /usr/local/bin/sluicectl
COPY --chmod=0755 deploy/docker/entrypoint.sh /usr/local/bin/sluice-entrypoint
COPY --chmod=0755 deploy/docker/healthcheck.sh /usr/local/bin/sluice-healthcheck
USER 999:999
WORKDIR /var/lib/sluice
# Listen on every interface, on the default ports. Outside loopback the API
# refuses to start without SLUICE_API_TOKENS ("crm:TOKEN,admin:TOKEN"), and
# the entrypoint refuses `serve` without SLUICE_TRACKING__BASE_URL (the
# public URL of port 7801). Environment variables override a configuration
# file, so these listeners and this data directory win over a mounted
# sluice.toml; pass other SLUICE_SECTION__KEY variables to change them.
ENV SLUICE_LISTEN__API=0.0.0.0:7800 \
    SLUICE_LISTEN__TRACKING=0.0.0.0:7801 \
    SLUICE_LISTEN__BOUNCE=0.0.0.0:2525 \
    SLUICE_STORE__PATH=/var/lib/sluice/data
EXPOSE 7800 7801 2525
VOLUME /var/lib/sluice
# GET /healthz on the API port (200 while the API serves); /readyz, which
# also wants an upstream configured and the SMPP binds up, is for a load
# balancer or an orchestrator's readiness probe.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/sluice-healthcheck"]
# Graceful shutdown takes up to 20 s: stop the container with more time than
# Docker's default 10 s (docker stop -t 30, --stop-timeout 30,
# compose's stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/sluice-entrypoint"]
CMD ["serve", "--data", "/var/lib/sluice/data"]
