# Multi-stage build: compile with the locked dependency set, ship a slim,
# non-root runtime image.
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake protobuf-compiler libprotobuf-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# Cargo.toml names the bench target, so its source must be present.
COPY benches ./benches
COPY examples ./examples
RUN cargo build --locked --release --bin cutover

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin cutover \
    && mkdir -p /etc/cutover /var/lib/cutover && chown cutover /var/lib/cutover
COPY --from=build /src/target/release/cutover /usr/local/bin/cutover
COPY config/cutover.toml /etc/cutover/cutover.toml
USER cutover
ENV CUTOVER_CONFIG=/etc/cutover/cutover.toml
EXPOSE 8080 8443 9901
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/cutover"]
CMD ["run"]
