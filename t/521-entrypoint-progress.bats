#!/usr/bin/env bats
# A long run talks: dt-store's progress line every DT_PROGRESS_SECONDS,
# in both log formats, against the local stack with a slow Perplexity.

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
	rows 20
	# One worker, one record a call and 300 ms a call: the run takes at
	# least 6 s.
	standin perplexity script '{"latency_ms": 300}'
	export MAX_WORKERS=1 BATCH_SIZE=5 DT_STORE_BATCH=5 DT_PACK=1
	OUT=$BATS_TEST_TMPDIR
}

# progress_lines FILE: the progress lines of dt-store in a text log.
progress_lines() {
	grep '^dt-store: info: progress: ' "$1" || true
}

line_re='^dt-store: info: progress: ([0-9]+) done, ([0-9]+) failed, ([0-9]+) skipped in [0-9]+\.[0-9] min \([0-9]+\.[0-9] a minute\); ([0-9]+\.[0-9]{4}) USD so far; (about [0-9.]+ (s|min|h) left \(([0-9]+) of (at most )?([0-9]+) rows\)|at most [0-9.]+ (s|min|h) left \(the deadline\))$'

@test "progress: a line every DT_PROGRESS_SECONDS with done, failed, skipped, rate, cost and time left" {
	DT_PROGRESS_SECONDS=1 DT_RUN_ID=slow-1 run -0 --separate-stderr dt-entrypoint
	printf '%s\n' "${stderr_lines[@]}" >"$OUT/log"
	progress_lines "$OUT/log" >"$OUT/progress"
	n=$(wc -l <"$OUT/progress")
	[ "$n" -ge 3 ] || fail "$n progress lines in a run of 6 s or more: $(cat "$OUT/log")"
	prev_done=0 prev_cost=0 with_total=0
	while IFS= read -r l; do
		[[ $l =~ $line_re ]] || fail "not a progress line: $l"
		done_=${BASH_REMATCH[1]} cost=${BASH_REMATCH[4]}
		[ "$done_" -ge "$prev_done" ] && [ "$done_" -le 20 ] || fail "done went $prev_done -> $done_"
		awk -v a="$prev_cost" -v b="$cost" 'BEGIN { exit !(b >= a) }' || fail "cost went $prev_cost -> $cost"
		[ "${BASH_REMATCH[2]}${BASH_REMATCH[3]}" = 00 ] || fail "failed or skipped in a clean run: $l"
		# Once dt-fetch has said how many it claimed, the estimate uses it.
		[ "${BASH_REMATCH[9]}" != 20 ] || with_total=$((with_total + 1))
		prev_done=$done_ prev_cost=$cost
	done <"$OUT/progress"
	[ "$with_total" -ge 1 ] || fail "no line counted against the 20 rows claimed: $(cat "$OUT/progress")"
	awk -v c="$prev_cost" 'BEGIN { exit !(c > 0) }' || fail "no cost so far: $prev_cost"
	assert_equal "$(state)" "done	20	20	20"
}

@test "progress: failed rows are counted as failed" {
	# Rows 1-3 fail the schema on every try: failed (retry) in this run.
	standin perplexity script '{"latency_ms": 300, "faults": [{"kind": "schema_violation", "match": "fault row 1\n"}, {"kind": "schema_violation", "match": "fault row 2\n"}, {"kind": "schema_violation", "match": "fault row 3\n"}]}'
	DT_PROGRESS_SECONDS=1 DT_RUN_ID=slow-2 run -1 --separate-stderr dt-entrypoint
	printf '%s\n' "${stderr_lines[@]}" >"$OUT/log"
	progress_lines "$OUT/log" | tail -1 >"$OUT/last"
	[[ $(cat "$OUT/last") =~ $line_re ]] || fail "$(cat "$OUT/log")"
	[ "${BASH_REMATCH[2]}" -ge 1 ] || fail "no failed row counted: $(cat "$OUT/last")"
}

@test "progress: DT_LOG_FORMAT=json gives the same line as a JSON object" {
	DT_LOG_FORMAT=json DT_PROGRESS_SECONDS=1 DT_RUN_ID=slow-3 run -0 --separate-stderr dt-entrypoint
	printf '%s\n' "${stderr_lines[@]}" | jq -R -c 'fromjson? | select(.prog == "dt-store" and (.msg | startswith("progress: ")))' >"$OUT/progress"
	[ "$(wc -l <"$OUT/progress")" -ge 3 ] || fail "$(printf '%s\n' "${stderr_lines[@]}")"
	jq -r '"\(.prog): \(.level): \(.msg)"' "$OUT/progress" >"$OUT/text"
	while IFS= read -r l; do
		[[ $l =~ $line_re ]] || fail "not a progress line: $l"
	done <"$OUT/text"
	jq -e -s 'all(.[]; .ts != null)' "$OUT/progress" >/dev/null
}

@test "progress: none in a run shorter than DT_PROGRESS_SECONDS (60 by default), none with 0" {
	DT_RUN_ID=quiet-1 run -0 --separate-stderr dt-entrypoint
	refute_output --partial "progress:"
	[[ $stderr != *"progress: "* ]] || fail "$stderr"
	rows 20
	standin perplexity script '{"latency_ms": 300}'
	DT_PROGRESS_SECONDS=0 DT_RUN_ID=quiet-2 run -0 --separate-stderr dt-entrypoint
	[[ $stderr != *"progress: "* ]] || fail "$stderr"
}

@test "progress: a bad DT_PROGRESS_SECONDS is a configuration error" {
	DT_PROGRESS_SECONDS=soon run -78 --separate-stderr dt-entrypoint
	[[ $stderr == *"DT_PROGRESS_SECONDS"* ]] || fail "$stderr"
	assert_equal "$(count true)" 0
}
