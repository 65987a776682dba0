# syntax=docker/dockerfile:1
#
# Catalyst in one image. The API node (`catalyst serve`) and the worker
# (`catalyst worker`) are the same binary with a different command; the
# dashboard is embedded in it (web/dist is committed), so there is no
# separate frontend image.
#
#   docker build -t catalyst:latest .
#   docker run --rm -p 127.0.0.1:8001:8001 -p 127.0.0.1:8002:8002 \
#       -v catalyst-data:/data catalyst:latest        # embedded SQLite, tasks run in this container
#
# docker-compose.yml runs MongoDB, NATS, one API node and two workers from it.
#
# The sandbox. Workers (and `serve` without `--workers 0`) run the tests that a
# model wrote. The sandbox isolates each run with Linux namespaces (network,
# pid, mount, ipc, uts), a per-run uid, Landlock, seccomp, rlimits and cgroup
# limits, and every test report lists the isolations this host could not give.
# This image runs as an unprivileged user, so:
#   - Landlock, seccomp and rlimits need no privilege and always apply.
#   - Namespaces need user namespaces for an unprivileged process (or root with
#     CAP_SYS_ADMIN, which this image does not use). Docker's default seccomp
#     profile refuses unshare/clone with CLONE_NEW* without CAP_SYS_ADMIN, its
#     AppArmor profile refuses mount(2) and its masked /proc paths stop a fresh
#     /proc from being mounted; docker-compose.yml therefore grants the workers
#     (only they run generated code) seccomp=unconfined, apparmor=unconfined and
#     systempaths=unconfined, and the host must allow unprivileged user
#     namespaces (kernel.unprivileged_userns_clone=1 on Debian;
#     kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu 23.10+).
#   - Without them the generated tests run with the container's network (they
#     can reach MongoDB, NATS and the internet), see the container's processes
#     and files that the catalyst user can read, and share its uid. Bound the
#     container itself then (docker-compose.prod.yml sets memory, CPU and pids
#     limits) and treat the worker container as hostile.
#   - Per-run cgroup limits need a writable cgroup subtree, which a container
#     normally lacks: runs are then bounded by RLIMIT_AS, and the container's
#     own limits bound them all.

FROM golang:1.26-trixie AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# Static (no cgo: the SQLite driver is pure Go), reproducible paths.
RUN CGO_ENABLED=0 GOTOOLCHAIN=local go build -trimpath \
        -ldflags "-s -w -X github.com/catalyst/catalyst/internal/app.Version=${VERSION}" \
        -o /out/catalyst ./cmd/catalyst

FROM debian:trixie-slim
# The toolchains the tester runs generated tests with (node --test, pytest and
# unittest, go test), git for the deployer, util-linux prlimit/setpriv and
# iproute2 for the sandbox, tini to reap the orphans a test run leaves behind
# (the Go server as PID 1 would not).
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates git iproute2 nodejs python3 python3-pytest tini util-linux \
    && rm -rf /var/lib/apt/lists/*
# Go for generated Go projects: the same toolchain Catalyst was built with.
COPY --from=build /usr/local/go /usr/local/go
ENV PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# A missing tool would only show up as a failed task: fail the build instead.
RUN set -eu; for t in git ip node python3 go prlimit setpriv tini; do command -v "$t"; done; \
    python3 -m pytest --version; go version

RUN groupadd --system --gid 10001 catalyst \
    && useradd --system --uid 10001 --gid catalyst --home-dir /data --shell /usr/sbin/nologin catalyst \
    && mkdir -p /data /etc/catalyst \
    && chown catalyst:catalyst /data
COPY --from=build /out/catalyst /usr/local/bin/catalyst

# config.yaml or backend/.env may be mounted here (read-only to catalyst);
# the data directory is not the working directory, so nothing a task writes
# there is read as configuration.
WORKDIR /etc/catalyst
# In a container loopback is unreachable from outside, so listen on all
# interfaces and decide exposure where the port is published (compose
# publishes on 127.0.0.1).
ENV CATALYST_DATA_DIR=/data \
    CATALYST_BIND=0.0.0.0 \
    BACKEND_PORT=8001 \
    CATALYST_PREVIEW_PORT=8002
VOLUME ["/data"]
# 8001: API, WebSocket and dashboard. 8002: previews of generated apps, on
# their own origin.
EXPOSE 8001 8002

USER 10001:10001
# Workers have no HTTP API: compose turns this check off for them.
HEALTHCHECK --interval=30s --timeout=6s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/catalyst", "health", "--timeout", "5s"]
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/catalyst"]
CMD ["serve"]
