#!/usr/bin/env bats
# The Supabase stand-in and the migrations: PostgREST's dialect, auth,
# grants and row level security, faults.

load test_helper/common
load test_helper/stack

setup_file() { stack_up; }
teardown_file() { stack_down; }

setup() {
	dt_common_setup
	stack_reset
}

@test "migrations: applying them again, on top of themselves, changes nothing and fails nothing" {
	pg_dump -s -n public | grep -v "^.\(un\)\?restrict " >"$BATS_TEST_TMPDIR/before.sql"
	for f in "$DT_ROOT"/supabase/migrations/*.sql; do
		psql -X -q -v ON_ERROR_STOP=1 -1 -f "$f" 2>"$BATS_TEST_TMPDIR/err"
	done
	# Only notices ("already exists, skipping"), no error.
	run -1 grep -v NOTICE "$BATS_TEST_TMPDIR/err"
	pg_dump -s -n public | grep -v "^.\(un\)\?restrict " >"$BATS_TEST_TMPDIR/after.sql"
	run -0 diff "$BATS_TEST_TMPDIR/before.sql" "$BATS_TEST_TMPDIR/after.sql"
}

@test "migrations: only service_role reaches dt's tables and functions" {
	run -0 sql "select p.proname, p.prosecdef, p.proconfig from pg_proc p where p.pronamespace = 'public'::regnamespace and p.proname like 'dt\\_%' order by 1"
	assert_output $'dt_backlog\tf\t{"search_path=\\"\\""}
dt_claim\tf\t{"search_path=\\"\\""}
dt_column_type\tf\t{"search_path=\\"\\""}
dt_peek\tf\t{"search_path=\\"\\""}
dt_reclaim\tf\t{"search_path=\\"\\""}
dt_release\tf\t{"search_path=\\"\\""}
dt_requeue\tf\t{"search_path=\\"\\""}
dt_settle\tf\t{"search_path=\\"\\""}
dt_source\tf\t{"search_path=\\"\\""}'
	run -0 sql "select r, t, has_table_privilege(r, t, 'select'), has_table_privilege(r, t, 'insert') from unnest(array['anon', 'authenticated', 'service_role']) r, unnest(array['public.dt_results', 'public.dt_runs']) t order by 1, 2"
	assert_output $'anon\tpublic.dt_results\tf\tf
anon\tpublic.dt_runs\tf\tf
authenticated\tpublic.dt_results\tf\tf
authenticated\tpublic.dt_runs\tf\tf
service_role\tpublic.dt_results\tt\tt
service_role\tpublic.dt_runs\tt\tt'
	run -0 sql "select r, has_function_privilege(r, 'public.dt_settle(text, jsonb)', 'execute') from unnest(array['anon', 'authenticated', 'service_role']) r"
	assert_output $'anon\tf\nauthenticated\tf\nservice_role\tt'
	run -0 sql "select r, has_function_privilege(r, 'public.dt_release(text, text, text[])', 'execute') from unnest(array['anon', 'authenticated', 'service_role', 'public']) r"
	assert_output $'anon\tf\nauthenticated\tf\nservice_role\tt\npublic\tf'
	run -0 sql "select r, f, has_function_privilege(r, f, 'execute') from unnest(array['anon', 'authenticated', 'service_role']) r, unnest(array['public.dt_reclaim(text, jsonb)', 'public.dt_requeue(text, boolean)']) f order by 2, 1"
	assert_output $'anon\tpublic.dt_reclaim(text, jsonb)\tf
authenticated\tpublic.dt_reclaim(text, jsonb)\tf
service_role\tpublic.dt_reclaim(text, jsonb)\tt
anon\tpublic.dt_requeue(text, boolean)\tf
authenticated\tpublic.dt_requeue(text, boolean)\tf
service_role\tpublic.dt_requeue(text, boolean)\tt'
	run -0 sql "select relname, relrowsecurity from pg_class where oid in ('public.dt_results'::regclass, 'public.dt_runs'::regclass) order by 1"
	assert_output $'dt_results\tt\ndt_runs\tt'
}

@test "standin: the legacy anon key is refused by grants; no or a wrong key gets 401" {
	run -0 curl -sS -w ' %{http_code}' -H "apikey: $SUPABASE_ANON_KEY" "$SUPABASE_URL/rest/v1/dt_results"
	assert_output '{"code":"42501","details":null,"hint":null,"message":"permission denied for table dt_results"} 401'
	run -0 curl -sS -w ' %{http_code}' -X POST -d '{}' -H "apikey: $SUPABASE_ANON_KEY" "$SUPABASE_URL/rest/v1/rpc/dt_backlog"
	assert_output '{"code":"42501","details":null,"hint":null,"message":"permission denied for function dt_backlog"} 401'
	run -0 curl -sS -w ' %{http_code}' "$SUPABASE_URL/rest/v1/dt_runs"
	assert_output '{"message":"No API key found in request","hint":"No `apikey` request header or url param was found."} 401'
	# The legacy service_role JWT with a changed signature: the last of its
	# 43 base64url characters carries only 4 bits, and A and Q differ in them.
	key=$SUPABASE_SERVICE_ROLE_JWT
	wrong=${key%?}
	if [ "${key: -1}" = A ]; then wrong+=Q; else wrong+=A; fi
	run -0 curl -sS -w ' %{http_code}' -H "apikey: $key" "$SUPABASE_URL/rest/v1/dt_runs"
	assert_output '[] 200'
	run -0 curl -sS -w ' %{http_code}' -H "apikey: $key" -H "Authorization: Bearer $wrong" "$SUPABASE_URL/rest/v1/dt_runs"
	assert_output '{"code":"PGRST301","details":null,"hint":null,"message":"JWSError JWSInvalidSignature"} 401'
	run -0 standin supabase requests
	assert_no_secret "$SUPABASE_KEY" <(echo "$output")
	assert_no_secret "$key" <(echo "$output")
}

# as KEY [curl args...] PATH: a GET with KEY in apikey only; prints the
# body and the status.
as() {
	local key=$1
	shift
	curl -sS -w ' %{http_code}' -H "apikey: $key" "${@:1:$#-1}" "$SUPABASE_URL/rest/v1/${!#}"
}

@test "standin: a secret key acts as service_role, a publishable key as anon; a bearer must equal the key or be a JWT" {
	run -0 as "$SUPABASE_KEY" dt_runs
	assert_output '[] 200'
	run -0 as "$SUPABASE_KEY" -H "Authorization: Bearer $SUPABASE_KEY" dt_runs
	assert_output '[] 200'
	run -0 as "$SUPABASE_PUBLISHABLE_KEY" dt_runs
	assert_output '{"code":"42501","details":null,"hint":null,"message":"permission denied for table dt_runs"} 401'
	run -0 as "$SUPABASE_PUBLISHABLE_KEY" -H "Authorization: Bearer $SUPABASE_PUBLISHABLE_KEY" dt_runs
	assert_output '{"code":"42501","details":null,"hint":null,"message":"permission denied for table dt_runs"} 401'
	# Another key in the bearer reaches PostgREST, which wants a JWT there.
	run -0 as "$SUPABASE_PUBLISHABLE_KEY" -H "Authorization: Bearer $SUPABASE_KEY" dt_runs
	assert_output '{"code":"PGRST301","details":null,"hint":null,"message":"JWSError (CompactDecodeError Invalid number of parts: Expected 3 parts; got 1)"} 401'
	# A JWT in the bearer gives its role, whichever key is in apikey.
	run -0 as "$SUPABASE_PUBLISHABLE_KEY" -H "Authorization: Bearer $SUPABASE_SERVICE_ROLE_JWT" dt_runs
	assert_output '[] 200'
	# Not the project's: its last character changed.
	wrong=${SUPABASE_KEY%?}
	if [ "${SUPABASE_KEY: -1}" = x ]; then wrong+=y; else wrong+=x; fi
	run -0 as "$wrong" dt_runs
	assert_output '{"message":"Invalid API key","hint":"Double check your Supabase `anon` or `service_role` API key."} 401'
	run -0 sql "select count(*) from pg_roles where rolname in ('anon', 'service_role')"
	assert_output 2
}

@test "standin: a secret key sent by a browser gets 401; a publishable key does not" {
	ua='Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0'
	messages 1
	run -0 as "$SUPABASE_KEY" -A "$ua" 'messages?select=id'
	assert_output '{"message":"Forbidden use of secret API key in browser"} 401'
	run -0 as "$SUPABASE_KEY" -A "$ua" -H "Authorization: Bearer $SUPABASE_KEY" 'rpc/dt_backlog'
	assert_output '{"message":"Forbidden use of secret API key in browser"} 401'
	# The legacy service_role JWT has no such check; a server's agent passes.
	run -0 as "$SUPABASE_SERVICE_ROLE_JWT" -A "$ua" 'messages?select=id'
	assert_output '[{"id":1}] 200'
	run -0 as "$SUPABASE_KEY" -A 'node' 'messages?select=id'
	assert_output '[{"id":1}] 200'
	# Row level security without a policy: the anon role sees nothing.
	sql 'grant select on public.messages to anon' >/dev/null
	run -0 as "$SUPABASE_PUBLISHABLE_KEY" -A "$ua" 'messages?select=id'
	assert_output '[] 200'
	sql 'revoke select on public.messages from anon' >/dev/null
}

@test "standin: reads and set-returning functions give back at most 1,000 rows (max_rows); the function runs whole" {
	messages 1500
	run -0 as "$SUPABASE_KEY" -D "$BATS_TEST_TMPDIR/h" 'messages?select=id'
	[[ $output == '[{"id":1}, '*' {"id":1000}] 200' ]] || fail "${output:0:40} ... ${output: -40}"
	run -0 grep -i '^content-range' "$BATS_TEST_TMPDIR/h"
	assert_output $'Content-Range: 0-999/*\r'
	run -0 as "$SUPABASE_KEY" -H 'Prefer: count=exact' -D "$BATS_TEST_TMPDIR/h" 'messages?select=id&limit=5000&offset=100'
	[[ $output == '[{"id":101}, '*' {"id":1100}] 206' ]] || fail "${output:0:40} ... ${output: -40}"
	run -0 grep -i '^content-range' "$BATS_TEST_TMPDIR/h"
	assert_output $'Content-Range: 100-1099/1500\r'
	# A set-returning function: all 1,500 rows are leased, 1,000 come back.
	rest POST rpc/dt_claim -H 'Prefer: count=exact' -D "$BATS_TEST_TMPDIR/h" -d '{"p_run_id":"r","p_limit":1500}' >"$BATS_TEST_TMPDIR/out"
	run -0 tail -n 1 "$BATS_TEST_TMPDIR/out"
	assert_output 'HTTP 206'
	head -n -1 "$BATS_TEST_TMPDIR/out" >"$BATS_TEST_TMPDIR/rows"
	run -0 jq -c 'length, .[0].source_id, .[-1].source_id' "$BATS_TEST_TMPDIR/rows"
	assert_output $'1000\n"1"\n"1000"'
	run -0 grep -i '^content-range' "$BATS_TEST_TMPDIR/h"
	assert_output $'Content-Range: 0-999/1500\r'
	run -0 sql "select status, count(*) from dt_results where status = 'leased' group by 1"
	assert_output $'leased\t1500'
	# Without count=exact the cut does not show.
	rest POST rpc/dt_peek -D "$BATS_TEST_TMPDIR/h" -d '{"p_limit":1500}' >"$BATS_TEST_TMPDIR/out"
	run -0 tail -n 1 "$BATS_TEST_TMPDIR/out"
	assert_output 'HTTP 200'
	run -0 grep -i '^content-range' "$BATS_TEST_TMPDIR/h"
	assert_output $'Content-Range: */*\r'
	# A function returning one value and a write are not cut.
	run -0 rest POST rpc/dt_backlog -d '{}'
	assert_line --index 0 '{"done": 0, "failed": 0, "leased": 1500, "unclaimed": 0}'
	rest POST 'dt_runs' -H 'Prefer: return=representation' -d "$(jq -nc '[range(1200) | {run_id: "r\(.)"}]')" >"$BATS_TEST_TMPDIR/out"
	run -0 tail -n 1 "$BATS_TEST_TMPDIR/out"
	assert_output 'HTTP 201'
	head -n -1 "$BATS_TEST_TMPDIR/out" >"$BATS_TEST_TMPDIR/rows"
	run -0 jq length "$BATS_TEST_TMPDIR/rows"
	assert_output 1200
}

