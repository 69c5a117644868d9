# syntax=docker/dockerfile:1
# Trellis container image: `docker build -t trellis .` (see README.md, "Docker").

# --- Build ----------------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder
# bindgen (librocksdb-sys) needs libclang; RocksDB itself is built from source with g++.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libclang-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/build/target \
    cargo build --release --locked --bin trellis \
 && cp target/release/trellis /usr/local/bin/trellis

# --- Run ------------------------------------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates libstdc++6 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home trellis \
 && mkdir -p /data \
 && chown trellis:trellis /data
COPY --from=builder /usr/local/bin/trellis /usr/local/bin/trellis

ENV TRELLIS_DATABASE__PATH=/data \
    TRELLIS_LISTEN__CLIENT=0.0.0.0:8008
VOLUME /data
WORKDIR /data
USER trellis
# 8008: Client-Server API (plain HTTP; put TLS in front). 8448: federation, once it lands.
EXPOSE 8008 8448
ENTRYPOINT ["trellis"]
