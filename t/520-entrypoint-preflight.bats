#!/usr/bin/env bats
# dt-entrypoint --preflight and --dry-run: each service asked without
# side effects, one line each; the backlog, the runs and the cost it
# will take.  Against the local stack.

load test_helper/common
load test_helper/stack
load test_helper/faults

setup_file() {
	stack_up
}

teardown_file() {
	stack_down
}

setup() {
	faults_setup
	unset DT_RUN_DIR
	rows 30
	OUT=$BATS_TEST_TMPDIR
}

# preflight: dt-entrypoint --preflight, stdout and stderr in files.
preflight() {
	dt-entrypoint --preflight >"$OUT/stdout" 2>"$OUT/stderr"
}

# line SERVICE: the preflight line of SERVICE.
line() {
	grep "^$1: " "$OUT/stdout"
}

# no_secrets: no key or token in anything the run printed.
no_secrets() {
	assert_no_secret "$SUPABASE_KEY" "$OUT/stdout" "$OUT/stderr"
	assert_no_secret "$PERPLEXITY_API_KEY" "$OUT/stdout" "$OUT/stderr"
	assert_no_secret "$TELEGRAM_BOT_TOKEN" "$OUT/stdout" "$OUT/stderr"
	assert_no_secret "${TELEGRAM_BOT_TOKEN#*:}" "$OUT/stdout" "$OUT/stderr"
}

# reapply_migrations: puts back what a test dropped.
reapply_migrations() {
	local f
	for f in "$DT_ROOT"/supabase/migrations/*.sql; do
		psql -X -q -v ON_ERROR_STOP=1 -f "$f" >/dev/null
	done
}

@test "preflight: all three ready: one line each, exit 0, nothing changed and nothing sent" {
	before=$(results_md5)
	run -0 preflight
	run -0 cat "$OUT/stdout"
	assert_equal "${#lines[@]}" 3
	assert_line --index 0 "supabase: ready: migrations applied, secret (service) key, source messages readable; backlog: 30 unclaimed, 0 leased, 0 parked (0 done)"
	assert_line --index 1 --regexp '^perplexity: ready: model perplexity/sonar answered at http://127\.0\.0\.1:[0-9]+/v1/agent \(HTTP 200, [0-9]+ tokens, 0\.0[0-9]+ USD\)$'
	assert_line --index 2 "telegram: ready: bot @dt_standin_bot, chat $TELEGRAM_CHAT_ID (supergroup \"dt stand-in supergroup\")"
	assert_equal "$(cat "$OUT/stderr")" ""
	no_secrets
	# Nothing claimed or settled, no message sent.
	assert_equal "$(results_md5)" "$before"
	assert_equal "$(count true)" 0
	# Every function the stages call but dt_claim, with nothing to do.
	assert_equal "$(standin supabase requests | jq -r .path | sort | tr '\n' ' ')" \
		"/rest/v1/rpc/dt_backlog /rest/v1/rpc/dt_peek /rest/v1/rpc/dt_reclaim /rest/v1/rpc/dt_release /rest/v1/rpc/dt_requeue /rest/v1/rpc/dt_settle "
	assert_equal "$(standin telegram requests | jq -r .path | tr '\n' ' ')" \
		"/bot***/getMe /bot***/getChat "
	# One Perplexity call, as small as a call can be.
	run -0 bash -c "standin perplexity requests | jq -c '[.path, .json.model, .json.max_output_tokens]'"
	assert_output '["/v1/agent","perplexity/sonar",16]'
}

@test "preflight: migrations not applied (PGRST202) and not the service key (42501) are named" {
	sql 'drop function public.dt_peek(integer, text, text, text, text, text[], integer)' >/dev/null
	run -78 preflight
	reapply_migrations
	run -0 line supabase
	assert_output --regexp '^supabase: not ready: migrations not applied: dt_peek is missing or older than this dt \(HTTP 404: PGRST202: Could not find the function public\.dt_peek\(.*\); apply supabase/migrations \(supabase db push\)$'
	# The other two still answer.
	run -0 line perplexity
	assert_output --partial "perplexity: ready: "
	# A later migration's function missing (dt_requeue, 20261201000100).
	sql 'drop function public.dt_requeue(text, boolean)' >/dev/null
	run -78 preflight
	reapply_migrations
	run -0 line supabase
	assert_output --regexp '^supabase: not ready: migrations not applied: dt_requeue is missing or older than this dt \(HTTP 404: PGRST202: '
	run -0 preflight

	SUPABASE_KEY=$SUPABASE_ANON_KEY run -78 preflight
	run -0 line supabase
	assert_output "supabase: not ready: SUPABASE_KEY: its role may not call dt_backlog (HTTP 401: 42501: permission denied for function dt_backlog: this is not a secret (service) key: set SUPABASE_KEY to a secret key (sb_secret_...) or the legacy service_role key)"
	assert_no_secret "$SUPABASE_ANON_KEY" "$OUT/stdout" "$OUT/stderr"
	no_secrets
}

