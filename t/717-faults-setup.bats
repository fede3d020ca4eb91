#!/usr/bin/env bats
# Setup mistakes during whole runs (dt-entrypoint against the local
# stack): the API refuses the run's model, key, account or URL.  Nothing
# is parked, no attempt is used, the run exits 78 with one line that says
# what to fix, and the next run with the setup mended analyzes every row.

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
	rows 60
	# The stand-in knows the models the API knows, and refuses the rest
	# with the API's 400 "Invalid model ...".
	standin perplexity script '{"models": ["perplexity/sonar"]}'
}

# untouched: fails unless every row that was claimed is pending again
# with no attempt and no claim used, and says why (kind config).
untouched() {
	assert_equal "$(count "status <> 'pending'")" 0
	assert_equal "$(count 'attempts <> 0 or claims <> 0 or lease_until is not null')" 0
	[ "$(count "last_error->>'kind' = 'config'")" -ge 1 ] || fail "no row says why"
	assert_equal "$(count "last_error is not null and last_error->>'kind' <> 'config'")" 0
}

# with_newline VAR COMMAND...: runs COMMAND with a line break after VAR's
# value, as a Secret made with echo gives it.
with_newline() {
	local var=$1
	shift
	env "$var=${!var}"$'\n' "$@"
}

# healthy_run ID: a run with the setup mended analyzes all 60 rows, each
# at its first attempt.
healthy_run() {
	standin perplexity reset
	standin perplexity script '{"models": ["perplexity/sonar"]}'
	DT_RUN_ID=$1 run -0 --separate-stderr timeout 120 dt-entrypoint
	assert_equal "$(count "status = 'done' and attempts = 1 and last_error is null")" 60
}

@test "setup: a misspelt model exits 78 after at most 3 calls in all, parks nothing, and the next run analyzes every row" {
	PERPLEXITY_MODEL=perplexity/sonnar DT_RUN_ID=typo-1 run -78 --separate-stderr timeout 120 dt-entrypoint
	# Three calls from four workers together, each refused.
	assert_equal "$(standin perplexity requests | jq -r '[.status, .fault] | @tsv' | sort | uniq -c | sed 's/^ *//')" \
		"3 400	invalid_model"
	# One line from dt-analyze, saying what to fix in the API's words.
	assert_equal "$(printf '%s\n' "${stderr_lines[@]}" | grep -c '^dt-analyze:')" 1
	stderr_has "dt-analyze: error: PERPLEXITY_MODEL: the API refused model 'perplexity/sonnar' (HTTP 400: Invalid model 'perplexity/sonnar'. Permitted models can be found in the documentation at https://docs.perplexity.ai/getting-started/models.); fix the model name; no more calls in this run, every row is given back"
	stderr_has 'dt-entrypoint: info: run typo-1 finished: fetch '
	untouched
	assert_equal "$(sql "select status, exit_code from public.dt_runs where run_id = 'typo-1'")" "failed	78"
	# A second run with the same mistake changes nothing either.
	standin perplexity reset
	standin perplexity script '{"models": ["perplexity/sonar"]}'
	PERPLEXITY_MODEL=perplexity/sonnar DT_RUN_ID=typo-2 run -78 --separate-stderr timeout 120 dt-entrypoint
	assert_equal "$(standin perplexity requests | wc -l)" 3
	untouched
	healthy_run typo-3
}

@test "setup: once the circuit opens the run claims no more" {
	rows 1000
	standin perplexity script '{"models": ["perplexity/sonar"]}'
	# Claims that take a while, as over the internet: 100 batches of 10
	# would take 2 s at the least.
	standin supabase script '{"delay_ms": 20}'
	PERPLEXITY_MODEL=perplexity/sonnar DT_RUN_ID=typo-big run -78 --separate-stderr timeout 120 dt-entrypoint
	assert_equal "$(standin perplexity requests | wc -l)" 3
	stderr_has "/stop exists: claiming no more"
	claimed=$(count "last_error is not null")
	[ "$claimed" -lt 1000 ] || fail "all rows were claimed"
	untouched
	assert_equal "$(count "last_error is null and attempts = 0 and claims = 0")" $((1000 - claimed))
}

@test "setup: 402, 404 and 422 from the API park nothing and burn no attempt" {
	local n=0
	for fault in \
		'{"kind": "status", "status": 402, "type": "insufficient_quota", "message": "You have insufficient credits"}' \
		'{"kind": "status", "status": 422, "type": "unprocessable_entity", "message": "response_format: unsupported"}'; do
		n=$((n + 1))
		standin perplexity script "{\"faults\": [$fault]}"
		DT_RUN_ID=refused-$n run -78 --separate-stderr timeout 120 dt-entrypoint
		[ "$(standin perplexity requests | wc -l)" -le 3 ] || fail "$fault: $(standin perplexity requests | wc -l) calls"
		untouched
		standin perplexity reset
	done
	stderr_has 'dt-analyze: error: the API refused records and a plain test text alike (HTTP 422: response_format: unsupported)'
	# A PERPLEXITY_BASE_URL with a wrong path: the stand-in's own 404.
	PERPLEXITY_BASE_URL=$PERPLEXITY_BASE_URL/api DT_RUN_ID=refused-404 run -78 --separate-stderr timeout 120 dt-entrypoint
	assert_equal "$(standin perplexity requests | jq -r '[.path, .status] | @tsv')" "/api/v1/agent	404"
	stderr_has "dt-analyze: error: PERPLEXITY_BASE_URL: $PERPLEXITY_BASE_URL/api/v1/agent does not exist (HTTP 404: Not Found)"
	untouched
	healthy_run refused-ok
}

