#!/usr/bin/env bats
# dt-report sends the report with Telegram's sendMessage (the stand-in).

bats_require_minimum_version 1.5.0
load test_helper/common
load test_helper/report

setup_file() {
	report_standin_start
}

teardown_file() {
	report_standin_stop
}

setup() {
	dt_common_setup
	report_standin_env
	standin telegram reset
	cd "$DT_ROOT"
	export DT_REPORT_SCHEMA=$DT_ROOT/analyze/schema.json
	export DT_RUN_STARTED_AT=2024-05-01T10:00:00Z
	export DT_RUN_FINISHED_AT=2024-05-01T10:04:12.5Z
	export DT_REPORT_RETRY_SECONDS=20
	OUT=$BATS_TEST_TMPDIR
	NBSP=$'\u00a0'
}

# report ARGS...: runs dt-report with stdout and stderr in files.
report() {
	dt-report "$@" >"$OUT/stdout" 2>"$OUT/stderr"
}

# sent: what the stand-in accepted, one message a line.
sent() {
	tg_messages >"$OUT/sent"
	cat "$OUT/sent"
}

@test "dt-report: a clean run is sent once, silently, as HTML with link previews off" {
	run -0 report t/fixtures/report/run-ok.ndjson
	assert_equal "$(cat "$OUT/stderr")" "dt-report: info: report sent to Telegram (1 message, silently)"
	run sent
	assert_equal "${#lines[@]}" 1
	assert_equal "$(jq -c '[.chat_id, .parse_mode, .disable_notification, .link_preview_options]' "$OUT/sent")" \
		'["-1001234567890","HTML",true,{"is_disabled":true}]'
	standin telegram requests | jq -r 'select(.message) | .params.text' >"$OUT/html"
	assert_equal "$(cat "$OUT/html")" "$(cat t/fixtures/report/run-ok.en.html)"
	jq -e '.report == {"lang":"en","messages":1,"parts":1,"sent":true,"notify":false}' "$OUT/stdout" >/dev/null
}

@test "dt-report: a run whose only oddity is rows without text is sent silently as ok" {
	run -0 report t/fixtures/report/run-skipped.ndjson
	assert_equal "$(cat "$OUT/stderr")" "dt-report: info: report sent to Telegram (1 message, silently)"
	assert_equal "$(sent | jq -c '[.disable_notification, (.text | split("\n")[0])]')" '[true,"✅ dt run: ok"]'
}

@test "dt-report: DT_REPORT_NOTIFY=always notifies for a clean run, never silences an alert" {
	run -0 env DT_REPORT_NOTIFY=always dt-report t/fixtures/report/run-ok.ndjson
	run -69 env DT_REPORT_NOTIFY=never dt-report t/fixtures/report/run-failed.ndjson
	assert_equal "$(tg_messages | jq -s -c 'map(.disable_notification)')" '[false,true]'
}

@test "dt-report: a failed run's alert is sent with notification and says what failed" {
	run -69 report t/fixtures/report/run-failed.ndjson
	assert_equal "$(cat "$OUT/stderr")" "dt-report: info: report sent to Telegram (1 message, with notification)"
	sent >/dev/null
	assert_equal "$(jq -r .disable_notification "$OUT/sent")" false
	assert_equal "$(jq -r .text "$OUT/sent")" "❌ dt run: FAILED
Run: 2024-05-01T12-00-00Z-c3d4
Records: 0
Duration: 4${NBSP}min 13${NBSP}s

What failed
• dt-fetch (exit 69, service unavailable): Supabase unavailable, HTTP 503, 0 of 0 rows claimed"
	jq -e '.state == "failed" and .exit_code == 69 and .report.sent' "$OUT/stdout" >/dev/null
}

