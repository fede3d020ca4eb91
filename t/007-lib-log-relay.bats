#!/usr/bin/env bats
# dt-log: dt's log lines for the scripts, and the relay that turns other
# programs' lines into them (lib/log.c's format).

bats_require_minimum_version 1.5.0
load test_helper/common

setup() {
	dt_common_setup
}

@test "dt-log: a message in the text and the JSON format" {
	run -0 --separate-stderr dt-log -p dt-entrypoint -l info run r1 starting
	assert_equal "$stderr" "dt-entrypoint: info: run r1 starting"
	assert_output ""
	DT_LOG_FORMAT=json run -0 --separate-stderr dt-log --prog dt-entrypoint --level warning 'say "hi"'
	assert_equal "$(jq -c 'del(.ts)' <<<"$stderr")" '{"prog":"dt-entrypoint","level":"warning","msg":"say \"hi\""}'
	[[ $(jq -r .ts <<<"$stderr") =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$ ]] || fail "$stderr"
	# DT_LOG_LEVEL holds it back like any program's line.
	DT_LOG_LEVEL=error run -0 --separate-stderr dt-log -l info quiet
	assert_equal "$stderr" ""
}

@test "dt-log --relay: JSON lines pass, others become JSON lines with their program and level" {
	printf '%s\n' '{"ts":"t","prog":"dt-fetch","level":"info","msg":"m"}' \
		'parallel: Warning: A record was longer than 1024.' \
		'parallel: Error: gone' \
		'dt-entrypoint: unknown option' \
		'/usr/bin/dt-entrypoint: line 5: x: command not found' \
		'Segmentation fault' '[1]' >"$BATS_TEST_TMPDIR/in"
	DT_LOG_FORMAT=json run -0 --separate-stderr dt-log --relay --prog dt-fanout <"$BATS_TEST_TMPDIR/in"
	assert_equal "$(jq -c 'del(.ts)' <<<"$stderr")" '{"prog":"dt-fetch","level":"info","msg":"m"}
{"prog":"parallel","level":"warning","msg":"A record was longer than 1024."}
{"prog":"parallel","level":"error","msg":"gone"}
{"prog":"dt-entrypoint","level":"error","msg":"unknown option"}
{"prog":"/usr/bin/dt-entrypoint","level":"error","msg":"line 5: x: command not found"}
{"prog":"dt-fanout","level":"error","msg":"Segmentation fault"}
{"prog":"dt-fanout","level":"error","msg":"[1]"}'
	assert_equal "$(jq -r .ts <<<"$stderr" | head -n 1)" t
	# In the text format every line goes on as it came.
	run -0 --separate-stderr dt-log --relay <"$BATS_TEST_TMPDIR/in"
	assert_equal "$stderr" "$(cat "$BATS_TEST_TMPDIR/in")"
}

@test "dt-log --relay: a configured secret in a relayed line is redacted" {
	export TELEGRAM_BOT_TOKEN=123456:relay-secret-token-value
	echo "curl: (6) https://api.telegram.org/bot$TELEGRAM_BOT_TOKEN/sendMessage" >"$BATS_TEST_TMPDIR/in"
	DT_LOG_FORMAT=json run -0 --separate-stderr dt-log -r <"$BATS_TEST_TMPDIR/in"
	assert_equal "$(jq -r .msg <<<"$stderr")" "(6) https://api.telegram.org/bot***/sendMessage"
	printf '%s\n' "$stderr" >"$BATS_TEST_TMPDIR/all"
	assert_no_secret "$TELEGRAM_BOT_TOKEN" "$BATS_TEST_TMPDIR/all"
}

@test "dt-log: --help, --version and usage errors" {
	run -0 dt-log --help
	assert_line --index 0 "usage: dt-log [-hV] [-l level] [-p prog] message ..."
	run -0 dt-log -V
	assert_output "dt-log 0.1.0"
	run -64 --separate-stderr dt-log
	assert_equal "$stderr" "dt-log: no message
Try 'dt-log --help'."
	run -64 --separate-stderr dt-log -l loud x
	assert_equal "${stderr_lines[0]}" "dt-log: --level: 'loud' is not one of error, warning, info, debug, trace"
	run -64 --separate-stderr dt-log -r extra
	assert_equal "${stderr_lines[0]}" "dt-log: --relay takes no message"
}