@test "standin: statement timeouts as on Supabase: anon 3 s, authenticated 8 s, service_role the authenticator's 8 s" {
	sql "create function public.t_statement_timeout() returns text language sql as \$\$ select pg_catalog.current_setting('statement_timeout') \$\$" >/dev/null
	sql "create function public.t_sleep(s float8) returns void language sql as \$\$ select pg_catalog.pg_sleep(s) \$\$" >/dev/null
	run -0 as "$SUPABASE_KEY" 'rpc/t_statement_timeout'
	assert_output '"8s" 200'
	run -0 as "$SUPABASE_SERVICE_ROLE_JWT" 'rpc/t_statement_timeout'
	assert_output '"8s" 200'
	run -0 as "$SUPABASE_PUBLISHABLE_KEY" 'rpc/t_statement_timeout'
	assert_output '"3s" 200'
	run -0 as "$SUPABASE_ANON_KEY" 'rpc/t_statement_timeout'
	assert_output '"3s" 200'
	run -0 psql -XAtc "select r.rolname, s.setconfig from pg_db_role_setting s join pg_roles r on r.oid = s.setrole order by 1"
	assert_output 'anon|{statement_timeout=3s}
authenticated|{statement_timeout=8s}
authenticator|{statement_timeout=8s}'
	# It is enforced, not only set: 4 s is too long for anon.
	run -0 as "$SUPABASE_PUBLISHABLE_KEY" -X POST -H 'Content-Type: application/json' -d '{"s":4}' 'rpc/t_sleep'
	assert_output '{"code":"57014","details":null,"hint":null,"message":"canceling statement due to statement timeout"} 500'
	sql 'drop function public.t_statement_timeout(); drop function public.t_sleep(float8)' >/dev/null
}

