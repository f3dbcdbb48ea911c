# syntax=docker/dockerfile:1
#
# The demo booking backend (examples/demo, `--backend-only`) as an image, for
# docker-compose.yml. The repository's Dockerfile builds only the scopegate
# binary, so this one builds the example. Build context: the repository root.
#
#   docker build -f examples/deploy/demo-backend.Dockerfile -t scopegate-demo-backend .
#
# The backend is a toy: it keeps its bookings in memory and believes any
# X-Scope-* header it receives. Never expose it directly; in compose it sits
# on an internal network that only scopegate shares.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --example demo \
    && install -D -m 0755 target/release/examples/demo /out/scopegate-demo

FROM debian:bookworm-slim
COPY --from=build /out/scopegate-demo /usr/local/bin/scopegate-demo
USER 10001:10001
EXPOSE 8081
ENTRYPOINT ["/usr/local/bin/scopegate-demo", "--backend-only"]
CMD ["--listen", "0.0.0.0:8081"]
