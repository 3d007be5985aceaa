# syntax=docker/dockerfile:1
# The vantage-coordinator image: built from the repository root,
#   docker build -f deploy/docker/coordinator.Dockerfile -t vantage-coordinator:0.1.0 .
# Two stages, both Debian 12 (bookworm): the build with the -dev packages, and
# a slim runtime with only the libraries the binary links (deploy/docker/coordinator.packages,
# checked against ldd by deploy/docker/check-runtime-packages.sh). Runs as the
# unprivileged user 10001 and writes nothing to its root filesystem, so it runs
# with readOnlyRootFilesystem (deploy/k8s).

FROM debian:bookworm AS build
ARG DEBIAN_FRONTEND=noninteractive
COPY deploy/docker/build.packages /tmp/build.packages
RUN apt-get update \
 && sed 's/#.*//' /tmp/build.packages | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Release: the runtime image carries no debug info (strip below).
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DVANTAGE_WERROR=ON \
 && cmake --build /build -j"$(nproc)" --target vantage-coordinator \
 && strip --strip-unneeded /build/coordinator/vantage-coordinator

FROM debian:bookworm-slim AS runtime
ARG DEBIAN_FRONTEND=noninteractive
COPY deploy/docker/coordinator.packages /tmp/runtime.packages
RUN apt-get update \
 && sed 's/#.*//' /tmp/runtime.packages | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime.packages \
 && groupadd --system --gid 10001 vantage \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin vantage
COPY --from=build /build/coordinator/vantage-coordinator /usr/local/bin/vantage-coordinator
USER 10001:10001
EXPOSE 7000 9464
ENTRYPOINT ["/usr/local/bin/vantage-coordinator"]
