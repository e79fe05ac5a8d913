# syntax=docker/dockerfile:1
# Verdict as a container: a static binary on distroless, as user nonroot
# (65532), with a read-only root file system. Durable state (the embedded
# store and its pepper) lives in the volume at /var/lib/verdict; the
# configuration is mounted at /etc/verdict. See docs/deploy.md.
#
#   docker build -t verdict:dev --build-arg VERSION=$(git describe --always) .
#   docker run --read-only --cap-drop ALL -p 8700:8700 -v verdict-data:/var/lib/verdict \
#     -v $PWD/deploy/kubernetes/base/verdict.yaml:/etc/verdict/verdict.yaml:ro verdict:dev

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/verdict ./cmd/verdict \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/verdict /usr/local/bin/verdict
# The data directory, owned by nonroot so that a fresh volume mounted here
# is writable (0700 is enforced by verdict at start).
COPY --from=build --chown=65532:65532 /out/data /var/lib/verdict
USER 65532:65532
ENV VERDICT_DATA_DIR=/var/lib/verdict
EXPOSE 8700 8701 9191
VOLUME ["/var/lib/verdict"]
ENTRYPOINT ["/usr/local/bin/verdict"]
CMD ["serve", "--config", "/etc/verdict/verdict.yaml"]
