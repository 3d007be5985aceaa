# syntax=docker/dockerfile:1
# The vantage-probe image: built from the repository root,
#   docker build -f deploy/docker/probe.Dockerfile -t vantage-probe:0.1.0 .
# Two stages, both Debian 12 (bookworm): the build with the -dev packages, and
# a slim runtime with only the libraries the binary links (deploy/docker/probe.packages,
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
 && cmake --build /build -j"$(nproc)" --target vantage-probe \
 && strip --strip-unneeded /build/probe/vantage-probe

FROM debian:bookworm-slim AS runtime
ARG DEBIAN_FRONTEND=noninteractive
COPY deploy/docker/probe.packages /tmp/runtime.packages
RUN apt-get update \
 && sed 's/#.*//' /tmp/runtime.packages | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime.packages \
 && groupadd --system --gid 10001 vantage \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin vantage
COPY --from=build /build/probe/vantage-probe /usr/local/bin/vantage-probe
RUN install -d -o 10001 -g 10001 -m 0750 /var/lib/vantage/spool
VOLUME /var/lib/vantage/spool
USER 10001:10001
EXPOSE 9465
ENTRYPOINT ["/usr/local/bin/vantage-probe"]
