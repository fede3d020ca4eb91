#!/usr/bin/env bats
# The Dockerfile and .dockerignore (dockerfilelint and dt's own rules, each
# shown to fail on a broken copy), and tools/image's command line.

load test_helper/common

setup_file() {
	"$BATS_TEST_DIRNAME/../tools/k8s-validate/install" >&2
}

setup() {
	dt_common_setup
	if [ "${DT_SANITIZED:-0}" = 1 ]; then
		skip "no C program runs here; the plain run covers it"
	fi
	cd "$BATS_TEST_TMPDIR"
	cp "$DT_ROOT/Dockerfile" "$DT_ROOT/.dockerignore" .
}

v() {
	node "$DT_ROOT/tools/k8s-validate/validate.js" "$@"
}

# edit FILE SED-SCRIPT: edits FILE, failing when nothing changed.
edit() {
	cp "$1" "$1.orig"
	sed -i "$2" "$1"
	! cmp -s "$1" "$1.orig" || fail "edit $1: '$2' changed nothing"
	rm "$1.orig"
}

# line PATTERN: the line number of the first line of Dockerfile matching PATTERN.
line() {
	grep -n -m1 -- "$1" Dockerfile | cut -d: -f1
}

@test "dockerfile: the Dockerfile and .dockerignore pass every check" {
	run -0 --separate-stderr v dockerfile Dockerfile
	assert_equal "$stderr" "k8s-validate: Dockerfile and .dockerignore valid"
}

@test "dockerfile: a base with the latest tag is refused" {
	edit Dockerfile '0,/^FROM debian:bookworm-slim AS build/s//FROM debian:latest AS build/'
	run -1 --separate-stderr v dockerfile Dockerfile
	assert_equal "${stderr_lines[0]}" "k8s-validate: Dockerfile:$(line '^FROM'): dockerfilelint: Base Image Latest Tag (latest_tag)"
	assert_equal "${stderr_lines[1]}" "k8s-validate: Dockerfile:$(line '^FROM'): FROM debian:latest: never the latest tag"
	assert_equal "${stderr_lines[2]}" "k8s-validate: 2 problems"
}

@test "dockerfile: a base without a tag is refused" {
	edit Dockerfile '0,/^FROM debian:bookworm-slim AS build/s//FROM debian AS build/'
	run -1 --separate-stderr v dockerfile Dockerfile
	assert_equal "${stderr_lines[1]}" "k8s-validate: Dockerfile:$(line '^FROM'): FROM debian: pin the base with a tag"
}

@test "dockerfile: the runtime user must be numeric" {
	edit Dockerfile 's/^USER 10001:10001/USER dt/'
	run -1 --separate-stderr v dockerfile Dockerfile
	assert_equal "${stderr_lines[0]}" "k8s-validate: Dockerfile:$(line '^USER'): the runtime stage needs USER UID:GID, numeric, both above 10000"
}

@test "dockerfile: the runtime user must be above 10000" {
	edit Dockerfile 's/^USER 10001:10001/USER 1000:1000/'
	run -1 --separate-stderr v dockerfile Dockerfile
	assert_equal "${stderr_lines[0]}" "k8s-validate: Dockerfile:$(line '^USER'): the runtime stage needs USER UID:GID, numeric, both above 10000"
}

@test "dockerfile: the runtime stage must not carry build tools" {
	edit Dockerfile 's/bash ca-certificates libcurl4 /bash ca-certificates libcurl4-openssl-dev /'
	run -1 --separate-stderr v dockerfile Dockerfile
	assert_equal "${stderr_lines[0]}" "k8s-validate: Dockerfile:$(grep -n '^RUN apt-get update' Dockerfile | tail -1 | cut -d: -f1): the runtime stage must not install build tools"
}

@test "dockerfile: apt-get install without --no-install-recommends is refused" {
	edit Dockerfile '0,/--no-install-recommends/s///'
	run -1 --separate-stderr v dockerfile Dockerfile
	assert_equal "${stderr_lines[1]}" "k8s-validate: Dockerfile:$(line '^RUN apt-get update'): apt-get install needs --no-install-recommends"
}

@test "dockerfile: apt lists must not stay in the image" {
	edit Dockerfile 's|rm -rf /var/lib/apt/lists/\* /var/cache|rm -rf /var/cache|'
	run -1 --separate-stderr v dockerfile Dockerfile
	assert_equal "${stderr_lines[1]}" "k8s-validate: Dockerfile:$(grep -n '^RUN apt-get update' Dockerfile | tail -1 | cut -d: -f1): the same RUN must remove /var/lib/apt/lists"
}

@test "dockerfile: the ENTRYPOINT must be exec form" {
	edit Dockerfile 's|^ENTRYPOINT .*|ENTRYPOINT /usr/local/bin/dt-entrypoint|'
	run -1 --separate-stderr v dockerfile Dockerfile
	assert_equal "${stderr_lines[0]}" "k8s-validate: Dockerfile:$(line '^ENTRYPOINT'): ENTRYPOINT must be exec form (JSON array) so signals reach it"
}

