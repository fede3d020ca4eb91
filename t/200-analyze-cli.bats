#!/usr/bin/env bats
# dt-analyze: command line, configuration errors, the schema validator's
# unit tests and --dry-run.

load test_helper/common
load test_helper/perplexity

setup_file() { pplx_start; }
teardown_file() { pplx_stop; }

setup() {
	dt_common_setup
	pplx_env
}

@test "dt-analyze: schema validator and digest unit tests pass" {
	run -0 "$DT_BUILD/t/analyze_schema" "$DT_ROOT/analyze/schema.json"
	assert_output --regexp '^[0-9]+ checks, 0 failed$'
}

@test "dt-analyze: -h prints the usage to stdout, -V the version" {
	run -0 --separate-stderr dt-analyze -h
	assert_line --index 0 --regexp '^usage: dt-analyze \[-hnqVvw\]'
	assert_output --partial '      --too-large cut|reject'
	assert_output --partial '  -n, --dry-run '
	# The settings part is written from dt-analyze's table.
	assert_line '  -k, --breaker N          open the circuit after N consecutive outage failures'
	assert_line '  DT_RPM_WINDOW_MS         the window (default 60000, 100 to 3600000)'
	assert_line '  DT_SHARDS                pods of a scale-out run (default 1, 1 to 1000)'
	assert_equal "$stderr" ""
	run -0 --separate-stderr dt-analyze --version
	assert_output "dt-analyze 0.1.0"
}

@test "dt-analyze: -n is --dry-run; letters that mean another option elsewhere are not taken" {
	printf '%s\n' '{"id":1,"text":"hello"}' >"$BATS_TEST_TMPDIR/in"
	run -0 --separate-stderr dt-analyze -n "$BATS_TEST_TMPDIR/in"
	assert_equal "$(jq -rs ".[0].dry_run" <<<"$output")" true
	run -0 --separate-stderr dt-analyze --dry-run --max-text-bytes 64 "$BATS_TEST_TMPDIR/in"
	assert_equal "$(jq -rs ".[0].dry_run" <<<"$output")" true
	# docs/options.md: -a -b -d -m -p -r -t -x are dt-fetch's, dt-store's
	# or dt-entrypoint's.
	for o in a b d m p r t x; do
		run -64 --separate-stderr dt-analyze -$o 1 "$BATS_TEST_TMPDIR/in"
		assert_equal "$stderr" "dt-analyze: invalid option -- '$o'
Try 'dt-analyze --help'."
	done
}

@test "dt-analyze: a bad option or value is a usage error" {
	run -64 --separate-stderr dt-analyze --bogus
	assert_equal "${stderr_lines[1]}" "Try 'dt-analyze --help'."
	run -64 --separate-stderr dt-analyze --api soap
	assert_equal "${stderr_lines[0]}" "dt-analyze: error: --api: 'soap' is not one of agent, chat"
	assert_equal "${stderr_lines[1]}" "Try 'dt-analyze --help'."
	run -64 --separate-stderr dt-analyze --rpm -1
	assert_equal "${stderr_lines[1]}" "Try 'dt-analyze --help'."
}

