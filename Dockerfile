# The atlas binary alone, for the shards of a distributed run (Kubernetes
# Indexed Job) and anything else that runs `atlas` in a container.
#   docker build -t atlas:dev .
#   docker run --rm atlas:dev load http://host.docker.internal:8080/ --rate 100 --duration 10s
# No container engine runs on the machine Atlas is developed on: this file is
# linted in CI (hadolint), not built there.

# --- build: the release binary, with the toolchain CI tests with (rustc 1.95)
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p atlas-cli \
    && strip target/release/atlas \
    && cp target/release/atlas /atlas

# --- run: no shell, no package manager, a non-root user (65532)
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /atlas /usr/local/bin/atlas
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/atlas"]
CMD ["--help"]
