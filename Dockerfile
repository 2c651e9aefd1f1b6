# syntax=docker/dockerfile:1
# cdcd container image: a static binary on distroless, running as non-root.
#   docker build --build-arg VERSION=$(git describe --always --dirty) -t cdcd .
#   docker run -v $PWD/config.toml:/etc/cdcd/config.toml:ro cdcd
# Mount the config at /etc/cdcd/config.toml and give state_dir a volume
# (/var/lib/cdcd is created for it, owned by the runtime user).

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
COPY --from=build /out/cdcd /cdcd
COPY --from=build --chown=65532:65532 /out/state /var/lib/cdcd
USER 65532:65532
VOLUME ["/var/lib/cdcd"]
ENTRYPOINT ["/cdcd"]
CMD ["run", "--config", "/etc/cdcd/config.toml"]
