# Dockerfile: one image holding every svcmesh executable (registry,
# facade-service, logging-service, messages-service) and the health probe
# svc-probe, and the command-line client svcctl. The compose service
# chooses which one runs:
#   docker run --rm svcmesh registry --help
#
# Stage 1 compiles on Debian bookworm with the -dev packages; stage 2 is
# bookworm-slim with only the runtime libraries, running as a non-root user.
# Hardening flags (stack protector, PIE, full RELRO, FORTIFY_SOURCE) come
# from cmake/Hardening.cmake.

FROM debian:bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      libevent-dev libcurl4-openssl-dev libjansson-dev uuid-dev libsqlite3-dev \
      uthash-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DSVC_TESTS=OFF \
 && cmake --build /build -j"$(nproc)" \
 && strip /build/bin/*

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libevent-2.1-7 libcurl4 libjansson4 libuuid1 libsqlite3-0 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --no-create-home --no-log-init --home-dir /data \
      --shell /usr/sbin/nologin svc \
 && install -d -o svc -g svc -m 0750 /data
COPY --from=build /build/bin/registry /build/bin/facade-service \
     /build/bin/logging-service /build/bin/messages-service /build/bin/svc-probe \
     /build/bin/svcctl \
     /usr/local/bin/
# /data is owned by svc, so a named volume mounted there starts owned by svc
# too (Docker copies the ownership of the image's directory into a new volume).
WORKDIR /data
USER svc
# Bound to every interface: each service then advertises its container
# address (first non-loopback IPv4) unless ADVERTISE_HOST says otherwise.
ENV BIND=0.0.0.0
EXPOSE 8500 5000 5001 5002
# Exec form: the service is PID 1 and receives SIGTERM itself, so
# `docker stop` deregisters it. The health check is set per service in
# docker-compose.yaml (svc-probe reads the service's PORT).
CMD ["registry"]