@test "standin: filters, order, Range and count=exact as PostgREST answers them" {
	messages 5
	sql "update messages set chat_id = 9 where id in (2, 4)"
	run -0 rest GET 'messages?select=id,text&chat_id=is.null&id=in.(1,3,5)&order=id.desc'
	assert_output '[{"id":5,"text":"message 5"}, 
 {"id":3,"text":"message 3"}, 
 {"id":1,"text":"message 1"}]
HTTP 200'
	run -0 rest GET 'messages?select=id&id=gt.1&id=not.eq.3&limit=2&order=id' -H 'Prefer: count=exact' -D "$BATS_TEST_TMPDIR/h"
	assert_output '[{"id":2}, 
 {"id":4}]
HTTP 206'
	run -0 grep -i '^content-range' "$BATS_TEST_TMPDIR/h"
	assert_output $'Content-Range: 0-1/3\r'
	run -0 rest GET 'messages?select=id' -H 'Range: 10-20' -H 'Prefer: count=exact'
	assert_output '{"code":"PGRST103","details":"An offset of 10 was requested, but there are only 5 rows.","hint":null,"message":"Requested range not satisfiable"}
HTTP 416'
	run -0 rest GET 'messages?id=zz.1'
	assert_output '{"code":"PGRST100","details":"unexpected \"zz\" expecting operator","hint":null,"message":"\"failed to parse filter (zz.1)\" (line 1, column 1)"}
