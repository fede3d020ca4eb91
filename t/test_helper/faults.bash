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
# analyzed (HTTP 200, no fault), from the requests it recorded.
analyses() {
	standin perplexity requests |
		jq -r 'select(.status == 200 and .fault == null)
			| (.json.input // (.json.messages | map(.content) | join("\n")))
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
