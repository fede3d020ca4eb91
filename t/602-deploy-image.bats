#!/usr/bin/env bats
# The container image, built for real (tools/image build) and run the way
# the CronJob runs it: read-only root filesystem, a tmpfs at /tmp, its own
# non-root user, no capabilities, against the local stack.
#
# It takes a few minutes (the base once per machine, then the build and the
# runs); DT_TEST_IMAGE=0 skips it.  Without root, podman, runc or debootstrap
# every case says why it skips.

# Read before test_helper/common clears inherited DT_* variables.
test_image=${DT_TEST_IMAGE:-1}
image_base=${DT_IMAGE_BASE:-debootstrap}

load test_helper/common
load test_helper/stack

# Why this file cannot run here, or nothing.
image_skip_reason() {
	local f
	if [ "$test_image" = 0 ]; then
		echo "DT_TEST_IMAGE=0: the image is not built"
		return
	fi
	if [ "${DT_SANITIZED:-0}" = 1 ]; then
		echo "the image builds its own unsanitized programs; the plain run covers it"
		return
	fi
	for f in podman runc debootstrap; do
		command -v "$f" >/dev/null || {
			echo "$f not installed (tools/deps install)"
			return
		}
	done
	[ "$(id -u)" -eq 0 ] || {
		echo "needs root (debootstrap and rootful podman)"
		return
	}
	for f in fetch/dt-fetch.c analyze/dt-analyze.c analyze/dt-fanout \
		store/dt-store.c report/dt-report.c entrypoint.sh; do
		[ -e "$DT_ROOT/$f" ] || {
			echo "the image needs $f, which does not exist yet"
			return
		}
	done
}

setup_file() {
	IMAGE_SKIP=$(image_skip_reason)
	export IMAGE_SKIP
	[ -z "$IMAGE_SKIP" ] || return 0
	local t0=$SECONDS
	IMAGE_REVISION=$(git -C "$DT_ROOT" rev-parse --short HEAD)
	export IMAGE_REVISION
	DT_IMAGE_BASE=$image_base "$DT_ROOT/tools/image" build \
		>"$BATS_FILE_TMPDIR/build.log" 2>&1 || {
		tail -40 "$BATS_FILE_TMPDIR/build.log" >&2
		return 1
	}
	echo "# image built in $((SECONDS - t0)) s" >&3
	stack_up
}

teardown_file() {
	[ -n "${IMAGE_SKIP:-}" ] || stack_down
}

setup() {
	dt_common_setup
	[ -z "$IMAGE_SKIP" ] || skip "$IMAGE_SKIP"
	IMAGE=$("$DT_ROOT/tools/image" name)
}

# run_image [ENGINE-OPTS...] [-- ARGS]: runs the image as the CronJob does.
run_image() {
	"$DT_ROOT/tools/image" run "$@"
}

inspect() {
	podman --runtime runc image inspect --format "$1" "$IMAGE"
}

@test "image: runs as 10001:10001, carries the OCI labels, and its size is shown" {
	run -0 inspect '{{.Config.User}}'
	assert_output "10001:10001"
	run -0 inspect '{{index .Config.Labels "org.opencontainers.image.version"}}'
	assert_output "$(sed -n 's/^VERSION *= *//p' "$DT_ROOT/Makefile")"
	run -0 inspect '{{index .Config.Labels "org.opencontainers.image.revision"}}'
	assert_output "$IMAGE_REVISION"
	run -0 run_image --entrypoint /usr/bin/id -- -u
	assert_output 10001
	local size
	size=$("$DT_ROOT/tools/image" size)
	echo "# image $IMAGE: $size bytes ($((size / 1048576)) MiB)" >&3
	[ "$size" -lt $((250 * 1048576)) ] || fail "image is $size bytes"
}

@test "image: the root filesystem is read-only and only /tmp is writable" {
	run -1 --separate-stderr run_image --entrypoint /bin/sh -- -c 'touch /usr/local/x'
	assert_equal "$stderr" "touch: cannot touch '/usr/local/x': Read-only file system"
	run -0 run_image --entrypoint /bin/sh -- -c 'touch /tmp/x && echo ok'
	assert_output ok
}

@test "image: the programs, setpriv, the prompt and the schema are installed" {
	run -0 run_image --entrypoint /bin/bash -- -c \
		'for p in dt-fetch dt-analyze dt-store dt-report dt-entrypoint dt-fanout parallel setpriv tini; do command -v $p || echo "no $p"; done; ls /usr/local/share/dt'
	assert_output "/usr/local/bin/dt-fetch
/usr/local/bin/dt-analyze
/usr/local/bin/dt-store
/usr/local/bin/dt-report
/usr/local/bin/dt-entrypoint
/usr/local/bin/dt-fanout
/usr/bin/parallel
/usr/bin/setpriv
/usr/bin/tini
exit.def
log.sh
prompt.txt
schema.json"
}

@test "image: a missing secret fails at once with exit 78, naming it" {
	run -78 --separate-stderr run_image -e SUPABASE_URL=http://127.0.0.1:9
	assert_equal "${stderr_lines[0]}" "dt-entrypoint: error: SUPABASE_KEY is not set (nor SUPABASE_KEY_FILE)"
}

