# syntax=docker/dockerfile:1
# cdcd container image: a static binary on distroless, running as non-root.
#   docker build --build-arg VERSION=$(git describe --always --dirty) \
#     --build-arg REVISION=$(git rev-parse HEAD) -t cdcd .
#   docker run -v $PWD/config.toml:/etc/cdcd/config.toml:ro -v cdcd-state:/var/lib/cdcd cdcd
# Mount the config at /etc/cdcd/config.toml and give state_dir a volume
# (/var/lib/cdcd is created for it, owned by the runtime user). README.md,
# "Run in a container", shows the listeners, credentials and health check.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so code changes do not refetch them.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/cdcd ./cmd/cdcd \
 && mkdir -p /out/state

# distroless/static: CA certificates and tzdata, no shell; nonroot is uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="cdcd" \
      org.opencontainers.image.description="Streams PostgreSQL logical replication into Amazon Kinesis Data Streams as Aurora DSQL CDC records" \
      org.opencontainers.image.source="https://github.com/cdcd-dev/cdcd" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/cdcd /cdcd
COPY --from=build --chown=65532:65532 /out/state /var/lib/cdcd
USER 65532:65532
VOLUME ["/var/lib/cdcd"]
# The plain-HTTP listener of /healthz: listen on its default address, or
# metrics_listen on 0.0.0.0:9180 when the control plane has TLS elsewhere.
EXPOSE 9180
# Exec form: the image has no shell. --start-interval needs Docker 25.
HEALTHCHECK --interval=30s --timeout=15s --start-period=60s --start-interval=2s --retries=3 \
    CMD ["/cdcd", "health", "--addr", "127.0.0.1:9180"]
ENTRYPOINT ["/cdcd"]
CMD ["run", "--config", "/etc/cdcd/config.toml"]