HTTP 400'
	run -0 rest GET 'mesages'
	assert_output '{"code":"PGRST205","details":null,"hint":"Perhaps you meant the table '"'public.messages'"'","message":"Could not find the table '"'public.mesages'"' in the schema cache"}
HTTP 404'
}

@test "standin: upsert with on_conflict and merge-duplicates, insert conflicts, PATCH" {
	run -0 rest POST 'dt_runs?on_conflict=run_id' -H 'Prefer: resolution=merge-duplicates,return=minimal' -d '{"run_id":"r1","status":"running"}'
	assert_output $'\nHTTP 201'
	run -0 rest POST 'dt_runs?on_conflict=run_id' -H 'Prefer: resolution=merge-duplicates,return=representation' -d '[{"run_id":"r1","status":"done","exit_code":0}]'
	assert_output '[{"run_id":"r1","started_at":null,"finished_at":null,"status":"done","exit_code":0,"counts":null,"tokens":null,"cost_usd":null,"summary":null}]
HTTP 201'
	run -0 rest POST 'dt_runs' -d '{"run_id":"r1"}'
	assert_output '{"code":"23505","details":"Key (run_id)=(r1) already exists.","hint":null,"message":"duplicate key value violates unique constraint \"dt_runs_pkey\""}
HTTP 409'
	run -0 rest POST 'dt_runs' -d '{"run_id":"r2","nope":1}'
	assert_output '{"code":"PGRST204","details":null,"hint":null,"message":"Could not find the '"'nope'"' column of '"'dt_runs'"' in the schema cache"}
HTTP 400'
	run -0 rest PATCH 'dt_runs?run_id=eq.r1' -d '{"tokens":42}'
	assert_output $'\nHTTP 204'
	run -0 sql "select run_id, status, tokens from dt_runs"
	assert_output $'r1\tdone\t42'
}

