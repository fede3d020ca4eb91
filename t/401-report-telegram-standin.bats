#!/usr/bin/env bats
# The Telegram stand-in behaves like the Bot API's sendMessage.

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
}

resp() { cat "$BATS_TEST_TMPDIR/resp"; }
code() { cat "$BATS_TEST_TMPDIR/code"; }

# send_html TEXT: sends TEXT with parse_mode HTML to the default chat.
send_html() {
	tg_send "$(jq -cn --arg t "$1" --arg c "$TELEGRAM_CHAT_ID" \
		'{chat_id: $c, text: $t, parse_mode: "HTML"}')"
}

# assert_rejected DESCRIPTION: the last answer was a 400 with it.
assert_rejected() {
	[ "$(code)" = 400 ] || fail "status $(code), body $(resp)"
	assert_equal "$(jq -c . "$BATS_TEST_TMPDIR/resp")" \
		"$(jq -cn --arg d "$1" '{ok: false, error_code: 400, description: $d}')"
}

@test "telegram-standin: a wrong token gets 401 Unauthorized" {
	curl -sS -o "$BATS_TEST_TMPDIR/resp" -w '%{http_code}' \
		-d chat_id=1 -d text=hi "$TELEGRAM_API_URL/bot123:wrong/sendMessage" \
		>"$BATS_TEST_TMPDIR/code"
	assert_equal "$(code)" 401
	assert_equal "$(resp)" '{"ok": false, "error_code": 401, "description": "Unauthorized"}'
}

@test "telegram-standin: accepts HTML, records the parsed text and entities" {
	send_html '<b>Run</b> 5 &lt; 7 &amp; &quot;ok&quot; 🏟 <i>done</i>'
	assert_equal "$(code)" 200
	run jq -c '[.ok, .result.text, .result.entities]' "$BATS_TEST_TMPDIR/resp"
	assert_output '[true,"Run 5 < 7 & \"ok\" 🏟 done",[{"type":"bold","offset":0,"length":3},{"type":"italic","offset":20,"length":4}]]'
	run tg_messages
	assert_success
	assert_equal "$(jq -c '[.chat_id, .utf16_len, .disable_notification]' <<<"$output")" \
		'["-1001234567890",24,false]'
}

@test "telegram-standin: never records the token" {
	send_html 'x'
	standin telegram requests >"$BATS_TEST_TMPDIR/recorded"
	assert_no_secret "$TELEGRAM_BOT_TOKEN" "$BATS_TEST_TMPDIR/recorded"
	run jq -r .path "$BATS_TEST_TMPDIR/recorded"
	assert_output /bot***/sendMessage
}

@test "telegram-standin: rejects an unsupported tag" {
	send_html 'topic <script>'
	assert_rejected 'Bad Request: can'"'"'t parse entities: Unsupported start tag "script" at byte offset 6'
}

@test "telegram-standin: rejects an unclosed tag" {
	send_html '<b>bold'
	assert_rejected 'Bad Request: can'"'"'t parse entities: Can'"'"'t find end tag corresponding to start tag "b"'
}

@test "telegram-standin: rejects a bare < and a bare &" {
	send_html 'a < b'
	assert_rejected 'Bad Request: can'"'"'t parse entities: Unsupported start tag "" at byte offset 2'
	send_html 'R&D'
	assert_rejected 'Bad Request: can'"'"'t parse entities: Unescaped "&" at byte offset 1'
	send_html '<i>x</b>'
	assert_rejected 'Bad Request: can'"'"'t parse entities: Unmatched end tag at byte offset 4, expected "</i>", found "</b>"'
}

@test "telegram-standin: counts 4096 UTF-16 units after entity parsing" {
	# 2048 emoji outside the BMP are 4096 UTF-16 units (8192 bytes).
	emoji=$(printf '🏟%.0s' $(seq 2048))
	send_html "$emoji"
	assert_equal "$(code)" 200
	send_html "${emoji}a"
	assert_rejected 'Bad Request: message is too long'
	# Tags and entities do not count: 4096 visible characters pass.
	a=$(printf 'a%.0s' $(seq 4094))
	send_html "<b>$a</b>&lt;&gt;"
	assert_equal "$(code)" 200
	send_html "<b>$a</b>&lt;&gt;&amp;"
	assert_rejected 'Bad Request: message is too long'
	run tg_messages
	assert_equal "$(jq -s -c 'map(.utf16_len)' <<<"$output")" '[4096,4096]'
}