@test "dt-report: hostile topic strings still make messages Telegram accepts" {
	junk=$(head -c 3750 /dev/urandom | base64 -w0 | head -c 5000)
	jq -nc --arg junk "$junk" '
		["<script>alert(1)</script>", "R&D &amp; &lt &#x41; \"quotes\" '"'"'single'"'"'",
		 "</b></i><b>", "<a href=\"https://example.com\">click</a>", "emoji 🏟🎉👩‍👩‍👧 ✅",
		 "Оплата & <доставка>", "line\nbreak\r\ttab", "bidi \u202Egnp.exe\u202C zero\u200Bwidth",
		 "back\\slash \u0000 nul", $junk, "&", "<", ">", "\"", "🏟"] as $t
		| range(0; $t | length) as $i
		| {id: $i, status: "stored", run_id: "hostile",
		   analysis: {sentiment: "neutral", topics: [$t[$i], $t[($i + 1) % ($t | length)]],
		   language: "xx<&>", action_items: []}}' >"$OUT/in"
	run -0 env DT_REPORT_TOP=20 dt-report "$OUT/in"
	run sent
	assert_equal "${#lines[@]}" 1
	text=$(jq -r .text "$OUT/sent")
	[[ $text == *"<script>alert(1)</script>"* ]] || fail "topic lost: $text"
	[[ $text == *'r&d &amp; &lt &#x41; "quotes"'* ]] || fail "entities were decoded: $text"
	[[ $text == *"оплата & <доставка>"* ]] || fail "Cyrillic topic lost"
	[[ $text == *"emoji 🏟🎉👩‍👩‍👧 ✅"* ]] || fail "emoji lost"
	[[ $text == *"line break tab"* ]] || fail "line breaks in a topic were not flattened"
	[[ $text == *"xx<&> 100%"* ]] || fail "label not escaped"
	[[ $text != *$'\u202E'* ]] || fail "a bidi override got through"
	# The 5,000-character topic is cut to 48 characters and an ellipsis.
	cut=$(printf '%s' "$junk" | tr 'A-Z' 'a-z' | head -c 48)
	[[ $text == *"$cut…"* ]] || fail "junk topic not clipped"
	[ "$(jq -r .utf16_len "$OUT/sent")" -lt 4096 ]
}

@test "dt-report: a long report is split at line boundaries into messages under 4096 UTF-16 units" {
	awk 'BEGIN { for (i = 0; i < 400; i++) for (j = 0; j <= i % 7; j++)
		printf "{\"id\":%d,\"status\":\"stored\",\"analysis\":{\"topics\":[\"тема %03d <ёжик> & 🏟🏟🏟 long topic text\"]}}\n", i * 10 + j, i }' >"$OUT/in"
	run -0 env DT_REPORT_TOP=400 DT_REPORT_NOTIFY=always dt-report --message-file "$OUT/msgs" "$OUT/in"
	run sent
	n=${#lines[@]}
	[ "$n" -ge 4 ] || fail "only $n messages"
	assert_equal "$(jq -s -c 'map(.utf16_len <= 4096) | all' "$OUT/sent")" true
	assert_equal "$(jq -s -c 'map(.disable_notification)' "$OUT/sent" | jq -c 'unique')" '[false,true]'
	assert_equal "$(jq -s -c '.[0].disable_notification' "$OUT/sent")" false
	for i in $(seq 2 "$n"); do
		assert_equal "$(jq -r -s ".[$((i - 1))].text | split(\"\n\")[0]" "$OUT/sent")" "part $i of $n"
	done
	# Every topic line arrives once, in order, never cut.
	jq -r -s '.[].text' "$OUT/sent" | grep -E '^[0-9]+\. ' >"$OUT/lines"
	assert_equal "$(wc -l <"$OUT/lines")" 400
	assert_equal "$(cut -d' ' -f1 "$OUT/lines" | tr -d . | paste -sd,)" "$(seq 400 | paste -sd,)"
	grep -qvE '^[0-9]+\. тема [0-9]{3} <ёжик> & 🏟🏟🏟 long topic text — [0-9]+$' "$OUT/lines" &&
		fail "a topic line was cut: $(grep -vE '— [0-9]+$' "$OUT/lines" | head -1)"
	# The message file holds the same HTML, parts separated.
	assert_equal "$(grep -c '^-- 8< --$' "$OUT/msgs")" "$((n - 1))"
}

@test "dt-report: 429 waits parameters.retry_after, then sends" {
	standin telegram script '{"fail_429":2,"retry_after":1}'
	start=$(date +%s%N)
	run -0 report t/fixtures/report/run-ok.ndjson
	elapsed=$((($(date +%s%N) - start) / 1000000))
	[ "$elapsed" -ge 2000 ] || fail "did not wait: $elapsed ms"
	assert_equal "$(cat "$OUT/stderr")" "dt-report: warning: telegram: sendMessage: HTTP 429: Too Many Requests: retry after 1; retrying in 1.0 s (7 of 8 tries left)
dt-report: warning: telegram: sendMessage: HTTP 429: Too Many Requests: retry after 1; retrying in 1.0 s (6 of 8 tries left)
dt-report: info: report sent to Telegram (1 message, silently)"
	run sent
	assert_equal "${#lines[@]}" 1
}

