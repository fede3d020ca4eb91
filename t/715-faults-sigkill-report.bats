#!/usr/bin/env bats
# SIGKILL of the whole pipeline (dt-entrypoint and everything it started)
# at 5 points while reporting; after each, one run to completion must leave
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

@test "sigkill: 5 points while reporting, then completion: each row once" {
	local d
	for d in 0 0.08 0.16 0.24; do
		kill_at backlog_asked 1 "$d"
		[ "$stored" -eq "$N" ] || fail "not in the report phase: $stored stored"
		# Whether the ledger row was written before the kill depends on
		# the machine's speed; the property checked is in complete.
		complete
	done
	kill_at done_rows "$N" 0
	complete
}
