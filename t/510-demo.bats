#!/usr/bin/env bats
# make demo (demo/run): the whole job on the local stand-ins, twice.

load test_helper/common

setup() {
	dt_common_setup
	[ -z "${DT_SANITIZED:-}" ] || skip "the demo runs once, on the plain build"
}

@test "demo: two runs of the whole job on the local stack, then nothing left running" {
	export DT_BUILD
	run -0 "$DT_ROOT/demo/run"
	# Run 1 analyzed everything it could and parked what cannot be.
	assert_line "200 messages waiting in public.messages"
	assert_line --partial "run demo-1 finished: fetch 0,"
	assert_line --regexp '^Records: 200 — stored 197 · failed 3$'
	assert_line --partial "Sentiment: "
	assert_line --regexp '^ done +\| +197$'
	assert_line --regexp '^ failed +\| +3$'
	# Run 2 found nothing to do.
	assert_line --partial "run demo-2 finished: fetch 0, analyze 0, store 0, report 0; exit 0"
	assert_line --regexp '^run demo-2: 0 records, backlog '
	# Each stage's output of run 1 is kept for replay, and replays.
	for f in fetch.ndjson analyze.ndjson store.ndjson report.json; do
		assert_file_exists "$DT_BUILD/demo/run-1/$f"
	done
	# Run 1 had bad input (the empty messages), and the replay says so.
	run -65 --separate-stderr dt-report --dry-run "$DT_BUILD/demo/run-1/store.ndjson"
	assert_equal "$(jq -r .records <<<"$output")" 200
	# Everything the demo started has stopped.
	run pgrep -f "$DT_BUILD/demo/stack"
	assert_equal "$status" 1
}
