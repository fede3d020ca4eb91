#!/usr/bin/env bats
# entrypoint.sh (dt-entrypoint): the optional parts of a run (the
# Pushgateway, the run ledger) never fail a run whose data is safe.

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
	rows 20
}

# free_port: a loopback port nothing listens on.
free_port() {
	/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

@test "entrypoint: an unreachable Pushgateway leaves a clean run at exit 0, with one report" {
	port=$(free_port)
	DT_RUN_ID=nopush-1 DT_PUSHGATEWAY_URL=http://127.0.0.1:$port \
		run -0 --separate-stderr dt-entrypoint
	assert_equal "$(state)" "done	20	20	20"
	stderr_has "dt-report: warning: pushgateway: POST http://127.0.0.1:$port/metrics/job/dt:"
	stderr_has "run nopush-1 finished: fetch 0, analyze 0, store 0, report 0; exit 0"
	assert_equal "$(jq -r '"\(.exit_code) \(.metrics)"' "$DT_RUN_DIR/report.json")" "0 failed"
	assert_equal "$(sql "select status, exit_code from public.dt_runs where run_id = 'nopush-1'")" "ok	0"
	assert_equal "$(standin telegram requests | jq -c 'select(.message)' | wc -l)" 1
}

@test "entrypoint: a ledger that cannot be written leaves a clean run at exit 0, with one report" {
	standin supabase script '{"fail": 100, "match": "dt_runs"}'
	DT_RUN_ID=noledger-1 DT_SUPABASE_TRIES=1 run -0 --separate-stderr dt-entrypoint
	assert_equal "$(state)" "done	20	20	20"
	stderr_has "dt-report: warning: supabase: POST /rest/v1/dt_runs: HTTP 503"
	stderr_has "run noledger-1 finished: fetch 0, analyze 0, store 0, report 0; exit 0"
	assert_equal "$(jq -r '"\(.exit_code) \(.ledger)"' "$DT_RUN_DIR/report.json")" "0 failed"
	assert_equal "$(sql 'select count(*) from public.dt_runs')" 0
	assert_equal "$(standin telegram requests | jq -c 'select(.message)' | wc -l)" 1
}
