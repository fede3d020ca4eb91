#!/usr/bin/env bats
# A UTF-8 byte order mark at the start of an input (editors on Windows
# write one) is skipped by lib/ndjson.c's reader and dt-report's scanner:
# every stage takes the first record.  Anywhere else it is a bad line.

load test_helper/common

setup() {
	dt_common_setup
	cd "$DT_ROOT"
	export DT_PROMPT_FILE=$DT_ROOT/analyze/prompt.txt
	export DT_SCHEMA_FILE=$DT_ROOT/analyze/schema.json
	bom=$'\xEF\xBB\xBF'
}

@test "ndjson: a byte order mark at the start of each file and of stdin is skipped" {
	printf '%s{"n":1}\n{"n":2}\n' "$bom" >"$BATS_TEST_TMPDIR/a"
	printf '%s{"n":4}\n' "$bom" >"$BATS_TEST_TMPDIR/c"
	run -0 --separate-stderr ndjson-cat "$BATS_TEST_TMPDIR/a" - "$BATS_TEST_TMPDIR/c" \
		<<<"$bom{\"n\":3}"
	assert_output $'{"n":1}\n{"n":2}\n{"n":3}\n{"n":4}'
	assert_equal "$stderr" "ndjson-cat: 4 records, 0 bad lines"
}

@test "ndjson: a byte order mark anywhere but the very start is a bad line" {
	printf '{"n":1}\n%s{"n":2}\n' "$bom" >"$BATS_TEST_TMPDIR/a"
	run -65 --separate-stderr ndjson-cat "$BATS_TEST_TMPDIR/a"
	assert_line --index 0 '{"n":1}'
	[[ ${stderr_lines[0]} == "ndjson-cat: warning: $BATS_TEST_TMPDIR/a:2: invalid JSON: "* ]] || fail "$stderr"
	# A mark alone on the first line is a blank line.
	printf '%s\n{"n":1}\n' "$bom" >"$BATS_TEST_TMPDIR/b"
	run -0 --separate-stderr ndjson-cat "$BATS_TEST_TMPDIR/b"
	assert_output '{"n":1}'
}

@test "dt-analyze: the first record of a file with a byte order mark is analyzed" {
	printf '%s{"id":1,"text":"hello"}\n' "$bom" >"$BATS_TEST_TMPDIR/in"
	run -0 --separate-stderr dt-analyze --dry-run "$BATS_TEST_TMPDIR/in"
	assert_equal "$stderr" ""
	assert_equal "$(jq -c 'select(.stage == null) | [.id, .dry_run]' <<<"$output")" '[1,true]'
	assert_equal "$(jq -c 'select(.stage) | .counts | [.records, .bad]' <<<"$output")" '[1,0]'
}

@test "dt-store: the first record of a file with a byte order mark is taken" {
	printf '%s{"id":1,"run_id":"r","analysis":{"summary":"s"}}\n' "$bom" >"$BATS_TEST_TMPDIR/in"
	run -0 --separate-stderr dt-store --dry-run "$BATS_TEST_TMPDIR/in"
	[[ $stderr != *warning* ]] || fail "$stderr"
	assert_equal "$(jq -c 'select(.stage == null) | [.id, .store.outcome]' <<<"$output")" '[1,"dry_run"]'
	assert_equal "$(jq -c 'select(.stage) | .counts | [.failed, .bad]' <<<"$output")" '[0,0]'
}

@test "dt-report: the first record of a file with a byte order mark is counted" {
	{ printf '%s' "$bom"; sed -n 2p t/fixtures/report/run-ok.ndjson; } >"$BATS_TEST_TMPDIR/in"
	run -0 --separate-stderr dt-report --dry-run --message-file /dev/null "$BATS_TEST_TMPDIR/in"
	assert_equal "$stderr" ""
	assert_equal "$(jq -c '[.records, .bad_lines]' <<<"$output")" '[1,0]'
}
