#!/usr/bin/env bats
# dt-report: the run summary and the report text, without Telegram.

bats_require_minimum_version 1.5.0
load test_helper/common

setup() {
	dt_common_setup
	cd "$DT_ROOT"
	export DT_REPORT_SCHEMA=$DT_ROOT/analyze/schema.json
	export DT_RUN_STARTED_AT=2024-05-01T10:00:00Z
	export DT_RUN_FINISHED_AT=2024-05-01T10:04:12.5Z
	M=$BATS_TEST_TMPDIR/messages
}

# golden NAME LANG STATUS: a dry run over run-NAME.ndjson matches the files.
golden() {
	local name=$1 lang=$2 status=$3
	run -"$status" --separate-stderr env DT_REPORT_LANG="$lang" \
		dt-report -n --message-file "$M" "t/fixtures/report/run-$name.ndjson"
	assert_equal "$stderr" ""
	assert_equal "$(cat "$M")" "$(cat "t/fixtures/report/run-$name.$lang.html")"
	if [ "$lang" = en ]; then
		assert_output "$(cat "t/fixtures/report/run-$name.en.json")"
	else
		assert_equal "$(jq -c 'del(.report.lang)' <<<"$output")" \
			"$(jq -c 'del(.report.lang)' "t/fixtures/report/run-$name.en.json")"
		assert_equal "$(jq -r .report.lang <<<"$output")" ru
	fi
}

@test "dt-report: a clean run's summary and English report match the golden files" {
	golden ok en 0
	assert_equal "$(jq -c '[.state, .records, .tokens.total, .cost_usd, .latency_ms.p50, .report.notify]' <<<"$output")" \
		'["ok",6,2808,0.0062,700,false]'
}

@test "dt-report: the same run in Russian (DT_REPORT_LANG=ru)" {
	golden ok ru 0
}

@test "dt-report: --lang overrides DT_REPORT_LANG" {
	run -0 --separate-stderr env DT_REPORT_LANG=ru dt-report --lang en -n --message-file "$M" t/fixtures/report/run-ok.ndjson
	assert_equal "$(cat "$M")" "$(cat t/fixtures/report/run-ok.en.html)"
}

@test "dt-report: rows without text are counted as skipped; a run whose only oddity they are is ok" {
	golden skipped en 0
	assert_equal "$(jq -c '[.state, .exit_code, .records, .failed, .by_status, .report.notify]' <<<"$output")" \
		'["ok",0,5,0,{"stored":2,"skipped":3},false]'
	grep -qF 'Records: 5 — stored 2 · skipped (no text) 3' "$M"
	golden skipped ru 0
	grep -qF 'Записи: 5 — сохранено 2 · пропущено (без текста) 3' "$M"
}

@test "dt-report: a failed upstream stage makes an alert saying what failed" {
	golden failed en 69
	assert_equal "$(jq -c '[.state, .report.notify, .stages[0].messages]' <<<"$output")" \
		'["failed",true,["Supabase unavailable, HTTP 503, 0 of 0 rows claimed"]]'
	grep -qF '• <b>dt-fetch</b> (exit 69, service unavailable): Supabase unavailable, HTTP 503, 0 of 0 rows claimed' "$M"
	golden failed ru 69
}

@test "dt-report: an interrupted stage marks the run partial; hostile topics are escaped" {
	golden partial en 75
	assert_equal "$(jq -r .state <<<"$output")" partial
	grep -qF '1. &lt;script&gt;alert(1)&lt;/script&gt; — 1' "$M"
	golden partial ru 75
}

@test "dt-report: without Telegram configuration the report goes to stderr, stdout has only the summary" {
	run -0 --separate-stderr dt-report t/fixtures/report/run-ok.ndjson
	assert_equal "${#lines[@]}" 1
	jq -e '.report.sent == false' <<<"$output" >/dev/null
	assert_equal "$stderr" "dt-report: info: Telegram is not configured (TELEGRAM_BOT_TOKEN, TELEGRAM_CHAT_ID); the report follows
$(cat t/fixtures/report/run-ok.en.html)"
}