@test "standin: scripted faults: 503s, a statement timeout, a dropped reply, a delay" {
	standin supabase script '{"fail": 2, "retry_after": 1}'
	run -0 rest POST rpc/dt_backlog -d '{}' -D "$BATS_TEST_TMPDIR/h"
	assert_output '{"code":"PGRST001","details":null,"hint":null,"message":"Database client error. Retrying the connection."}
HTTP 503'
	run -0 grep -c '^Retry-After: 1' "$BATS_TEST_TMPDIR/h"
	run -0 rest POST rpc/dt_backlog -d '{}'
	assert_line --index 1 'HTTP 503'
	run -0 rest POST rpc/dt_backlog -d '{}'
	assert_output '{"done": 0, "failed": 0, "leased": 0, "unclaimed": 0}
HTTP 200'
	standin supabase script '{"statement_timeout": 1}'
	run -0 rest POST rpc/dt_backlog -d '{}'
	assert_output '{"code":"57014","details":null,"hint":null,"message":"canceling statement due to statement timeout"}
HTTP 500'
	standin supabase script '{"drop": 1}'
	run -18 curl -sS -X POST -H "apikey: $SUPABASE_KEY" -d '{}' "$SUPABASE_URL/rest/v1/rpc/dt_backlog"
	standin supabase script '{"delay_ms": 300}'
	start=$(date +%s%N)
	rest POST rpc/dt_backlog -d '{}' >/dev/null
	[ $(( ($(date +%s%N) - start) / 1000000 )) -ge 300 ]
}

