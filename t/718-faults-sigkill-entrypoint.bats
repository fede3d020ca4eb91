#!/usr/bin/env bats
# SIGKILL of dt-entrypoint itself, with the API slow and every worker in
# a call: no process of the run outlives it (docs/entrypoint.md), so no
# row is stored and no report sent by orphans; the rows stay leased and
# come back when their leases expire.

bats_require_minimum_version 1.5.0
load test_helper/common
load test_helper/stack
load test_helper/faults

setup_file() {
	stack_up
}

teardown_file() {
	stack_down
}

setup() {
	faults_setup
	export BATCH_SIZE=5 MAX_WORKERS=4 DT_LEASE_SECONDS=60
	rows 40
	# Each call takes 3 s: at the kill every worker is in one, and an
	# orphan would store its result 3 s later.
	standin perplexity script '{"latency_ms": 3000}'
	MARK=DT_TEST_MARK=$BATS_TEST_TMPDIR
	# For the last test, which looks again for every run of the file.
	echo "$MARK" >>"$BATS_FILE_TMPDIR/runs"
}

# of MARK|SESSION...: the processes (pid:name) whose environment holds one
# of the marks (which every process of a run inherits) or which are in
# one of the sessions (a dt-entrypoint's pid, under setsid): a process
# whose environment cannot be read is still seen.
of() {
	local p out=
	for p in $(of_pids "$@" 2>/dev/null | sort -un); do
		out="$out $p:$(cat "/proc/$p/comm" 2>/dev/null)"
	done
	echo "${out# }"
}

of_pids() {
	local f marks=() sids=" "
	for f; do
		case $f in
		DT_TEST_MARK=*) marks+=(-e "$f") ;;
		*) sids="$sids$f " ;;
		esac
	done
	# One grep over every environment (-z: NUL-separated entries).
	if [ ${#marks[@]} -gt 0 ]; then
		grep -lzxF "${marks[@]}" /proc/[0-9]*/environ | cut -d/ -f3
	fi
	[ "$sids" != " " ] || return 0
	# The session: the 4th field after the command name, which may hold
	# spaces and parentheses; the 1st is the state (Z: ended, not yet
	# reaped by init).  (No shell loop: bats' DEBUG trap makes one over
	# every process take seconds.)
	cat /proc/[0-9]*/stat | awk -v sids="$sids" '{ s = $0
		sub(/.*\) /, "", s); split(s, f, " ")
		if (f[1] != "Z" && index(sids, " " f[4] " ")) print $1 }'
}

# left: the processes of this test's run.
left() {
	of "$MARK" ${pid:+"$pid"}
}

# start: dt-entrypoint in a session of its own; sets pid.  Returns once
# every worker is in a call (4 leased batches' worth of rows and 4
# dt-analyze processes).
start() {
	DT_RUN_ID=killed env "$MARK" setsid dt-entrypoint >"$BATS_TEST_TMPDIR/out" \
		2>"$BATS_TEST_TMPDIR/err" 3>&- &
	pid=$!
	echo "$pid" >>"$BATS_FILE_TMPDIR/runs"
	for _ in $(seq 1 500); do
		[ "$(count "status = 'leased'")" -ge 20 ] &&
			[ "$(left | tr ' ' '\n' | grep -c ':dt-analyze$')" -ge 4 ] && break
		kill -0 "$pid" 2>/dev/null || fail "the run ended early: $(cat "$BATS_TEST_TMPDIR/err")"
		sleep 0.02
	done
	# Half a second into the calls.
	sleep 0.5
	kill -0 "$pid" 2>/dev/null || fail "the run ended before the kill"
	[ "$(count "status = 'done'")" -eq 0 ] || fail "rows were stored before the kill"
}

# none_left: within 5 s no process of the run is left; then, after the
# calls in flight would have finished (3 s), nothing was stored, reported
# or written to the ledger, and every claimed row is still leased.
none_left() {
	local l
	for _ in $(seq 1 50); do
		l=$(left)
		[ -z "$l" ] && break
		sleep 0.1
	done
	[ -z "$l" ] || fail "left running 5 s after the kill: $l
$(ps -o pid,ppid,pgid,args -p "$(echo "$l" | tr ' ' '\n' | cut -d: -f1 | paste -sd,)" 2>&1)"
	sleep 3.5
	assert_equal "$(left)" ""
	assert_equal "$(count "status = 'done'")" 0
	assert_equal "$(count "status <> 'leased'")" 0
	[ "$(count "status = 'leased'")" -ge 20 ] || fail "leased: $(count "status = 'leased'")"
	assert_equal "$(standin telegram requests | wc -l)" 0
	assert_equal "$(sql 'select count(*) from public.dt_runs')" 0
	# Which ends the stages first, their own watch ("the process that
	# started this run ... has ended") or the guard's SIGKILL of the
	# pipeline's group, is a race; the DT_WATCH_PID and guard tests
	# below check each on its own.
}

@test "entrypoint: SIGKILL of its process group leaves no process of the run, and nothing is stored or reported" {
	start
	kill -KILL -- -"$pid"
	wait "$pid" 2>/dev/null || true
	none_left
}