@test "dt-report: a retry_after past the retry limit is reported, quoting Telegram" {
	standin telegram script '{"fail_429":1,"retry_after":30}'
	run -75 --separate-stderr env DT_REPORT_RETRY_SECONDS=2 dt-report t/fixtures/report/run-ok.ndjson
	assert_equal "$stderr" "dt-report: error: telegram: sendMessage: HTTP 429: Too Many Requests: retry after 30; giving up: waiting 30.0 s more would pass the 2 s retry limit (DT_REPORT_RETRY_SECONDS)"
	jq -e '.report.sent == false and .exit_code == 75' <<<"$output" >/dev/null
	run sent
	assert_equal "${#lines[@]}" 0
}

@test "dt-report: a 5xx is retried" {
	standin telegram script '{"fail_5xx":1,"status_5xx":502}'
	run -0 report t/fixtures/report/run-ok.ndjson
	grep -qE '^dt-report: warning: telegram: sendMessage: HTTP 502: Bad Gateway; retrying in [0-9.]+ s \(7 of 8 tries left\)$' "$OUT/stderr"
	run sent
	assert_equal "${#lines[@]}" 1
}

@test "dt-report: other 4xx fail at once with Telegram's description and 78" {
	standin telegram script '{"chats":["-100999"]}'
	run -78 --separate-stderr dt-report t/fixtures/report/run-ok.ndjson
	assert_equal "$stderr" "dt-report: error: telegram: sendMessage: HTTP 400: Bad Request: chat not found"
	assert_equal "$(standin telegram requests | jq -s length)" 1
}

@test "dt-report: a wrong token is 401 Unauthorized, and the token never shows" {
	run -78 --separate-stderr env TELEGRAM_BOT_TOKEN=999:wrong-token-value dt-report -vv t/fixtures/report/run-ok.ndjson
	[[ $stderr == *"dt-report: error: telegram: sendMessage: HTTP 401: Unauthorized"* ]]
	printf '%s\n%s\n' "$output" "$stderr" >"$OUT/all"
	assert_no_secret "wrong-token-value" "$OUT/all"
}

@test "dt-report: no part of a bot token holding a '/' shows, even with -vv" {
	local token=999:first-part/second-part-tail
	# The stand-in, as Telegram, finds no such method: 404.
	run -78 --separate-stderr env TELEGRAM_BOT_TOKEN=$token dt-report -vv t/fixtures/report/run-ok.ndjson
	[[ $stderr == *"dt-report: error: telegram: sendMessage: HTTP 404: Not Found"* ]] || fail "$stderr"
	# The request was logged, masked.
	[[ $stderr == *"/bot***/sendMessage"* ]] || fail "$stderr"
	printf '%s\n%s\n' "$output" "$stderr" >"$OUT/all"
	assert_no_secret "first-part" "$OUT/all"
	assert_no_secret "second-part" "$OUT/all"
	assert_no_secret "part-tail" "$OUT/all"
}

@test "dt-report: the bot token appears in no output, even with -vv and a failing request" {
	standin telegram script '{"fail_5xx":1,"fail_429":0}'
	run -0 --separate-stderr dt-report -vv t/fixtures/report/run-ok.ndjson
	printf '%s\n%s\n' "$output" "$stderr" >"$OUT/all"
	grep -q '/bot\*\*\*/sendMessage' "$OUT/all"
	assert_no_secret "$TELEGRAM_BOT_TOKEN" "$OUT/all"
	assert_no_secret "${TELEGRAM_BOT_TOKEN#*:}" "$OUT/all"
	# The token from a file (TELEGRAM_BOT_TOKEN_FILE) is as secret.
	printf '%s\n' "$TELEGRAM_BOT_TOKEN" >"$OUT/token"
	run -0 --separate-stderr env -u TELEGRAM_BOT_TOKEN TELEGRAM_BOT_TOKEN_FILE="$OUT/token" \
		dt-report -vv t/fixtures/report/run-ok.ndjson
	printf '%s\n%s\n' "$output" "$stderr" >"$OUT/all"
	assert_no_secret "$TELEGRAM_BOT_TOKEN" "$OUT/all"
}

@test "dt-report: Telegram down is 69 after the retries" {
	port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	run -69 --separate-stderr env TELEGRAM_API_URL="http://127.0.0.1:$port" DT_REPORT_RETRY_SECONDS=1 \
		dt-report t/fixtures/report/run-ok.ndjson
	[[ ${stderr_lines[-1]} == "dt-report: error: telegram: sendMessage: "*"Could"*"connect"* ]] ||
		fail "$stderr"
	jq -e '.report.sent == false and .exit_code == 69' <<<"$output" >/dev/null
}