@test "dt-analyze: configuration errors exit 78 with one line naming the cause" {
	run -78 --separate-stderr env -u PERPLEXITY_API_KEY dt-analyze </dev/null
	assert_equal "$stderr" "dt-analyze: error: PERPLEXITY_API_KEY (or PERPLEXITY_API_KEY_FILE) is not set"
	DT_API=soap run -78 --separate-stderr dt-analyze </dev/null
	assert_equal "$stderr" "dt-analyze: error: DT_API: 'soap' is not one of agent, chat"
	DT_TOO_LARGE=drop run -78 --separate-stderr dt-analyze </dev/null
	assert_equal "$stderr" "dt-analyze: error: DT_TOO_LARGE: 'drop' is not one of cut, reject"
	run -78 --separate-stderr dt-analyze --prompt "$BATS_TEST_TMPDIR/none.txt" </dev/null
	assert_equal "$stderr" "dt-analyze: error: $BATS_TEST_TMPDIR/none.txt: No such file or directory"
	echo '{"type":"object","properties":{"a":{"type":"string","pattern":"^x"}}}' >"$BATS_TEST_TMPDIR/s.json"
	run -78 --separate-stderr dt-analyze -s "$BATS_TEST_TMPDIR/s.json" </dev/null
	assert_equal "$stderr" "dt-analyze: error: $BATS_TEST_TMPDIR/s.json: \$.a: unsupported keyword \"pattern\""
	echo '{"type":' >"$BATS_TEST_TMPDIR/bad.json"
	run -78 --separate-stderr dt-analyze -s "$BATS_TEST_TMPDIR/bad.json" </dev/null
	assert_output ""
	assert_equal "${#stderr_lines[@]}" 1
	# --estimate's settings are checked with the others, in every mode.
	DT_SHARDS=0 run -78 --separate-stderr dt-analyze </dev/null
	assert_equal "$stderr" "dt-analyze: error: DT_SHARDS: 0 is out of range (1 to 1000)"
	DT_FANOUT_SLOTS=0 run -78 --separate-stderr dt-analyze </dev/null
	assert_equal "$stderr" "dt-analyze: error: DT_FANOUT_SLOTS: 0 is out of range (1 to 100000)"
	DT_SCHEMA_NAME='a b' run -78 --separate-stderr dt-analyze </dev/null
	assert_equal "$stderr" "dt-analyze: error: DT_SCHEMA_NAME: 'a b' must be 1 to 64 letters, digits, '_' or '-'"
	PERPLEXITY_BASE_URL=ftp://x run -78 --separate-stderr dt-analyze </dev/null
	assert_equal "$stderr" "dt-analyze: error: PERPLEXITY_BASE_URL: 'ftp://x' is not an http(s) URL"
	# What goes into the JSON of a request must be UTF-8.
	printf 'Analyze \320\n' >"$BATS_TEST_TMPDIR/p.txt"
	run -78 --separate-stderr dt-analyze --prompt "$BATS_TEST_TMPDIR/p.txt" </dev/null
	assert_equal "$stderr" "dt-analyze: error: $BATS_TEST_TMPDIR/p.txt: the prompt is not valid UTF-8 (byte 9)"
	PERPLEXITY_MODEL=$'sonar\xff' run -78 --separate-stderr dt-analyze </dev/null
	assert_equal "$stderr" "dt-analyze: error: PERPLEXITY_MODEL: the model name is not valid UTF-8"
	assert_equal "$(pplx requests | wc -l)" 0
}

@test "dt-analyze: a key with a newline, or a model of the wrong form, is refused at start: exit 78, nothing sent" {
	records 3 >"$BATS_TEST_TMPDIR/in"
	PERPLEXITY_API_KEY=$PPLX_KEY$'\n' run -78 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/in"
	assert_equal "$stderr" "dt-analyze: error: PERPLEXITY_API_KEY: the value contains a line break (byte $((${#PPLX_KEY} + 1))); remove it"
	assert_equal "$output" ""
	PERPLEXITY_MODEL=sonnar run -78 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/in"
	[[ $stderr =~ ^dt-analyze:\ error:\ PERPLEXITY_MODEL:\ \'sonnar\'\ is\ not\ a\ model\ name ]]
	assert_equal "$output" ""
	assert_equal "$(pplx requests | wc -l)" 0
}

@test "dt-analyze: the key can come from PERPLEXITY_API_KEY_FILE" {
	printf '%s\n' "$PPLX_KEY" >"$BATS_TEST_TMPDIR/key"
	records 1 >"$BATS_TEST_TMPDIR/in"
	PERPLEXITY_API_KEY_FILE=$BATS_TEST_TMPDIR/key run -0 --separate-stderr \
		env -u PERPLEXITY_API_KEY dt-analyze "$BATS_TEST_TMPDIR/in"
	assert_equal "$(echo "${lines[0]}" | jq -r .analysis.sentiment)" positive
}

@test "dt-analyze: --dry-run prints each request with the key masked and an estimate, and sends nothing" {
	records 2 >"$BATS_TEST_TMPDIR/in"
	run -0 --separate-stderr dt-analyze -n "$BATS_TEST_TMPDIR/in"
	assert_equal "${#lines[@]}" 3
	assert_equal "$(echo "${lines[0]}" | jq -c '[.id, .dry_run, .request.method, .request.url, .request.headers]')" \
		"[1,true,\"POST\",\"$PPLX_URL/v1/agent\",{\"Authorization\":\"Bearer ***\",\"Content-Type\":\"application/json\"}]"
	assert_equal "$(echo "${lines[0]}" | jq -r '.request.body.input')" "$(printf '<dt-data-%s>\n%s\n</dt-data-%s>' \
		"$(echo "${lines[0]}" | jq -r '.request.body.input' | head -1 | sed 's/<dt-data-\(.*\)>/\1/')" \
		"Thanks for the great meeting! Please send the report by Friday. #1" \
		"$(echo "${lines[0]}" | jq -r '.request.body.input' | head -1 | sed 's/<dt-data-\(.*\)>/\1/')")"
	assert_equal "$(echo "${lines[0]}" | jq -r '.estimate.max_output_tokens')" 1024
	[ "$(echo "${lines[0]}" | jq -r '.estimate.input_tokens')" -gt 500 ]
	assert_equal "$(echo "${lines[2]}" | jq -c '[.stage, .dry_run, .counts.records, .estimate.max_output_tokens]')" '["dt-analyze",true,2,2048]'
	assert_equal "$(pplx requests | wc -l)" 0
	assert_no_secret "$PPLX_KEY" <(echo "$output") <(echo "$stderr")
}

@test "dt-analyze: --dry-run prints requests, never the records that need no call, wherever they come" {
	{
		echo '{"id":1,"text":null}'
		records 1
		echo '{"id":3,"text":null}'
		echo '{"stage":"dt-fetch","status":0}'
	} >"$BATS_TEST_TMPDIR/in"
	DT_PACK=5 run -0 --separate-stderr dt-analyze --dry-run "$BATS_TEST_TMPDIR/in"
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -c '[.id, .dry_run, .stage]' | tr '\n' ' ')" \
		'[1,true,null] [null,true,"dt-analyze"] '
	assert_equal "$(pplx requests | wc -l)" 0
}