@test "dockerfile: the OCI labels are required" {
	edit Dockerfile '/org.opencontainers.image.version/d'
	run -1 --separate-stderr v dockerfile Dockerfile
	assert_equal "${stderr_lines[0]}" "k8s-validate: Dockerfile:$(grep -n '^FROM' Dockerfile | tail -1 | cut -d: -f1): the runtime stage needs LABEL org.opencontainers.image.version"
}

@test "dockerfile: a secret in ENV is refused" {
	edit Dockerfile 's/^\tTIMEOUT_SECONDS=300 \\/\tTIMEOUT_SECONDS=300 \\\n\tPERPLEXITY_API_KEY=pplx-x \\/'
	run -1 --separate-stderr v dockerfile Dockerfile
	assert_equal "${stderr_lines[0]}" "k8s-validate: Dockerfile:$(line '^ENV'): ENV PERPLEXITY_API_KEY: no secret in the image"
}

@test "dockerfile: ADD is refused" {
	edit Dockerfile 's|^COPY \. \.|ADD . .|'
	run -1 --separate-stderr v dockerfile Dockerfile
	assert_equal "${stderr_lines[0]}" "k8s-validate: Dockerfile:$(line '^ADD'): ADD: use COPY (no remote or archive magic)"
}

@test "dockerfile: a single stage is refused" {
	edit Dockerfile '/^FROM debian:bookworm-slim$/d'
	run -1 --separate-stderr v dockerfile Dockerfile
	assert_equal "${stderr_lines[0]}" "k8s-validate: Dockerfile: needs a build stage and a runtime stage"
}

@test "dockerfile: dockerfilelint's own rules run" {
	edit Dockerfile 's|^WORKDIR /tmp|WORKDIR /tmp\nEXPOSE 99999|'
	run -1 --separate-stderr v dockerfile Dockerfile
	assert_equal "${stderr_lines[0]}" "k8s-validate: Dockerfile:$(line '^EXPOSE'): dockerfilelint: Invalid Port Exposed (invalid_port)"
}

@test "dockerignore: the sources must be in the build context" {
	edit .dockerignore '/^!entrypoint.sh/d'
	run -1 --separate-stderr v dockerfile Dockerfile
	assert_equal "${stderr_lines[0]}" "k8s-validate: .dockerignore: entrypoint.sh must be in the build context"
	cp "$DT_ROOT/.dockerignore" .
	edit .dockerignore '/^!lib\//d'
	run -1 --separate-stderr v dockerfile Dockerfile
	assert_equal "${stderr_lines[0]}" "k8s-validate: .dockerignore: lib/exit.h must be in the build context"
}

@test "dockerignore: the repository and build outputs stay out" {
	edit .dockerignore '/^\*$/d'
	run -1 --separate-stderr v dockerfile Dockerfile
	assert_equal "${stderr_lines[0]}" "k8s-validate: .dockerignore: .git/HEAD must be left out of the build context"
	assert_equal "${stderr_lines[1]}" "k8s-validate: .dockerignore: build/bin/dt-fetch must be left out of the build context"
	assert_equal "${stderr_lines[2]}" "k8s-validate: .dockerignore: tools/k8s-validate/node_modules/yaml/package.json must be left out of the build context"
}

@test "dockerignore: a missing .dockerignore is an error" {
	rm .dockerignore
	run -1 --separate-stderr v dockerfile Dockerfile
	assert_equal "${stderr_lines[0]}" "k8s-validate: .dockerignore: cannot read: ENOENT"
}

@test "tools/image: the image is named after the Makefile's VERSION" {
	run -0 "$DT_ROOT/tools/image" name
	assert_output "dt:$(sed -n 's/^VERSION *= *//p' "$DT_ROOT/Makefile")"
	VERSION=1.2.3 DT_IMAGE=x run -0 "$DT_ROOT/tools/image" name
	assert_output "x:1.2.3"
}

@test "tools/image: push without a registry is a usage error" {
	run -64 --separate-stderr "$DT_ROOT/tools/image" push
	assert_equal "$stderr" "tools/image: push needs a registry (make push REGISTRY=registry.digitalocean.com/NAME)"
}

@test "tools/image: a missing engine is reported, not hidden" {
	DT_ENGINE=no-such-engine run -69 --separate-stderr "$DT_ROOT/tools/image" build
	assert_equal "$stderr" "tools/image: no-such-engine not found (tools/deps install brings it)"
}

@test "tools/image: an unknown command prints the usage" {
	run -64 --separate-stderr "$DT_ROOT/tools/image" frobnicate
	assert_equal "${stderr_lines[0]}" "tools/image: build, run and push dt's container image."
}
