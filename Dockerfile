# syntax=docker/dockerfile:1
#
# scopegate container image.
#
#   docker build -t scopegate .
#   docker run --rm -p 8080:8080 -p 9090:9090 \
#       -v "$PWD/scopegate.toml:/etc/scopegate/scopegate.toml:ro" scopegate
#
# The configuration is not baked in: mount it at /etc/scopegate/scopegate.toml
# (or pass `run --config <path>`). Inside a container the listeners must bind
# all interfaces to be reachable through -p, so either write
#   [listen] address = "0.0.0.0:8080"   and   [admin] address = "0.0.0.0:9090"
# in the mounted file, or override at run time with
#   -e SCOPEGATE_LISTEN__ADDRESS=0.0.0.0:8080 -e SCOPEGATE_ADMIN__ADDRESS=0.0.0.0:9090
# `docker run ... scopegate check --config /etc/scopegate/scopegate.toml`
# validates a configuration without serving.
#
# The HEALTHCHECK asks the admin listener on 127.0.0.1:9090 for /healthz; if
# the config moves or omits [admin], override it (docker run --health-cmd, or
# --no-healthcheck).
#
# On SIGTERM scopegate drains for listen.drain_timeout (default 30s), longer
# than `docker stop`'s 10 s grace: use `docker stop -t 35` (or
# stop_grace_period in compose) or a shorter drain_timeout.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target dir between builds; the binary is
# copied out of the cached target dir within the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin scopegate \
    && install -D -m 0755 target/release/scopegate /out/scopegate

FROM debian:bookworm-slim
# A fixed numeric uid/gid, so `runAsNonRoot` can verify it without /etc/passwd.
RUN groupadd --system --gid 10001 scopegate \
    && useradd --system --uid 10001 --gid scopegate --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin scopegate \
    && mkdir -p /etc/scopegate
COPY --from=build /out/scopegate /usr/local/bin/scopegate
USER 10001:10001
EXPOSE 8080 9090
# No curl in the image: bash's /dev/tcp sends one HTTP/1.0 request to the
# admin listener and the check passes on a 200 status line.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9090 && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && read -r -t 2 status <&3 && [[ $status == 'HTTP/1.'?' 200 '* ]]"]
ENTRYPOINT ["/usr/local/bin/scopegate"]
CMD ["run", "--config", "/etc/scopegate/scopegate.toml"]
