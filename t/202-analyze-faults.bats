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

# fresh_state: a new run's shared state (the circuit of the last is open).
fresh_state() {
	rm -f "$DT_STATE_DIR/analyze.state"
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

@test "dt-analyze: a 4xx other than 408 and 429 is not retried; before any analysis it gives the row back, after one it is the record's" {
	faults '{"kind":"status","status":422}'
	run -1 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/in"
	assert_equal "$(echo "${lines[0]}" | jq -c '[.error, .tries]')" \
		'[{"kind":"config","message":"HTTP 422: stand-in fault status","retryable":true},1]'
	assert_equal "$stderr" "dt-analyze: warning: 1 record was refused by the API with an answer other records did not get (last: id 1: HTTP 422: stand-in fault status); given back without using an attempt"
	assert_equal "$(sent)" "status:1 "
	# Once the run's setup got an analysis, a refusal is the record's
	# own: http_4xx, which uses an attempt (the row is parked after
	# DT_MAX_ATTEMPTS), and the run goes on.
	records 7 >"$BATS_TEST_TMPDIR/seven"
	pplx reset
	fresh_state
	faults '{"kind":"status","status":422,"every":2}'
	run -1 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/seven"
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -r 'select(.id) | .error.kind // "analysis"' | sort | uniq -c | awk '{printf "%s:%s ", $2, $1}')" "analysis:4 http_4xx:3 "
	assert_equal "$(echo "${lines[1]}" | jq -c '[.error, .tries]')" \
		'[{"kind":"http_4xx","message":"HTTP 422: stand-in fault status","retryable":true},1]'
	assert_equal "$(echo "${lines[7]}" | jq -c '[.status, .counts.http_4xx]')" '[1,3]'
	assert_equal "${stderr_lines[0]}" "dt-analyze: warning: $BATS_TEST_TMPDIR/seven:2: id 2: HTTP 422: stand-in fault status; the API answered other records of this run"
	assert_equal "${#stderr_lines[@]}" 3
	assert_equal "$(sent)" "-:4 status:3 "
}

