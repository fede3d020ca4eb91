#!/usr/bin/env bats
# The example source view (supabase/examples/recent_messages.sql): a
# first run that starts from recent messages with text, on the local
# stack.

load test_helper/common
load test_helper/stack

setup_file() {
	stack_up
	psql -X -q -v ON_ERROR_STOP=1 -f "$DT_ROOT/supabase/examples/recent_messages.sql" >/dev/null
}

teardown_file() {
	stack_down
}

setup() {
	dt_common_setup
	stack_reset
	# Ten recent messages (two without text) and five older than 30 days.
	sql "insert into public.messages (text, created_at) select
		case g when 3 then '' when 4 then null else 'recent ' || g end,
		now() - interval '1 day' from generate_series(1, 10) g" >/dev/null
	sql "insert into public.messages (text, created_at) select 'old ' || g,
		now() - interval '31 days' from generate_series(1, 5) g" >/dev/null
	export DT_SOURCE_TABLE=dt_recent_messages DT_RUN_ID=view-1
}

@test "source view: a claim through it takes only the recent messages with text" {
	run -0 --separate-stderr dt-fetch --claim --batch-size 3
	run -0 jq -r 'select(.stage == null) | .text' <<<"$output"
	assert_output "$(printf 'recent %s\n' 1 2 5 6 7 8 9 10)"
	assert_equal "$(sql "select count(*), min(source_id::int), max(source_id::int) from public.dt_results where status = 'leased' and run_id = 'view-1'")" "8	1	10"
	# The rest are not in dt_results at all: a claim from the table takes them.
	assert_equal "$(sql 'select count(*) from public.dt_results')" 8
	DT_SOURCE_TABLE=messages DT_RUN_ID=table-1 run -0 --separate-stderr dt-fetch --claim
	run -0 jq -r 'select(.stage == null) | .id' <<<"$output"
	assert_equal "${#lines[@]}" 7
}

@test "source view: the backlog and the preflight read the view" {
	run -0 --separate-stderr dt-fetch --preflight
	assert_output "supabase: ready: migrations applied, secret (service) key, source dt_recent_messages readable; backlog: 8 unclaimed, 0 leased, 0 parked (0 done)"
	run -0 --separate-stderr dt-fetch --backlog
	assert_equal "$(jq -c '[.backlog.unclaimed, .sample.rows, .sample.blank]' <<<"$output")" "[8,8,0]"
}

@test "source view: the public keys cannot read it" {
	run -0 curl -sS -w ' %{http_code}' -H "apikey: $SUPABASE_ANON_KEY" "$SUPABASE_URL/rest/v1/dt_recent_messages?select=id"
	assert_output '{"code":"42501","details":null,"hint":null,"message":"permission denied for view dt_recent_messages"} 401'
}
