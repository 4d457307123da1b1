# syntax=docker/dockerfile:1
#
# The OpsConductor controller: `opsconductor server` with the web UI built
# in. Build from the repository root (the context .dockerignore trims):
#
#   docker build -f deploy/docker/controller.Dockerfile \
#       --build-arg VERSION=$(git describe --tags --always --dirty) \
#       --build-arg COMMIT=$(git rev-parse HEAD) --build-arg DATE=$(TZ=UTC git show -s --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ HEAD) \
#       -t opsconductor/controller .
#
# The default (last) stage is the controller on distroless/static: no
# shell and no package manager, but the three things a static Go server
# still needs from its image, which scratch lacks: CA certificates (webhook
# and mail deliveries over TLS), the time zone database (schedules fire in
# named zones and the binary does not embed one), and a writable /tmp.
# It runs as uid 65532, "nonroot" in that image.
#
# The `cli` stage is the same binary on Debian with a shell, for scripts
# that drive the CLI (docker-compose's init and enrol jobs):
#   docker build -f deploy/docker/controller.Dockerfile --target cli -t opsconductor/cli .

ARG GO_VERSION=1.26.8
ARG NODE_VERSION=20.19

# The UI, built from the lockfile as `make web` does.
FROM node:${NODE_VERSION}-bookworm-slim AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

# The binary, built as `make build` builds it: static (no libc), without
# gRPC's debug pages, with the version stamped in. go:embed takes web/dist
# from the stage above.
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
COPY --from=web /src/web/dist ./web/dist
# Stamped as `make release` stamps them: the version, the full commit and
# the commit's time (not the clock's, so that one commit builds the same).
ARG VERSION=dev
ARG COMMIT=
ARG DATE=
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -tags grpcnotrace \
        -ldflags "-s -w -X github.com/opsconductor/opsconductor/internal/buildinfo.version=${VERSION} \
            -X github.com/opsconductor/opsconductor/internal/buildinfo.commit=${COMMIT} \
            -X github.com/opsconductor/opsconductor/internal/buildinfo.date=${DATE}" \
        -o /out/opsconductor ./cmd/opsconductor && \
    mkdir -p /out/data

FROM debian:bookworm-slim AS cli
RUN apt-get update && \
    apt-get install -y --no-install-recommends ca-certificates && \
    rm -rf /var/lib/apt/lists/*
COPY --from=build /out/opsconductor /usr/local/bin/opsconductor
CMD ["opsconductor", "--help"]

FROM gcr.io/distroless/static-debian12:nonroot AS controller
ARG VERSION=dev
ARG COMMIT=
ARG DATE=
LABEL org.opencontainers.image.title="OpsConductor controller" \
      org.opencontainers.image.source="https://github.com/opsconductor/opsconductor" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.created="${DATE}"
COPY --from=build /out/opsconductor /usr/local/bin/opsconductor
# An empty data directory owned by the server's user, so that a named
# volume mounted there starts out writable by it.
COPY --from=build --chown=65532:65532 /out/data /var/lib/opsconductor
USER 65532:65532
# HTTP (API, UI, /health, /metrics), agent streams (TLS), Raft (mutual TLS).
EXPOSE 3000 3001 3002
VOLUME ["/var/lib/opsconductor"]
# The binary probes itself: the image has no curl. Liveness only; a
# cluster member waiting for its peers is alive but not ready, and
# `opsconductor health --ready` is the check for "should get traffic".
# It dials 127.0.0.1:3000; a server on another --http-addr port needs
# OPSCONDUCTOR_ADDR=http://127.0.0.1:PORT in the container's environment.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --start-interval=2s --retries=3 \
    CMD ["/usr/local/bin/opsconductor", "health"]
ENTRYPOINT ["/usr/local/bin/opsconductor"]
# One server on its own (embedded history store). A cluster passes the
# whole `server` command line instead (see deploy/compose).
CMD ["server", "--data-dir", "/var/lib/opsconductor"]
