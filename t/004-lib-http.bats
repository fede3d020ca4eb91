#!/usr/bin/env bats
# lib/http: retries, backoff, Retry-After, limits, and no secret in logs.

load test_helper/common
load test_helper/fixture_server

setup_file() {
	fixture_server_start
}

teardown_file() {
	fixture_server_stop
}

setup() {
	dt_common_setup
	fixture_reset
}

@test "http: a plain GET returns status and body, with a User-Agent naming dt" {
	script_responses '[{"status":200,"body":{"hello":"world"}}]'
	run -0 --separate-stderr libcheck http "$FIXTURE_URL/x"
	assert_output $'0 200 1 18\n{"hello": "world"}'
	fixture_requests >"$BATS_TEST_TMPDIR/req"
	run -0 jq -r '.headers["user-agent"]' "$BATS_TEST_TMPDIR/req"
	assert_output "dt/0.1.0 (libcheck)"
}

@test "http: 503, 429 and 500 are retried with one warning each, then success" {
	script_responses '[{"status":503},{"status":429},{"status":500},{"status":200,"body":"done"}]'
	run -0 --separate-stderr libcheck http -n 5 -b 10 -c 20 "$FIXTURE_URL/r"
	assert_line --index 0 "0 200 4 4"
	assert_equal "${#stderr_lines[@]}" 3
	[[ ${stderr_lines[0]} =~ ^libcheck:\ warning:\ fixture:\ GET\ http://127\.0\.0\.1:[0-9]+/r:\ HTTP\ 503\;\ retrying\ in\ 0\.[0-9]\ s\ \(4\ of\ 5\ tries\ left\)$ ]] ||
		fail "unexpected: ${stderr_lines[0]}"
	[[ ${stderr_lines[1]} == *"HTTP 429; retrying in"*"(3 of 5 tries left)" ]] || fail "${stderr_lines[1]}"
	[[ ${stderr_lines[2]} == *"HTTP 500; retrying in"*"(2 of 5 tries left)" ]] || fail "${stderr_lines[2]}"
}

@test "http: a request's cancel flag abandons a slow answer at once and is not retried" {
	script_responses '[{"status":200,"delay":30,"body":"late"},{"status":200,"body":"again"}]'
	libcheck http -s -n 3 "$FIXTURE_URL/slow" >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" &
	pid=$!
	for i in $(seq 100); do [ "$(fixture_requests | wc -l)" -ge 1 ] && break; sleep 0.05; done
	start=$(date +%s%N)
	kill -TERM "$pid"
	wait "$pid"
	elapsed=$((($(date +%s%N) - start) / 1000000))
	[ "$elapsed" -lt 2000 ] || fail "took $elapsed ms"
	# DT_HTTP_ECANCELED (5), no status, one try, no body.
	assert_equal "$(head -1 "$BATS_TEST_TMPDIR/out")" "5 0 1 0"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/err")" "libcheck: interrupted before the answer"
	assert_equal "$(fixture_requests | wc -l)" 1
}

@test "http: 400 and 404 are not retried" {
	script_responses '[{"status":400,"body":{"message":"bad"}},{"status":200}]'
	run -0 --separate-stderr libcheck http -n 5 -b 10 "$FIXTURE_URL/r"
	assert_line --index 0 "0 400 1 18"
	assert_equal "$stderr" ""
}

@test "http: the tries run out and the last response is returned" {
	script_responses '[{"status":502},{"status":502},{"status":502}]'
	run -0 --separate-stderr libcheck http -n 3 -b 10 -c 10 "$FIXTURE_URL/r"
	assert_line --index 0 "0 502 3 12"
	assert_equal "${#stderr_lines[@]}" 3
	[[ ${stderr_lines[2]} == *"/r: HTTP 502; giving up after 3 tries" ]] || fail "${stderr_lines[2]}"
}

@test "http: Retry-After in seconds is honoured" {
	script_responses '[{"status":429,"headers":{"Retry-After":"1"}},{"status":200}]'
	start=$(date +%s%N)
	run -0 --separate-stderr libcheck http -n 3 -b 1 -c 1 "$FIXTURE_URL/r"
	elapsed=$((($(date +%s%N) - start) / 1000000))
	assert_line --index 0 "0 200 2 12"
	[[ $stderr == *"HTTP 429; retrying in 1.0 s (2 of 3 tries left)" ]] || fail "$stderr"
	[ "$elapsed" -ge 1000 ] || fail "waited only $elapsed ms"
}

@test "http: Retry-After as an HTTP-date is parsed, and a wait past the limit gives up" {
	# A date past is no wait, one far ahead a day; a word is no Retry-After.
	script_responses '[{"status":503,"headers":{"Retry-After":"Wed, 21 Oct 2015 07:28:00 GMT"}},{"status":200}]'
	run -0 --separate-stderr libcheck http -n 3 -b 1 -T 5000 "$FIXTURE_URL/r"
	[[ $stderr == *"HTTP 503; retrying in 0.0 s (2 of 3 tries left)" ]] || fail "$stderr"
	script_responses '[{"status":503,"headers":{"Retry-After":"Fri, 01 Jan 2100 00:00:00 GMT"}},{"status":200}]'
	run -0 --separate-stderr libcheck http -n 3 -b 1 -T 5000 "$FIXTURE_URL/r"
	[[ $stderr == *"HTTP 503; giving up: waiting 86400.0 s more would pass the 5 s retry limit" ]] || fail "$stderr"
	script_responses '[{"status":503,"headers":{"Retry-After":"120"}},{"status":200}]'
	run -0 --separate-stderr libcheck http -n 3 -b 1 -T 5000 "$FIXTURE_URL/r"
	[[ $stderr == *"HTTP 503; giving up: waiting 120.0 s more would pass the 5 s retry limit" ]] || fail "$stderr"
	script_responses '[{"status":503,"headers":{"Retry-After":"soon"}},{"status":200}]'
	run -0 --separate-stderr libcheck http -n 3 -b 1 -c 1 -T 5000 "$FIXTURE_URL/r"
	assert_line --index 0 "0 200 2 12"
	script_responses '[{"status":503,"headers":{"Retry-After":"30"}},{"status":200}]'
	run -0 --separate-stderr libcheck http -n 3 -b 1 -T 5000 "$FIXTURE_URL/r"
	assert_line --index 0 "0 503 1 12"
	[[ $stderr == *"HTTP 503; giving up: waiting 30.0 s more would pass the 5 s retry limit" ]] || fail "$stderr"
}

@test "http: a 429's x-ratelimit-reset is the wait when no Retry-After came" {
	script_responses '[{"status":429,"headers":{"x-ratelimit-reset":"1m30s"}},{"status":200}]'
	run -0 --separate-stderr libcheck http -n 3 -b 1 -T 5000 "$FIXTURE_URL/r"
	assert_line --index 0 "0 429 1 12"
	[[ $stderr == *"HTTP 429; giving up: waiting 90.0 s more would pass the 5 s retry limit" ]] || fail "$stderr"
	script_responses '[{"status":429,"headers":{"x-ratelimit-reset":"250ms"}},{"status":200}]'
	run -0 --separate-stderr libcheck http -n 3 -b 1 -c 1 "$FIXTURE_URL/r"
	assert_line --index 0 "0 200 2 12"
	[[ $stderr == *"HTTP 429; retrying in 0.2 s (2 of 3 tries left)" ]] || fail "$stderr"
}

@test "http: backoff is full jitter under an exponential, capped ceiling" {
	run -0 libcheck backoff 100 1000 1
	read -r lo hi <<<"$output"
	[ "$lo" -ge 0 ] && [ "$hi" -le 100 ] && [ "$hi" -gt 50 ] || fail "$output"
	run -0 libcheck backoff 100 1000 3
	read -r lo hi <<<"$output"
	[ "$lo" -lt 100 ] && [ "$hi" -le 400 ] && [ "$hi" -gt 300 ] || fail "$output"
	run -0 libcheck backoff 100 1000 12
	read -r lo hi <<<"$output"
	[ "$hi" -le 1000 ] && [ "$hi" -gt 900 ] || fail "$output"
	run -0 libcheck backoff 100 1000 1 2500
	assert_output "2500 2500"
}

@test "http: one retry policy classifies every answer and says when to give up" {
	# result status outages spent_ms -> answer retry gave_up
	while read -r result status want; do
		run -0 libcheck answer "$result" "$status" 1 0
		assert_output "$want"
	done <<'CASES'
0 200 ok 0 -
0 204 ok 0 -
1 0 outage 1 -
2 0 outage 1 -
0 408 outage 1 -
0 429 outage 1 -
0 500 outage 1 -
0 503 outage 1 -
0 301 setup 0 -
0 401 setup 0 -
0 402 setup 0 -
0 403 setup 0 -
0 404 setup 0 -
0 400 refused 0 -
0 422 refused 0 -
3 0 failed 0 -
4 0 failed 0 -
0 600 failed 0 -
CASES
	# An outage stops being retried when the tries are used up, or when
	# the wait would end past the total (backoff at most 800 ms here).
	run -0 libcheck answer 0 503 3 0
	assert_output "outage 1 -"
	run -0 libcheck answer 0 503 4 0
	assert_output "outage 0 tries"
	run -0 libcheck answer 0 503 1 10001
	assert_output "outage 0 time"
}

@test "http: a timeout is reported as such and retried" {
	script_responses '[{"status":200,"delay":2},{"status":200,"body":"ok"}]'
	run -0 --separate-stderr libcheck http -n 2 -b 10 -t 300 "$FIXTURE_URL/slow"
	assert_line --index 0 "0 200 2 2"
	[[ ${stderr_lines[0]} == *"/slow: no complete response within 300 ms; retrying in"* ]] || fail "$stderr"
}

@test "http: a dropped connection is retried" {
	script_responses '[{"drop":true},{"status":200,"body":"ok"}]'
	run -0 --separate-stderr libcheck http -n 2 -b 10 "$FIXTURE_URL/drop"
	assert_line --index 0 "0 200 2 2"
	[[ ${stderr_lines[0]} == *"/drop: Empty reply from server; retrying in"* ]] || fail "$stderr"
}

@test "http: a response over the size cap fails and is not retried" {
	script_responses '[{"size":5000}]'
	run -0 --separate-stderr libcheck http -n 3 -m 1000 "$FIXTURE_URL/big"
	assert_line --index 0 "3 0 1 0"
	assert_equal "$stderr" "libcheck: response larger than 1000 bytes"
}

@test "http: nothing listening is a connection error, retried, then given up" {
	run -0 --separate-stderr libcheck http -n 2 -b 10 http://127.0.0.1:9/x
	assert_line --index 0 "2 0 2 0"
	assert_equal "${#stderr_lines[@]}" 3
}

@test "http: TLS verification is on: a plain HTTP server spoken to as https fails" {
	run -0 --separate-stderr libcheck http -n 1 "https://127.0.0.1:${FIXTURE_URL##*:}/x"
	assert_line --index 0 "4 0 1 0"
}

@test "http: URLs in logs lose tokens, userinfo and secret query parameters" {
	run -0 libcheck safe-url 'https://user:pw@api.telegram.org/bot123:ABC/sendMessage?chat_id=1&token=zz&x=1#f'
	assert_output 'https://***@api.telegram.org/bot***/sendMessage?chat_id=1&token=***&x=1#f'
	run -0 libcheck safe-url 'http://h/rest/v1/t?apikey=abc&select=id'
	assert_output 'http://h/rest/v1/t?apikey=***&select=id'
	run -0 libcheck safe-url 'http://h/robots/bot'
	assert_output 'http://h/robots/bot'
}

@test "http: a bot token holding a '/' is masked whole in logged URLs" {
	# By the path's form alone: the token is everything up to the method.
	run -0 libcheck safe-url 'https://api.telegram.org/bot123:AB/cd-tail/sendMessage?chat_id=1'
	assert_output 'https://api.telegram.org/bot***/sendMessage?chat_id=1'
	# And as a registered secret, wherever it is.
	TELEGRAM_BOT_TOKEN=123:AB/cd-tail run -0 libcheck safe-url 'https://h/x/123:AB/cd-tail/y'
	assert_output 'https://h/x/***/y'
}

@test "http: no secret reaches stderr at maximum verbosity with a failing request" {
	export TELEGRAM_BOT_TOKEN=987654321:AAHsecretTokenValue-xyz
	export SUPABASE_KEY=service-role-key-value-abc
	script_responses '[{"status":503,"body":"token 987654321:AAHsecretTokenValue-xyz"},{"status":401}]'
	run -0 --separate-stderr libcheck http -v -v -v -n 2 -b 10 \
		-H "Authorization: Bearer $SUPABASE_KEY" -H "apikey: $SUPABASE_KEY" \
		"$FIXTURE_URL/bot$TELEGRAM_BOT_TOKEN/sendMessage"
	assert_line --index 0 "0 401 2 12"
	[[ $stderr == *"trace: fixture: > GET /bot***/sendMessage HTTP/1.1"* ]] || fail "no trace: $stderr"
	[[ $stderr == *"trace: fixture: > Authorization: ***"* ]] || fail "no masked header: $stderr"
	echo "$stderr" >"$BATS_TEST_TMPDIR/err"
	assert_no_secret "$TELEGRAM_BOT_TOKEN" "$BATS_TEST_TMPDIR/err"
	assert_no_secret "$SUPABASE_KEY" "$BATS_TEST_TMPDIR/err"
	assert_no_secret "AAHsecretTokenValue" "$BATS_TEST_TMPDIR/err"
}