@test "preflight: a source table that does not exist, and Supabase out of reach (69)" {
	DT_SOURCE_TABLE=bot_messages run -78 preflight
	run -0 line supabase
	assert_output --partial 'supabase: not ready: DT_SOURCE_TABLE: no table or view bot_messages (HTTP 404: 42P01: relation "bot_messages" does not exist'
	SUPABASE_URL=http://127.0.0.1:1 DT_SUPABASE_TRIES=1 run -69 preflight
	run -0 line supabase
	assert_output --partial "supabase: not ready: SUPABASE_URL: Supabase cannot be reached ("
}

@test "preflight: Perplexity's answers name the variable: model (400), credits (402), key (401), URL (404)" {
	standin perplexity script '{"faults":[{"kind":"status","status":400,"message":"Invalid model '"'"'perplexity/sonnar'"'"'. Permitted models can be found in the documentation."}]}'
	PERPLEXITY_MODEL=perplexity/sonnar run -78 preflight
	run -0 line perplexity
	assert_output "perplexity: not ready: PERPLEXITY_MODEL: perplexity/sonnar refused (HTTP 400: Invalid model 'perplexity/sonnar'. Permitted models can be found in the documentation.)"
	standin perplexity script '{"faults":[{"kind":"status","status":402,"message":"Insufficient credits"}]}'
	run -78 preflight
	run -0 line perplexity
	assert_output "perplexity: not ready: PERPLEXITY_API_KEY: its API group has no credits left (HTTP 402: Insufficient credits)"
	standin perplexity script '{"faults":[]}'
	PERPLEXITY_API_KEY=pplx-not-the-key run -78 preflight
	run -0 line perplexity
	assert_output "perplexity: not ready: PERPLEXITY_API_KEY: refused (HTTP 401: Invalid API key provided)"
	assert_no_secret pplx-not-the-key "$OUT/stdout" "$OUT/stderr"
	PERPLEXITY_BASE_URL=$PERPLEXITY_BASE_URL/api run -78 preflight
	run -0 line perplexity
	assert_output --regexp '^perplexity: not ready: PERPLEXITY_BASE_URL: http://127\.0\.0\.1:[0-9]+/api/v1/agent is not the API \(HTTP 404'
	# The other services are still asked, and ready.
	assert_equal "$(grep -c ': ready: ' "$OUT/stdout")" 2
	no_secrets
	# Chat completions go through their own path and model.
	DT_API=chat run -0 preflight
	run -0 line perplexity
	assert_output --regexp '^perplexity: ready: model sonar answered at http://127\.0\.0\.1:[0-9]+/chat/completions \(HTTP 200, '
	# An answer that says the call failed is an outage of the API: 69.
	standin perplexity script '{"faults":[{"kind":"failed"}]}'
	run -69 preflight
	run -0 line perplexity
	assert_output --regexp '^perplexity: not ready: model perplexity/sonar at http://127\.0\.0\.1:[0-9]+/v1/agent: the API says the call failed \('
}

@test "preflight: Telegram: a chat the bot cannot see, a wrong token, and none configured" {
	standin telegram script '{"chats":["-1001"]}'
	run -78 preflight
	run -0 line telegram
	assert_output "telegram: not ready: TELEGRAM_CHAT_ID: bot @dt_standin_bot cannot see chat $TELEGRAM_CHAT_ID (getChat: HTTP 400: Bad Request: chat not found); add the bot to the chat, or fix the id"
	TELEGRAM_BOT_TOKEN=123:not-the-token run -78 preflight
	run -0 line telegram
	assert_output "telegram: not ready: TELEGRAM_BOT_TOKEN: Telegram does not know this bot token (getMe: HTTP 401: Unauthorized)"
	assert_no_secret not-the-token "$OUT/stdout" "$OUT/stderr"
	unset TELEGRAM_BOT_TOKEN TELEGRAM_CHAT_ID
	run -0 preflight
	run -0 line telegram
	assert_output "telegram: ready: not configured (TELEGRAM_BOT_TOKEN, TELEGRAM_CHAT_ID): the report goes to the log only"
	# No message was sent by any of these.
	assert_equal "$(standin telegram requests | jq -r 'select(.message)' | wc -l)" 0
}

@test "preflight: a configuration error stops it before any service is asked" {
	unset PERPLEXITY_API_KEY
	run -78 preflight
	assert_equal "$(cat "$OUT/stdout")" ""
	assert_equal "$(head -1 "$OUT/stderr")" "dt-entrypoint: error: PERPLEXITY_API_KEY is not set (nor PERPLEXITY_API_KEY_FILE)"
	assert_equal "$(standin supabase requests | wc -l)" 0
}

