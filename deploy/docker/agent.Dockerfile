# syntax=docker/dockerfile:1
#
# The OpsConductor agent. Build from the repository root:
#
#   docker build -f deploy/docker/agent.Dockerfile \
#       --build-arg VERSION=$(git describe --tags --always --dirty) \
#       --build-arg COMMIT=$(git rev-parse HEAD) --build-arg DATE=$(TZ=UTC git show -s --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ HEAD) \
#       -t opsconductor/agent .
#
# Run it with a join token; it enrols on its first start and keeps its
# identity in the volume (deploy/docker/agent-entrypoint.sh lists the
# variables):
#
#   docker run -d -v agent:/var/lib/opsconductor-agent \
#       -e OPSCONDUCTOR_AGENT_CONTROLLER=ops1:3001,ops2:3001,ops3:3001 \
#       -e OPSCONDUCTOR_JOIN_TOKEN=ocj_… -e OPSCONDUCTOR_JOIN_CA_PIN=sha256:… opsconductor/agent
#
# Why Debian and root, unlike the controller image: the agent exists to
# run operators' steps, and its built-in shell and script steps run
# /bin/sh, the package step apt-get. A distroless agent could run none of
# them. It runs as root for the reason the systemd unit gives: the steps it
# is for (packages, files under /etc) need it; the container is what
# confines it.

ARG GO_VERSION=1.26.8

# Built as `make build` builds it: static, without gRPC's debug pages,
# with the version stamped in. The agent does not embed the UI.
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
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
        -o /out/opsconductor-agent ./cmd/opsconductor-agent

FROM debian:bookworm-slim AS agent
ARG VERSION=dev
ARG COMMIT=
ARG DATE=
LABEL org.opencontainers.image.title="OpsConductor agent" \
      org.opencontainers.image.source="https://github.com/opsconductor/opsconductor" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.created="${DATE}"
# tini is PID 1: steps leave orphaned grandchildren behind (daemons,
# background jobs), and PID 1 must reap them or they stay zombies. CA
# certificates are for the http step and plugin downloads over TLS.
RUN apt-get update && \
    apt-get install -y --no-install-recommends ca-certificates tini && \
    rm -rf /var/lib/apt/lists/* && \
    install -d -m 0700 /var/lib/opsconductor-agent
COPY --from=build /out/opsconductor-agent /usr/local/bin/opsconductor-agent
COPY --chmod=0755 deploy/docker/agent-entrypoint.sh /usr/local/bin/opsconductor-agent-entrypoint
USER 0:0
VOLUME ["/var/lib/opsconductor-agent"]
# Healthy while the agent's stream to a controller is up, as the agent
# records it in its data directory.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --start-interval=2s --retries=3 \
    CMD ["/usr/local/bin/opsconductor-agent", "health", "--data-dir", "/var/lib/opsconductor-agent"]
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/opsconductor-agent-entrypoint"]