@test "setup: a key with a trailing newline is refused before anything is claimed, naming the variable, not the key" {
	local key=$PERPLEXITY_API_KEY
	PERPLEXITY_API_KEY=$key$'\n' DT_RUN_ID=newline-1 run -78 --separate-stderr timeout 120 dt-entrypoint
	stderr_has "dt-analyze: error: PERPLEXITY_API_KEY: the value contains a line break"
	assert_no_secret "$key" <(echo "$output") <(echo "$stderr")
	assert_equal "$(standin perplexity requests | wc -l)" 0
	assert_equal "$(count 'true')" 0
	# The same for the other keys and tokens.
	local var
	for var in SUPABASE_KEY TELEGRAM_BOT_TOKEN; do
		[ -n "${!var}" ] || fail "$var is not set by the stack"
		DT_RUN_ID=newline-$var run -78 --separate-stderr with_newline "$var" timeout 120 dt-entrypoint
		stderr_has "$var: the value contains a line break"
		assert_no_secret "${!var}" <(echo "$output") <(echo "$stderr")
	done
	assert_equal "$(count 'true')" 0
	healthy_run newline-2
}

@test "setup: once the run got an analysis, a refusal is the record's own and uses an attempt; alone it is given back" {
	# One record a request: the faults match one record's text.
	export DT_PACK=1
	standin perplexity script '{"models": ["perplexity/sonar"], "faults": [
		{"kind": "status", "status": 400, "type": "invalid_request", "match": "fault row 30\n",
		 "message": "Input rejected by the content filter"}]}'
	DT_RUN_ID=content-1 run -1 --separate-stderr timeout 120 dt-entrypoint
	stderr_has "id 30: HTTP 400: Input rejected by the content filter; the API answered other records of this run"
	assert_equal "$(sql "select status, attempts, last_error->>'kind', last_error->>'retryable' from public.dt_results where source_id = '30'")" \
		"pending	1	http_4xx	true"
	assert_equal "$(count "status = 'done' and attempts = 1")" 59
	# Alone in the next run nothing shows whose fault the refusal is: the
	# row is given back unused, and the run says so in one line.
	DT_RUN_ID=content-2 run -1 --separate-stderr timeout 120 dt-entrypoint
	stderr_has "dt-analyze: warning: 1 record was refused by the API with an answer other records did not get (last: id 30: HTTP 400: Input rejected by the content filter); given back without using an attempt"
	assert_equal "$(sql "select status, attempts, claims, last_error->>'kind' from public.dt_results where source_id = '30'")" \
		"pending	1	1	config"
	# The same refusal for every record before any analysis is the
	# setup's.
	rows 60
	standin perplexity script '{"models": ["perplexity/sonar"], "faults": [
		{"kind": "status", "status": 400, "type": "invalid_request", "message": "Input rejected by the content filter"}]}'
	DT_RUN_ID=content-3 run -78 --separate-stderr timeout 120 dt-entrypoint
	assert_equal "$(standin perplexity requests | wc -l)" 3
	untouched
}

@test "setup: rows first in the queue that the API refuses for their text do not stop the run" {
	# One record a request: the faults match one record's text.
	export DT_PACK=1
	standin perplexity script '{"models": ["perplexity/sonar"], "faults": [
		{"kind": "status", "status": 400, "type": "invalid_request", "match": "fault row 1\n", "message": "Input rejected"},
		{"kind": "status", "status": 400, "type": "invalid_request", "match": "fault row 2\n", "message": "Input rejected"},
		{"kind": "status", "status": 400, "type": "invalid_request", "match": "fault row 3\n", "message": "Input rejected"}]}'
	DT_RUN_ID=head-1 run -1 --separate-stderr timeout 120 dt-entrypoint
	assert_equal "$(count "status = 'done' and attempts = 1")" 57
	# Rows 1 to 3 wait for the next run, none parked; one that was
	# refused after the test text was analyzed used its attempt.
	assert_equal "$(sql "select string_agg(source_id || ':' || status || ':' || (last_error->>'kind'), ' ' order by source_id) from public.dt_results where status <> 'done'")" \
		"$(sql "select string_agg(source_id || ':pending:' || (last_error->>'kind'), ' ' order by source_id) from public.dt_results where source_id in ('1', '2', '3')")"
	assert_equal "$(count "status <> 'done' and last_error->>'kind' not in ('config', 'http_4xx')")" 0
	[[ $stderr != *"dt-analyze: error:"* ]] || fail "the circuit opened: $stderr"
}
