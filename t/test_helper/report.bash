# Helpers for the t/4xx-report-*.bats files: a private Telegram stand-in.
#
#   load test_helper/report
#   setup_file() { report_standin_start; }
#   teardown_file() { report_standin_stop; }
#
# report_standin_start starts t/stack/telegram-standin on a free loopback
# port and exports what t/stack/up would: TELEGRAM_API_URL,
# TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID.  common.bash clears TELEGRAM_*
# in every test, so each test's setup calls report_standin_env to export
# them again.

report_standin_start() {
	local dir=$BATS_FILE_TMPDIR/telegram
	mkdir -p "$dir"
	TELEGRAM_BOT_TOKEN="123456789:AAH-standin-$$-$RANDOM$RANDOM-secret"
	export TELEGRAM_BOT_TOKEN
	DT_STANDIN_KEY=$TELEGRAM_BOT_TOKEN "$DT_ROOT/t/stack/telegram-standin" \
		--listen 127.0.0.1:0 --port-file "$dir/port" \
		</dev/null >"$dir/log" 2>&1 3>&- &
	echo $! >"$dir/pid"
	for _ in $(seq 100); do
		[ -s "$dir/port" ] && break
		sleep 0.1
	done
	[ -s "$dir/port" ] || {
		cat "$dir/log" >&2
		return 1
	}
	TELEGRAM_API_URL=http://127.0.0.1:$(cat "$dir/port")
	export TELEGRAM_API_URL
	export TELEGRAM_CHAT_ID=-1001234567890
	declare -p TELEGRAM_API_URL TELEGRAM_BOT_TOKEN TELEGRAM_CHAT_ID |
		sed 's/^declare -x/export/' >"$dir/env"
}

report_standin_env() {
	# shellcheck disable=SC1091
	. "$BATS_FILE_TMPDIR/telegram/env"
}

report_standin_stop() {
	local pid
	pid=$(cat "$BATS_FILE_TMPDIR/telegram/pid" 2>/dev/null) || return 0
	kill "$pid" 2>/dev/null || true
}

# tg_send JSON [CURL-OPTION...]: posts JSON to sendMessage with the right
# token; the body lands in $BATS_TEST_TMPDIR/resp, the status in
# $BATS_TEST_TMPDIR/code.
tg_send() {
	local json=$1
	shift
	curl -sS -o "$BATS_TEST_TMPDIR/resp" -w '%{http_code}' \
		-H 'Content-Type: application/json' --data-binary "$json" "$@" \
		"$TELEGRAM_API_URL/bot$TELEGRAM_BOT_TOKEN/sendMessage" \
		>"$BATS_TEST_TMPDIR/code"
}

# tg_messages: the messages the stand-in accepted, one JSON object a line.
tg_messages() {
	standin telegram requests | jq -c 'select(.message) | .message'
}
