#!/usr/bin/env bats
# Faults of Supabase's data API while storing, and of Telegram while
# reporting, during whole runs (dt-entrypoint against the local stack).

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

@test "faults: Supabase answering 503 to dt-store loses nothing; after the lease expires the next run completes the rows" {
	# Leases long enough that none can expire while run 1 still retries;
	# they are expired below by the database's clock.
	export DT_LEASE_SECONDS=600
	# Claims work; every settle request (dt-store) gets 503, for longer
	# than dt-store waits through an outage.
	standin supabase script '{"fail": 1000, "match": "dt_settle"}'
	export DT_STORE_OUTAGE_SECONDS=3
	DT_RUN_ID=sb503-1 run -69 --separate-stderr timeout 120 dt-entrypoint
	stderr_has 'dt-store: error: Supabase unavailable: HTTP 503'
	stderr_has 'dt-entrypoint: info: run sb503-1 finished: fetch 0, analyze 0, store 69,'
	# Nothing stored, nothing lost: every row still leased to run 1.
	assert_equal "$(state)" "leased	60	60	60"
	assert_equal "$(count "run_id = 'sb503-1' and analysis is null")" 60
	# The report went out and says what failed.
	run -0 telegram_text
	assert_line --index 0 '❌ dt run: FAILED'
	assert_line --partial 'dt-store (exit 69, service unavailable'

	# Supabase is back; until the leases expire the rows are not free.
	standin supabase reset
	DT_RUN_ID=sb503-2 run -0 --separate-stderr timeout 120 dt-entrypoint
	assert_equal "$(count "status = 'leased' and run_id = 'sb503-1'")" 60
	sql "update public.dt_results set lease_until = now() - interval '1 second' where status = 'leased' and run_id = 'sb503-1'" >/dev/null
	DT_RUN_ID=sb503-3 run -0 --separate-stderr timeout 120 dt-entrypoint
	assert_equal "$(count "status = 'done' and run_id = 'sb503-3' and analysis is not null")" 60
	# The lease of the failed run counted: two claims, two attempts each.
	assert_equal "$(state)" "done	60	120	120"
	# Each row was analyzed in run 1 and again in run 3, never more.
	assert_equal "$(analyses | wc -l)" 60
	assert_equal "$(analyses | awk '{ print $2 }' | sort -u)" 2
	assert_equal "$(sql 'select run_id, exit_code from public.dt_runs order by run_id')" \
		"sb503-1	69
sb503-2	0
sb503-3	0"
}

@test "faults: Supabase down for 8 s mid-run: dt-store waits, probes and stores every analysis once it is back; none is bought twice" {
	rows 300
	# The data API fails every settle for 8 s from dt-store's first one
	# on; each request gives up after about 0.1 s of retries, which
	# alone would have lost the batch.
	standin supabase script '{"fail_for_ms": 8000, "match": "dt_settle"}'
	DT_RUN_ID=blip-1 run -0 --separate-stderr timeout 120 dt-entrypoint
	stderr_has 'dt-store: warning: Supabase unavailable (HTTP 503: PGRST001'
	stderr_has 'dt-store: info: Supabase answers again after'
	# Every analysis is stored, each row analyzed once.
	assert_equal "$(state)" "done	300	300	300"
	assert_equal "$(count "run_id = 'blip-1' and analysis is not null")" 300
	assert_equal "$(analyses | wc -l)" 300
	assert_equal "$(analyses | awk '{ print $2 }' | sort -u)" 1
	run -0 jq -c 'select(.stage == "dt-store") | [.status, .counts.stored, .counts.not_stored, .counts.lost, (.counts.outages > 0)]' "$DT_RUN_DIR/store.ndjson"
	assert_output '[0,300,0,0,true]'
	# The next run finds nothing to do.
	DT_RUN_ID=blip-2 run -0 --separate-stderr timeout 120 dt-entrypoint
	assert_equal "$(analyses | wc -l)" 300
}

@test "faults: Telegram down: every result is stored and the exit status says the report failed" {
	standin telegram script '{"fail_5xx": 1000}'
	SECONDS=0
	DT_RUN_ID=tgdown-1 run -69 --separate-stderr timeout 120 dt-entrypoint
	took_at_most 30
	stderr_has 'dt-report: error: telegram: sendMessage: HTTP 502'
	stderr_has 'dt-entrypoint: info: run tgdown-1 finished: fetch 0, analyze 0, store 0, report 69; exit 69'
	assert_equal "$(state)" "done	60	60	60"
	assert_equal "$(count 'analysis is null')" 0
	# The ledger still has the run, with the report's status.
	assert_equal "$(sql "select exit_code from public.dt_runs where run_id = 'tgdown-1'")" 69
	# Telegram was tried, and took nothing.
	run -0 bash -c "standin telegram requests | jq -s '[.[] | select(.message)] | length'"
	assert_output 0
}
