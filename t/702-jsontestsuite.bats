#!/usr/bin/env bats
# The JSONTestSuite parsing cases (y_ must be accepted, n_ rejected, i_
# either) fed to the NDJSON reader and to every stage that reads NDJSON:
# no crash, no hang, and every accept/reject verdict as listed in
# t/fixtures/jsontestsuite/ (deviations explained in docs/proof.md).
#
# The cases are read from ../shared/testdata/JSONTestSuite/test_parsing
# beside the project; every test skips, saying so, when they are absent.
#
# Each case is fed two ways:
#   raw      the file as it is on disk: the reader splits it into lines
#            by its own rules, so a multi-line case is several lines and
#            a case that is not an object is a bad line;
#   records  one NDJSON record per case, {"id":N,...,"doc":CASE}, with
#            line feeds outside strings made spaces (those inside strings
#            are left, so such a case stays split): this is where the
#            verdicts come from.

load test_helper/common

SUITE=$DT_ROOT/../shared/testdata/JSONTestSuite/test_parsing
JTS=$DT_ROOT/t/test_helper/jsontestsuite
# A whole-suite run takes well under a second; far longer is a hang.
LIMIT=120

setup_file() {
	[ -d "$SUITE" ] || return 0
	"$JTS" records "$SUITE" "$BATS_FILE_TMPDIR/records"
}

setup() {
	dt_common_setup
	[ -d "$SUITE" ] ||
		skip "JSONTestSuite not found at $SUITE: skipped (see docs/proof.md)"
	records=("$BATS_FILE_TMPDIR"/records/*.json)
	raw=("$SUITE"/*.json)
	[ "${#raw[@]}" -eq 318 ] || fail "expected 318 cases in $SUITE, found ${#raw[@]}"
	export DT_PROMPT_FILE=$DT_ROOT/analyze/prompt.txt
	export DT_SCHEMA_FILE=$DT_ROOT/analyze/schema.json
	export SUPABASE_URL=http://127.0.0.1:9 SUPABASE_KEY=jsontestsuite-service-key
	export DT_REPORT_TOP=1000
}

# expect_status WANT: after "run timeout ...", fails unless the status is
# WANT; on a crash or a hang it reruns every case alone to name it.
# CMD holds the command (an array) that ran.
expect_status() {
	local want=$1 f st bad=()
	[ "$status" -eq "$want" ] && return 0
	for f in "${files[@]}"; do
		st=0
		timeout 10 "${cmd[@]}" "$f" >/dev/null 2>&1 </dev/null || st=$?
		case $st in 0 | 1 | 65) ;; *) bad+=("${f##*/}: status $st") ;; esac
	done
	fail "$(printf '%s\n' "${cmd[*]##*/} over ${#files[@]} files: status $status, expected $want" \
		"cases alone that crashed, hung or failed to write:" "${bad[@]:-(none alone)}" \
		"stderr, less the bad-line warnings:" \
		"$(grep -v ': warning: ' <<<"$stderr" | head -n 20)")"
}

# verdicts GOLDEN: compares verdicts.txt with t/fixtures/jsontestsuite/GOLDEN
# (without "run", so that $output and $lines stay the program's).
verdicts() {
	diff -u "$DT_ROOT/t/fixtures/jsontestsuite/$1" "$BATS_TEST_TMPDIR/verdicts.txt" ||
		fail "verdicts differ from t/fixtures/jsontestsuite/$1 (diff above)"
}

@test "JSONTestSuite: the NDJSON reader's verdicts on the 318 cases are as listed" {
	files=("${records[@]}")
	cmd=(ndjson-cat)
	run --separate-stderr timeout "$LIMIT" "${cmd[@]}" "${files[@]}"
	expect_status 65
	printf '%s\n' "$output" >"$BATS_TEST_TMPDIR/out"
	"$JTS" verdicts "$SUITE" "$BATS_TEST_TMPDIR/out" >"$BATS_TEST_TMPDIR/verdicts.txt"
	verdicts reader.verdicts
	# One output line per input line: a record or a bad_record error.
	assert_equal "${#lines[@]}" "$("$JTS" lines "$BATS_FILE_TMPDIR/records")"
}

