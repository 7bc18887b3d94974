# syntax=docker/dockerfile:1
# The covet image: the host binary and the workspace's native plugins.
#
#   docker build -t covet:native .                                   # native-only (default): no libpython, no wasmtime
#   docker build -t covet:full --build-arg COVET_FEATURES=full .     # + the Python and WASM runtimes
#   docker build -t covet:wasm --build-arg COVET_FEATURES=wasm .     # any list of runtime features: python, wasm
#
# Binary: /usr/local/bin/covet. Plugins: /opt/covet/plugins/libcovet_*.so.
# Manifest: /etc/covet/plugins.yaml (a hello route; mount your own over it).
# It runs as uid/gid 10001, listens where the manifest says (8080 here), and
# stops gracefully on SIGTERM within limits.shutdown_timeout (docker stop -t
# must allow that long; Kubernetes: deploy/kubernetes). With a read-only root,
# /tmp must be writable and exec (native plugins load from a private copy
# there): `docker run --read-only --tmpfs /tmp:exec` (docker's default tmpfs is
# noexec and the load fails). See docs/fleet.md.

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# native | full | a comma-separated list of the host's runtime features (python, wasm).
ARG COVET_FEATURES=native
WORKDIR /src
# pyo3 links the Debian python3.11 (the runtime stage installs the same libpython3.11).
# hadolint ignore=DL3008
RUN case ",${COVET_FEATURES}," in \
      *,full,*|*,python,*) apt-get update \
        && apt-get install -y --no-install-recommends python3-dev \
        && rm -rf /var/lib/apt/lists/* ;; \
    esac
COPY . .
# The cargo caches survive between builds; the results are copied out of them to /out.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    set -eu; \
    case "${COVET_FEATURES}" in \
      native) features="" ;; \
      full) features="python,wasm" ;; \
      *) features="${COVET_FEATURES}" ;; \
    esac; \
    cargo build --release --locked -p covet --no-default-features ${features:+--features "$features"}; \
    cargo build --release --locked \
      -p covet-auth-jwt -p covet-cache -p covet-compress -p covet-cors -p covet-graphql \
      -p covet-headers -p covet-proxy -p covet-rate-limit -p covet-security-headers -p covet-static-response; \
    mkdir -p /out/plugins; \
    cp target/release/covet /out/covet; \
    cp target/release/libcovet_*.so /out/plugins/; \
    case ",${features}," in \
      *,python,*) ;; \
      *) if ldd /out/covet | grep -q libpython; then echo "a native-only covet links libpython" >&2; exit 1; fi ;; \
    esac; \
    strip /out/covet /out/plugins/*.so

FROM ${RUNTIME_IMAGE} AS runtime
ARG COVET_FEATURES=native
# libpython3.11 (and its standard library) only when the Python runtime is in.
# hadolint ignore=DL3008
RUN case ",${COVET_FEATURES}," in \
      *,full,*|*,python,*) apt-get update \
        && apt-get install -y --no-install-recommends libpython3.11 \
        && rm -rf /var/lib/apt/lists/* ;; \
    esac \
    && groupadd --system --gid 10001 covet \
    && useradd --system --uid 10001 --gid covet --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin covet
COPY --from=builder /out/covet /usr/local/bin/covet
COPY --from=builder /out/plugins/ /opt/covet/plugins/
COPY deploy/docker/plugins.yaml /etc/covet/plugins.yaml
USER 10001:10001
EXPOSE 8080
# covet drains on SIGTERM (and SIGINT): stop accepting, finish in-flight
# requests for up to limits.shutdown_timeout, then exit 0.
STOPSIGNAL SIGTERM
# Liveness without curl in the image: bash's /dev/tcp. Kubernetes ignores
# HEALTHCHECK and uses the probes in deploy/kubernetes/deployment.yaml
# (/_covet/health and /_covet/ready).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /_covet/health HTTP/1.0\\r\\n\\r\\n' >&3 && head -c 12 <&3 | grep -q ' 200'"]
ENTRYPOINT ["covet"]
CMD ["host", "--plugins", "/etc/covet/plugins.yaml"]
