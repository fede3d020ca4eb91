#!/usr/bin/env bats
# dt-report's pure parts, checked in C (t/unit/report.c).

load test_helper/common

@test "report units: latency quantiles, top values, text, tally, merge and splitting" {
	run "$DT_BUILD/t/report"
	assert_success
	assert_output "report: all checks passed"
}