@test "dt-report: replaying dt-analyze output (no status) counts analysed and failed records" {
	printf '%s\n' \
		'{"id":1,"run_id":"r","analysis":{"sentiment":"positive","topics":["a"],"language":"en"},"usage":{"prompt_tokens":5,"completion_tokens":5,"total_tokens":10,"cost_usd":0.5},"latency_ms":10}' \
		'{"id":2,"run_id":"r","error":{"kind":"too_large","message":"x","retryable":false}}' \
		'{"id":3,"run_id":"r","text":"not analysed yet"}' \
		'{"stage":"dt-analyze","run_id":"r","status":1,"message":null,"counts":{"records":3},"interrupted":false}' \
		>"$BATS_TEST_TMPDIR/in"
	run -1 --separate-stderr dt-report -n --message-file "$M" "$BATS_TEST_TMPDIR/in"
	assert_equal "$(jq -c '[.run_id, .state, .records, .failed, .by_status, .by_error, .tokens.total, .cost_usd]' <<<"$output")" \
		'["r","partial",3,1,{"analyzed":1,"failed":1,"fetched":1},{"too_large":1},10,0.5]'
}

@test "dt-report: bad lines are warned about with file and line, counted, and the report still goes out" {
	printf '%s\n' '{"id":1,"status":"stored"}' '{"id":2,' '[1]' '' '{"id":3,"status":"stored"}' >"$BATS_TEST_TMPDIR/in"
	printf '{"id":4,"x":"\xff"}\n' >>"$BATS_TEST_TMPDIR/in"
	run -65 --separate-stderr dt-report -n --message-file "$M" "$BATS_TEST_TMPDIR/in"
	assert_equal "${stderr_lines[0]}" "dt-report: warning: $BATS_TEST_TMPDIR/in:2: invalid JSON: string or '}' expected near end of file (column 8)"
	assert_equal "${stderr_lines[1]}" "dt-report: warning: $BATS_TEST_TMPDIR/in:3: not a JSON object (got an array)"
	assert_equal "${stderr_lines[2]}" "dt-report: warning: $BATS_TEST_TMPDIR/in:6: not valid UTF-8 (byte 14)"
	assert_equal "${#stderr_lines[@]}" 3
	assert_equal "$(jq -c '[.records, .bad_lines, .state, .exit_code]' <<<"$output")" '[2,3,"partial",65]'
	grep -qF 'Unreadable input lines: 3' "$M"
}

@test "dt-report: a line over the limit is a bad line, and reading goes on" {
	{
		printf '{"id":1,"status":"stored","pad":"'
		head -c 1100000 /dev/zero | tr '\0' a
		printf '"}\n{"id":2,"status":"stored"}\n'
	} >"$BATS_TEST_TMPDIR/in"
	run -65 --separate-stderr dt-report -n --message-file "$M" "$BATS_TEST_TMPDIR/in"
	assert_equal "$stderr" "dt-report: warning: $BATS_TEST_TMPDIR/in:1: line too long (limit 1048576 bytes)"
	assert_equal "$(jq -c '[.records, .bad_lines]' <<<"$output")" '[1,1]'
}

@test "dt-report: an input file that cannot be read is an error; the others are still read" {
	echo '{"id":1,"status":"stored"}' >"$BATS_TEST_TMPDIR/b"
	run -65 --separate-stderr dt-report -n --message-file "$M" "$BATS_TEST_TMPDIR/missing" "$BATS_TEST_TMPDIR/b"
	assert_equal "$stderr" "dt-report: error: $BATS_TEST_TMPDIR/missing: No such file or directory"
	assert_equal "$(jq -c .records <<<"$output")" 1
}

@test "dt-report: empty input is a clean, empty run" {
	run -0 --separate-stderr dt-report -n --message-file "$M" </dev/null
	assert_equal "$(jq -c '[.state, .records, .run_id, .report.notify]' <<<"$output")" '["ok",0,null,false]'
	assert_equal "$(cat "$M")" $'✅ <b>dt run: ok</b>\nRecords: 0\nDuration: 4\u00a0min 13\u00a0s'
}

