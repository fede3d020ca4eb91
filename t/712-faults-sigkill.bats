#!/usr/bin/env bats
# SIGKILL of the whole pipeline (dt-entrypoint and everything it
# started) at 20 points: 5 while claiming, 5 while analyzing, 5 while
# storing, 5 while reporting.  After each, one run to completion must
# leave every source row analyzed and stored exactly once in the results
# table, and the rows analyzed twice must be at most those in flight
# (leased, not stored) when the pipeline died.
#
# The points are states of the run, not times, so they hold on a slow
# machine or under sanitizers: the stand-ins are slowed down a little
# (Supabase 30 ms a request, Perplexity 40 ms a call, Telegram 400 ms)
# and the test kills the pipeline as soon as the state is reached.

load test_helper/common
load test_helper/stack
load test_helper/faults

N=30

setup_file() {
	stack_up
}

teardown_file() {
	stack_down
}

setup() {
	faults_setup
	export BATCH_SIZE=5 DT_STORE_BATCH=5 DT_LEASE_SECONDS=1
}

# The state probes the points wait for.
leased_or_done() { count "status in ('leased', 'done')"; }
calls() { standin perplexity requests | wc -l; }
done_rows() { count "status = 'done'"; }
# dt-report asks for the backlog first, then sends to Telegram, then
# writes the ledger row.
backlog_asked() { standin supabase requests | grep -c dt_backlog || true; }

# kill_at PROBE N DELAY: starts a run, waits until PROBE prints at least
# N, sleeps DELAY seconds, then SIGKILLs the run's whole session.
# Sets inflight (rows leased) and stored (rows done) at that moment.
kill_at() {
	local probe=$1 want=$2 delay=$3 pid i
	rows "$N"
	standin supabase script '{"delay_ms": 30}'
	standin perplexity script '{"latency_ms": 40}'
	standin telegram script '{"delay_ms": 400}'
	DT_RUN_ID=killed setsid dt-entrypoint >"$BATS_TEST_TMPDIR/killed.out" \
		2>"$BATS_TEST_TMPDIR/killed.err" 3>&- &
	pid=$!
	for i in $(seq 1 1000); do
		[ "$("$probe")" -ge "$want" ] && break
		kill -0 "$pid" 2>/dev/null ||
			fail "the run ended before $probe reached $want: $(cat "$BATS_TEST_TMPDIR/killed.err")"
		sleep 0.02
	done
	sleep "$delay"
	kill -0 "$pid" 2>/dev/null || fail "the run ended before the kill ($probe $want +$delay s)"
	# Again until none is left: a process may fork between pkill's
	# listing and its kill.
	for i in $(seq 1 200); do
		pkill -KILL -s "$pid" || break
		sleep 0.05
	done
	! pgrep -s "$pid" >/dev/null || fail "processes of the killed run survived"
	wait "$pid" 2>/dev/null || true
	inflight=$(count "status = 'leased'")
	stored=$(done_rows)
}

# complete: waits for the killed run's leases to expire, then runs to
# completion with the stand-ins at full speed and checks the outcome.
complete() {
	local wait
	wait=$(sql "select coalesce(greatest(0, extract(epoch from max(lease_until) - now())), 0) + 0.2 from public.dt_results where status = 'leased'")
	sleep "$wait"
	standin supabase script '{"delay_ms": 0}'
	standin perplexity script '{"latency_ms": 0}'
	standin telegram script '{"delay_ms": 0}'
	DT_RUN_ID=completion run --separate-stderr timeout 120 dt-entrypoint
	[ "$status" -eq 0 ] || fail "completion run: status $status: $stderr"
	# Every source row stored, once, with its analysis.
	assert_equal "$(sql 'select count(*), count(distinct source_id) from public.dt_results')" "$N	$N"
	assert_equal "$(count "status = 'done' and analysis is not null")" "$N"
	# Analyzed twice: at most the rows in flight at the kill; never thrice.
	local twice max
	twice=$(twice)
	max=$(analyses | awk '$2 > m { m = $2 } END { print m + 0 }')
	[ "$twice" -le "$inflight" ] ||
		fail "$twice rows analyzed twice, but only $inflight were in flight"
	[ "$max" -le 2 ] || fail "a row was analyzed $max times"
	# Rows stored before the kill were not analyzed again.
	[ "$twice" -le $((N - stored)) ] || fail "stored rows were analyzed again"
	echo "# killed with $stored stored, $inflight in flight; $twice analyzed twice" >&3
}

@test "sigkill: 5 points while claiming, then completion: each row once" {
	for k in 1 6 11 16 21; do
		kill_at leased_or_done "$k" 0
		complete
	done
}

@test "sigkill: 5 points while analyzing, then completion: each row once" {
	for k in 2 8 14 20 26; do
		kill_at calls "$k" 0
		complete
	done
}

@test "sigkill: 5 points while storing, then completion: each row once" {
	for k in 1 6 11 16 21; do
		kill_at done_rows "$k" 0
		complete
	done
}

@test "sigkill: 5 points while reporting, then completion: each row once" {
	local d
	for d in 0 0.08 0.16 0.24; do
		kill_at backlog_asked 1 "$d"
		[ "$stored" -eq "$N" ] || fail "not in the report phase: $stored stored"
		assert_equal "$(sql 'select count(*) from public.dt_runs')" 0
		complete
	done
	kill_at done_rows "$N" 0
	complete
}