@test "image: a full run against the local stack, read-only, as non-root" {
	stack_reset
	messages 20 >/dev/null
	standin telegram reset
	# Secrets are passed by name (-e NAME), so they never appear in
	# podman's own command line.
	run -0 --separate-stderr run_image \
		-e SUPABASE_URL -e SUPABASE_KEY -e PERPLEXITY_BASE_URL \
		-e PERPLEXITY_API_KEY -e TELEGRAM_API_URL -e TELEGRAM_BOT_TOKEN \
		-e TELEGRAM_CHAT_ID -e DT_RUN_ID=image-test -e BATCH_SIZE=10 \
		-e MAX_WORKERS=2
	printf '%s\n' "$stderr" >"$BATS_TEST_TMPDIR/stderr"
	assert_no_secret "$SUPABASE_KEY" "$BATS_TEST_TMPDIR/stderr"
	assert_no_secret "$PERPLEXITY_API_KEY" "$BATS_TEST_TMPDIR/stderr"
	assert_no_secret "$TELEGRAM_BOT_TOKEN" "$BATS_TEST_TMPDIR/stderr"
	run -0 sql "select status, count(*) from public.dt_results group by status"
	assert_output "$(printf 'done\t20')"
	run -0 sql "select exit_code from public.dt_runs where run_id = 'image-test'"
	assert_output 0
	standin telegram requests >"$BATS_TEST_TMPDIR/tg"
	run -0 jq -s '[.[] | select(.path | endswith("/sendMessage"))] | length' "$BATS_TEST_TMPDIR/tg"
	assert_output 1
}

@test "image: SIGTERM (podman stop) reaches dt-entrypoint through tini: drained, reported" {
	stack_reset
	messages 40 >/dev/null
	standin telegram reset
	# Every analysis takes 2 s, so the run is mid-flight when it is stopped.
	standin perplexity script '{"latency_ms":2000}'
	local name=dt-sigterm-$$
	"$DT_ROOT/tools/image" run --keep -d --name "$name" \
		-e SUPABASE_URL -e SUPABASE_KEY -e PERPLEXITY_BASE_URL \
		-e PERPLEXITY_API_KEY -e TELEGRAM_API_URL -e TELEGRAM_BOT_TOKEN \
		-e TELEGRAM_CHAT_ID -e DT_RUN_ID=image-sigterm -e BATCH_SIZE=5 \
		-e MAX_WORKERS=2 -e DT_DRAIN_SECONDS=10 >/dev/null
	local i
	for i in $(seq 1 100); do
		[ "$(sql "select count(*) from public.dt_results where status = 'leased'")" -gt 0 ] && break
		sleep 0.1
	done
	sleep 1
	run -0 podman --runtime runc inspect --format '{{.State.Running}}' "$name"
	if [ "$output" != true ]; then
		podman --runtime runc logs "$name" >&2 || true
		podman --runtime runc rm "$name" >/dev/null
		fail "the run ended before it could be stopped"
	fi
	# SIGTERM, then SIGKILL after 60 s as Kubernetes' grace period would.
	podman --runtime runc stop -t 60 "$name" >/dev/null
	run -0 podman --runtime runc wait "$name"
	local status=$output
	podman --runtime runc logs "$name" >"$BATS_TEST_TMPDIR/log" 2>&1 || true
	podman --runtime runc rm "$name" >/dev/null
	# Not 137 (SIGKILL) nor 143 (an unhandled TERM): the entrypoint drained.
	[ "$status" != 137 ] && [ "$status" != 143 ] ||
		fail "exit $status: $(tail -5 "$BATS_TEST_TMPDIR/log")"
	standin telegram requests >"$BATS_TEST_TMPDIR/tg"
	run -0 jq -s '[.[] | select(.path | endswith("/sendMessage"))] | length' "$BATS_TEST_TMPDIR/tg"
	assert_output 1
	run -0 sql "select count(*) from public.dt_results where status = 'done'"
	[ "$output" -gt 0 ] && [ "$output" -lt 40 ] || fail "$output rows done"
}

@test "image: make push tags the image with the version and pushes it (a local registry)" {
	command -v docker-registry >/dev/null ||
		skip "docker-registry not installed: no local registry to push to (tools/deps install)"
	local port dir=$BATS_TEST_TMPDIR/registry version
	port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	mkdir -p "$dir/data"
	cat >"$dir/config.yml" <<-EOC
		version: 0.1
		log:
		  level: error
		storage:
		  filesystem:
		    rootdirectory: $dir/data
		http:
		  addr: 127.0.0.1:$port
	EOC
	docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
	local pid=$! i
	for i in $(seq 1 50); do
		curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
		sleep 0.1
	done
	version=$(sed -n 's/^VERSION *= *//p' "$DT_ROOT/Makefile")
	DT_PUSH_TLS_VERIFY=false run -0 --separate-stderr \
		"$DT_ROOT/tools/image" push "127.0.0.1:$port"
	assert_equal "${stderr_lines[${#stderr_lines[@]}-1]}" "tools/image: pushed 127.0.0.1:$port/dt:$version"
	run -0 curl -fsS "http://127.0.0.1:$port/v2/dt/tags/list"
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	assert_output "{\"name\":\"dt\",\"tags\":[\"$version\"]}"
	podman --runtime runc rmi "127.0.0.1:$port/dt:$version" >/dev/null
}
