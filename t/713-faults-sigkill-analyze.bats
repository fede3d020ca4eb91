#!/usr/bin/env bats
# SIGKILL of the whole pipeline (dt-entrypoint and everything it started)
# at 5 points while analyzing; after each, one run to completion must leave
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
	# The kill points count calls: one record a call.
	export DT_PACK=1
}

@test "sigkill: 5 points while analyzing, then completion: each row once" {
	for k in 2 8 14 20 26; do
		kill_at calls "$k" 0
		complete
	done
}
