#!/usr/bin/env bats
# entrypoint.sh (dt-entrypoint): its log lines.  Under DT_LOG_FORMAT=json
# every line on stderr is JSON (its own, GNU parallel's, the stages');
# a configuration problem several stages find is named once.

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
	rows 10
}

# all_json FILE: fails unless every line of FILE is a JSON object with
# exactly the keys of lib/log.c's lines.
all_json() {
	local bad
	bad=$(jq -c 'select(type != "object" or (keys | sort) != ["level","msg","prog","ts"])' "$1" 2>&1) ||
		fail "not JSON: $(cat "$1")"
	[ -z "$bad" ] || fail "not a log line: $bad"
	[ -s "$1" ] || fail "no lines"
}

@test "entrypoint: under DT_LOG_FORMAT=json every line on stderr of a run is a JSON log line, GNU parallel's included" {
	# A text longer than parallel's 1 KiB block makes it warn (parallel
	# gets the groups after the first, which is dt-fanout's own job).
	sql "update public.messages set text = repeat('long text ' || id || ' ', 300)" >/dev/null
	DT_RUN_ID=json-1 DT_LOG_FORMAT=json DT_MAX_TEXT_BYTES=100000 DT_PACK=5 \
		run -0 --separate-stderr dt-entrypoint
	printf '%s\n' "$stderr" >"$BATS_TEST_TMPDIR/err"
	all_json "$BATS_TEST_TMPDIR/err"
	run -0 jq -r '"\(.prog) \(.level) \(.msg)"' "$BATS_TEST_TMPDIR/err"
	assert_line --index 0 "dt-entrypoint info run json-1 starting"
	assert_line "parallel warning A record was longer than 1024. Increasing to --blocksize 1333."
	assert_line --regexp "^dt-store info stored 10, failed 0, skipped 0 in [0-9]+ requests$"
	assert_line --index -1 "dt-entrypoint info run json-1 finished: fetch 0, analyze 0, store 0, report 0; exit 0"
}

@test "entrypoint: under DT_LOG_FORMAT=json its configuration errors and a bad option are JSON too" {
	DT_LOG_FORMAT=json run -78 --separate-stderr env -u SUPABASE_URL dt-entrypoint
	printf '%s\n' "$stderr" >"$BATS_TEST_TMPDIR/err"
	all_json "$BATS_TEST_TMPDIR/err"
	assert_equal "$(jq -r 'select(.prog == "dt-entrypoint") | "\(.level) \(.msg)"' "$BATS_TEST_TMPDIR/err" | head -n 1)" \
		"error SUPABASE_URL is not set"
	DT_LOG_FORMAT=json run -64 --separate-stderr dt-entrypoint --frobnicate
	printf '%s\n' "$stderr" >"$BATS_TEST_TMPDIR/err"
	all_json "$BATS_TEST_TMPDIR/err"
	assert_equal "$(jq -r '"\(.prog) \(.level) \(.msg)"' "$BATS_TEST_TMPDIR/err")" \
		"dt-entrypoint error unknown option '--frobnicate'
dt-entrypoint error Try 'dt-entrypoint --help'."
}

@test "entrypoint: a problem every stage finds is named once, in both formats" {
	TIMEOUT_SECONDS=0 run -78 --separate-stderr dt-entrypoint
	assert_equal "$stderr" "dt-fetch: error: TIMEOUT_SECONDS: 0 is out of range (1 to 86400)"
	TIMEOUT_SECONDS=0 DT_LOG_FORMAT=json run -78 --separate-stderr dt-entrypoint
	assert_equal "$(jq -r '"\(.prog) \(.level) \(.msg)"' <<<"$stderr")" \
		"dt-fetch error TIMEOUT_SECONDS: 0 is out of range (1 to 86400)"
	assert_equal "$(count 'true')" 0
}

@test "entrypoint: a run id too long is a configuration error before any claim, named once" {
	DT_JOB_NAME=$(printf 'j%.0s' $(seq 1 201)) run -78 --separate-stderr dt-entrypoint
	assert_equal "$stderr" "dt-fetch: error: DT_RUN_ID/--run-id: must be 1 to 200 characters"
	assert_equal "$(count 'true')" 0
	assert_equal "$(standin telegram requests | wc -l)" 0
}

@test "entrypoint: DT_LOG_LEVEL holds back its own info lines as it does the stages'" {
	DT_RUN_ID=quiet-1 DT_LOG_LEVEL=warn run -0 --separate-stderr dt-entrypoint
	assert_equal "$stderr" ""
	DT_RUN_ID=quiet-2 run -0 --separate-stderr dt-entrypoint
	[[ ${stderr_lines[0]} == "dt-entrypoint: info: run quiet-2 starting" ]] || fail "$stderr"
}