@test "JSONTestSuite: the NDJSON reader reads every case as it is on disk" {
	files=("${raw[@]}")
	cmd=(ndjson-cat)
	run --separate-stderr timeout "$LIMIT" "${cmd[@]}" "${files[@]}"
	expect_status 65
	assert_equal "${#lines[@]}" "$("$JTS" lines "$SUITE")"
	# Only cases that are one JSON object on one line become records
	# (i_structure_UTF-8_BOM_empty_object.json too: a byte order mark
	# that starts an input is skipped).
	run -0 jq -sc '[.[] | select(has("error") | not)] | length' <<<"$output"
	assert_output 11
}

@test "JSONTestSuite: dt-analyze --dry-run reads every case, verdicts as the reader's" {
	files=("${records[@]}")
	cmd=(dt-analyze --dry-run)
	run --separate-stderr timeout "$LIMIT" "${cmd[@]}" "${files[@]}"
	expect_status 65
	printf '%s\n' "${lines[@]:0:${#lines[@]}-1}" >"$BATS_TEST_TMPDIR/out"
	"$JTS" verdicts "$SUITE" "$BATS_TEST_TMPDIR/out" >"$BATS_TEST_TMPDIR/verdicts.txt"
	verdicts reader.verdicts
	run -0 jq -c '[.stage, .counts.records, .counts.bad]' <<<"${lines[-1]}"
	assert_output "[\"dt-analyze\",$("$JTS" lines "$BATS_FILE_TMPDIR/records"),221]"

	files=("${raw[@]}")
	run --separate-stderr timeout "$LIMIT" "${cmd[@]}" "${files[@]}"
	expect_status 65
	run -0 jq -c '[.stage, .counts.records, .counts.bad]' <<<"${lines[-1]}"
	assert_output "[\"dt-analyze\",$("$JTS" lines "$SUITE"),312]"
}

@test "JSONTestSuite: dt-store --dry-run reads every case, one status line per line" {
	files=("${records[@]}")
	cmd=(dt-store --dry-run)
	run --separate-stderr timeout "$LIMIT" "${cmd[@]}" "${files[@]}"
	expect_status 65
	printf '%s\n' "${lines[@]:0:${#lines[@]}-1}" >"$BATS_TEST_TMPDIR/out"
	"$JTS" verdicts "$SUITE" "$BATS_TEST_TMPDIR/out" >"$BATS_TEST_TMPDIR/verdicts.txt"
	verdicts reader.verdicts
	assert_equal "$((${#lines[@]} - 1))" "$("$JTS" lines "$BATS_FILE_TMPDIR/records")"

	files=("${raw[@]}")
	run --separate-stderr timeout "$LIMIT" "${cmd[@]}" "${files[@]}"
	expect_status 65
	assert_equal "$((${#lines[@]} - 1))" "$("$JTS" lines "$SUITE")"
	run -0 jq -c '[.stage, .counts.bad]' <<<"${lines[-1]}"
	assert_output "[\"dt-store\",$("$JTS" lines "$SUITE")]"
}

@test "JSONTestSuite: dt-report --dry-run reads every case, verdicts as the reader's" {
	files=("${records[@]}")
	cmd=(dt-report --dry-run)
	run --separate-stderr timeout "$LIMIT" "${cmd[@]}" "${files[@]}"
	expect_status 65
	printf '%s\n' "$output" >"$BATS_TEST_TMPDIR/summary"
	"$JTS" report-verdicts "$SUITE" "$BATS_TEST_TMPDIR/summary" >"$BATS_TEST_TMPDIR/verdicts.txt"
	verdicts reader.verdicts
	run -0 jq '.records + .bad_lines' "$BATS_TEST_TMPDIR/summary"
	assert_output "$("$JTS" lines "$BATS_FILE_TMPDIR/records")"

	files=("${raw[@]}")
	run --separate-stderr timeout "$LIMIT" "${cmd[@]}" "${files[@]}"
	expect_status 65
	run -0 jq -c '[.records, .bad_lines]' <<<"$output"
	assert_output "[11,312]"
}
