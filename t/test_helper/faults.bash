# What the fault and crash suite (t/71x-faults-*.bats) shares: a small,
# fast configuration for whole runs of dt-entrypoint against the local
# stack, and readers of the final state.
#
#   load test_helper/common
#   load test_helper/stack
#   load test_helper/faults
#   setup_file() { stack_up; }
#   teardown_file() { stack_down; }
#   setup() { faults_setup; rows 60; }

# shellcheck disable=SC2154 # status, stderr: set by bats' run

# faults_setup: the test's environment: the stack's variables and a run
# configuration sized for tests (small batches, short leases, no rate
# limit, short retry budgets).
faults_setup() {
	dt_common_setup
	# shellcheck disable=SC1091
	. "$BATS_FILE_TMPDIR/stack.env"
	export DT_PROMPT_FILE=$DT_ROOT/analyze/prompt.txt
	export DT_SCHEMA_FILE=$DT_ROOT/analyze/schema.json
	export BATCH_SIZE=10 MAX_WORKERS=4 TIMEOUT_SECONDS=5
	export DT_FIRST_TIMEOUT_SECONDS=5
	export DT_RETRY_BASE_MS=50 DT_RETRY_CAP_MS=500
	export DT_LEASE_SECONDS=30 DT_MAX_ATTEMPTS=3
	export DT_RPM=1000000
	export DT_SUPABASE_TRIES=3 DT_SUPABASE_BACKOFF_MS=50
	export DT_STORE_BATCH=10 DT_STORE_MAX_DELAY_MS=200
	export DT_REPORT_RETRY_SECONDS=2
	export DT_DRAIN_SECONDS=5
	# Every stage's output stays in the test's folder, for a look after
	# a failure.
	export DT_RUN_DIR=$BATS_TEST_TMPDIR/run
}

# rows N: empties dt's tables and the stand-ins' scripts and logs, and
# inserts N source rows "fault row 1" .. "fault row N" (ids 1..N).
rows() {
	sql 'truncate public.dt_results, public.dt_runs, public.messages restart identity' >/dev/null
	sql "insert into public.messages (text) select 'fault row ' || g from generate_series(1, $1) g" >/dev/null
	standin supabase reset
	standin perplexity reset
	standin telegram reset
}

# state: one line "status count claims attempts" per dt_results status.
state() {
	sql "select status, count(*), sum(claims), sum(attempts) from public.dt_results group by 1 order by 1"
}

# count 'where clause': the number of dt_results rows that match.
count() {
	sql "select count(*) from public.dt_results where $1"
}

# analyses: "id count" for every source row the Perplexity stand-in
# analyzed (HTTP 200, no fault), from the requests it recorded (every
# message of a packed request).
analyses() {
	standin perplexity requests |
		jq -r 'select(.status == 200 and .fault == null)
			| (.json.input // (.json.messages | map(.content) | join("\n")))
			| if test("^<dt-data-[0-9a-f]+>\n\\[") then
				split("\n")[1] | fromjson | .[].text + "\n"
			  else . end
			| capture("fault row (?<id>[0-9]+)\n").id' |
		sort -n | uniq -c | awk '{ print $2, $1 }'
}

# twice: how many source rows were analyzed more than once.
twice() {
	analyses | awk '$2 > 1 { n++ } END { print n + 0 }'
}

# telegram_text: the text of every message the Telegram stand-in took.
telegram_text() {
	standin telegram requests | jq -r 'select(.message) | .message.text'
}

# stderr_has TEXT: fails unless the last run's stderr holds TEXT.
stderr_has() {
	[[ $stderr == *"$1"* ]] || fail "stderr lacks: $1
stderr: $stderr"
}

# --- SIGKILL at a point of a run (t/712-715) ---
#
# The points are states of the run, not times, so they hold on a slow
# machine or under sanitizers: the stand-ins are slowed down a little
# (Supabase 30 ms a request, Perplexity 40 ms a call, Telegram 400 ms)
# and the test kills the pipeline as soon as the state is reached.

# sigkill_setup: faults_setup, plus small batches and 1 s leases, so
# that a killed run's rows come back soon.
sigkill_setup() {
	faults_setup
	N=30
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
	local probe=$1 want=$2 delay=$3 pid
	rows "$N"
	standin supabase script '{"delay_ms": 30}'
	standin perplexity script '{"latency_ms": 40}'
	standin telegram script '{"delay_ms": 400}'
	DT_RUN_ID=killed setsid dt-entrypoint >"$BATS_TEST_TMPDIR/killed.out" \
		2>"$BATS_TEST_TMPDIR/killed.err" 3>&- &
	pid=$!
	for _ in $(seq 1 1000); do
		[ "$("$probe")" -ge "$want" ] && break
		kill -0 "$pid" 2>/dev/null ||
			fail "the run ended before $probe reached $want: $(cat "$BATS_TEST_TMPDIR/killed.err")"
		sleep 0.02
	done
	sleep "$delay"
	kill -0 "$pid" 2>/dev/null || fail "the run ended before the kill ($probe $want +$delay s)"
	# Again until none is left: a process may fork between pkill's
	# listing and its kill.
	for _ in $(seq 1 200); do
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

# took_at_most LIMIT: fails when the run took more than LIMIT seconds
# ($SECONDS, reset before it), unless the programs are wrapped (DT_BINDIR
# is set by t/run's DEBUGGER and tools/valgrind), which slows them down
# many times.
took_at_most() {
	[ -n "${DT_BINDIR:-}" ] && return 0
	[ "$SECONDS" -le "$1" ] || fail "the run took $SECONDS s (limit $1 s)"
}