@test "entrypoint: SIGKILL of dt-entrypoint alone leaves no process of the run, and nothing is stored or reported" {
	start
	kill -KILL "$pid"
	wait "$pid" 2>/dev/null || true
	none_left
}

@test "entrypoint: after a SIGKILL the rows come back when their leases expire, and the next run stores them all" {
	export DT_LEASE_SECONDS=2
	start
	kill -KILL "$pid"
	wait "$pid" 2>/dev/null || true
	none_left
	standin perplexity script '{"latency_ms": 0}'
	DT_RUN_ID=after run -0 --separate-stderr timeout 120 dt-entrypoint
	# Each row claimed twice; the dead lease counts as an attempt.
	assert_equal "$(state)" "done	40	80	80"
	assert_equal "$(sql "select count(*) from public.dt_runs where run_id = 'after'")" 1
}

@test "dt-fanout: SIGKILL of the fan-out alone ends its workers and GNU parallel" {
	local fifo=$BATS_TEST_TMPDIR/in
	mkfifo "$fifo"
	# The input stays open, as a live upstream stage's would.
	(
		for i in $(seq 1 40); do printf '{"id":%d,"text":"record %d"}\n' "$i" "$i"; done
		# Past the first blocks, which go out one at a time.
		head -c 8192 /dev/zero | tr '\0' '\n'
		# The writer is then this sleep itself, killed at the end.
		exec sleep 60
	) >"$fifo" 3>&- &
	writer=$!
	env "$MARK" dt-fanout <"$fifo" >/dev/null 2>"$BATS_TEST_TMPDIR/err" 3>&- &
	fanout=$!
	for _ in $(seq 1 500); do
		[ "$(left | tr ' ' '\n' | grep -c ':dt-analyze$')" -ge 4 ] && break
		sleep 0.02
	done
	sleep 0.5
	kill -KILL "$fanout" || fail "the fan-out had ended: $(cat "$BATS_TEST_TMPDIR/err")"
	wait "$fanout" 2>/dev/null || true
	for _ in $(seq 1 50); do
		[ -z "$(left)" ] && break
		sleep 0.1
	done
	l=$(left)
	kill "$writer" 2>/dev/null || true
	[ -z "$l" ] || fail "left running 5 s after the kill: $l"
}

@test "DT_WATCH_PID: a stage started for a process that is not its ancestor (it ended) exits at once; a bad value is 78" {
	sleep 30 3>&- &
	other=$!
	SECONDS=0
	DT_WATCH_PID=$other run -75 --separate-stderr dt-store --dry-run </dev/null
	assert_equal "$stderr" "dt-store: error: the process that started this run (DT_WATCH_PID $other) has ended; stopping at once"
	assert_output ""
	kill "$other"
	# Its parent (this shell's run) is watched: it goes on.
	DT_WATCH_PID=$$ run -0 --separate-stderr dt-store --dry-run </dev/null
	DT_WATCH_PID=abc run -78 --separate-stderr dt-report --check-config
	[[ $stderr == *"DT_WATCH_PID"* ]] || fail "$stderr"
}

@test "DT_WATCH_PID: a stage that cannot start its watch stops (75) rather than run unwatched" {
	unwrapped || skip "valgrind starts threads its own way"
	[ "$(cat /proc/sys/vm/overcommit_memory)" != 1 ] ||
		skip "with overcommit always, a 1 TiB thread stack can be had"
	# A stack limit of 1 TiB: the watch thread's default stack is that
	# size, which the kernel refuses to commit.
	DT_WATCH_PID=$$ run -75 --separate-stderr \
		prlimit --stack=1099511627776 dt-store --dry-run </dev/null
	assert_equal "$stderr" "dt-store: error: DT_WATCH_PID: cannot start the watch (Resource temporarily unavailable); stopping rather than run unwatched"
	assert_output ""
}

@test "entrypoint: a pipeline process that watches nothing does not outlive dt-entrypoint either" {
	# A dt-report that ignores DT_WATCH_PID, as a stage whose watch did
	# not act would: it waits on past the end of its input.
	mkdir -p "$BATS_TEST_TMPDIR/bin"
	# shellcheck disable=SC2016 # the script's own text
	printf '%s\n' '#!/bin/sh' '[ "${1:-}" = --check-config ] && exit 0' \
		'cat >/dev/null' 'exec sleep 600' >"$BATS_TEST_TMPDIR/bin/dt-report"
	chmod +x "$BATS_TEST_TMPDIR/bin/dt-report"
	PATH=$BATS_TEST_TMPDIR/bin:$PATH start
	[[ " $(left) " == *:dt-report\ * ]] || fail "no dt-report: $(left)"
	kill -KILL "$pid"
	wait "$pid" 2>/dev/null || true
	none_left
}

@test "entrypoint: no process of any killed run of this file shows up later" {
	local l
	for _ in $(seq 1 50); do
		# shellcheck disable=SC2046 # a mark or a session a line
		l=$(of $(cat "$BATS_FILE_TMPDIR/runs"))
		[ -z "$l" ] && break
		sleep 0.1
	done
	[ -z "$l" ] || fail "left running: $l"
}