@test "dt-report: a hung Telegram times out (TIMEOUT_SECONDS)" {
	standin telegram script '{"hang":1,"hang_seconds":5}'
	run -69 --separate-stderr env TIMEOUT_SECONDS=1 DT_REPORT_RETRY_SECONDS=0 dt-report t/fixtures/report/run-ok.ndjson
	[[ $stderr == "dt-report: error: telegram: sendMessage: no complete response within 1000 ms; giving up: waiting "* ]] ||
		fail "$stderr"
	# The stand-in records the call once its hang is over: wait for it
	# here, so that it does not land among a later test's requests.
	for _ in $(seq 100); do
		[ "$(standin telegram requests | jq -s length)" -ge 1 ] && break
		sleep 0.1
	done
}

@test "dt-report: @channel chat ids and forum threads" {
	run -0 env TELEGRAM_CHAT_ID=@dt_reports TELEGRAM_THREAD_ID=42 dt-report t/fixtures/report/run-ok.ndjson
	assert_equal "$(tg_messages | jq -c '[.chat_id, .message_thread_id]')" '["@dt_reports",42]'
	# A username of 32 characters, the longest Telegram has, goes whole.
	chat=@a$(printf 'b%.0s' $(seq 31))
	run -0 env TELEGRAM_CHAT_ID="$chat" dt-report t/fixtures/report/run-ok.ndjson
	assert_equal "$(tg_messages | jq -s -r 'last.chat_id')" "$chat"
	run -78 --separate-stderr env TELEGRAM_THREAD_ID=x dt-report t/fixtures/report/run-ok.ndjson
	assert_equal "$stderr" "dt-report: error: TELEGRAM_THREAD_ID: 'x' is not a whole number (1 to 2147483647)"
}

@test "dt-report: a group upgraded to a supergroup gets the report at its new id" {
	standin telegram script '{"migrate":{"-4001":-1004001}}'
	run -0 --separate-stderr env TELEGRAM_CHAT_ID=-4001 dt-report t/fixtures/report/run-ok.ndjson
	assert_equal "${stderr_lines[0]}" "dt-report: warning: telegram: chat -4001 was upgraded to a supergroup; sending to -1004001 instead: set TELEGRAM_CHAT_ID=-1004001"
	assert_equal "$(tg_messages | jq -r .chat_id)" -1004001
}

@test "dt-report: --dry-run sends nothing" {
	run -0 --separate-stderr dt-report -n --message-file "$OUT/m" t/fixtures/report/run-ok.ndjson
	assert_equal "$stderr" ""
	assert_equal "$(standin telegram requests | jq -s length)" 0
	assert_equal "$(cat "$OUT/m")" "$(cat t/fixtures/report/run-ok.en.html)"
}

# empty_run_messages: disable_notification of each message about run empty-1.
empty_run_messages() {
	tg_messages | jq -s -c 'map(select(.text | contains("empty-1")) | .disable_notification)'
}

@test "dt-report: a run with nothing to do sends no message under DT_REPORT_NOTIFY=problems" {
	empty=$OUT/empty.ndjson
	printf '%s\n' \
		'{"stage":"dt-fetch","run_id":"empty-1","status":0,"message":null,"counts":{"claimed":0,"batches":1,"text_cut":0},"interrupted":false}' \
		'{"stage":"dt-analyze","run_id":"empty-1","status":0,"message":null,"counts":{"records":0,"analyzed":0,"errors":0,"passed":0,"bad":0},"tokens":0,"cost_usd":0,"interrupted":false}' \
		'{"stage":"dt-store","run_id":"empty-1","status":0,"message":null,"counts":{"records":0,"stored":0},"interrupted":false}' >"$empty"
	run -0 report "$empty"
	assert_equal "$(cat "$OUT/stderr")" "dt-report: info: nothing to report (no records, no problems): no Telegram message under DT_REPORT_NOTIFY=problems"
	jq -e '.records == 0 and .state == "ok" and .report.sent == false and .report.notify == false' "$OUT/stdout" >/dev/null
	# (Messages of this run only: the hung call of an earlier test may
	# still be answered meanwhile.)
	assert_equal "$(empty_run_messages)" "[]"
	# Asked for always, it is sent; with a problem, it is an alert.
	DT_REPORT_NOTIFY=always run -0 report "$empty"
	assert_equal "$(empty_run_messages)" "[false]"
	sed -i '1s/"status":0,"message":null/"status":69,"message":"Supabase unavailable"/' "$empty"
	run -69 report "$empty"
	assert_equal "$(empty_run_messages)" "[false,false]"
}
