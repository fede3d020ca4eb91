#!/usr/bin/env bats
# dt-report pushes the run's metrics to a real Prometheus Pushgateway.

bats_require_minimum_version 1.5.0
load test_helper/common
load test_helper/pushgateway

setup_file() {
	pushgateway_start
}

teardown_file() {
	pushgateway_stop
}

setup() {
	dt_common_setup
	pushgateway_env
	pushgateway_wipe
	cd "$DT_ROOT"
	export DT_REPORT_SCHEMA=$DT_ROOT/analyze/schema.json
	export DT_RUN_STARTED_AT=2024-05-01T10:00:00Z
	export DT_RUN_FINISHED_AT=2024-05-01T10:04:12Z
	export DT_PUSHGATEWAY_URL=$PUSHGATEWAY_URL
}

@test "dt-report: the run's metrics can be read back from the Pushgateway" {
	run -0 --separate-stderr dt-report t/fixtures/report/run-ok.ndjson
	run pushgateway_metrics dt_
	assert_output 'dt_run_cost_usd{instance="",job="dt"} 0.0062
dt_run_duration_seconds{instance="",job="dt"} 252
dt_run_errors{instance="",job="dt",kind="bad_record"} 0
dt_run_errors{instance="",job="dt",kind="budget"} 0
dt_run_errors{instance="",job="dt",kind="config"} 0
dt_run_errors{instance="",job="dt",kind="http_4xx"} 0
dt_run_errors{instance="",job="dt",kind="invalid_output"} 0
dt_run_errors{instance="",job="dt",kind="rate_limited"} 0
dt_run_errors{instance="",job="dt",kind="timeout"} 0
dt_run_errors{instance="",job="dt",kind="too_large"} 0
dt_run_errors{instance="",job="dt",kind="unavailable"} 0
dt_run_exit_code{instance="",job="dt"} 0
dt_run_failed_records{instance="",job="dt"} 0
dt_run_last_finish_timestamp_seconds{instance="",job="dt"} 1.714557852e+09
dt_run_last_success_timestamp_seconds{instance="",job="dt"} 1.714557852e+09
dt_run_latency_max_seconds{instance="",job="dt"} 1.93
dt_run_latency_p50_seconds{instance="",job="dt"} 0.7
dt_run_latency_p95_seconds{instance="",job="dt"} 1.93
dt_run_records{instance="",job="dt",status="failed"} 0
dt_run_records{instance="",job="dt",status="released"} 0
dt_run_records{instance="",job="dt",status="skipped"} 0
dt_run_records{instance="",job="dt",status="stored"} 6
dt_run_reused_records{instance="",job="dt"} 0
dt_run_success{instance="",job="dt"} 1
dt_run_tokens{instance="",job="dt"} 2808'
}

@test "dt-report: a failed run keeps the last success time of the run before" {
	run -0 --separate-stderr dt-report t/fixtures/report/run-ok.ndjson
	run -69 --separate-stderr env DT_RUN_FINISHED_AT=2024-05-01T12:04:12Z dt-report t/fixtures/report/run-failed.ndjson
	run pushgateway_metrics 'dt_run_\(success\|last\|exit\|records{[^}]*stored\)'
	assert_output 'dt_run_exit_code{instance="",job="dt"} 69
dt_run_last_finish_timestamp_seconds{instance="",job="dt"} 1.714565052e+09
dt_run_last_success_timestamp_seconds{instance="",job="dt"} 1.714557852e+09
dt_run_records{instance="",job="dt",status="stored"} 0
dt_run_success{instance="",job="dt"} 0'
}

@test "dt-report: DT_PUSHGATEWAY_JOB names the group; error kinds become labels" {
	run -75 --separate-stderr env DT_PUSHGATEWAY_JOB=dt-nightly dt-report t/fixtures/report/run-partial.ndjson
	run pushgateway_metrics 'dt_run_errors{[^}]*job="dt-nightly",kind="\(timeout\|invalid_output\)"'
	assert_output 'dt_run_errors{instance="",job="dt-nightly",kind="invalid_output"} 1
dt_run_errors{instance="",job="dt-nightly",kind="timeout"} 1'
}

@test "dt-report: an unreachable Pushgateway is a warning; the run's status stays 0 and the report is sent" {
	port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	run -0 --separate-stderr env DT_PUSHGATEWAY_URL="http://127.0.0.1:$port" \
		dt-report t/fixtures/report/run-ok.ndjson
	[[ ${stderr_lines[-1]} == "dt-report: warning: pushgateway: POST http://127.0.0.1:$port/metrics/job/dt: "*"onnect"* ]] ||
		fail "$stderr"
	[[ $stderr != *": error: "* ]] || fail "$stderr"
	jq -e '.exit_code == 0 and .metrics == "failed" and .state == "ok"' <<<"$output" >/dev/null ||
		fail "$output"
}

@test "dt-report: a Pushgateway that refuses the push leaves a failed run's status as it was" {
	# A path the Pushgateway answers with 404: the push is refused.
	run -69 --separate-stderr env DT_PUSHGATEWAY_URL="$PUSHGATEWAY_URL/nothing-here" \
		dt-report t/fixtures/report/run-failed.ndjson
	[[ $stderr == *"dt-report: warning: pushgateway: POST $PUSHGATEWAY_URL/nothing-here/metrics/job/dt: HTTP 404"* ]] ||
		fail "$stderr"
	jq -e '.exit_code == 69 and .metrics == "failed"' <<<"$output" >/dev/null || fail "$output"
}

@test "dt-report: the summary says the metrics were pushed" {
	run -0 --separate-stderr dt-report t/fixtures/report/run-ok.ndjson
	jq -e '.metrics == "pushed"' <<<"$output" >/dev/null || fail "$output"
}

@test "dt-report: --dry-run pushes nothing" {
	run -0 --separate-stderr dt-report -n --message-file /dev/null t/fixtures/report/run-ok.ndjson
	run pushgateway_metrics dt_
	assert_output ""
}