@test "dt-report: run id and times come from DT_RUN_ID and the stage records" {
	unset DT_RUN_STARTED_AT
	printf '%s\n' '{"stage":"dt-fetch","run_id":"r1","started_at":"2024-05-01T09:59:00+03:00","status":0,"counts":{}}' \
		'{"stage":"dt-store","run_id":"r1","started_at":"2024-05-01T07:00:00Z","status":0,"counts":{}}' >"$BATS_TEST_TMPDIR/in"
	run -0 --separate-stderr env DT_RUN_ID=override dt-report -n --message-file "$M" "$BATS_TEST_TMPDIR/in"
	assert_equal "$(jq -c '[.run_id, .started_at, .duration_s]' <<<"$output")" '["override","2024-05-01T07:00:00Z",11052.5]'
	# DT_RUN_STARTED_AT wins, read with its offset.
	run -0 --separate-stderr env DT_RUN_STARTED_AT=2024-05-01T13:00:00+03:00 dt-report -n --message-file "$M" "$BATS_TEST_TMPDIR/in"
	assert_equal "$(jq -c '[.started_at, .duration_s]' <<<"$output")" '["2024-05-01T13:00:00+03:00",252.5]'
}

@test "dt-report: records of one run with a long run id are one run; two ids are mixed" {
	long=$(printf 'r%.0s' $(seq 150))
	for id in "$long" "$long" "$long"; do
		printf '{"id":1,"run_id":"%s","status":"stored"}\n' "$id"
	done >"$BATS_TEST_TMPDIR/in"
	run -0 --separate-stderr dt-report -n --message-file "$M" "$BATS_TEST_TMPDIR/in"
	assert_equal "$(jq -c '[.records, .mixed_run_ids]' <<<"$output")" '[3,null]'
	printf '{"id":2,"run_id":"other","status":"stored"}\n' >>"$BATS_TEST_TMPDIR/in"
	run -0 --separate-stderr dt-report -n --message-file "$M" "$BATS_TEST_TMPDIR/in"
	assert_equal "$(jq -c '[.records, .mixed_run_ids]' <<<"$output")" '[4,true]'
}

@test "dt-report: without a schema file the default analysis fields are reported" {
	unset DT_REPORT_SCHEMA
	# A copy away from the build's share/dt finds no schema beside it.
	cp "$DT_BUILD/bin/dt-report" "$BATS_TEST_TMPDIR/dt-report"
	run -0 --separate-stderr "$BATS_TEST_TMPDIR/dt-report" -n --message-file "$M" t/fixtures/report/run-ok.ndjson
	assert_equal "$(jq -c '.analysis.fields | keys_unsorted' <<<"$output")" \
		'["sentiment","language","topics","action_items","confidence"]'
	assert_equal "$(jq -c '.analysis.fields.sentiment.counts' <<<"$output")" \
		'{"positive":1,"neutral":2,"negative":2,"mixed":1}'
}

@test "dt-report: 100,000 records are counted exactly, each freed once counted" {
	awk 'BEGIN { for (i = 0; i < 100000; i++)
		printf "{\"id\":%d,\"status\":\"stored\",\"latency_ms\":%d,\"analysis\":{\"sentiment\":\"neutral\",\"topics\":[\"junk %d\",\"billing\"],\"language\":\"en\"}}\n", i, i % 9000, i }' >"$BATS_TEST_TMPDIR/in"
	# Each record is parsed and freed: ASan's quarantine keeps what was
	# freed, up to its size (256 MiB by default), so under it the
	# quarantine is made small for the check to see any growth.
	[ -z "${ASAN_OPTIONS:-}" ] || export ASAN_OPTIONS="$ASAN_OPTIONS:quarantine_size_mb=4"
	run -0 --separate-stderr /usr/bin/time -f 'maxrss %M' -o "$BATS_TEST_TMPDIR/time" dt-report -n --message-file "$M" "$BATS_TEST_TMPDIR/in"
	rss=$(awk '/maxrss/ {print $2}' "$BATS_TEST_TMPDIR/time")
	# What is kept is the counts (100,000 topics, 100,000 latencies),
	# not the records (about 1 KiB each once parsed); ASan's shadow
	# memory adds to it.
	limit=49152
	[ -z "${DT_SANITIZED:-}" ] || limit=131072
	! unwrapped || [ "$rss" -lt "$limit" ] || fail "peak RSS $rss KiB"
	assert_equal "$(jq -c '.analysis.fields.topics | [.top[0:2], .total, .approximate]' <<<"$output")" \
		'[[{"value":"billing","count":100000},{"value":"junk 0","count":1}],200000,null]'
	# The nearest-rank values of 0 .. 8999 eleven times and 0 .. 999.
	assert_equal "$(jq -c '.latency_ms' <<<"$output")" '{"count":100000,"p50":4454,"p95":8545,"max":8999}'
	run -1 grep -F '(approximate)' "$M"
}

