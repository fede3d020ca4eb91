#!/usr/bin/env bats
# dt-entrypoint scale-out (k8s/overlays/scale-out): N shards of one run,
# run concurrently against the local stack, with exactly one report.

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
	rows 90
	export DT_RUN_ID=scale-1 DT_SHARDS=3
}

# shard K: dt-entrypoint as shard K in the background, its output kept
# in the test's folder; the pid is $!.
shard() {
	DT_SHARD_INDEX=$1 DT_RUN_DIR=$BATS_TEST_TMPDIR/run$1 \
		dt-entrypoint >/dev/null 2>"$BATS_TEST_TMPDIR/err$1" &
}

# statuses PID...: waits for each and sets $statuses to their exit
# statuses, space-separated.
statuses() {
	local p s
	statuses=
	for p in "$@"; do
		s=0
		wait "$p" || s=$?
		statuses="${statuses:+$statuses }$s"
	done
}

@test "entrypoint: three shards at once analyze every row once and send one report for the whole run" {
	standin perplexity script '{"latency_ms": 20}'
	shard 0
	p0=$!
	shard 1
	p1=$!
	shard 2
	p2=$!
	statuses "$p0" "$p1" "$p2"
	assert_equal "$statuses" "0 0 0"
	assert_equal "$(state)" "done	90	90	90"
	assert_equal "$(analyses | wc -l)" 90
	assert_equal "$(twice)" 0
	# One message, for the whole run.
	assert_equal "$(standin telegram requests | jq -s 'map(select(.message)) | length')" 1
	run -0 telegram_text
	assert_line --index 0 '✅ dt run: ok'
	assert_line --index 1 'Run: scale-1'
	assert_line --index 2 'Shards: 3 of 3'
	assert_line --index 3 'Records: 90 — stored 90'
	# The ledger: one row per shard, their records adding up to the
	# run's row.
	assert_equal "$(sql "select run_id, status, counts->>'records' from public.dt_runs where run_id = 'scale-1'")" "scale-1	ok	90"
	assert_equal "$(sql "select count(*), sum((counts->>'records')::int) from public.dt_runs where run_id like 'scale-1/%'")" "3	90"
	run -0 jq -c '[.records, .by_status, .failed, .shards, ([.stages[] | select(.stage == "dt-fetch") | .counts.claimed][0])]' "$BATS_TEST_TMPDIR/run0/merge.json"
	assert_output '[90,{"stored":90},0,{"of":3,"merged":[0,1,2],"missing":[]},90]'
	grep -q "run scale-1 finished: fetch 0, analyze 0, store 0, report 0, merge 0; exit 0" "$BATS_TEST_TMPDIR/err0" ||
		fail "$(cat "$BATS_TEST_TMPDIR/err0")"
	grep -q "dt-report: info: shard 1 of 3: the run's report is sent by shard 0" "$BATS_TEST_TMPDIR/err1" ||
		fail "$(cat "$BATS_TEST_TMPDIR/err1")"
}

@test "entrypoint: a shard that never runs: shard 0 waits, gives up, and reports partial naming it" {
	export DT_SHARD_WAIT_SECONDS=3
	shard 0
	p0=$!
	shard 1
	p1=$!
	statuses "$p0" "$p1"
	assert_equal "$statuses" "1 0"
	assert_equal "$(state)" "done	90	90	90"
	assert_equal "$(standin telegram requests | jq -s 'map(select(.message)) | length')" 1
	run -0 telegram_text
	assert_line --index 0 '⚠️ dt run: partial'
	assert_line --index 2 'Shards: 2 of 3; missing: 2 (no finished ledger row)'
	assert_line --index 3 'Records: 90 — stored 90'
	grep -q "dt-report: warning: run scale-1: no finished ledger row from shard 2; the report is partial" "$BATS_TEST_TMPDIR/err0" ||
		fail "$(cat "$BATS_TEST_TMPDIR/err0")"
	grep -q "run scale-1 finished: fetch 0, analyze 0, store 0, report 0, merge 1; exit 1" "$BATS_TEST_TMPDIR/err0" ||
		fail "$(cat "$BATS_TEST_TMPDIR/err0")"
	assert_equal "$(sql "select status, exit_code from public.dt_runs where run_id = 'scale-1'")" "partial	1"
}

@test "entrypoint: DT_SHARD_INDEX must be below DT_SHARDS" {
	DT_SHARD_INDEX=3 run -78 --separate-stderr dt-entrypoint
	assert_equal "${stderr_lines[0]}" "dt-report: error: DT_SHARD_INDEX: 3 is not below DT_SHARDS (3)"
}