@test "dry-run: the backlog, the runs it takes and the cost, with no claim and no API call" {
	# 30 rows, 6 of them without text; 10 rows a run.
	sql "update public.messages set text = case when id % 5 = 0 then '  ' else repeat('x', 400) end" >/dev/null
	before=$(results_md5)
	export DT_MAX_RECORDS=10 DT_RPM=50 DT_DEADLINE_SECONDS=3300 DT_PACK=1
	export DT_PRICE_INPUT_PER_M=1 DT_PRICE_OUTPUT_PER_M=2 DT_PRICE_PER_REQUEST=0.001
	export DT_BUDGET_USD=0.5
	run -0 --separate-stderr dt-entrypoint --dry-run
	assert_line --index 0 "backlog: 30 unclaimed, 0 leased, 0 parked, 0 done"
	assert_line --index 1 "texts: 24 to analyze; of the first 30 rows a claim takes, 6 have no text (skipped, no call), the others average 400 bytes"
	assert_line --index 2 "runs: 3 of at most 10 rows each (DT_MAX_RECORDS 10; DT_RPM 50 for DT_DEADLINE_SECONDS 3300: 2750 calls); at one run every 2 h the backlog is done in about 4 h"
	# A request for such a text, estimated as dt-analyze --dry-run does
	# (four bytes a token: 100 of them are the text's).
	in=$(jq -nc '{id: 1, text: ("x" * 400)}' | dt-analyze --dry-run | jq -r 'select(.id == 1) | .estimate.input_tokens')
	assert_line --index 3 "tokens per text: about $in in ($((in - 100)) for the prompt, the schema and the request, 100 for the text), 150 out (at most 1024, DT_MAX_OUTPUT_TOKENS)"
	per=$(awk -v i="$in" 'BEGIN { printf "%.6f", i / 1e6 + 150 * 2 / 1e6 + 0.001 }')
	total=$(awk -v p="$per" 'BEGIN { printf "%.4f", p * 24 }')
	assert_line --index 4 --partial "cost: about $total USD for the whole backlog ($per per text; at most "
	assert_line --index 4 --partial "at 1 USD per million input tokens, 2 per million output tokens, 0.001 per request"
	assert_line --index 5 --partial "first run: about "
	assert_line --index 6 --regexp "^budget: DT_BUDGET_USD 0\.5: a run stops calling once it spent that \(about [0-9]+ texts\)$"
	assert_equal "${#lines[@]}" 7
	# Read only: nothing claimed, no call to Perplexity or Telegram.
	assert_equal "$(results_md5)" "$before"
	assert_equal "$(count true)" 0
	assert_equal "$(standin perplexity requests | wc -l)" 0
	assert_equal "$(standin telegram requests | wc -l)" 0
	# Read-only functions, the others with nothing to do, and a read of
	# the last analyses.
	assert_equal "$(standin supabase requests | jq -r '"\(.method) \(.path | sub("[?].*"; ""))"' | sort -u | tr '\n' ' ')" \
		"GET /rest/v1/dt_results POST /rest/v1/rpc/dt_backlog POST /rest/v1/rpc/dt_peek POST /rest/v1/rpc/dt_reclaim POST /rest/v1/rpc/dt_release POST /rest/v1/rpc/dt_requeue POST /rest/v1/rpc/dt_settle "
}

@test "dry-run: the default prices are perplexity/sonar's; another model is told to set its own" {
	run -0 --separate-stderr dt-entrypoint --dry-run
	assert_line --index 4 --partial "at 0.25 USD per million input tokens, 2.5 per million output tokens, 0 per request"
	refute_output --partial "set DT_PRICE_INPUT_PER_M"
	PERPLEXITY_MODEL=openai/gpt-5.1 run -0 --separate-stderr dt-entrypoint --dry-run
	assert_line --index 4 --partial "; these are perplexity/sonar's prices: set DT_PRICE_INPUT_PER_M and DT_PRICE_OUTPUT_PER_M for the model in PERPLEXITY_MODEL"
	# Chat completions' default model, sonar, has its own prices.
	DT_API=chat run -0 --separate-stderr dt-entrypoint --dry-run
	assert_line --index 4 --regexp ", at 1 USD per million input tokens, 1 per million output tokens, 0\.005 per request$"
	# Web search adds its fee to every request.
	DT_WEB_SEARCH=1 run -0 --separate-stderr dt-entrypoint --dry-run
	assert_line --index 4 --partial ", 0.005 per request"
	dt-fetch --backlog >"$OUT/backlog.json"
	run -0 --separate-stderr dt-analyze --estimate --web-search <"$OUT/backlog.json"
	assert_line --index 4 --partial ", 0.005 per request"
	DT_PRICE_PER_REQUEST=0 run -0 --separate-stderr dt-analyze --estimate --web-search <"$OUT/backlog.json"
	assert_line --index 4 --partial ", 0 per request"
}