@test "dt-report: --help, --version and bad options" {
	run -0 --separate-stderr dt-report --help
	assert_line --index 0 'usage: dt-report [-hnqVv] [-L bytes] [--lang lang] [--message-file file]'
	# The settings part is written from dt-report's table.
	assert_line '      --lang en|ru         report language (DT_REPORT_LANG, default en)'
	assert_line '  DT_REPORT_TOP            values shown of each field (default 10, 1 to 1000)'
	assert_line '  TELEGRAM_BOT_TOKEN[_FILE]'
	run -0 --separate-stderr dt-report -V
	assert_output 'dt-report 0.1.0'
	run -64 --separate-stderr dt-report --bogus
	assert_equal "${stderr_lines[1]}" "Try 'dt-report --help'."
	run -64 --separate-stderr dt-report --lang fr
	assert_equal "$stderr" $'dt-report: error: --lang: \'fr\' is not one of en, ru\nTry \'dt-report --help\'.'
	# -l is dt-fetch's --lease-seconds and -m its --max-records
	# (docs/options.md): dt-report has only the long forms.
	run -64 --separate-stderr dt-report -l ru -n </dev/null
	assert_equal "$stderr" $'dt-report: invalid option -- \'l\'\nTry \'dt-report --help\'.'
	run -64 --separate-stderr dt-report -m /dev/null -n </dev/null
	assert_equal "$stderr" $'dt-report: invalid option -- \'m\'\nTry \'dt-report --help\'.'
}

@test "dt-report: bad configuration is named and exits 78" {
	run -78 --separate-stderr env DT_REPORT_LANG=de dt-report -n </dev/null
	assert_equal "$stderr" "dt-report: error: DT_REPORT_LANG: 'de' is not one of en, ru"
	run -78 --separate-stderr env DT_REPORT_NOTIFY=sometimes dt-report -n </dev/null
	assert_equal "$stderr" "dt-report: error: DT_REPORT_NOTIFY: 'sometimes' is not one of problems, always, never"
	run -78 --separate-stderr env TELEGRAM_BOT_TOKEN=123:abc dt-report -n </dev/null
	assert_equal "$stderr" "dt-report: error: TELEGRAM_BOT_TOKEN is set but TELEGRAM_CHAT_ID is not: set both to send the report"
	run -78 --separate-stderr env TELEGRAM_BOT_TOKEN=123:abc TELEGRAM_CHAT_ID='my chat' dt-report -n </dev/null
	assert_equal "$stderr" "dt-report: error: TELEGRAM_CHAT_ID: 'my chat' is neither a chat number nor an @channel name"
	# Telegram's ids have at most 52 significant bits: 16 digits.
	run -0 --separate-stderr env TELEGRAM_BOT_TOKEN=123:abc TELEGRAM_CHAT_ID=-1004503599627370 dt-report --check-config
	run -78 --separate-stderr env TELEGRAM_BOT_TOKEN=123:abc TELEGRAM_CHAT_ID=-10045035996273704 dt-report -n </dev/null
	assert_equal "$stderr" "dt-report: error: TELEGRAM_CHAT_ID: '-10045035996273704' is neither a chat number nor an @channel name"
	run -78 --separate-stderr env DT_PUSHGATEWAY_JOB='a/b' dt-report -n </dev/null
	assert_equal "$stderr" "dt-report: error: DT_PUSHGATEWAY_JOB: 'a/b' may only have letters, digits, '_', '.' and '-'"
	run -78 --separate-stderr env DT_REPORT_SCHEMA=/nonexistent dt-report -n </dev/null
	assert_output ""
	[[ $stderr == "dt-report: error: DT_REPORT_SCHEMA: /nonexistent: unable to open /nonexistent: No such file or directory" ]]
}

