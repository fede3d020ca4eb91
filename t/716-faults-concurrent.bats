#!/usr/bin/env bats
# Two whole pipelines started at the same moment over the same backlog
# (a manual Job next to the scheduled one, or the scale-out variant):
# the claims keep them apart, so no row is analyzed twice.

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
	rows 100
	# Slow enough that both runs are claiming and analyzing together.
	standin perplexity script '{"latency_ms": 30}'
}

@test "concurrent: two pipelines started at once over one backlog analyze no row twice" {
	local go=$BATS_TEST_TMPDIR/go a b sa=0 sb=0
	for r in a b; do
		(
			while [ ! -e "$go" ]; do sleep 0.01; done
			DT_RUN_ID=twin-$r DT_RUN_DIR=$BATS_TEST_TMPDIR/run-$r \
				exec timeout 120 dt-entrypoint
		) >"$BATS_TEST_TMPDIR/$r.out" 2>"$BATS_TEST_TMPDIR/$r.err" 3>&- &
		eval "$r=\$!"
	done
	: >"$go"
	wait "$a" || sa=$?
	wait "$b" || sb=$?
	[ "$sa" -eq 0 ] || fail "run a: status $sa: $(cat "$BATS_TEST_TMPDIR/a.err")"
	[ "$sb" -eq 0 ] || fail "run b: status $sb: $(cat "$BATS_TEST_TMPDIR/b.err")"
	# Every row stored once, by one of the two runs, claimed once.
	assert_equal "$(state)" "done	100	100	100"
	assert_equal "$(count "run_id not in ('twin-a', 'twin-b')")" 0
	# Both took part (else this shows nothing about concurrency).
	[ "$(count "run_id = 'twin-a'")" -gt 0 ] || fail "run a stored nothing"
	[ "$(count "run_id = 'twin-b'")" -gt 0 ] || fail "run b stored nothing"
	# Each row went to Perplexity exactly once.
	assert_equal "$(analyses | wc -l)" 100
	assert_equal "$(twice)" 0
	run -0 bash -c "standin perplexity requests | jq -s 'map(.items // 1) | add'"
	assert_output 100
	# Each run counted what it did, and the two add up.
	run -0 jq -s '[.[] | select(.stage == "dt-store") | .counts.stored] | add' \
		"$BATS_TEST_TMPDIR/run-a/store.ndjson" "$BATS_TEST_TMPDIR/run-b/store.ndjson"
	assert_output 100
	assert_equal "$(sql 'select count(*), sum(exit_code) from public.dt_runs')" "2	0"
}
