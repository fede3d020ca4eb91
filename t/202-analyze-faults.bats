#!/usr/bin/env bats
# dt-analyze: every fault the stand-in can play, handled as documented.

load test_helper/common
load test_helper/perplexity

setup_file() { pplx_start; }
teardown_file() { pplx_stop; }

setup() {
	dt_common_setup
	pplx_env
	records 1 >"$BATS_TEST_TMPDIR/in"
}

# faults RULE...: scripts the stand-in with these fault rules.
faults() {
	local IFS=,
	pplx script "{\"faults\":[$*]}"
}

# sent: how many API calls the stand-in received, by fault ("-" none).
sent() {
	pplx requests | jq -r '.fault // "-"' | sort | uniq -c | awk '{printf "%s:%s ", $2, $1}'
}

@test "dt-analyze: 429 waits for Retry-After, then succeeds" {
	faults '{"kind":"429","first":1,"retry_after":1}'
	start=$(date +%s%N)
	run -0 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/in"
	elapsed=$((($(date +%s%N) - start) / 1000000))
	[ "$elapsed" -ge 1000 ]
	assert_equal "$(echo "${lines[0]}" | jq -c '[.tries, .analysis.sentiment]')" '[2,"positive"]'
	assert_equal "$stderr" "dt-analyze: warning: $BATS_TEST_TMPDIR/in:1: id 1: HTTP 429: stand-in fault 429; retrying in 1.0 s (3 of 4 tries left)"
	assert_equal "$(sent)" "-:1 429:1 "
	t=$(pplx requests | jq -r .t | tr '\n' ' ')
	awk -v a="${t% * }" -v b="${t#* }" 'BEGIN { exit !(b - a >= 1.0) }'
}

@test "dt-analyze: 500, 502 and 503 are retried with backoff" {
	faults '{"kind":"500","first":1}' '{"kind":"502","first":1}' '{"kind":"503","first":1}'
	run -0 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/in"
	assert_equal "$(echo "${lines[0]}" | jq -c '[.tries, .analysis.language]')" '[4,"en"]'
	assert_equal "${#stderr_lines[@]}" 3
	assert_line --index 0 --partial '"analysis"'
	[[ ${stderr_lines[0]} =~ ^dt-analyze:\ warning:\ .*:1:\ id\ 1:\ HTTP\ 500:\ stand-in\ fault\ 500\;\ retrying\ in\ [0-9.]+\ s\ \(3\ of\ 4\ tries\ left\)$ ]]
	[[ ${stderr_lines[2]} =~ HTTP\ 503:\ stand-in\ fault\ 503\;\ retrying\ in\ [0-9.]+\ s\ \(1\ of\ 4\ tries\ left\)$ ]]
	assert_equal "$(sent)" "-:1 500:1 502:1 503:1 "
}

@test "dt-analyze: a lasting 503 becomes a retryable unavailable error after DT_HTTP_TRIES" {
	faults '{"kind":"503"}'
	DT_HTTP_TRIES=3 run -1 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/in"
	assert_equal "$(echo "${lines[0]}" | jq -c '[.error, .tries, has("analysis")]')" \
		'[{"kind":"unavailable","message":"HTTP 503: stand-in fault 503 (after 3 tries)","retryable":true},3,false]'
	assert_equal "${stderr_lines[2]}" "dt-analyze: warning: $BATS_TEST_TMPDIR/in:1: id 1: HTTP 503: stand-in fault 503; giving up after 3 tries"
	assert_equal "$(echo "${lines[1]}" | jq -c '[.status, .counts.unavailable]')" '[1,1]'
	assert_equal "$(sent)" "503:3 "
}

@test "dt-analyze: HTTP 200 with status failed is retried like an outage" {
	faults '{"kind":"failed","first":1}'
	run -0 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/in"
	assert_equal "$(echo "${lines[0]}" | jq -c '[.tries, .analysis.sentiment]')" '[2,"positive"]'
	[[ $stderr =~ id\ 1:\ the\ API\ reported\ status\ failed:\ stand-in\ fault\ failed:\ the\ model\ run\ failed\;\ retrying\ in ]]
	faults '{"kind":"failed"}'
	DT_HTTP_TRIES=2 run -1 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/in"
	assert_equal "$(echo "${lines[0]}" | jq -c .error)" \
		'{"kind":"unavailable","message":"the API reported status failed: stand-in fault failed: the model run failed (after 2 tries)","retryable":true}'
}

@test "dt-analyze: output that is not JSON is asked for once more, then an invalid_output error with a copy" {
	faults '{"kind":"not_json","first":1}'
	run -0 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/in"
	assert_equal "$(echo "${lines[0]}" | jq -c '[.tries, .analysis.sentiment]')" '[2,"positive"]'
	assert_equal "$stderr" "dt-analyze: warning: $BATS_TEST_TMPDIR/in:1: id 1: the output is not JSON: '[' or '{' expected near 'Sure'; asking once more"
	faults '{"kind":"not_json"}'
	run -1 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/in"
	assert_equal "$(echo "${lines[0]}" | jq -c '[.error, .tries, (.usage.total_tokens > 0)]')" \
		"[{\"kind\":\"invalid_output\",\"message\":\"the output is not JSON: '[' or '{' expected near 'Sure' (after 2 tries)\",\"retryable\":true,\"output\":\"Sure! Here is the analysis you asked for: Thanks for the great meeting! Please send the report by Friday. #1\"},2,true]"
	assert_equal "$(echo "${lines[1]}" | jq -c '[.status, .message, .counts.invalid_output]')" '[1,"some records failed",1]'
}