@test "dt-analyze: --dry-run works without a key and says so" {
	records 1 | env -u PERPLEXITY_API_KEY dt-analyze --dry-run >"$BATS_TEST_TMPDIR/out"
	assert_equal "$(head -1 "$BATS_TEST_TMPDIR/out" | jq -r '.request.headers.Authorization')" "Bearer (PERPLEXITY_API_KEY unset)"
}

@test "dt-analyze --check-config: a valid configuration passes silently, reads no input and sends nothing" {
	records 3 >"$BATS_TEST_TMPDIR/in"
	run -0 --separate-stderr dt-analyze --check-config <"$BATS_TEST_TMPDIR/in"
	assert_equal "$output" ""
	assert_equal "$stderr" ""
	run -0 --separate-stderr dt-analyze --check-config --api chat --model sonar-pro --rpm 10 "$BATS_TEST_TMPDIR/in"
	assert_equal "$output$stderr" ""
	# The API is not asked: a base URL nobody listens on is fine.
	PERPLEXITY_BASE_URL=http://127.0.0.1:1 run -0 --separate-stderr dt-analyze --check-config
	assert_equal "$output$stderr" ""
	# --dry-run needs no key, and so neither does checking for it.
	run -0 --separate-stderr env -u PERPLEXITY_API_KEY dt-analyze --check-config --dry-run
	assert_equal "$output$stderr" ""
	assert_equal "$(pplx requests | wc -l)" 0
	assert_equal "$(ls -A "$DT_STATE_DIR")" ""
}

@test "dt-analyze --check-config: a bad configuration exits 78 with the cause" {
	run -78 --separate-stderr env -u PERPLEXITY_API_KEY dt-analyze --check-config
	assert_equal "$stderr" "dt-analyze: error: PERPLEXITY_API_KEY (or PERPLEXITY_API_KEY_FILE) is not set"
	echo '{"type":"object","properties":{"a":{"format":"date"}}}' >"$BATS_TEST_TMPDIR/s.json"
	run -78 --separate-stderr dt-analyze --check-config -s "$BATS_TEST_TMPDIR/s.json"
	assert_equal "$stderr" "dt-analyze: error: $BATS_TEST_TMPDIR/s.json: \$.a: unsupported keyword \"format\""
	DT_RPM=many run -78 --separate-stderr dt-analyze --check-config
	assert_equal "$stderr" "dt-analyze: error: DT_RPM: 'many' is not a whole number (0 to 1000000)"
	# A key pasted with its newline.
	PERPLEXITY_API_KEY=$PPLX_KEY$'\n' run -78 --separate-stderr dt-analyze --check-config
	assert_equal "$stderr" "dt-analyze: error: PERPLEXITY_API_KEY: the value contains a line break (byte $((${#PPLX_KEY} + 1))); remove it"
	assert_no_secret "$PPLX_KEY" <(echo "$output") <(echo "$stderr")
	# A model name must have its API's form.
	PERPLEXITY_MODEL=sonar run -78 --separate-stderr dt-analyze --check-config
	assert_equal "$stderr" "dt-analyze: error: PERPLEXITY_MODEL: 'sonar' is not a model name of the Agent API (DT_API=agent), which are provider/model, such as perplexity/sonar"
	DT_API=chat PERPLEXITY_MODEL=perplexity/sonar run -78 --separate-stderr dt-analyze --check-config
	assert_equal "$stderr" "dt-analyze: error: PERPLEXITY_MODEL: 'perplexity/sonar' is not a model name of chat completions (DT_API=chat), which are bare names, such as sonar"
	run -78 --separate-stderr dt-analyze --check-config --model 'perplexity/sonar '
	assert_equal "$stderr" "dt-analyze: error: PERPLEXITY_MODEL: the model name contains white space or a control character (byte 17)"
	for m in /sonar perplexity/ a/b/c; do
		run -78 --separate-stderr dt-analyze --check-config --model "$m"
		[[ $stderr =~ is\ not\ a\ model\ name\ of\ the\ Agent\ API ]]
	done
	# Without PERPLEXITY_MODEL each API gets its own default.
	run -0 --separate-stderr dt-analyze --check-config --api chat
	assert_equal "$stderr" ""
	# Under --check-config a bad flag value is a bad setting like any
	# other, as in every program; without it, a usage error.
	run -78 --separate-stderr dt-analyze --check-config --rpm=-1
	assert_equal "$stderr" "dt-analyze: error: --rpm: -1 is out of range (0 to 1000000)"
	run -64 --separate-stderr dt-analyze --rpm=-1 /dev/null
	assert_equal "$stderr" "dt-analyze: error: --rpm: -1 is out of range (0 to 1000000)
Try 'dt-analyze --help'."
	assert_equal "$output" ""
	assert_equal "$(pplx requests | wc -l)" 0
}

