#!/usr/bin/env bats
# lib/log.sh: dt's log lines for the scripts (dt_log), and the relay that
# turns other programs' lines into them (dt_log_relay), in lib/log.c's
# format.  The scripts source it from the build's share/dt/log.sh.

bats_require_minimum_version 1.5.0
load test_helper/common

setup() {
	dt_common_setup
}

# dt-log ARGS...: the functions as the scripts call them, in a new shell
# with the environment of the test: "-l LEVEL -p PROG words..." or "-r -p
# PROG".
dt-log() {
	bash -c '. "$DT_BUILD/share/dt/log.sh"
		level=error prog=dt-log relay=
		while [ $# -gt 0 ]; do
			case $1 in
			-l | --level) level=$2; shift 2 ;;
			-p | --prog) prog=$2; shift 2 ;;
			-r | --relay) relay=1; shift ;;
			*) break ;;
			esac
		done
		if [ -n "$relay" ]; then dt_log_relay "$prog"; else dt_log "$prog" "$level" "$@"; fi' dt-log "$@"
}

@test "dt_log: a message in the text and the JSON format" {
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

@test "dt_log_relay: JSON lines pass, others become JSON lines with their program and level" {
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

@test "dt_log_relay: a configured secret in a relayed line is redacted" {
	export TELEGRAM_BOT_TOKEN=123456:relay-secret-token-value
	echo "curl: (6) https://api.telegram.org/bot$TELEGRAM_BOT_TOKEN/sendMessage" >"$BATS_TEST_TMPDIR/in"
	DT_LOG_FORMAT=json run -0 --separate-stderr dt-log -r <"$BATS_TEST_TMPDIR/in"
	assert_equal "$(jq -r .msg <<<"$stderr")" "(6) https://api.telegram.org/bot***/sendMessage"
	printf '%s\n' "$stderr" >"$BATS_TEST_TMPDIR/all"
	assert_no_secret "$TELEGRAM_BOT_TOKEN" "$BATS_TEST_TMPDIR/all"
}

@test "dt_log_relay: a secret from a *_FILE and control characters" {
	printf 'sb_secret_%s\n' filekeyfilekey >"$BATS_TEST_TMPDIR/key"
	export SUPABASE_KEY_FILE=$BATS_TEST_TMPDIR/key
	printf 'x: error: key sb_secret_filekeyfilekey\tand \001 bell\n' >"$BATS_TEST_TMPDIR/in"
	DT_LOG_FORMAT=json run -0 --separate-stderr dt-log -r <"$BATS_TEST_TMPDIR/in"
	assert_equal "$(jq -c 'del(.ts)' <<<"$stderr")" '{"prog":"x","level":"error","msg":"key ***\tand \u0001 bell"}'
}

@test "dt_log: the time stamp is UTC whatever TZ says" {
	before=$(date -u +%Y-%m-%dT%H)
	TZ=Pacific/Kiritimati DT_LOG_FORMAT=json run -0 --separate-stderr dt-log -l error now
	after=$(date -u +%Y-%m-%dT%H)
	ts=$(jq -r .ts <<<"$stderr")
	[[ $ts == "$before"* || $ts == "$after"* ]] || fail "$stderr (want $before...)"
}