@test "dt-report: --check-config reads no input, prints nothing when valid, names every problem" {
	run -0 --separate-stderr dt-report --check-config <<<'not json'
	assert_output ""
	assert_equal "$stderr" ""
	run -78 --separate-stderr env DT_REPORT_LANG=de DT_RUN_STARTED_AT=yesterday \
		SUPABASE_URL=http://127.0.0.1:1 dt-report --check-config
	assert_output ""
	assert_equal "$stderr" "dt-report: error: DT_REPORT_LANG: 'de' is not one of en, ru
dt-report: error: DT_RUN_STARTED_AT: 'yesterday' is not an RFC 3339 time
dt-report: error: SUPABASE_KEY is not set (a secret key, sb_secret_..., or the legacy service_role key; or SUPABASE_KEY_FILE naming a file that holds it)"
}

@test "dt-report: -L and DT_MAX_LINE set the longest line" {
	printf '{"id":1,"status":"stored","pad":"%02000d"}\n{"id":2,"status":"stored"}\n' 0 >"$BATS_TEST_TMPDIR/in"
	run -65 --separate-stderr dt-report -n --message-file "$M" -L 1024 "$BATS_TEST_TMPDIR/in"
	assert_equal "$stderr" "dt-report: warning: $BATS_TEST_TMPDIR/in:1: line too long (limit 1024 bytes)"
	run -65 --separate-stderr env DT_MAX_LINE=1500 dt-report -n --message-file "$M" "$BATS_TEST_TMPDIR/in"
	assert_equal "$stderr" "dt-report: warning: $BATS_TEST_TMPDIR/in:1: line too long (limit 1500 bytes)"
	run -64 --separate-stderr dt-report -L 10 "$BATS_TEST_TMPDIR/in"
	assert_equal "${stderr_lines[0]}" "dt-report: error: --max-line: 10 is out of range (1024 to 1073741824)"
}

@test "dt-report: reading a pipe, the run started when dt-report did" {
	unset DT_RUN_STARTED_AT DT_RUN_FINISHED_AT
	before=$(date -u +%s)
	{ sleep 1; echo '{"id":1,"status":"stored"}'; } | dt-report -n --message-file "$M" >"$BATS_TEST_TMPDIR/out"
	jq -e --argjson b "$before" '(.started_at | fromdate) >= $b and .duration_s >= 1 and .duration_s < 5' \
		"$BATS_TEST_TMPDIR/out" >/dev/null
	# A file is a replay: when it ran is not known.
	echo '{"id":1,"status":"stored"}' >"$BATS_TEST_TMPDIR/in"
	dt-report -n --message-file "$M" "$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out"
	assert_equal "$(jq -c '[.started_at, .duration_s]' "$BATS_TEST_TMPDIR/out")" '[null,null]'
}

@test "dt-report: an expected stage without its stage record fails the run and says so" {
	grep -v '"stage":"dt-analyze"' t/fixtures/report/run-ok.ndjson >"$BATS_TEST_TMPDIR/in"
	run -75 --separate-stderr env DT_EXPECT_STAGES=dt-fetch,dt-analyze,dt-store \
		dt-report -n --message-file "$M" "$BATS_TEST_TMPDIR/in"
	assert_equal "$stderr" "dt-report: error: dt-analyze ended without its stage record (crashed or killed?)"
	assert_equal "$(jq -c '[.state, .exit_code, (.stages[] | select(.missing) | [.stage, .status, .messages])]' <<<"$output")" \
		'["failed",75,["dt-analyze",75,["dt-analyze ended without its stage record (crashed or killed?)"]]]'
	run -0 cat "$M"
	assert_line --index 0 '❌ <b>dt run: FAILED</b>'
	assert_line '• <b>dt-analyze</b> ended without its stage record (crashed or killed?)'
	# Every stage there: nothing changes.
	run -0 --separate-stderr env DT_EXPECT_STAGES=dt-fetch,dt-analyze,dt-store \
		dt-report -n --message-file /dev/null t/fixtures/report/run-ok.ndjson
	assert_output "$(cat t/fixtures/report/run-ok.en.json)"
	# In Russian.
	run -75 --separate-stderr env DT_EXPECT_STAGES=dt-analyze DT_REPORT_LANG=ru \
		dt-report -n --message-file "$M" "$BATS_TEST_TMPDIR/in"
	run -0 cat "$M"
	assert_line '• <b>dt-analyze</b> завершилась без записи о стадии (упала или убита?)'
}