@test "telegram-standin: checks chat ids like Telegram" {
	tg_send '{"chat_id":"@dt_reports","text":"a"}'
	assert_equal "$(code)" 200
	tg_send '{"chat_id":-4001234567,"text":"a"}'
	assert_equal "$(code)" 200
	tg_send '{"chat_id":"not a chat","text":"a"}'
	assert_rejected 'Bad Request: chat not found'
	tg_send '{"text":"a"}'
	assert_rejected 'Bad Request: chat_id is empty'
	tg_send '{"chat_id":1,"text":" \n "}'
	assert_rejected 'Bad Request: message text is empty'
	standin telegram script '{"chats":["-100777"],"threads":[42]}'
	tg_send '{"chat_id":-100777,"text":"a","message_thread_id":42}'
	assert_equal "$(code)" 200
	tg_send '{"chat_id":-100777,"text":"a","message_thread_id":43}'
	assert_rejected 'Bad Request: message thread not found'
	tg_send '{"chat_id":-100778,"text":"a"}'
	assert_rejected 'Bad Request: chat not found'
}

@test "telegram-standin: accepts form bodies" {
	curl -sS -o "$BATS_TEST_TMPDIR/resp" -w '%{http_code}' \
		--data-urlencode chat_id=-100123 --data-urlencode 'text=<b>x</b> &amp; y' \
		-d parse_mode=HTML -d disable_notification=true \
		"$TELEGRAM_API_URL/bot$TELEGRAM_BOT_TOKEN/sendMessage" >"$BATS_TEST_TMPDIR/code"
	assert_equal "$(code)" 200
	run tg_messages
	assert_equal "$(jq -c '[.chat_id, .text, .disable_notification]' <<<"$output")" \
		'["-100123","x & y",true]'
}

@test "telegram-standin: scripted 429 carries parameters.retry_after" {
	standin telegram script '{"fail_429":1,"retry_after":7}'
	send_html 'x'
	assert_equal "$(code)" 429
	assert_equal "$(resp)" '{"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 7", "parameters": {"retry_after": 7}}'
	send_html 'x'
	assert_equal "$(code)" 200
}

@test "telegram-standin: scripted 5xx, migration and hang" {
	standin telegram script '{"fail_5xx":1,"status_5xx":502,"migrate":{"-123":-100123}}'
	send_html 'x'
	assert_equal "$(code)" 502
	assert_equal "$(resp)" '{"ok": false, "error_code": 502, "description": "Bad Gateway"}'
	tg_send '{"chat_id":-123,"text":"a"}'
	assert_equal "$(code)" 400
	assert_equal "$(jq -c .parameters "$BATS_TEST_TMPDIR/resp")" '{"migrate_to_chat_id":-100123}'
	standin telegram script '{"hang":1,"hang_seconds":2}'
	run -28 curl -sS -m 0.5 -d chat_id=1 -d text=x \
		"$TELEGRAM_API_URL/bot$TELEGRAM_BOT_TOKEN/sendMessage"
}

@test "telegram-standin: getChat answers a known chat and says chat not found for others" {
	getchat() {
		curl -sS -o "$BATS_TEST_TMPDIR/resp" -w '%{http_code}' -H 'Content-Type: application/json' \
			--data-binary "$1" "$TELEGRAM_API_URL/bot$TELEGRAM_BOT_TOKEN/getChat" >"$BATS_TEST_TMPDIR/code"
	}
	getchat '{"chat_id":-1001234567890}'
	assert_equal "$(code)" 200
	assert_equal "$(jq -c '[.ok, .result.id, .result.type, .result.title]' "$BATS_TEST_TMPDIR/resp")" \
		'[true,-1001234567890,"supergroup","dt stand-in supergroup"]'
	getchat '{"chat_id":"@dt_reports"}'
	assert_equal "$(jq -c '[.result.type, .result.username]' "$BATS_TEST_TMPDIR/resp")" '["channel","dt_reports"]'
	standin telegram script '{"chats":["-1001234567890"], "migrate":{"-42":-1009999}}'
	getchat '{"chat_id":-1001234567891}'
	assert_rejected "Bad Request: chat not found"
	getchat '{"chat_id":"not a chat"}'
	assert_rejected "Bad Request: chat not found"
	getchat '{"chat_id":-42}'
	assert_equal "$(jq -c '[.error_code, .parameters.migrate_to_chat_id]' "$BATS_TEST_TMPDIR/resp")" '[400,-1009999]'
	# None of it is a message.  (Only getChat's requests are looked at: the
	# hung call of the test before may still be answered meanwhile.)
	assert_equal "$(standin telegram requests | jq -s -c '[.[] | select(.path | endswith("/getChat"))] | [length, map(select(.message)) | length]')" "[5,0]"
}