@test "migrations: dt_message_analysis is readable by service_role only, with the reader's rights, its id typed as the source's" {
	run -0 sql "select r, has_table_privilege(r, 'public.dt_message_analysis', 'select') from unnest(array['anon', 'authenticated', 'service_role', 'public']) r"
	assert_output $'anon\tf\nauthenticated\tf\nservice_role\tt\npublic\tf'
	run -0 sql "select relkind, reloptions from pg_class where oid = 'public.dt_message_analysis'::regclass"
	assert_output $'v\t{security_invoker=true}'
	run -0 sql "select attname, format_type(atttypid, atttypmod) from pg_attribute where attrelid = 'public.dt_message_analysis'::regclass and attnum > 0 order by attnum"
	assert_output $'message_id\tbigint
status\ttext
sentiment\ttext
topics\ttext[]
language\ttext
summary\ttext
action_items\ttext[]
confidence\tdouble precision
model\ttext
prompt_version\ttext
analyzed_at\ttimestamp with time zone'
	run -0 as "$SUPABASE_PUBLISHABLE_KEY" dt_message_analysis
	assert_output '{"code":"42501","details":null,"hint":null,"message":"permission denied for view dt_message_analysis"} 401'
	run -0 as "$SUPABASE_ANON_KEY" dt_message_analysis
	assert_output '{"code":"42501","details":null,"hint":null,"message":"permission denied for view dt_message_analysis"} 401'
	run -0 as "$SUPABASE_KEY" dt_message_analysis
	assert_output '[] 200'
}

@test "migrations: dt_message_analysis follows the source table's id type when the migration runs again" {
	sql 'create table public.t_uuid_messages (id uuid primary key, text text)' >/dev/null
	sed "s/'public.messages'/'public.t_uuid_messages'/" \
		"$DT_ROOT/supabase/migrations/20261201000300_dt_message_analysis.sql" >"$BATS_TEST_TMPDIR/view.sql"
	run -1 grep -c "t_uuid_messages" "$DT_ROOT/supabase/migrations/20261201000300_dt_message_analysis.sql"
	psql -X -q -v ON_ERROR_STOP=1 -1 -f "$BATS_TEST_TMPDIR/view.sql"
	run -0 sql "select format_type(atttypid, atttypmod) from pg_attribute where attrelid = 'public.dt_message_analysis'::regclass and attname = 'message_id'"
	assert_output uuid
	run -0 sql "select has_table_privilege('anon', 'public.dt_message_analysis', 'select'), has_table_privilege('service_role', 'public.dt_message_analysis', 'select')"
	assert_output $'f\tt'
	# Back to public.messages, as the migration has it.
	psql -X -q -v ON_ERROR_STOP=1 -1 -f "$DT_ROOT/supabase/migrations/20261201000300_dt_message_analysis.sql"
	run -0 sql "select format_type(atttypid, atttypmod) from pg_attribute where attrelid = 'public.dt_message_analysis'::regclass and attname = 'message_id'"
	assert_output bigint
	sql 'drop table public.t_uuid_messages' >/dev/null
}

# supabase_js SCENARIO: runs tools/supabase-js/check.mjs (Supabase's own
# client) against the stand-in.
supabase_js() {
	command -v node >/dev/null || skip "node is not installed (tools/deps installs nodejs)"
	"$DT_ROOT/tools/supabase-js/install" --check ||
		fail "supabase-js is not installed: run make deps (tools/supabase-js/install)"
	node "$DT_ROOT/tools/supabase-js/check.mjs" "$1"
}

@test "supabase-js: secret and publishable keys, legacy JWTs, a browser, an unknown key" {
	messages 2
	run -0 --separate-stderr supabase_js keys
	assert_output 'secret messages: HTTP 200 rows=2
secret dt_backlog: HTTP 200 data={"done":0,"failed":0,"leased":0,"unclaimed":2}
publishable dt_results: HTTP 401 error=42501: permission denied for table dt_results
publishable dt_claim: HTTP 401 error=42501: permission denied for function dt_claim
publishable dt_message_analysis: HTTP 401 error=42501: permission denied for view dt_message_analysis
service_role JWT dt_results: HTTP 200 rows=0
anon JWT dt_results: HTTP 401 error=42501: permission denied for table dt_results
secret key from a browser: HTTP 401 error=-: Forbidden use of secret API key in browser
publishable key from a browser: HTTP 401 error=42501: permission denied for table messages
unknown secret key: HTTP 401 error=-: Invalid API key'
	assert_equal "$stderr" ''
	# supabase-js sends the key in apikey and as the bearer (both masked
	# in the recording).
	run -0 standin supabase requests
	run -0 jq -rs '.[0].headers | [.apikey, .authorization, .["user-agent"]] | join(" ")' <<<"$output"
	assert_output '*** *** node'
}

