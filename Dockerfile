# syntax=docker/dockerfile:1
#
# The wxpush image: the five service binaries (wxpush-token, wxpush-template,
# wxpush-delivery, wxpush-logquery, wxpush-callback) and the `wxpush` CLI in
# /usr/local/bin (the chart's image.binDir), run as uid/gid 65532 (the chart's
# podSecurityContext). See the README's "Container image".
#
#   docker build -t wxpush:0.1.0 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg WXPUSH_GIT_COMMIT="$(git rev-parse --short=12 HEAD)" .
#   podman build -t wxpush:0.1.0 ...   (the same arguments)
#
# scripts/check-image.sh (part of the test command) lints this file with
# hadolint and builds the same image from scratch with the workspace's binaries.

# The workspace's rust-version (Cargo.toml). Bookworm in both stages: the
# binaries link against the builder's glibc, and the runtime's is Debian 12's.
ARG RUST_VERSION=1.88.0

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
# The commit every binary's --version and wxpush_build_info report:
# --build-arg WXPUSH_GIT_COMMIT="$(git rev-parse --short=12 HEAD)".
ARG WXPUSH_GIT_COMMIT=unknown
# No protoc: shared/proto's build.rs compiles the protos with protox. The C in
# the tree (mimalloc, ring) builds with the image's gcc.
COPY . .
# The registry and target/ are BuildKit caches (kept between builds, not in
# the layer), so the binaries are copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked \
      --bin wxpush-token --bin wxpush-template --bin wxpush-delivery \
      --bin wxpush-logquery --bin wxpush-callback --bin wxpush \
 && install -D -m 0755 -t /out \
      target/release/wxpush-token target/release/wxpush-template \
      target/release/wxpush-delivery target/release/wxpush-logquery \
      target/release/wxpush-callback target/release/wxpush

# glibc, libgcc_s, CA certificates, /etc/passwd with nonroot (65532), /tmp;
# no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://example.invalid/wxpush
LABEL org.opencontainers.image.title="wxpush" \
      org.opencontainers.image.description="WeChat message delivery: the token, template, delivery, logquery and callback services and the wxpush CLI" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"

COPY --from=build /out/ /usr/local/bin/

# Numeric, so a runtime can tell it is not root (runAsNonRoot).
USER 65532:65532
# The chart runs /usr/local/bin/wxpush-<component> --config ...; without a
# command the image is the CLI.
ENTRYPOINT ["/usr/local/bin/wxpush"]
CMD ["--help"]