@test "dt-analyze: the default prompt and schema are the ones installed beside the program" {
	unset DT_PROMPT_FILE DT_SCHEMA_FILE
	records 1 >"$BATS_TEST_TMPDIR/in"
	run -0 --separate-stderr dt-analyze -n "$BATS_TEST_TMPDIR/in"
	assert_equal "$(echo "${lines[0]}" | jq -r .request.body.instructions)" "$(cat "$DT_ROOT/analyze/prompt.txt")"
	assert_equal "$(echo "${lines[0]}" | jq -c .request.body.response_format.json_schema.schema)" "$(jq -c . "$DT_ROOT/analyze/schema.json")"
	# A copy elsewhere reads ../share/dt beside itself.
	mkdir -p "$BATS_TEST_TMPDIR/opt/bin" "$BATS_TEST_TMPDIR/opt/share/dt"
	cp "$DT_BUILD/bin/dt-analyze" "$BATS_TEST_TMPDIR/opt/bin/"
	echo 'Say what the message is about.' >"$BATS_TEST_TMPDIR/opt/share/dt/prompt.txt"
	echo '{"type":"object","properties":{"about":{"type":"string"}}}' >"$BATS_TEST_TMPDIR/opt/share/dt/schema.json"
	run -0 --separate-stderr "$BATS_TEST_TMPDIR/opt/bin/dt-analyze" -n "$BATS_TEST_TMPDIR/in"
	assert_equal "$(echo "${lines[0]}" | jq -c '.request.body | [.instructions, .response_format.json_schema.schema]')" \
		'["Say what the message is about.\n",{"type":"object","properties":{"about":{"type":"string"}}}]'
	# The variables and flags still win.
	run -0 --separate-stderr "$BATS_TEST_TMPDIR/opt/bin/dt-analyze" -n --prompt "$DT_ROOT/analyze/prompt.txt" "$BATS_TEST_TMPDIR/in"
	assert_equal "$(echo "${lines[0]}" | jq -r .request.body.instructions)" "$(cat "$DT_ROOT/analyze/prompt.txt")"
	# Without them, the installed path is named.
	rm "$BATS_TEST_TMPDIR/opt/share/dt/prompt.txt"
	[ ! -e /usr/local/share/dt/prompt.txt ] || skip "dt is installed in /usr/local"
	run -78 --separate-stderr "$BATS_TEST_TMPDIR/opt/bin/dt-analyze" --check-config
	assert_equal "$stderr" "dt-analyze: error: /usr/local/share/dt/prompt.txt: No such file or directory"
}

@test "every stage names itself, not the path it was started by, in a usage error" {
	local p
	for p in dt-fetch dt-analyze dt-store dt-report; do
		run -64 --separate-stderr "$(command -v "$p")" --frobnicate </dev/null
		assert_equal "$stderr" "$p: unrecognized option '--frobnicate'
Try '$p --help'."
	done
}
