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
	run -0 sql "select relname, relrowsecurity from pg_class where oid in ('public.dt_results'::regclass, 'public.dt_runs'::regclass) order by 1"
	assert_output $'dt_results\tt\ndt_runs\tt'
}

@test "standin: the anon key is refused by grants; no or a wrong key gets 401" {
	run -0 curl -sS -w ' %{http_code}' -H "apikey: $SUPABASE_ANON_KEY" "$SUPABASE_URL/rest/v1/dt_results"
	assert_output '{"code":"42501","details":null,"hint":null,"message":"permission denied for table dt_results"} 401'
	run -0 curl -sS -w ' %{http_code}' -X POST -d '{}' -H "apikey: $SUPABASE_ANON_KEY" "$SUPABASE_URL/rest/v1/rpc/dt_backlog"
	assert_output '{"code":"42501","details":null,"hint":null,"message":"permission denied for function dt_backlog"} 401'
	run -0 curl -sS -w ' %{http_code}' "$SUPABASE_URL/rest/v1/dt_runs"
	assert_output '{"message":"No API key found in request","hint":"No `apikey` request header or url param was found."} 401'
	# A changed signature: the last of its 43 base64url characters carries
	# only 4 bits, and A and Q differ in them.
	wrong=${SUPABASE_KEY%?}
	if [ "${SUPABASE_KEY: -1}" = A ]; then wrong+=Q; else wrong+=A; fi
	run -0 curl -sS -w ' %{http_code}' -H "apikey: $SUPABASE_KEY" -H "Authorization: Bearer $wrong" "$SUPABASE_URL/rest/v1/dt_runs"
	assert_output '{"code":"PGRST301","details":null,"hint":null,"message":"JWSError JWSInvalidSignature"} 401'
	run -0 standin supabase requests
	assert_no_secret "$SUPABASE_KEY" <(echo "$output")
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