@test "dry-run: nothing to do, and a key that is not the service key" {
	sql 'truncate public.messages' >/dev/null
	run -0 --separate-stderr dt-entrypoint --dry-run
	assert_output "backlog: 0 unclaimed, 0 leased, 0 parked, 0 done
nothing to do: a run now claims nothing and costs nothing"
	SUPABASE_KEY=$SUPABASE_ANON_KEY run -78 --separate-stderr dt-entrypoint --dry-run
	assert_output ""
	assert_equal "${stderr_lines[1]}" "dt-fetch: error: SUPABASE_KEY: its role may not call dt_backlog (HTTP 401: 42501: permission denied for function dt_backlog: this is not a secret (service) key: set SUPABASE_KEY to a secret key (sb_secret_...) or the legacy service_role key)"
}

@test "preflight: no key or token in any output, at trace level either" {
	DT_LOG_LEVEL=trace run -0 preflight
	[ "$(wc -l <"$OUT/stderr")" -gt 10 ] || fail "no trace output: $(cat "$OUT/stderr")"
	no_secrets
	DT_LOG_LEVEL=trace run -0 --separate-stderr dt-entrypoint --dry-run
	printf '%s\n' "$output" >"$OUT/stdout"
	printf '%s\n' "$stderr" >"$OUT/stderr"
	no_secrets
}

@test "preflight: the stages' --preflight, --backlog and --estimate read no input and go with no other mode" {
	run -64 --separate-stderr dt-fetch --preflight --claim
	assert_equal "${stderr_lines[0]}" "dt-fetch: --preflight and --backlog go with no other mode"
	run -64 --separate-stderr dt-fetch --backlog --check-config
	assert_equal "${stderr_lines[0]}" "dt-fetch: --preflight and --backlog go with no --check-config or --dry-run"
	run -64 --separate-stderr dt-analyze --preflight --dry-run
	assert_equal "${stderr_lines[0]}" "dt-analyze: --preflight and --estimate read no files and go with no other mode"
	run -64 --separate-stderr dt-analyze --estimate /dev/null
	assert_equal "${stderr_lines[0]}" "dt-analyze: --preflight and --estimate read no files and go with no other mode"
	run -64 --separate-stderr dt-report --preflight /dev/null
	assert_equal "${stderr_lines[0]}" "dt-report: --preflight reads no input and goes with no --check-config or --merge-shards"
	# Not what dt-fetch --backlog writes: 65, and nothing printed.
	run -65 --separate-stderr dt-analyze --estimate <<<'{"backlog": {}}'
	assert_output ""
	assert_equal "$stderr" "dt-analyze: error: --estimate: the input is not what dt-fetch --backlog writes"
	for p in dt-fetch dt-analyze dt-report; do
		run -0 "$p" --help
		assert_output --partial "--preflight"
	done
	run -0 dt-entrypoint --help
	assert_output --partial "-p, --preflight"
}

@test "preflight: Supabase answering 5xx (a statement timeout) is 69, not a configuration error" {
	standin supabase script '{"statement_timeout": 100, "match": "dt_backlog"}'
	DT_SUPABASE_TRIES=1 run -69 preflight
	run -0 line supabase
	assert_output --partial "supabase: not ready: Supabase could not answer dt_backlog (HTTP 500: 57014: "
	assert_output --partial "; try again later"
}

@test "dry-run: after a run, what its analyses really cost, by the API's own count" {
	DT_RUN_ID=hist-1 DT_MAX_RECORDS=10 run -0 --separate-stderr dt-entrypoint
	assert_equal "$(count "status = 'done'")" 10
	IFS=$'\t' read -r n pin pout cost <<<"$(sql "select count(*), avg(prompt_tokens), avg(completion_tokens), avg(cost_usd) from public.dt_results where status = 'done'")"
	want=$(awk -v n="$n" -v i="$pin" -v o="$pout" -v c="$cost" -v t=20 \
		'BEGIN { printf "measured: the last %d analyses averaged %.0f tokens in, %.0f out and %.6f USD each (the API'"'"'s own counts): about %.4f USD for the backlog at that cost", n, i, o, c, c * t }')
	run -0 --separate-stderr dt-entrypoint --dry-run
	assert_line --index 0 "backlog: 20 unclaimed, 0 leased, 0 parked, 10 done"
	assert_line --index 5 "$want"
	# The other lines are those of a backlog without history.
	assert_line --index 4 --partial "cost: about "
}