@test "supabase-js: the 1,000-row cap, its count, a range past it, and RPC results" {
	messages 1500
	run -0 --separate-stderr supabase_js cap
	assert_output 'select: HTTP 200 rows=1000
select count: HTTP 206 rows=1000 count=1500
select range past the cap: HTTP 200 rows=500
rpc dt_peek: HTTP 200 rows=1000
rpc dt_claim count: HTTP 206 rows=1000 count=1500'
	run -0 sql "select count(*) from dt_results where status = 'leased'"
	assert_output 1500
}

@test "supabase-js: the statement timeout each key runs under" {
	sql "create function public.t_statement_timeout() returns text language sql as \$\$ select pg_catalog.current_setting('statement_timeout') \$\$" >/dev/null
	run -0 --separate-stderr supabase_js timeouts
	sql 'drop function public.t_statement_timeout()' >/dev/null
	assert_output 'secret: HTTP 200 data="8s"
publishable: HTTP 200 data="3s"
service_role JWT: HTTP 200 data="8s"
anon JWT: HTTP 200 data="3s"
user JWT: HTTP 200 data="8s"'
}

@test "supabase-js: the bot's query on dt_message_analysis" {
	messages 3
	rest POST rpc/dt_claim -d '{"p_run_id":"r","p_limit":2}' >/dev/null
	rest POST rpc/dt_settle -d '{"p_run_id":"r","p_results":[{"id":"1","analysis":{"summary":"Late delivery.","sentiment":"negative","topics":["delivery"],"language":"en","action_items":["call the courier"],"confidence":0.9},"model":"sonar","prompt_version":"v1"},{"id":"2","error":{"kind":"invalid_output","message":"bad"}}]}' >/dev/null
	run -0 --separate-stderr supabase_js view
	assert_output 'view: HTTP 200
{"message_id":1,"status":"done","sentiment":"negative","topics":["delivery"],"language":"en","summary":"Late delivery.","action_items":["call the courier"],"confidence":0.9,"model":"sonar","prompt_version":"v1","analyzed_at":"string"}
{"message_id":2,"status":"pending","sentiment":null,"topics":null,"language":null,"summary":null,"action_items":null,"confidence":null,"model":null,"prompt_version":null,"analyzed_at":"object"}
{"message_id":3,"status":"pending","sentiment":null,"topics":null,"language":null,"summary":null,"action_items":null,"confidence":null,"model":null,"prompt_version":null,"analyzed_at":"object"}'
}

@test "dt_release: gives back the leases of one claim except the ones kept, with their attempt and claim" {
	messages 4
	rest POST rpc/dt_claim -d '{"p_run_id":"r","p_limit":3,"p_claim_key":"r:1"}' >/dev/null
	rest POST rpc/dt_claim -d '{"p_run_id":"r","p_limit":1,"p_claim_key":"r:2"}' >/dev/null
	run -0 rest POST rpc/dt_release -d '{"p_run_id":"r","p_claim_key":"r:1","p_keep":["1"]}'
	assert_output $'2\nHTTP 200'
	run -0 sql "select source_id, status, attempts, claims, claim_key from dt_results order by 1"
	assert_output $'1\tleased\t1\t1\tr:1\n2\tpending\t0\t0\t\n3\tpending\t0\t0\t\n4\tleased\t1\t1\tr:2'
	# Again: nothing more to give back.
	run -0 rest POST rpc/dt_release -d '{"p_run_id":"r","p_claim_key":"r:1","p_keep":["1"]}'
	assert_output $'0\nHTTP 200'
	run -0 rest POST rpc/dt_release -d '{"p_run_id":"r","p_claim_key":""}'
	assert_output $'{"code":"22023","details":null,"hint":null,"message":"p_run_id and p_claim_key must not be empty"}\nHTTP 400'
}
