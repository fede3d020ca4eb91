#!/usr/bin/env bats
# SIGKILL of the whole pipeline (dt-entrypoint and everything it started)
# at 5 points while storing; after each, one run to completion must leave
# every source row analyzed and stored exactly once in the results table,
# and the rows analyzed twice must be at most those in flight (leased,
# not stored) when the pipeline died.  With t/712-715: 20 points.  See
# kill_at and complete in test_helper/faults.bash.

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
	sigkill_setup
}

@test "sigkill: 5 points while storing, then completion: each row once" {
	for k in 1 6 11 16 21; do
		kill_at done_rows "$k" 0
		complete
	done
}
