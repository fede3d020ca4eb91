#!/usr/bin/env bats
# Whole runs of dt-entrypoint against the local stack: the same text is
# not analysed twice, in one run or across runs (issue 14, section 3).
# Requests are counted in the Perplexity stand-in's request log.

load test_helper/common
load test_helper/stack
load test_helper/faults

setup_file() { stack_up; }
teardown_file() { stack_down; }

# One message a request (DT_PACK=1), so that the requests counted are
# the texts sent; the last test packs.
setup() {
	faults_setup
	export DT_PACK=1
	rows 0
}

# repeats N K: N source rows whose texts are K distinct ones, "text 0"
# .. "text K-1" in turn, every other one with spaces and a line break
# around it.
repeats() {
	sql "insert into public.messages (text) select case when g % 2 = 0
		then 'text ' || (g % $2) else E' text ' || (g % $2) || E'\n' end
		from generate_series(0, $1 - 1) g" >/dev/null
}

# requests: the calls the Perplexity stand-in answered.
requests() {
	standin perplexity requests | jq -s 'map(select(.path | test("agent|responses|completions"))) | length'
}

@test "entrypoint: 100 messages of 10 texts take at most 20 requests; a later run of the same texts takes none" {
	repeats 100 10
	DT_RUN_ID=reuse-1 run -0 --separate-stderr dt-entrypoint
	n=$(requests)
	echo "# first run: $n requests for 100 messages of 10 texts" >&3
	[ "$n" -ge 10 ] && [ "$n" -le 20 ] || fail "$n requests"
	run -0 state
	assert_output $'done\t100\t100\t100'
	assert_equal "$(count 'reused_from is not null and cost_usd = 0 and total_tokens = 0')" 90
	assert_equal "$(count 'reused_from is null and cost_usd > 0')" 10
	run -0 jq -c '[.by_status, .reused, .failed]' "$DT_RUN_DIR/report.json"
	assert_output '[{"stored":100},90,0]'
	run -0 jq -c 'select(.stage == "dt-store") | .counts | [.stored, .reused]' "$DT_RUN_DIR/store.ndjson"
	assert_output '[100,90]'
	telegram_text | grep -q "^Records: 100 — stored 100 (90 reused at no cost)$" || fail "$(telegram_text)"

	standin perplexity reset
	standin telegram reset
	repeats 100 10
	DT_RUN_ID=reuse-2 run -0 --separate-stderr dt-entrypoint
	assert_equal "$(requests)" 0
	assert_equal "$(count "run_id = 'reuse-2' and status = 'done' and reused_from is not null and cost_usd = 0")" 100
	run -0 jq -c '[.by_status, .reused, .cost_usd]' "$DT_RUN_DIR/report.json"
	assert_output '[{"stored":100},100,0]'
}

@test "entrypoint: one claim of 100 rows sends each of its 10 texts once" {
	repeats 100 10
	BATCH_SIZE=100 DT_STORE_BATCH=100 run -0 --separate-stderr dt-entrypoint
	assert_equal "$(requests)" 10
	assert_equal "$(count "status = 'done'")" 100
}

@test "entrypoint: another prompt sends the texts again; DT_REUSE=0 sends every text" {
	repeats 20 2
	run -0 --separate-stderr dt-entrypoint
	assert_equal "$(requests)" 2
	standin perplexity reset
	{ cat "$DT_PROMPT_FILE"; echo "Keep the summary short."; } >"$BATS_TEST_TMPDIR/prompt.txt"
	repeats 20 2
	DT_PROMPT_FILE=$BATS_TEST_TMPDIR/prompt.txt run -0 --separate-stderr dt-entrypoint
	assert_equal "$(requests)" 2
	assert_equal "$(sql 'select count(distinct prompt_version) from dt_results')" 2
	standin perplexity reset
	repeats 20 2
	DT_REUSE=0 run -0 --separate-stderr dt-entrypoint
	assert_equal "$(requests)" 20
	DT_REUSE=2 run -78 --separate-stderr dt-entrypoint
	stderr_has "DT_REUSE: '2' is not a whole number (0 to 1)"
}

@test "entrypoint: a text whose analysis fails gives its followers back for the next run, none parked" {
	repeats 40 4
	# "text 3" gets a schema violation every time: a record-specific failure.
	standin perplexity script '{"faults":[{"kind":"schema_violation","match":"text 3"}]}'
	run -1 --separate-stderr dt-entrypoint
	assert_equal "$(count "status = 'done'")" 30
	assert_equal "$(count "status = 'failed'")" 0
	assert_equal "$(count "status = 'pending' and last_error->>'kind' = 'invalid_output' and attempts = 1")" 1
	assert_equal "$(count "status = 'pending' and last_error->>'kind' = 'same_text' and attempts = 0")" 9
	run -0 jq -c '[.by_status.stored, .by_status.failed, .by_status.released, .by_error]' "$DT_RUN_DIR/report.json"
	assert_output '[30,1,9,{"invalid_output":1}]'
	# Once the text can be analysed, the next run sends it once.
	standin perplexity script '{"faults":[]}'
	standin perplexity reset
	run -0 --separate-stderr dt-entrypoint
	assert_equal "$(requests)" 1
	assert_equal "$(count "status = 'done'")" 40
}

@test "entrypoint: packed, 100 messages of 10 texts still send each text once" {
	repeats 100 10
	DT_PACK=10 BATCH_SIZE=100 DT_STORE_BATCH=100 run -0 --separate-stderr dt-entrypoint
	n=$(requests)
	echo "# packed: $n requests for 100 messages of 10 texts" >&3
	[ "$n" -ge 1 ] && [ "$n" -le 10 ] || fail "$n requests"
	# Ten texts went out, each once, whatever the packing.
	run -0 bash -c "standin perplexity requests | jq -r '.json.input // empty' | grep -o 'text [0-9]' | sort | uniq -c | awk '{print \$1}' | sort -u"
	assert_output 1
	assert_equal "$(count "status = 'done'")" 100
	assert_equal "$(count 'reused_from is not null')" 90
}