@test "dt-analyze: output that breaks the schema is refused; the copy is cut at 1 KiB" {
	faults '{"kind":"schema_violation"}'
	run -1 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/in"
	assert_equal "$(echo "${lines[0]}" | jq -c '.error | [.kind, .message, .retryable, (.output | fromjson | .sentiment)]')" \
		'["invalid_output","the output does not match the schema: $.sentiment: \"furious\" is not one of the allowed values (after 2 tries)",true,"furious"]'
	assert_equal "$(sent)" "schema_violation:2 "
	text=$(printf 'word%.0s ' $(seq 600))
	echo "{\"id\":9,\"text\":\"$text\"}" >"$BATS_TEST_TMPDIR/long"
	faults '{"kind":"not_json"}'
	DT_MAX_TEXT_BYTES=8000 run -1 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/long"
	assert_equal "$(echo "${lines[0]}" | jq -c '[(.error.output | length), .error.output_cut]')" '[1024,true]'
}

@test "dt-analyze: output the API reports incomplete is asked for once more" {
	faults '{"kind":"incomplete"}'
	run -1 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/in"
	assert_equal "$(echo "${lines[0]}" | jq -c '.error | [.kind, .message]')" \
		'["invalid_output","the API reported the output incomplete: max_output_tokens (after 2 tries)"]'
	faults '{"kind":"incomplete"}'
	DT_API=chat run -1 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/in"
	assert_equal "$(echo "${lines[0]}" | jq -r .error.message)" "the API reported the output incomplete: finish_reason length (after 2 tries)"
}

@test "dt-analyze: a dropped connection is retried" {
	faults '{"kind":"drop","first":2}'
	run -0 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/in"
	assert_equal "$(echo "${lines[0]}" | jq .tries)" 3
	assert_equal "${#stderr_lines[@]}" 2
	[[ ${stderr_lines[0]} =~ id\ 1:\ Empty\ reply\ from\ server\;\ retrying\ in ]]
}

@test "dt-analyze: a response that never ends times out after TIMEOUT_SECONDS" {
	faults '{"kind":"hang"}'
	start=$(date +%s)
	TIMEOUT_SECONDS=1 DT_FIRST_TIMEOUT_SECONDS=1 DT_HTTP_TRIES=2 run -1 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/in"
	[ $(($(date +%s) - start)) -le 5 ]
	assert_equal "$(echo "${lines[0]}" | jq -c '[.error, .tries]')" \
		'[{"kind":"timeout","message":"no complete response within 1000 ms (after 2 tries)","retryable":true},2]'
	assert_equal "$(sent)" "hang:2 "
}

@test "dt-analyze: the first call with a new schema gets DT_FIRST_TIMEOUT_SECONDS, later calls TIMEOUT_SECONDS" {
	pplx script '{"schema_warmup_ms":1500}'
	records 2 >"$BATS_TEST_TMPDIR/two"
	TIMEOUT_SECONDS=1 DT_FIRST_TIMEOUT_SECONDS=5 run -0 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/two"
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -c 'select(.id) | [.id, .tries, (.latency_ms >= 1500)]' | tr '\n' ' ')" '[1,1,true] [2,1,false] '
	assert_equal "$stderr" ""
	# Without the allowance the cold schema times out once.
	pplx reset
	pplx script '{"schema_warmup_ms":1500}'
	TIMEOUT_SECONDS=1 DT_FIRST_TIMEOUT_SECONDS=1 run -0 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/in"
	assert_equal "$(echo "${lines[0]}" | jq .tries)" 2
	[[ $stderr =~ no\ complete\ response\ within\ 1000\ ms\;\ retrying ]]
}

@test "dt-analyze: a body over DT_MAX_RESPONSE_BYTES is refused without holding it" {
	faults '{"kind":"oversized","bytes":3000000}'
	run -1 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/in"
	assert_equal "$(echo "${lines[0]}" | jq -c '[.error, .tries]')" \
		'[{"kind":"invalid_output","message":"response larger than 1048576 bytes (after 2 tries)","retryable":true},2]'
}

@test "dt-analyze: a 4xx other than 408 and 429 is not retried and is not retryable" {
	faults '{"kind":"status","status":422}'
	run -1 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/in"
	assert_equal "$(echo "${lines[0]}" | jq -c '[.error, .tries]')" \
		'[{"kind":"http_4xx","message":"HTTP 422: stand-in fault status","retryable":false},1]'
	assert_equal "$stderr" "dt-analyze: warning: $BATS_TEST_TMPDIR/in:1: id 1: HTTP 422: stand-in fault status"
	assert_equal "$(sent)" "status:1 "
}

