# dt: the digital-twin batch analyzer, as the image the CronJob runs.
#
#   make image                       (tools/image build: podman, see docs/deploy.md)
#   make push REGISTRY=registry.digitalocean.com/NAME
#
# Two stages: "build" compiles the four programs with the -dev packages and
# runs the lib's unit tests (a failing test fails the build); the runtime stage
# has only the shared libraries, GNU parallel, bash, tini and CA
# certificates, runs as a numeric non-root user and writes only to /tmp, so
# it works with a read-only root filesystem.

FROM debian:bookworm-slim AS build

# The -dev packages to compile; bats, curl, jq and python3 to run the lib's unit
# tests (t/0*-lib-*.bats drive lib/ through t/unit's programs and a small
# HTTP fixture server; they need no database).
RUN apt-get update \
	&& apt-get install -y --no-install-recommends \
		gcc libc6-dev make pkg-config \
		libcurl4-openssl-dev libjansson-dev libssl-dev \
		bats bats-assert bats-support bats-file curl jq python3 \
	&& rm -rf /var/lib/apt/lists/*

WORKDIR /src
# .dockerignore admits only the sources and the unit tests.
COPY . .
# A failing unit test fails the build.  The rest of the suite needs
# PostgreSQL and the service stand-ins and runs outside the image build.
RUN make -j"$(nproc)" all \
	&& t/run --build build t/0*-lib-*.bats \
	&& make install DESTDIR=/out PREFIX=/usr/local


FROM debian:bookworm-slim

# tini is PID 1: it forwards SIGTERM to dt-entrypoint (which drains and
# reports) and reaps any orphan, which a shell as PID 1 does not promise.
# util-linux (essential, named for its setpriv): dt-fanout gives parallel
# a parent-death signal with it.
RUN apt-get update \
	&& apt-get install -y --no-install-recommends \
		bash ca-certificates libcurl4 libjansson4 parallel tini util-linux \
	&& rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /var/log/* \
	&& groupadd --gid 10001 dt \
	&& useradd --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
		--shell /usr/sbin/nologin dt

COPY --from=build /out/usr/local/ /usr/local/

# Defaults of the seed configuration; the CronJob sets them explicitly too.
# HOME and TMPDIR point at /tmp, the only writable place (GNU parallel
# keeps its state under $HOME).
ENV HOME=/tmp \
	TMPDIR=/tmp \
	LC_ALL=C.UTF-8 \
	BATCH_SIZE=100 \
	MAX_WORKERS=5 \
	TIMEOUT_SECONDS=300 \
	PERPLEXITY_BASE_URL=https://api.perplexity.ai \
	TELEGRAM_API_URL=https://api.telegram.org

# Last, so that a new revision or date does not invalidate the layers above.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown

LABEL org.opencontainers.image.title="dt" \
	org.opencontainers.image.description="Digital-twin batch analyzer: Supabase rows analyzed by Perplexity, reported to Telegram" \
	org.opencontainers.image.version="${VERSION}" \
	org.opencontainers.image.revision="${REVISION}" \
	org.opencontainers.image.created="${CREATED}" \
	org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"

USER 10001:10001
WORKDIR /tmp
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/dt-entrypoint"]
