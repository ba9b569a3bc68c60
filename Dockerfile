# Builds the same binary as `cargo build --release --bin sluice` on a host.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin sluice

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/sluice --create-home sluice
COPY --from=build /src/target/release/sluice /usr/local/bin/sluice
USER sluice
WORKDIR /var/lib/sluice
# Outside loopback the API requires tokens: pass SLUICE_API_TOKENS.
ENV SLUICE_LISTEN__API=0.0.0.0:7800 \
    SLUICE_LISTEN__TRACKING=0.0.0.0:7801 \
    SLUICE_LISTEN__BOUNCE=0.0.0.0:2525
EXPOSE 7800 7801 2525
VOLUME /var/lib/sluice
STOPSIGNAL SIGTERM
ENTRYPOINT ["sluice"]
CMD ["serve", "--data", "/var/lib/sluice/data"]