@test "dt-analyze: a misspelt model opens the circuit after 3 calls: exit 78, one line naming PERPLEXITY_MODEL, every row given back" {
	pplx script '{"models":["perplexity/sonar"]}'
	records 10 >"$BATS_TEST_TMPDIR/ten"
	PERPLEXITY_MODEL=perplexity/sonnar run -78 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/ten"
	assert_equal "$(sent)" "invalid_model:3 "
	assert_equal "$stderr" "dt-analyze: error: PERPLEXITY_MODEL: the API refused model 'perplexity/sonnar' (HTTP 400: Invalid model 'perplexity/sonnar'. Permitted models can be found in the documentation at https://docs.perplexity.ai/getting-started/models.); fix the model name; no more calls in this run, every row is given back"
	# Every record is given back (retryable, kind config): the three
	# refused with the API's answer, the rest not called.
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -c 'select(.id) | [.error.kind, .error.retryable]' | sort | uniq -c | awk '{print $1, $2}')" '10 ["config",true]'
	assert_equal "$(echo "${lines[0]}" | jq -c '[.error.message, .tries]')" "[\"HTTP 400: Invalid model 'perplexity/sonnar'. Permitted models can be found in the documentation at https://docs.perplexity.ai/getting-started/models.\",1]"
	[[ $(echo "${lines[9]}" | jq -r .error.message) =~ ^not\ called:\ PERPLEXITY_MODEL:\ the\ API\ refused\ model ]]
	assert_equal "$(echo "${lines[9]}" | jq 'has("tries")')" false
	assert_equal "$(echo "${lines[10]}" | jq -c '[.stage, .status, .message, .counts.config, .interrupted]')" \
		'["dt-analyze",78,"the API refused the run'"'"'s setup",10,false]'
	# The same model through chat completions, as a bare name.
	pplx reset
	fresh_state
	pplx script '{"models":["sonar"]}'
	DT_API=chat PERPLEXITY_MODEL=sonnar run -78 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/ten"
	assert_equal "$(sent)" "invalid_model:3 "
	[[ $stderr =~ ^dt-analyze:\ error:\ PERPLEXITY_MODEL:\ the\ API\ refused\ model\ \'sonnar\' ]]
}

@test "dt-analyze: under dt-fanout the workers share the circuit: a misspelt model costs 3 calls in all, and the run stops claiming" {
	pplx script '{"models":["perplexity/sonar"]}'
	records 40 >"$BATS_TEST_TMPDIR/forty"
	export DT_STOP_FILE=$BATS_TEST_TMPDIR/stop
	PERPLEXITY_MODEL=perplexity/sonnar run -78 --separate-stderr dt-fanout -j 4 <"$BATS_TEST_TMPDIR/forty"
	assert_equal "$(sent)" "invalid_model:3 "
	# One line from all four workers.
	assert_equal "$(printf '%s\n' "${stderr_lines[@]}" | grep -c '^dt-analyze:')" 1
	[[ $stderr =~ dt-analyze:\ error:\ PERPLEXITY_MODEL:\ the\ API\ refused\ model\ \'perplexity/sonnar\' ]]
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -c 'select(.id) | .error.kind' | sort | uniq -c | awk '{print $1, $2}')" '40 "config"'
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -r 'select(.stage) | .status' | sort -u | tr '\n' ' ')" "78 "
	# The stop file tells dt-fetch to claim no more.
	assert_file_exists "$DT_STOP_FILE"
}

@test "dt-analyze: 402, 404 and a redirect are never the record's: the circuit opens at the first, with what to fix" {
	records 5 >"$BATS_TEST_TMPDIR/five"
	faults '{"kind":"status","status":402,"type":"insufficient_quota","message":"Your account has insufficient credits"}'
	run -78 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/five"
	assert_equal "$(sent)" "status:1 "
	assert_equal "$stderr" "dt-analyze: error: PERPLEXITY_API_KEY: the API account cannot pay for calls (HTTP 402: Your account has insufficient credits); add credits to it; no more calls in this run, every row is given back"
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -c 'select(.id) | .error | [.kind, .retryable]' | sort -u)" '["config",true]'
	# A base URL with a wrong path.
	pplx reset
	fresh_state
	PERPLEXITY_BASE_URL=$PPLX_URL/api run -78 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/five"
	assert_equal "$(pplx requests | jq -r '[.path, .status] | @tsv')" "/api/v1/agent	404"
	assert_equal "$stderr" "dt-analyze: error: PERPLEXITY_BASE_URL: $PPLX_URL/api/v1/agent does not exist (HTTP 404: Not Found); check PERPLEXITY_BASE_URL (https://api.perplexity.ai) and DT_API; no more calls in this run, every row is given back"
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -c 'select(.id) | .error.kind' | sort | uniq -c | awk '{print $1, $2}')" '5 "config"'
	# A redirect (http:// for https://, say).
	pplx reset
	fresh_state
	faults '{"kind":"status","status":301,"body":"<html>Moved Permanently</html>"}'
	run -78 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/five"
	assert_equal "$(sent)" "status:1 "
	[[ $stderr =~ ^dt-analyze:\ error:\ PERPLEXITY_BASE_URL:\ .*\ answers\ with\ a\ redirect\ \(HTTP\ 301\) ]]
}

@test "dt-analyze: a 422 for every record opens the circuit after 3, and only the same answer counts" {
	records 6 >"$BATS_TEST_TMPDIR/six"
	faults '{"kind":"status","status":422,"type":"unprocessable_entity","message":"response_format is not supported"}'
	run -78 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/six"
	assert_equal "$(sent)" "status:3 "
	assert_equal "$stderr" "dt-analyze: error: the API refused records and a plain test text alike (HTTP 422: response_format is not supported); check PERPLEXITY_MODEL, DT_API, DT_SCHEMA_FILE and PERPLEXITY_BASE_URL; no more calls in this run, every row is given back"
	# The third call was the test text, not a record.
	assert_equal "$(pplx requests | jq -r '.json.input | contains("#")' | tr '\n' ' ')" "true true false "
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -r 'select(.id) | .tries // 0' | tr '\n' ' ')" "1 1 0 0 0 0 "
	# Two different refusals in turn are no streak.
	pplx reset
	fresh_state
	faults '{"kind":"status","status":422,"every":2}' '{"kind":"status","status":400,"type":"bad_request"}'
	run -1 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/six"
	assert_equal "$(sent)" "status:6 "
	# Nor the same status with another error type.
	pplx reset
	fresh_state
	faults '{"kind":"status","status":400,"type":"invalid_request","every":2}' '{"kind":"status","status":400,"type":"bad_request"}'
	run -1 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/six"
	assert_equal "$(sent)" "status:6 "
	faults '{"kind":"status","status":400,"type":"bad_request"}'
	run -78 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/six"
	assert_equal "$(sent)" "status:9 "
}

