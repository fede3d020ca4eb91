#!/usr/bin/env bats
# dt-fetch --reuse, dt_claim's p_prompt_version and dt_settle's
# "same_text" against the local stack: a text analysed before, or being
# analysed, with the same prompt version is not sent again.

load test_helper/common
load test_helper/stack

setup_file() { stack_up; }
teardown_file() { stack_down; }

setup() {
	dt_common_setup
	stack_reset
	export DT_SUPABASE_BACKOFF_MS=5
}

# texts 'A' 'B' ...: one source row per argument, ids 1.. in order; an
# argument "NULL" is a row without text.
texts() {
	local t values=
	for t in "$@"; do
		if [ "$t" = NULL ]; then
			values+="${values:+,}(null)"
		else
			values+="${values:+,}('${t//\'/\'\'}')"
		fi
	done
	sql "insert into public.messages (text) values $values" >/dev/null
}

# analyzed FILTER <in >out: the analyzed record of each source record
# that FILTER (jq) selects; the others pass as they are.
analyzed() {
	jq -c "def ok: . + {analysis: {sentiment: \"positive\", n: .id},
		model: \"sonar\", prompt_version: \"v1\",
		usage: {prompt_tokens: 10, completion_tokens: 5, total_tokens: 15,
		cost_usd: 0.01}, latency_ms: 12};
	def err(k): . + {error: {kind: k, message: (k + \" here\"), retryable: true}};
	if .id and .skip == null and .analysis == null then $1 else . end"
}

@test "dt-fetch --reuse: of rows with one trimmed text the first is analysed, the others follow it; case and inner spaces differ" {
	texts ok $' ok\n' Ok 'o k' ok NULL '  ' $'\tOk '
	run -0 --separate-stderr dt-fetch -c -r r1 --reuse v1
	run -0 jq -c 'select(.id) | [.id, .same_text.as, .skip.reason, .analysis]' <<<"$output"
	assert_output '[1,null,null,null]
[2,"1","same_text",null]
[3,null,null,null]
[4,null,null,null]
[5,"1","same_text",null]
[6,null,null,null]
[7,null,null,null]
[8,"3","same_text",null]'
	run -0 sql "select source_id, follows, lease_version, text_sha256 is not null from dt_results order by intake_seq"
	assert_output $'1\t\tv1\tt\n2\t1\tv1\tt\n3\t\tv1\tt\n4\t\tv1\tt\n5\t1\tv1\tt\n6\t\tv1\tf\n7\t\tv1\tf\n8\t3\tv1\tt'
}

@test "dt-fetch --reuse: a text under a live lease is followed across claims, also of another run" {
	texts hello world
	dt-fetch -c -q -r r1 --reuse v1 -m 1 >/dev/null
	texts ' hello' world
	run -0 dt-fetch -c -q -r r2 --reuse v1
	run -0 jq -c 'select(.id) | [.id, .same_text.as]' <<<"$output"
	assert_output '[2,null]
[3,"1"]
[4,"2"]'
	# Another prompt version does not follow it.
	texts hello
	run -0 dt-fetch -c -q -r r3 --reuse v2
	run -0 jq -c 'select(.id) | [.id, .same_text.as]' <<<"$output"
	assert_output '[5,null]'
}

@test "dt-fetch --reuse: a text analysed before comes with its analysis; dt-store stores it at no cost, marked reused" {
	texts 'good morning'
	dt-fetch -c -q -r r1 --reuse v1 | analyzed ok | dt-store -q >/dev/null
	texts 'good morning ' 'good  morning' 'Good morning'
	dt-fetch -c -q -r r2 --reuse v1 >"$BATS_TEST_TMPDIR/fetch"
	run -0 jq -c 'select(.id == 2)' "$BATS_TEST_TMPDIR/fetch"
	assert_output '{"id":2,"text":"good morning ","row":{"id":2},"run_id":"r2","attempt":1,"analysis":{"n":1,"sentiment":"positive"},"model":"sonar","prompt_version":"v1","usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0,"cost_usd":0},"tries":0,"reused":{"from":"1"}}'
	run -0 jq -c 'select(.stage) | .counts' "$BATS_TEST_TMPDIR/fetch"
	assert_output '{"claimed":3,"batches":2,"text_cut":0,"reused":1,"same_text":0}'
	run -0 jq -c 'select(.id and .id != 2) | .analysis' "$BATS_TEST_TMPDIR/fetch"
	assert_output $'null\nnull'
	analyzed ok <"$BATS_TEST_TMPDIR/fetch" >"$BATS_TEST_TMPDIR/analyzed"
	run -0 --separate-stderr dt-store "$BATS_TEST_TMPDIR/analyzed"
	assert_equal "$stderr" 'dt-store: info: stored 3 (1 reused), failed 0, skipped 0 in 1 requests'
	run -0 jq -c 'select(.stage == "dt-store") | .counts.reused' <<<"$output"
	assert_output 1
	run -0 sql "select source_id, status, reused_from, cost_usd, total_tokens, prompt_version, analysis->>'n' from dt_results order by 1"
	assert_output $'1\tdone\t\t0.01\t15\tv1\t1
2\tdone\t1\t0\t0\tv1\t1
3\tdone\t\t0.01\t15\tv1\t3
4\tdone\t\t0.01\t15\tv1\t4'
	# The next row with that text takes the original's id, not the copy's.
	texts $'good morning\n'
	run -0 dt-fetch -c -q -r r3 --reuse v1
	run -0 jq -c 'select(.id) | .reused' <<<"$output"
	assert_output '{"from":"1"}'
	# Without --reuse, or with another version, it is analysed again.
	texts 'good morning'
	run -0 dt-fetch -c -q -r r4 --reuse v2
	run -0 jq -c 'select(.id) | [.id, .analysis, .reused]' <<<"$output"
	assert_output '[6,null,null]'
	texts 'good morning'
	run -0 dt-fetch -c -q -r r5
	assert_output --partial '{"id":7,"text":"good morning","row":{"id":7},"run_id":"r5","attempt":1}'
	run -0 jq -c 'select(.stage) | .counts' <<<"$output"
	assert_output '{"claimed":1,"batches":2,"text_cut":0}'
}

@test "dt-store: a row that follows another takes its analysis once stored, whichever comes first" {
	texts 'see you' 'see you' 'see you' other
	dt-fetch -c -q -r r1 --reuse v1 | analyzed ok >"$BATS_TEST_TMPDIR/all"
	# The followers come first, each in a batch of its own.
	jq -c 'select(.same_text)' "$BATS_TEST_TMPDIR/all" >"$BATS_TEST_TMPDIR/in"
	jq -c 'select(.same_text == null)' "$BATS_TEST_TMPDIR/all" >>"$BATS_TEST_TMPDIR/in"
	DT_STORE_BATCH=1 DT_STORE_MAX_DELAY_MS=0 run -0 --separate-stderr dt-store "$BATS_TEST_TMPDIR/in"
	# The followers were asked about before their row was stored (they
	# waited), and again after: more than one request each.
	[[ $stderr =~ ^"dt-store: info: stored 4 (2 reused), failed 0, skipped 0 in "([0-9]+)" requests"$ ]] || fail "$stderr"
	[ "${BASH_REMATCH[1]}" -ge 6 ] || fail "$stderr"
	# Each status line carries the analysis its row got.
	run -0 jq -sc 'map(select(.id) | [.id, .status, .store.outcome, .analysis.n, .prompt_version]) | sort[]' <<<"$output"
	assert_output '[1,"stored","stored",1,"v1"]
[2,"stored","stored",1,"v1"]
[3,"stored","stored",1,"v1"]
[4,"stored","stored",4,"v1"]'
	run -0 sql "select source_id, status, follows, reused_from, cost_usd, total_tokens, analysis->>'n' from dt_results order by 1"
	assert_output $'1\tdone\t\t\t0.01\t15\t1
2\tdone\t\t1\t0\t0\t1
3\tdone\t\t1\t0\t0\t1
4\tdone\t\t\t0.01\t15\t4'
	# Replaying the same input changes nothing.
	before=$(results_md5)
	run -0 dt-store -q "$BATS_TEST_TMPDIR/in"
	assert_equal "$(results_md5)" "$before"
}

@test "dt-store: a failed or released representative gives its followers back with their attempt, not parked" {
	texts bad bad slow slow
	dt-fetch -c -q -r r1 --reuse v1 -a 1 |
		analyzed 'if .id == 1 then err("invalid_output") elif .id == 3 then err("timeout") else ok end' >"$BATS_TEST_TMPDIR/in"
	run -1 --separate-stderr dt-store "$BATS_TEST_TMPDIR/in"
	run -0 jq -sc 'map(select(.id) | [.id, .status, .store.outcome, .store.attempts]) | sort[]' <<<"$output"
	assert_output '[1,"failed","failed",1]
[2,"released","released",0]
[3,"released","released",0]
[4,"released","released",0]'
	run -0 sql "select source_id, status, attempts, claims, follows, last_error->>'kind', last_error->>'message' from dt_results order by 1"
	assert_output $'1\tfailed\t1\t1\t\tinvalid_output\tinvalid_output here
2\tpending\t0\t0\t\tsame_text\tthe row with the same text, 1, got no analysis in this run
3\tpending\t0\t1\t\ttimeout\ttimeout here
4\tpending\t0\t0\t\tsame_text\tthe row with the same text, 3, got no analysis in this run'
	# The next run analyses what was given back: one request per text.
	run -0 dt-fetch -c -q -r r2 --reuse v1
	run -0 jq -c 'select(.id) | [.id, .same_text.as]' <<<"$output"
	assert_output '[2,null]
[3,null]
[4,"3"]'
}

@test "dt-store: a follower whose row never came is given back at the end, nothing lost" {
	texts lonely lonely
	dt-fetch -c -q -r r1 --reuse v1 | jq -c 'select(.same_text)' >"$BATS_TEST_TMPDIR/in"
	run -0 --separate-stderr dt-store "$BATS_TEST_TMPDIR/in"
	run -0 jq -c 'select(.id) | [.id, .status, .store.outcome]' <<<"$output"
	assert_output '[2,"released","released"]'
	run -0 sql "select source_id, status, attempts, last_error->>'kind' from dt_results order by 1"
	assert_output $'1\tleased\t1\t\n2\tpending\t0\tsame_text'
}

@test "dt-fetch --reuse: a bad version and a mode other than --claim are refused" {
	run -64 --separate-stderr dt-fetch -c --reuse 'v 1'
	assert_equal "${stderr_lines[0]}" "dt-fetch: error: --reuse: 'v 1' is not a prompt version (1 to 64 letters, digits, '-', '_' or '.', as dt-analyze --prompt-version prints it)"
	run -64 --separate-stderr dt-fetch --peek --reuse v1
	assert_equal "${stderr_lines[0]}" "dt-fetch: --reuse goes with --claim only"
	run -0 --separate-stderr dt-fetch -c -n -r r --reuse v1
	run -0 jq -c '.body.p_prompt_version' <<<"$output"
	assert_output '"v1"'
}

@test "dt_claim with a prompt version: only service_role may call it" {
	texts hi
	run -0 curl -sS -w ' %{http_code}' -X POST -H "apikey: $SUPABASE_PUBLISHABLE_KEY" -H 'Content-Type: application/json' \
		-d '{"p_run_id":"x","p_prompt_version":"v1"}' "$SUPABASE_URL/rest/v1/rpc/dt_claim"
	assert_output '{"code":"42501","details":null,"hint":null,"message":"permission denied for function dt_claim"} 401'
	run -0 sql "select r, has_function_privilege(r, 'public.dt_claim(text, integer, integer, integer, text, text, text, text[], integer, text, integer, text)', 'execute') from unnest(array['anon', 'authenticated', 'service_role', 'public']) r"
	assert_output $'anon\tf\nauthenticated\tf\nservice_role\tt\npublic\tf'
	run -0 sql "select count(*) from pg_proc where proname = 'dt_claim'"
	assert_output 1
	run -0 sql "select count(*) from dt_results"
	assert_output 0
}

@test "migration 20261202000000: applying it again changes nothing" {
	pg_dump -s -n public | grep -v "^.\(un\)\?restrict " >"$BATS_TEST_TMPDIR/before.sql"
	psql -X -q -v ON_ERROR_STOP=1 -1 -f "$DT_ROOT/supabase/migrations/20261202000000_dt_reuse.sql" 2>"$BATS_TEST_TMPDIR/err"
	run -1 grep -v NOTICE "$BATS_TEST_TMPDIR/err"
	pg_dump -s -n public | grep -v "^.\(un\)\?restrict " >"$BATS_TEST_TMPDIR/after.sql"
	run -0 diff "$BATS_TEST_TMPDIR/before.sql" "$BATS_TEST_TMPDIR/after.sql"
	grep -q 'text_sha256 bytea' "$BATS_TEST_TMPDIR/after.sql"
}

@test "dt-analyze --prompt-version: prints the version analyses get, without a key; the prompt changes it" {
	export DT_PROMPT_FILE=$DT_ROOT/analyze/prompt.txt DT_SCHEMA_FILE=$DT_ROOT/analyze/schema.json
	unset PERPLEXITY_API_KEY
	run -0 --separate-stderr dt-analyze --prompt-version
	[[ $output =~ ^[0-9a-f]{16}$ ]] || fail "not a version: $output"
	v1=$output
	{ cat "$DT_PROMPT_FILE"; echo "Answer briefly."; } >"$BATS_TEST_TMPDIR/prompt.txt"
	DT_PROMPT_FILE=$BATS_TEST_TMPDIR/prompt.txt run -0 dt-analyze --prompt-version
	[ "$output" != "$v1" ] || fail "the same version for another prompt"
	PERPLEXITY_MODEL=perplexity/sonar-pro run -0 dt-analyze --prompt-version
	[ "$output" != "$v1" ] || fail "the same version for another model"
	run -64 --separate-stderr dt-analyze --prompt-version --estimate
	assert_equal "${stderr_lines[0]}" "dt-analyze: --prompt-version reads no files and goes with no other mode"
	# It is the version dt-analyze writes on its analyses.
	. "$BATS_FILE_TMPDIR/stack.env"
	echo '{"id":1,"text":"hi","run_id":"r"}' >"$BATS_TEST_TMPDIR/in"
	run -0 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/in"
	run -0 jq -r 'select(.id) | .prompt_version' <<<"$output"
	assert_output "$v1"
}

@test "dt-fetch --reuse: a database without the migration is claimed from without reuse, with a warning" {
	texts same same
	sql "drop function public.dt_claim(text, integer, integer, integer, text, text, text, text[], integer, text, integer, text)" >/dev/null
	psql -X -q -v ON_ERROR_STOP=1 -1 -f "$DT_ROOT/supabase/migrations/20261128000200_dt_text_cut_and_parking.sql" 2>/dev/null
	run -0 --separate-stderr dt-fetch -c -r r1 --reuse v1
	psql -X -q -v ON_ERROR_STOP=1 -1 -f "$DT_ROOT/supabase/migrations/20261202000000_dt_reuse.sql" 2>/dev/null
	assert_equal "${stderr_lines[0]}" "dt-fetch: warning: dt_claim takes no p_prompt_version (migration 20261202000000_dt_reuse.sql is not applied): claiming without --reuse"
	run -0 jq -c 'select(.id) | [.id, .same_text]' <<<"$output"
	assert_output $'[1,null]\n[2,null]'
	run -0 sql "select count(*) from pg_proc where proname = 'dt_claim' and pronargs = 12"
	assert_output 1
}