@test "dt-analyze: an unknown request field is refused by the API as the Agent API does" {
	pplx reset
	body='{"model":"perplexity/sonar","input":"x","text":{"format":{"type":"json_schema"}}}'
	run -0 curl -s -H "Authorization: Bearer $PPLX_KEY" -d "$body" "$PPLX_URL/v1/agent"
	assert_output '{"error": {"message": "[\"At body -> text: Extra inputs are not permitted\"]", "type": "bad_request", "code": 400}}'
}

@test "dt-analyze: a refused key stops all calls at once and exits 78, without the key in any output" {
	records 5 >"$BATS_TEST_TMPDIR/five"
	PERPLEXITY_API_KEY=wrong-key-0123456789 run -78 --separate-stderr dt-analyze -vv "$BATS_TEST_TMPDIR/five"
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -c 'select(.id) | .error.kind' | sort | uniq -c | awk '{print $1, $2}')" '5 "unavailable"'
	assert_equal "$(echo "${lines[0]}" | jq -r .error.message)" "the API refused the key; not calling it again in this run"
	assert_equal "$(echo "${lines[5]}" | jq -c '[.status, .message]')" '[78,"the API refused the key"]'
	assert_equal "$(pplx requests | wc -l)" 1
	assert_no_secret wrong-key-0123456789 <(echo "$output") <(echo "$stderr")
	[[ $stderr =~ the\ API\ refused\ the\ key\ \(HTTP\ 401:\ Invalid\ API\ key\ provided\) ]]
}

@test "dt-analyze: the key appears in no output or log, even at trace level" {
	faults '{"kind":"503","first":1}' '{"kind":"not_json","first":1}'
	DT_LOG_LEVEL=trace run -0 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/in"
	[[ $stderr =~ Authorization ]]
	assert_no_secret "$PPLX_KEY" <(echo "$output") <(echo "$stderr")
	run -0 --separate-stderr dt-analyze -vv "$BATS_TEST_TMPDIR/in"
	assert_no_secret "$PPLX_KEY" <(echo "$output") <(echo "$stderr")
}

@test "dt-analyze: the stand-in's shorthand fail_first and fail_kind script the first calls" {
	pplx script '{"fail_first":2,"fail_kind":"502"}'
	run -0 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/in"
	assert_equal "$(echo "${lines[0]}" | jq .tries)" 3
	assert_equal "$(sent)" "-:1 502:2 "
}

@test "dt-analyze: Cyrillic in messages and copies is cut between letters, so the error records stay whole" {
	# An error message over the 299 bytes kept of it: 149 letters.
	faults "{\"kind\":\"status\",\"status\":422,\"message\":$(jq -n '"я" * 200')}"
	run -1 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/in"
	assert_equal "$(echo "${lines[0]}" | jq -c .error)" \
		"{\"kind\":\"http_4xx\",\"message\":\"HTTP 422: $(jq -nr '"я" * 149')\",\"retryable\":false}"
	# A value quoted to 60 bytes: "m" and 29 letters.
	faults "{\"kind\":\"schema_violation\",\"value\":$(jq -n '"m" + "я" * 50')}"
	run -1 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/in"
	assert_equal "$(echo "${lines[0]}" | jq -r .error.message)" \
		"the output does not match the schema: \$.sentiment: \"m$(jq -nr '"я" * 29')\" is not one of the allowed values (after 2 tries)"
	# Jansson quotes a bad escape with the first byte of the letter after it.
	faults '{"kind":"not_json","text":"\"\\П\""}'
	run -1 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/in"
	assert_equal "$(echo "${lines[0]}" | jq -c '.error | [.message, .output]')" \
		"[\"the output is not JSON: invalid escape near '\\\"\\\\' (after 2 tries)\",\"\\\"\\\\П\\\"\"]"
	# A body that is not JSON: the copy keeps 1023 bytes, whole letters.
	faults "{\"kind\":\"status\",\"status\":200,\"body\":$(jq -n '"<p>" + "ж" * 700')}"
	run -1 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/in"
	assert_equal "$(echo "${lines[0]}" | jq -c '.error | [.kind, .message, .output_cut]')" \
		"[\"invalid_output\",\"the response is not a JSON object: '[' or '{' expected near '<' (after 2 tries)\",true]"
	assert_equal "$(echo "${lines[0]}" | jq -r .error.output)" "<p>$(jq -nr '"ж" * 510')"
	# The name of the model that answered is kept to 127 bytes.
	pplx reset
	run -0 --separate-stderr dt-analyze -m "$(jq -nr '"модель" * 25')" "$BATS_TEST_TMPDIR/in"
	assert_equal "$(echo "${lines[0]}" | jq -r .model)" "$(jq -nr '"модель" * 10 + "мод"')"
	assert_equal "$(echo "${lines[1]}" | jq -c '[.stage, .status]')" '["dt-analyze",0]'
}
