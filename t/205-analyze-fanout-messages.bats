#!/usr/bin/env bats
# dt-fanout's own messages: each once, not once per worker; JSON logs
# for GNU parallel's lines too.

bats_require_minimum_version 1.5.0
load test_helper/common
load test_helper/perplexity

setup_file() { pplx_start; }
teardown_file() { pplx_stop; }

setup() {
	dt_common_setup
	pplx_env
	PATH=$DT_ROOT/analyze:$PATH
	echo '{"id":1,"text":"hello"}' >"$BATS_TEST_TMPDIR/in"
}

@test "dt-fanout: --version prints its own version, once" {
	run -0 --separate-stderr dt-fanout --version
	assert_output "dt-fanout 0.1.0"
	assert_equal "$stderr" ""
	run -0 --separate-stderr dt-fanout -V
	assert_output "dt-fanout 0.1.0"
}

@test "dt-fanout: each configuration problem is named once, not once per worker, and nothing is analyzed" {
	run -78 --separate-stderr env -u PERPLEXITY_API_KEY DT_RPM=abc \
		dt-fanout -j 5 <"$BATS_TEST_TMPDIR/in"
	assert_equal "$stderr" "dt-analyze: error: DT_RPM: 'abc' is not a whole number (0 to 1000000)"
	assert_output ""
	assert_equal "$(pplx requests | wc -l)" 0
	run -78 --separate-stderr env -u PERPLEXITY_API_KEY dt-fanout -j 5 <"$BATS_TEST_TMPDIR/in"
	assert_equal "$stderr" "dt-analyze: error: PERPLEXITY_API_KEY (or PERPLEXITY_API_KEY_FILE) is not set"
}

@test "dt-fanout: under DT_LOG_FORMAT=json GNU parallel's warnings are JSON lines like the workers'" {
	# A record longer than parallel's block makes it warn (the first
	# group, here one record, goes to dt-fanout's own job, not parallel).
	jq -nc '{id: 0, text: "first"}, {id: 1, text: ("long " * 1000)}, {id: 2, text: "short"}' >"$BATS_TEST_TMPDIR/in"
	DT_PACK=1 DT_MAX_TEXT_BYTES=100000 DT_LOG_FORMAT=json DT_LOG_LEVEL=debug \
		run -0 --separate-stderr dt-fanout -j 2 <"$BATS_TEST_TMPDIR/in"
	printf '%s\n' "$stderr" >"$BATS_TEST_TMPDIR/err"
	# Every line is an object with the four keys of lib/log.c.
	run -0 jq -c 'select(type != "object" or (keys | sort) != ["level","msg","prog","ts"])' "$BATS_TEST_TMPDIR/err"
	assert_output ""
	run -0 jq -r 'select(.prog == "parallel") | "\(.level) \(.msg)"' "$BATS_TEST_TMPDIR/err"
	assert_line --index 0 "warning A record was longer than 1024. Increasing to --blocksize 1333."
	# The workers' lines came through too.
	grep -q '"prog":"dt-analyze","level":"debug"' "$BATS_TEST_TMPDIR/err" || fail "$(cat "$BATS_TEST_TMPDIR/err")"
}

@test "dt-fanout: in text format GNU parallel's lines stay as they were" {
	jq -nc '{id: 0, text: "first"}, {id: 1, text: ("long " * 1000)}' >"$BATS_TEST_TMPDIR/in"
	DT_PACK=1 DT_MAX_TEXT_BYTES=100000 run -0 --separate-stderr dt-fanout -j 2 <"$BATS_TEST_TMPDIR/in"
	assert_equal "${stderr_lines[0]}" "parallel: Warning: A record was longer than 1024. Increasing to --blocksize 1333."
}