@test "dt-analyze: records refused alike first in the queue do not stop the run when a plain text is analyzed" {
	records 6 >"$BATS_TEST_TMPDIR/six"
	faults '{"kind":"status","status":400,"type":"invalid_request","message":"Input rejected","match":"Friday. #1\n"}' \
		'{"kind":"status","status":400,"type":"invalid_request","message":"Input rejected","match":"Friday. #2\n"}' \
		'{"kind":"status","status":400,"type":"invalid_request","message":"Input rejected","match":"Friday. #3\n"}'
	run -1 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/six"
	# 1 and 2 refused, the test text analyzed, then 3 refused: the
	# record's own now; 4 to 6 analyzed.
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -c 'select(.id) | [.id, .error.kind // "analysis"]' | tr '\n' ' ')" \
		'[1,"config"] [2,"config"] [3,"http_4xx"] [4,"analysis"] [5,"analysis"] [6,"analysis"] '
	assert_equal "$(pplx requests | jq -r 'if (.json.input | contains("#")) then (.fault // "-") else "test" end' | tr '\n' ' ')" \
		"status status test status - - - "
	# The test text's cost is in the stage's total, not in a record's.
	assert_equal "$(echo "${lines[6]}" | jq '.cost_usd > 0 and .counts.analyzed == 3')" true
}

@test "dt-analyze: a leading <think> block is dropped like a Markdown fence" {
	faults '{"kind":"think"}'
	run -0 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/in"
	assert_equal "$(echo "${lines[0]}" | jq -c '[.tries, .analysis.sentiment]')" '[1,"positive"]'
	assert_equal "$stderr" ""
	assert_equal "$(sent)" "think:1 "
	# And inside it, a fence.
	faults '{"kind":"not_json","text":"<think>x</think>\n```json\n{\"sentiment\":\"positive\",\"language\":\"en\",\"topics\":[],\"summary\":\"s\",\"action_items\":[],\"confidence\":0.5}\n```"}'
	run -0 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/in"
	assert_equal "$(echo "${lines[0]}" | jq -c '[.tries, .analysis.summary]')" '[1,"s"]'
}

@test "dt-analyze: TIMEOUT_SECONDS bounds the first call too, and the workers waiting for it" {
	faults '{"kind":"hang"}'
	records 4 >"$BATS_TEST_TMPDIR/four"
	SECONDS=0
	TIMEOUT_SECONDS=1 DT_HTTP_TRIES=1 run -1 --separate-stderr dt-fanout -j 2 <"$BATS_TEST_TMPDIR/four"
	[ "$SECONDS" -le 15 ] || fail "took $SECONDS s"
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -r 'select(.id) | .error.message' | sort | uniq -c | awk '{$1=$1; print}')" \
		"4 no complete response within 1000 ms (after 1 tries)"
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
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -c 'select(.id) | [.error.kind, .error.retryable]' | sort | uniq -c | awk '{print $1, $2}')" '5 ["config",true]'
	assert_equal "$(echo "${lines[0]}" | jq -r .error.message)" "HTTP 401: Invalid API key provided"
	assert_equal "$(echo "${lines[1]}" | jq -r .error.message)" "not called: PERPLEXITY_API_KEY: the API refused the key (HTTP 401: Invalid API key provided); check the key"
	assert_equal "$(echo "${lines[5]}" | jq -c '[.status, .message]')" '[78,"the API refused the key"]'
	assert_equal "$(pplx requests | wc -l)" 1
	assert_no_secret wrong-key-0123456789 <(echo "$output") <(echo "$stderr")
	assert_equal "$(printf '%s\n' "${stderr_lines[@]}" | grep -v ': debug: ' | grep -v ': trace: ')" \
		"dt-analyze: error: PERPLEXITY_API_KEY: the API refused the key (HTTP 401: Invalid API key provided); check the key; no more calls in this run, every row is given back"
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
		"{\"kind\":\"config\",\"message\":\"HTTP 422: $(jq -nr '"я" * 149')\",\"retryable\":true}"
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
	run -0 --separate-stderr dt-analyze --model "perplexity/$(jq -nr '"модель" * 25')" "$BATS_TEST_TMPDIR/in"
	assert_equal "$(echo "${lines[0]}" | jq -r .model)" "perplexity/$(jq -nr '"модель" * 9 + "моде"')"
	assert_equal "$(echo "${lines[1]}" | jq -c '[.stage, .status]')" '["dt-analyze",0]'
}
