#!/usr/bin/env bats
# The alerts and the dashboard (k8s/monitoring): the rules pass promtool,
# behave as their unit tests say, and every metric they or the dashboard
# query is one that dt-report really pushes to a real Pushgateway.

bats_require_minimum_version 1.5.0
load test_helper/common
load test_helper/pushgateway
load test_helper/stack

setup_file() {
	"$BATS_TEST_DIRNAME/../tools/k8s-validate/install" >&2
	pushgateway_start
	stack_up -m 5
}

teardown_file() {
	pushgateway_stop
	stack_down
}

setup() {
	dt_common_setup
	command -v promtool >/dev/null ||
		fail "promtool is not installed (Debian's prometheus; tools/deps install)"
	cd "$BATS_TEST_TMPDIR"
}

# plain_only: skips a test that runs no C program under the sanitized run.
plain_only() {
	if [ "${DT_SANITIZED:-0}" = 1 ]; then
		skip "no C program runs here; the plain run covers it"
	fi
}

v() {
	node "$DT_ROOT/tools/k8s-validate/validate.js" "$@"
}

# rules FILE: the PrometheusRule's rule groups as a rules file.
rules() {
	v render "$DT_ROOT/k8s/monitoring" >objs.json || fail "render k8s/monitoring"
	jq 'select(.kind == "PrometheusRule") | .spec' objs.json >"$1"
	[ -s "$1" ] || fail "no PrometheusRule in k8s/monitoring"
}

@test "monitoring: the alert rules pass promtool check rules" {
	plain_only
	rules rules.json
	run -0 promtool check rules rules.json
	assert_line "  SUCCESS: 5 rules found"
}

@test "monitoring: promtool check rules fails a broken rule" {
	plain_only
	rules rules.json
	jq '.groups[0].rules[0].expr = "time() - dt_run_last_success_timestamp_seconds >"' rules.json >broken.json
	run -1 promtool check rules broken.json
	assert_output --partial 'FAILED'
}

@test "monitoring: each alert fires when it should and not before (promtool test rules)" {
	plain_only
	rules rules.json
	cp "$DT_ROOT/t/fixtures/monitoring/dt-alerts.test.yaml" .
	run -0 promtool test rules dt-alerts.test.yaml
	assert_line "  SUCCESS"
	# A changed threshold fails its unit test.
	jq '.groups[0].rules[4].expr = "dt_run_cost_usd > 10"' rules.json >r && mv r rules.json
	run -1 promtool test rules dt-alerts.test.yaml
	assert_output --partial 'alertname: DtRunCostHigh, time: 9h'
}

@test "monitoring: the dashboard is one ConfigMap for Grafana's sidecar, holding dt-dashboard.json as it is" {
	plain_only
	v render "$DT_ROOT/k8s/monitoring" >objs.json
	run -0 jq -r 'select(.kind == "ConfigMap") | "\(.metadata.name) \(.metadata.namespace) \(.metadata.labels.grafana_dashboard)"' objs.json
	assert_output "dt-dashboard kube-prometheus-stack 1"
	jq -j 'select(.kind == "ConfigMap") | .data["dt-dashboard.json"]' objs.json >got.json
	run -0 cmp got.json "$DT_ROOT/k8s/monitoring/dt-dashboard.json"
	# Every panel reads the data source variable and has a query.
	run -0 jq -r '[.panels[] | select(.datasource.uid != "${datasource}" or (.targets | length) == 0) | .title] | length' got.json
	assert_output 0
	run -0 jq -r '.uid, (.templating.list[0] | "\(.name) \(.query)")' got.json
	assert_output "dt-batch-analyzer
datasource prometheus"
}

@test "monitoring: a PromQL syntax error in the dashboard is found" {
	plain_only
	jq '.panels[2].targets[0].expr = "dt_run_exit_code{"' "$DT_ROOT/k8s/monitoring/dt-dashboard.json" >bad.json
	run -1 --separate-stderr v metrics bad.json
	assert_equal "$stderr" "k8s-validate: bad.json: panels[2].targets[0].expr: PromQL: syntax error at column 18"
}

@test "monitoring: every metric the alerts and the dashboard query is one dt-report pushes" {
	run -0 --separate-stderr v metrics "$DT_ROOT/k8s/monitoring"
	assert_equal "$stderr" "k8s-validate: 21 expressions, 14 metrics"
	printf '%s\n' "${lines[@]}" >used
	[ "$(grep -c '^dt_' used)" -eq 14 ] || fail "metrics named that are not dt's: $(cat used)"

	# A successful run with the database (for the backlog; test_helper/stack
	# exported it) and calls (for the latencies) pushes every metric
	# dt-report has.
	[ -n "${SUPABASE_URL:-}" ] || fail "the stack's environment is missing"
	pushgateway_env
	pushgateway_wipe
	export DT_REPORT_SCHEMA=$DT_ROOT/analyze/schema.json
	export DT_RUN_STARTED_AT=2024-05-01T10:00:00Z DT_RUN_FINISHED_AT=2024-05-01T10:04:12Z
	export DT_PUSHGATEWAY_URL=$PUSHGATEWAY_URL
	run -0 --separate-stderr dt-report "$DT_ROOT/t/fixtures/report/run-ok.ndjson"
	curl -fsS "$PUSHGATEWAY_URL/metrics" >scrape
	grep -q '^dt_backlog_rows{[^}]*state="failed"} 0$' scrape || fail "no parked rows sample: $(cat scrape)"

	# Each selector of every rule and panel, its label matchers included,
	# matches a sample of what dt-report pushed.
	run -0 --separate-stderr v metrics --scrape scrape "$DT_ROOT/k8s/monitoring"
	assert_equal "$stderr" "k8s-validate: 21 expressions, 14 metrics"

	# And a name or a label value that was not pushed is found.
	jq '.panels[0].targets[0].expr = "dt_run_parked_rows" |
	    .panels[6].targets[0].expr = "dt_backlog_rows{state=\"parked\"}"' \
		"$DT_ROOT/k8s/monitoring/dt-dashboard.json" >d.json
	run -1 --separate-stderr v metrics --scrape scrape d.json
	assert_equal "${stderr_lines[0]}" "k8s-validate: d.json: panels[0].targets[0].expr: dt_run_parked_rows matches no sample of the scrape"
	assert_equal "${stderr_lines[1]}" 'k8s-validate: d.json: panels[6].targets[0].expr: dt_backlog_rows{state="parked"} matches no sample of the scrape'
}
