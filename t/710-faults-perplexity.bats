#!/usr/bin/env bats
# Faults of the Perplexity API during whole runs (dt-entrypoint against
# the local stack): what the database holds afterwards.

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
	rows 60
}

@test "faults: with 30% of Perplexity calls failing (429, 500, 503, timeouts) every row ends stored, no attempt burnt" {
	# Four rules of 8.5% each: about 30% of calls fail, in a mix.  A
	# hang is a 200 whose body never ends: the call times out.
	# One record a request, so that 60 rows make enough calls for the
	# faults' rates.
	export TIMEOUT_SECONDS=2 DT_FIRST_TIMEOUT_SECONDS=2 DT_PACK=1
	standin perplexity script '{"seed": 7, "faults": [
		{"kind": "429", "rate": 0.085, "retry_after": 1},
		{"kind": "500", "rate": 0.085},
		{"kind": "503", "rate": 0.085},
		{"kind": "hang", "rate": 0.085}]}'
	# An outage that outlasts a record's retries releases the row
	# (attempt given back) for the next run, and that run exits 1 (some
	# records failed): up to three runs.
	for run in 1 2 3; do
		DT_RUN_ID=mixed-$run run --separate-stderr timeout 120 dt-entrypoint
		[ "$status" -eq 0 ] || [ "$status" -eq 1 ] ||
			fail "run $run: status $status: $stderr"
		# Whatever is not stored is released, never parked.
		assert_equal "$(count "status in ('leased', 'failed')")" 0
		[ "$(count "status <> 'done'")" -eq 0 ] && break
	done
	assert_equal "$(state)" "done	60	$(sql 'select sum(claims) from public.dt_results')	60"
	# Every row counts exactly one attempt: the one that succeeded.
	assert_equal "$(count 'attempts <> 1 or analysis is null or last_error is not null')" 0
	# The faults did happen, each kind.
	run -0 bash -c "standin perplexity requests | jq -r 'select(.fault != null) | .fault' | sort | uniq -c | awk '{ print \$2 }' | tr '\n' ' '"
	assert_output '429 500 503 hang '
	run -0 bash -c "standin perplexity requests | jq -s '[.[] | select(.fault != null)] | length'"
	[ "$output" -ge 10 ] || fail "only $output faults injected"
}

@test "faults: Perplexity down for the whole run: the breaker opens in seconds, exit 69, rows released unburnt, the report says why" {
	standin perplexity script '{"fail_rate": 1.0, "fail_kind": "503"}'
	SECONDS=0
	DT_RUN_ID=down-1 run -69 --separate-stderr timeout 120 dt-entrypoint
	took_at_most 20
	stderr_has 'dt-entrypoint: info: run down-1 finished: fetch 0, analyze 69,'
	# Every claimed row is back to pending, attempts unchanged (0), and
	# says why; nothing is leased or parked.
	assert_equal "$(count "status <> 'pending'")" 0
	assert_equal "$(count 'attempts <> 0 or lease_until is not null')" 0
	assert_equal "$(count "last_error->>'kind' <> 'unavailable'")" 0
	assert_equal "$(count 'claims < 1')" 0
	# The breaker: about its threshold of calls, not one per row.
	run -0 bash -c "standin perplexity requests | jq -s 'length'"
	[ "$output" -le 20 ] || fail "$output calls to a dead API"
	# The report says why, with notification; the ledger has the run.
	run -0 telegram_text
	assert_line --index 0 '❌ dt run: FAILED'
	assert_line --partial 'dt-analyze (exit 69, service unavailable'
	assert_line --partial 'circuit open'
	run -0 bash -c "standin telegram requests | jq -r 'select(.message) | .message.disable_notification // false'"
	assert_output false
	assert_equal "$(sql "select status, exit_code from public.dt_runs where run_id = 'down-1'")" "failed	69"
	# Once the API is back, the next run stores every row, first attempt.
	standin perplexity reset
	DT_RUN_ID=down-2 run -0 --separate-stderr timeout 120 dt-entrypoint
	assert_equal "$(count "status = 'done' and attempts = 1")" 60
}
