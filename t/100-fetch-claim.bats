#!/usr/bin/env bats
# dt-fetch against the local stack: claiming, peeking, errors, signals.

load test_helper/common
load test_helper/stack

setup_file() { stack_up; }
teardown_file() { stack_down; }

setup() {
	dt_common_setup
	stack_reset
	export DT_SUPABASE_BACKOFF_MS=5
}

@test "dt-fetch --claim: streams each row as a source record, then its stage record" {
	messages 3
	run -0 --separate-stderr dt-fetch --claim -r run-1 -b 2
	assert_output '{"id":1,"text":"message 1","row":{"id":1},"run_id":"run-1","attempt":1}
{"id":2,"text":"message 2","row":{"id":2},"run_id":"run-1","attempt":1}
{"id":3,"text":"message 3","row":{"id":3},"run_id":"run-1","attempt":1}
{"stage":"dt-fetch","run_id":"run-1","status":0,"message":null,"counts":{"claimed":3,"batches":3,"text_cut":0},"interrupted":false}'
	assert_equal "$stderr" 'dt-fetch: info: run run-1: claimed 3 rows in 3 batches'
	run -0 sql "select source_id, status, run_id, attempts from dt_results order by 1"
	assert_output $'1\tleased\trun-1\t1\n2\tleased\trun-1\t1\n3\tleased\trun-1\t1'
	# Nothing is left for another run.
	run -0 dt-fetch -c -q -r run-2
	assert_output '{"stage":"dt-fetch","run_id":"run-2","status":0,"message":null,"counts":{"claimed":0,"batches":1,"text_cut":0},"interrupted":false}'
}

@test "dt-fetch: --columns adds source columns to row; DT_MAX_RECORDS caps the run" {
	sql "insert into messages (chat_id, text) values (7, 'a'), (8, 'b'), (9, 'c')"
	DT_MAX_RECORDS=2 run -0 dt-fetch -c -q -r r --columns chat_id
	assert_output '{"id":1,"text":"a","row":{"id":1,"chat_id":7},"run_id":"r","attempt":1}
{"id":2,"text":"b","row":{"id":2,"chat_id":8},"run_id":"r","attempt":1}
{"stage":"dt-fetch","run_id":"r","status":0,"message":null,"counts":{"claimed":2,"batches":1,"text_cut":0},"interrupted":false}'
}

@test "dt-fetch --peek: shows what a claim would get and changes nothing" {
	messages 3
	dt-fetch -c -q -r r -m 1 >/dev/null
	before=$(results_md5)
	run -0 dt-fetch --peek -q -r p -b 1
	assert_output '{"id":2,"text":"message 2","row":{"id":2},"run_id":"p","attempt":1}
{"id":3,"text":"message 3","row":{"id":3},"run_id":"p","attempt":1}
{"stage":"dt-fetch","run_id":"p","status":0,"message":null,"counts":{"peeked":2,"batches":3,"text_cut":0},"interrupted":false}'
	run -0 results_md5
	assert_output "$before"
}

@test "dt-fetch: eight concurrent claimers over 5,000 rows claim every row exactly once" {
	messages 5000
	for i in 1 2 3 4 5 6 7 8; do
		dt-fetch -c -q -r "run-$i" -b 50 >"$BATS_TEST_TMPDIR/out.$i" 2>"$BATS_TEST_TMPDIR/err.$i" &
	done
	wait
	cat "$BATS_TEST_TMPDIR"/out.* | jq -r 'select(.id) | .id' | sort -n >"$BATS_TEST_TMPDIR/ids"
	run -0 wc -l <"$BATS_TEST_TMPDIR/ids"
	assert_output 5000
	run -0 uniq -d "$BATS_TEST_TMPDIR/ids"
	assert_output ''
	run -0 sql "select count(*), count(distinct source_id), sum(claims) from dt_results where status = 'leased'"
	assert_output $'5000\t5000\t5000'
	# Each claimer's records agree with the leases it holds.
	want=
	for i in 1 2 3 4 5 6 7 8; do
		want+="run-$i"$'\t'"$(grep -c '^{"id":' "$BATS_TEST_TMPDIR/out.$i")"$'\n'
	done
	run -0 sql "select r, count(d.run_id) from unnest(array['run-1','run-2','run-3','run-4','run-5','run-6','run-7','run-8']) r left join dt_results d on d.run_id = r group by r order by r"
	assert_output "${want%$'\n'}"
}

@test "dt-fetch: a claim whose response was lost is retried and gets the same rows" {
	messages 4
	standin supabase script '{"drop": 1, "match": "dt_claim"}'
	run -0 --separate-stderr dt-fetch -c -r r -b 10
	assert_output '{"id":1,"text":"message 1","row":{"id":1},"run_id":"r","attempt":1}
{"id":2,"text":"message 2","row":{"id":2},"run_id":"r","attempt":1}
{"id":3,"text":"message 3","row":{"id":3},"run_id":"r","attempt":1}
{"id":4,"text":"message 4","row":{"id":4},"run_id":"r","attempt":1}
{"stage":"dt-fetch","run_id":"r","status":0,"message":null,"counts":{"claimed":4,"batches":2,"text_cut":0},"interrupted":false}'
	[[ $stderr == *'dt-fetch: warning: supabase: POST http://127.0.0.1:'*'/rest/v1/rpc/dt_claim: '*'retrying in '* ]]
	run -0 sql "select sum(claims), sum(attempts) from dt_results"
	assert_output $'4\t4'
}

@test "dt-fetch: Supabase unavailable still gives a stage record saying so" {
	messages 2
	standin supabase script '{"fail": 100}'
	run -69 --separate-stderr dt-fetch -c -r r
	assert_output '{"stage":"dt-fetch","run_id":"r","status":69,"message":"Supabase unavailable: HTTP 503: PGRST001: Database client error. Retrying the connection. (after retries)","counts":{"claimed":0,"batches":0,"text_cut":0},"interrupted":false}'
	assert_equal "${stderr_lines[4]}" 'dt-fetch: warning: supabase: POST http://127.0.0.1:'"${SUPABASE_URL##*:}"'/rest/v1/rpc/dt_claim: HTTP 503; giving up after 5 tries'
	run -0 sql "select count(*) from dt_results where status = 'leased'"
	assert_output 0
}

@test "dt-fetch: a publishable or anon key is \"not a secret (service) key\"; a wrong key gets the server's hint; no key is printed" {
	messages 2
	# The legacy anon JWT: the server's 42501, and what it means.
	SUPABASE_KEY=$SUPABASE_ANON_KEY run -78 --separate-stderr dt-fetch -c -r r -v -v
	assert_output '{"stage":"dt-fetch","run_id":"r","status":78,"message":"Supabase refused the request: HTTP 401: 42501: permission denied for function dt_claim: this is not a secret (service) key: set SUPABASE_KEY to a secret key (sb_secret_...) or the legacy service_role key","counts":{"claimed":0,"batches":0,"text_cut":0},"interrupted":false}'
	echo "$output$stderr" >"$BATS_TEST_TMPDIR/all"
	# A publishable key is known by its form, before anything is sent.
	SUPABASE_KEY=$SUPABASE_PUBLISHABLE_KEY run -78 --separate-stderr dt-fetch -c -r r -v -v
	assert_line --partial '"message":"bad Supabase configuration (see the log)"'
	assert_equal "${stderr_lines[0]}" 'dt-fetch: error: SUPABASE_KEY: a publishable key (sb_publishable_...); this is not a secret (service) key: set SUPABASE_KEY to a secret key (sb_secret_...) or the legacy service_role key'
	echo "$output$stderr" >>"$BATS_TEST_TMPDIR/all"
	SUPABASE_KEY=$SUPABASE_PUBLISHABLE_KEY run -78 --separate-stderr dt-fetch --check-config
	assert_equal "$stderr" 'dt-fetch: error: SUPABASE_KEY: a publishable key (sb_publishable_...); this is not a secret (service) key: set SUPABASE_KEY to a secret key (sb_secret_...) or the legacy service_role key'
	# A secret key that is not the project's.
	wrong=${SUPABASE_KEY%?}
	if [ "${SUPABASE_KEY: -1}" = x ]; then wrong+=y; else wrong+=x; fi
	SUPABASE_KEY=$wrong run -78 --separate-stderr dt-fetch -c -r r -v -v
	assert_line --partial '"message":"Supabase refused the request: HTTP 401: Invalid API key (hint: Double check your Supabase `anon` or `service_role` API key.)"'
	echo "$output$stderr" >>"$BATS_TEST_TMPDIR/all"
	# The right one, as verbose as it gets.
	run -0 --separate-stderr dt-fetch -c -r r2 -v -v -v
	assert_line --index 2 --partial '"counts":{"claimed":2,'
	echo "$output$stderr" >>"$BATS_TEST_TMPDIR/all"
	run -0 grep -c 'supabase: POST http://127.0.0.1:[0-9]*/rest/v1/rpc/dt_claim' "$BATS_TEST_TMPDIR/all"
	assert_no_secret "$SUPABASE_KEY" "$BATS_TEST_TMPDIR/all"
	assert_no_secret "$wrong" "$BATS_TEST_TMPDIR/all"
	assert_no_secret "$SUPABASE_ANON_KEY" "$BATS_TEST_TMPDIR/all"
	assert_no_secret "$SUPABASE_PUBLISHABLE_KEY" "$BATS_TEST_TMPDIR/all"
	run -1 grep -E 'sb_(secret|publishable)_[A-Za-z0-9_-]{4}' "$BATS_TEST_TMPDIR/all"
}

@test "dt-fetch: a missing table or function is named, with PostgREST's hint" {
	run -78 --separate-stderr dt-fetch -c -r r -t mesages
	assert_equal "$stderr" 'dt-fetch: error: Supabase refused the request: HTTP 404: 42P01: relation "mesages" does not exist (hint: Set DT_SOURCE_TABLE to the table that holds the messages.)
dt-fetch: info: run r: claimed 0 rows in 0 batches'
	DT_SOURCE_TEXT=body run -78 --separate-stderr dt-fetch -c -q -r r
	assert_output --partial '"message":"Supabase refused the request: HTTP 400: 42703: column \"body\" of relation \"public.messages\" does not exist (hint: Check DT_SOURCE_ID, DT_SOURCE_TEXT and --columns.)"'
	sql 'alter function dt_claim rename to dt_claim2'
	run -78 --separate-stderr dt-fetch -c -q -r r
	sql 'alter function dt_claim2 rename to dt_claim'
	assert_output --partial '"message":"Supabase refused the request: HTTP 404: PGRST202: Could not find the function public.dt_claim(p_claim_key, p_id_column, p_lease_seconds, p_limit, p_max_attempts, p_max_text_chars, p_run_id, p_source_table, p_text_column) in the schema cache ('
	assert_output --partial '(hint: Perhaps you meant to call the function public.dt_claim2)'
}

@test "dt-fetch: a 3 MiB text is cut in the database and on a character boundary; the row is settled" {
	sql "insert into messages (text) values (repeat('Ж', 1572864)), (repeat('😀', 300)), ('short')"
	run -0 --separate-stderr dt-fetch -c -r r
	assert_equal "${#lines[@]}" 4
	# One line per row, each well under the 1 MiB line limit.
	run -0 awk '{ if (length($0) > max) max = length($0) } END { print (max < 524288) }' <<<"$output"
	assert_output 1
	sql "update dt_results set status = 'pending', run_id = null, attempts = 0"
	DT_FETCH_MAX_TEXT_BYTES=1025 dt-fetch -c -q -r r3 >"$BATS_TEST_TMPDIR/in"
	run -0 jq -c 'select(.id) | [.id, (.text | utf8bytelength), .text_bytes, .text_cut]' "$BATS_TEST_TMPDIR/in"
	assert_output '[1,1024,3145728,{"kept_bytes":1024,"total_bytes":3145728}]
[2,1024,1200,{"kept_bytes":1024,"total_bytes":1200}]
[3,5,null,null]'
	run -0 jq -c 'select(.stage) | .counts' "$BATS_TEST_TMPDIR/in"
	assert_output '{"claimed":3,"batches":2,"text_cut":2}'
	# The server sent at most 1025 characters, not 3 MiB.
	run -0 standin supabase requests
	run -0 jq -sc '[.[] | select(.path | endswith("dt_claim")) | .json.p_max_text_chars] | unique' <<<"$output"
	assert_output '[1025,65536]'
	# What dt-analyze makes of it is stored like any record.
	jq -c 'if .id then . + {analysis: {a: 1}, model: "m"} else . end' "$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/an"
	run -0 dt-store -q "$BATS_TEST_TMPDIR/an"
	run -0 sql "select source_id, status from dt_results order by 1"
	assert_output $'1\tdone\n2\tdone\n3\tdone'
	DT_FETCH_MAX_TEXT_BYTES=10 run -78 --separate-stderr dt-fetch --check-config -c
	assert_equal "$stderr" 'dt-fetch: error: DT_FETCH_MAX_TEXT_BYTES: 10 is out of range (1024 to 262144)'
}

@test "dt-fetch --peek: pages past ids of any length" {
	# Ids longer than any fixed buffer: every row once, then an empty page.
	sql "create table public.long_ids (id text primary key, text text);
		grant select on public.long_ids to service_role;
		insert into public.long_ids select repeat('x', 600) || g, 'message ' || g
			from generate_series(1, 3) g"
	# (A page that started again at the same row would never end.)
	run -0 --separate-stderr timeout 60 dt-fetch --peek -q -r p -b 1 -t long_ids
	sql "drop table public.long_ids"
	run -0 jq -c 'if .stage then .counts else [(.id | length), .text] end' <<<"$output"
	assert_output '[601,"message 1"]
[601,"message 2"]
[601,"message 3"]
{"peeked":3,"batches":4,"text_cut":0}'
}

@test "dt-fetch: a long Cyrillic PostgREST error is quoted whole characters only" {
	messages 1
	# A view whose rows cannot be read: PostgreSQL's own error, in Russian, 1.5 KiB.
	sql "create function public.boom() returns boolean language plpgsql as \$\$
		begin raise exception '%', repeat('ошибка ', 150); end \$\$;
		create view public.bad_messages as select * from public.messages where public.boom();
		grant select on public.bad_messages to service_role;
		grant execute on function public.boom() to service_role"
	run -78 --separate-stderr dt-fetch -c -r r -t bad_messages
	sql "drop view public.bad_messages; drop function public.boom()"
	# The stage record could be written (it could not hold half a character).
	run -0 jq -r '.message' <<<"$output"
	[[ $output == 'Supabase refused the request: HTTP 400: P0001: ошибка ошибка '* ]]
	run -0 jq -rn --arg m "$output" '$m | utf8bytelength > 1000'
	assert_output true
	[[ ${stderr_lines[0]} == 'dt-fetch: error: Supabase refused the request: HTTP 400: P0001: ошибка '* ]]
	run -0 iconv -f UTF-8 -t UTF-8 <<<"$stderr"
}

@test "dt-fetch: a bad URL or missing settings are configuration errors" {
	SUPABASE_URL=ftp://example.org run -78 --separate-stderr dt-fetch -c -r r
	assert_equal "${stderr_lines[0]}" 'dt-fetch: error: SUPABASE_URL: not an http:// or https:// URL: ftp://example.org'
	assert_output '{"stage":"dt-fetch","run_id":"r","status":78,"message":"bad Supabase configuration (see the log)","counts":{"claimed":0,"batches":0,"text_cut":0},"interrupted":false}'
	unset SUPABASE_KEY
	run -78 --separate-stderr dt-fetch -c -r r
	assert_equal "${stderr_lines[0]}" 'dt-fetch: error: SUPABASE_KEY is not set (a secret key, sb_secret_..., or the legacy service_role key; or SUPABASE_KEY_FILE naming a file that holds it)'
	SUPABASE_URL=http://127.0.0.1:1 SUPABASE_KEY=k DT_SUPABASE_TRIES=1 run -69 --separate-stderr dt-fetch -c -r r
	assert_output --partial '"status":69,"message":"Supabase unavailable: '
}

@test "dt-fetch: usage errors" {
	run -64 --separate-stderr dt-fetch
	assert_equal "$stderr" "dt-fetch: say --claim, --peek or --requeue
Try 'dt-fetch --help'."
	run -64 --separate-stderr dt-fetch -c --peek
	assert_equal "$stderr" "dt-fetch: --claim, --peek and --requeue exclude each other
Try 'dt-fetch --help'."
	run -64 --separate-stderr dt-fetch -c -R
	assert_equal "${stderr_lines[0]}" "dt-fetch: --claim, --peek and --requeue exclude each other"
	run -64 --separate-stderr dt-fetch -R 'no such'
	assert_equal "${stderr_lines[0]}" "dt-fetch: --requeue: bad kind: no such (an error kind, e.g. config or lease_expired)"
	run -64 --separate-stderr dt-fetch -R config timeout
	assert_equal "${stderr_lines[0]}" "dt-fetch: unexpected argument: timeout"
	run -64 --separate-stderr dt-fetch -c config
	assert_equal "${stderr_lines[0]}" "dt-fetch: unexpected argument: config"
	run -64 --separate-stderr dt-fetch -c -b 0
	[[ ${stderr_lines[0]} == *--batch-size* ]]
	run -0 dt-fetch -V
	assert_output 'dt-fetch 0.1.0'
	run -0 dt-fetch -h
	assert_line --index 0 'usage: dt-fetch -c | --peek [-hnqvV] [-a attempts] [-b size] [-C columns]'
	# The settings part is written from dt-fetch's table.
	assert_line '  -l, --lease-seconds n    how long a claim holds its rows (DT_LEASE_SECONDS,'
	assert_line '  DT_FETCH_MAX_TEXT_BYTES  longer texts are cut (default 65536, 1024 to 262144)'
	# -p is dt-entrypoint's --preflight (docs/options.md): --peek is long only.
	run -64 --separate-stderr dt-fetch -p
	assert_equal "${stderr_lines[0]}" "dt-fetch: invalid option -- 'p'"
	run -64 --separate-stderr dt-fetch --peek --requeue
	assert_equal "${stderr_lines[0]}" "dt-fetch: --claim, --peek and --requeue exclude each other"
	run -0 dt-fetch -c -n -r r -b 5
	assert_output '{"dry_run":"dt-fetch","method":"POST","path":"/rest/v1/rpc/dt_claim","body":{"p_run_id":"r","p_lease_seconds":900,"p_max_attempts":3,"p_claim_key":"r:1","p_limit":5,"p_source_table":"messages","p_id_column":"id","p_text_column":"text","p_max_text_chars":65536}}'
}

@test "dt-fetch --requeue [KIND]: parked rows go back to pending with attempts reset; --dry-run only counts" {
	messages 6
	dt-fetch -c -q -r r1 >/dev/null
	# Parked for different reasons; row 5 is done, row 6 skipped.
	sql "update dt_results set status = 'failed', lease_until = null, attempts = 3, claims = 4,
		last_error = jsonb_build_object('kind', case when source_id in ('1', '2') then 'config'
			when source_id = '3' then 'lease_expired' else 'too_large' end, 'message', 'x')
		where source_id::int <= 4"
	sql "update dt_results set status = 'done', lease_until = null, analysis = '{}' where source_id = '5'"
	sql "update dt_results set status = 'skipped', lease_until = null where source_id = '6'"
	before=$(results_md5)
	run -0 --separate-stderr dt-fetch --requeue --dry-run
	assert_output 'would requeue 4 parked rows: config 2, too_large 1, lease_expired 1'
	assert_equal "$stderr" ''
	run -0 dt-fetch -R -n config
	assert_output 'would requeue 2 parked rows of kind config'
	run -0 results_md5
	assert_output "$before"
	# One kind.
	run -0 --separate-stderr dt-fetch --requeue config
	assert_output 'requeued 2 parked rows of kind config'
	run -0 sql "select source_id, status, attempts, claims, run_id is null, last_error->>'kind' from dt_results order by 1"
	assert_output $'1\tpending\t0\t0\tt\tconfig
2\tpending\t0\t0\tt\tconfig
3\tfailed\t3\t4\tf\tlease_expired
4\tfailed\t3\t4\tf\ttoo_large
5\tdone\t1\t1\tf\t
6\tskipped\t1\t1\tf\t'
	run -0 dt-fetch -R config
	assert_output 'requeued 0 parked rows of kind config'
	# All the rest.
	run -0 dt-fetch -R
	assert_output 'requeued 2 parked rows: too_large 1, lease_expired 1'
	run -0 sql "select count(*) from dt_results where status = 'failed'"
	assert_output 0
	# Any run claims them again, the run that parked them too, with
	# their attempts counted from 1.
	run -0 dt-fetch -c -q -r r1
	run -0 jq -c 'select(.id) | [.id, .attempt]' <<<"$output"
	assert_output $'[1,1]\n[2,1]\n[3,1]\n[4,1]'
}

@test "dt-fetch --requeue: Supabase unavailable or refusing is said in one line, exit 69 or 78, no key printed" {
	standin supabase script '{"fail": 100}'
	DT_SUPABASE_TRIES=1 run -69 --separate-stderr dt-fetch -R
	assert_output ''
	assert_equal "${stderr_lines[1]}" 'dt-fetch: error: Supabase could not answer dt_requeue (HTTP 503: PGRST001: Database client error. Retrying the connection.); try again later'
	assert_equal "${#stderr_lines[@]}" 2
	standin supabase reset
	SUPABASE_KEY=$SUPABASE_ANON_KEY run -78 --separate-stderr dt-fetch -R
	assert_equal "$stderr" 'dt-fetch: error: SUPABASE_KEY: its role may not call dt_requeue (HTTP 401: 42501: permission denied for function dt_requeue: this is not a secret (service) key: set SUPABASE_KEY to a secret key (sb_secret_...) or the legacy service_role key)'
	assert_no_secret "$SUPABASE_KEY" <(printf '%s\n%s\n' "$output" "$stderr")
	assert_no_secret "$SUPABASE_ANON_KEY" <(printf '%s\n%s\n' "$output" "$stderr")
}

# wait_for_line FILE: waits (up to 5 s) until FILE holds a whole line.
wait_for_line() {
	local i
	for i in $(seq 250); do
		[ -s "$1" ] && return 0
		sleep 0.02
	done
	fail "nothing was written to $1"
}

@test "dt-fetch: SIGTERM stops claiming after the current batch and ends with a stage record" {
	messages 50
	standin supabase script '{"delay_ms": 100, "match": "dt_claim"}'
	dt-fetch -c -q -r r -b 5 >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" &
	pid=$!
	wait_for_line "$BATS_TEST_TMPDIR/out"
	kill -TERM "$pid"
	status=0
	wait "$pid" || status=$?
	assert_equal "$status" 75
	run -0 tail -n 1 "$BATS_TEST_TMPDIR/out"
	assert_output --regexp '^\{"stage":"dt-fetch","run_id":"r","status":75,"message":"interrupted after ([0-9]+) rows","counts":\{"claimed":\1,"batches":[0-9]+,"text_cut":0\},"interrupted":true\}$'
	n=$(grep -c '"id"' "$BATS_TEST_TMPDIR/out")
	[ "$n" -gt 0 ] && [ "$n" -lt 50 ]
	# Every row it wrote is leased to it, and no more.
	run -0 sql "select count(*) from dt_results where status = 'leased'"
	assert_output "$n"
}

@test "dt-fetch: a stop file (DT_STOP_FILE) appearing mid-run ends claiming as SIGTERM does" {
	messages 50
	export DT_STOP_FILE=$BATS_TEST_TMPDIR/stop
	standin supabase script '{"delay_ms": 100, "match": "dt_claim"}'
	dt-fetch -c -r r -b 5 >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" &
	pid=$!
	wait_for_line "$BATS_TEST_TMPDIR/out"
	touch "$DT_STOP_FILE"
	status=0
	wait "$pid" || status=$?
	assert_equal "$status" 75
	n=$(grep -c '"id"' "$BATS_TEST_TMPDIR/out")
	[ "$n" -gt 0 ] && [ "$n" -lt 50 ]
	b=$((n / 5))
	run -0 tail -n 1 "$BATS_TEST_TMPDIR/out"
	assert_output '{"stage":"dt-fetch","run_id":"r","status":75,"message":"interrupted after '"$n"' rows","counts":{"claimed":'"$n"',"batches":'"$b"',"text_cut":0},"interrupted":true}'
	run -0 cat "$BATS_TEST_TMPDIR/err"
	assert_output "dt-fetch: info: $DT_STOP_FILE exists: claiming no more
dt-fetch: warning: interrupted after $n rows
dt-fetch: info: run r: claimed $n rows in $b batches"
	run -0 sql "select count(*) from dt_results where status = 'leased'"
	assert_output "$n"
}

@test "dt-fetch: with the stop file already there it claims nothing" {
	messages 5
	export DT_STOP_FILE=$BATS_TEST_TMPDIR/stop
	touch "$DT_STOP_FILE"
	run -75 --separate-stderr dt-fetch -c -q -r r
	assert_output '{"stage":"dt-fetch","run_id":"r","status":75,"message":"interrupted after 0 rows","counts":{"claimed":0,"batches":0,"text_cut":0},"interrupted":true}'
	run -0 standin supabase requests
	assert_output ''
	run -0 sql "select count(*) from dt_results"
	assert_output 0
}

@test "dt-fetch --check-config: a valid configuration passes silently and sends no request" {
	run -0 --separate-stderr dt-fetch --check-config
	assert_equal "$output" ''
	assert_equal "$stderr" ''
	run -0 --separate-stderr dt-fetch --check-config --claim -b 500 -C chat_id
	assert_equal "$output$stderr" ''
	run -0 standin supabase requests
	assert_output ''
	# Nothing listens on port 1, and a connection attempt would be retried
	# for seconds: it is not made.
	printf '%s\n' "$SUPABASE_KEY" >"$BATS_TEST_TMPDIR/key"
	start=$(date +%s%N)
	SUPABASE_URL=http://127.0.0.1:1 SUPABASE_KEY= SUPABASE_KEY_FILE=$BATS_TEST_TMPDIR/key \
		DT_SUPABASE_BACKOFF_MS=2000 run -0 --separate-stderr dt-fetch --check-config
	elapsed=$((($(date +%s%N) - start) / 1000000))
	assert_equal "$output$stderr" ''
	! unwrapped || [ "$elapsed" -lt 1500 ] || fail "took $elapsed ms"
}

@test "dt-fetch --check-config: one line per problem, exit 78, no secret printed" {
	printf 'line 1\nline 2\n' >"$BATS_TEST_TMPDIR/key"
	SUPABASE_URL=ftp://example.org SUPABASE_KEY= SUPABASE_KEY_FILE=$BATS_TEST_TMPDIR/key \
		BATCH_SIZE=0 DT_LEASE_SECONDS=1x DT_SOURCE_COLUMNS=a,,b DT_SUPABASE_TRIES=0 \
		DT_STOP_FILE=$BATS_TEST_TMPDIR/none/stop DT_RUN_ID=$(printf 'r%.0s' $(seq 201)) \
		run -78 --separate-stderr dt-fetch --check-config -a 0 -t ''
	assert_equal "$output" ''
	assert_equal "$stderr" "dt-fetch: error: BATCH_SIZE: 0 is out of range (1 to 1000)
dt-fetch: error: DT_LEASE_SECONDS: '1x' is not a whole number (1 to 604800)
dt-fetch: error: --max-attempts: 0 is out of range (1 to 1000)
dt-fetch: error: DT_SOURCE_COLUMNS/--columns: bad column list: a,,b
dt-fetch: error: DT_SOURCE_TABLE/--table: must be a name of 1 to 127 characters
dt-fetch: error: DT_STOP_FILE: $BATS_TEST_TMPDIR/none: no such directory
dt-fetch: error: DT_RUN_ID/--run-id: must be 1 to 200 characters
dt-fetch: error: SUPABASE_URL: not an http:// or https:// URL: ftp://example.org
dt-fetch: error: DT_SUPABASE_TRIES: 0 is out of range (1 to 100)
dt-fetch: error: SUPABASE_KEY_FILE: $BATS_TEST_TMPDIR/key: file holds more than one line"
	# dt-fetch takes less of a shared setting than the others.
	DT_MAX_LINE=2048 run -78 --separate-stderr dt-fetch --check-config
	assert_equal "$stderr" "dt-fetch: error: DT_MAX_LINE: 2048 is out of range (4096 to 1073741824)"
	SUPABASE_URL= SUPABASE_KEY_FILE=$BATS_TEST_TMPDIR/none run -78 --separate-stderr dt-fetch --check-config
	assert_equal "$stderr" "dt-fetch: error: SUPABASE_URL is not set (the project URL, e.g. https://xyz.supabase.co)
dt-fetch: error: SUPABASE_KEY and SUPABASE_KEY_FILE are both set; set only one"
	SUPABASE_URL=http:///rest/v1 SUPABASE_KEY= run -78 --separate-stderr dt-fetch --check-config
	assert_equal "$stderr" "dt-fetch: error: SUPABASE_URL: no host name: http:///rest/v1
dt-fetch: error: SUPABASE_KEY is not set (a secret key, sb_secret_..., or the legacy service_role key; or SUPABASE_KEY_FILE naming a file that holds it)"
	echo "$output$stderr" >"$BATS_TEST_TMPDIR/all"
	assert_no_secret "$SUPABASE_KEY" "$BATS_TEST_TMPDIR/all"
	# The command line's grammar is still a usage error.
	run -64 --separate-stderr dt-fetch --check-config --frobnicate
	assert_equal "$stderr" "dt-fetch: unrecognized option '--frobnicate'
Try 'dt-fetch --help'."
	run -0 standin supabase requests
	assert_output ''
}

@test "dt-fetch: BATCH_SIZE above Supabase's 1,000-row cap is refused before anything is leased" {
	messages 5
	BATCH_SIZE=1500 run -78 --separate-stderr dt-fetch -c -r r
	assert_output ''
	assert_equal "$stderr" "dt-fetch: error: BATCH_SIZE: 1500 is out of range (1 to 1000)"
	run -78 --separate-stderr dt-fetch --check-config -b 1001
	assert_equal "$stderr" "dt-fetch: error: --batch-size: 1001 is out of range (1 to 1000)"
	# --help says why.
	run -0 dt-fetch --help
	assert_line '  -b, --batch-size n       rows per claim: a claim leases them all, and'
	assert_line '                           Supabase returns at most 1000 (BATCH_SIZE, default'
	run -0 sql 'select count(*) from dt_results'
	assert_output 0
	run -0 standin supabase requests
	assert_output ''
}

@test "dt-fetch: at the cap every row leased is a row written" {
	messages 2500
	dt-fetch -c -q -r r -b 1000 -m 0 >"$BATS_TEST_TMPDIR/out"
	run -0 tail -n 1 "$BATS_TEST_TMPDIR/out"
	assert_output '{"stage":"dt-fetch","run_id":"r","status":0,"message":null,"counts":{"claimed":2500,"batches":4,"text_cut":0},"interrupted":false}'
	jq -r 'select(.id) | .id' "$BATS_TEST_TMPDIR/out" | sort -n >"$BATS_TEST_TMPDIR/written"
	sql "select source_id from dt_results where status = 'leased' order by source_id::bigint" >"$BATS_TEST_TMPDIR/leased"
	run -0 diff "$BATS_TEST_TMPDIR/written" "$BATS_TEST_TMPDIR/leased"
	run -0 wc -l <"$BATS_TEST_TMPDIR/leased"
	assert_output 2500
}

@test "dt-fetch: a reply cut below BATCH_SIZE (a lower Max rows) gives the rows that never arrived back and stops" {
	messages 10
	standin supabase script '{"max_rows": 3}'
	run -78 --separate-stderr dt-fetch -c -r r -b 5
	assert_output '{"id":1,"text":"message 1","row":{"id":1},"run_id":"r","attempt":1}
{"id":2,"text":"message 2","row":{"id":2},"run_id":"r","attempt":1}
{"id":3,"text":"message 3","row":{"id":3},"run_id":"r","attempt":1}
{"stage":"dt-fetch","run_id":"r","status":78,"message":"Supabase returned 3 of the 5 rows dt_claim leased: the project'"'"'s Max rows (API settings) is below BATCH_SIZE (5); set BATCH_SIZE to at most 3; the other 2 are given back","counts":{"claimed":3,"batches":1,"text_cut":0},"interrupted":false}'
	# Leased: exactly the rows written.  The two others as if never claimed.
	run -0 sql "select source_id, status, attempts, claims from dt_results where source_id::int <= 5 order by 1"
	assert_output $'1\tleased\t1\t1\n2\tleased\t1\t1\n3\tleased\t1\t1\n4\tpending\t0\t0\n5\tpending\t0\t0'
	# Another run takes them.
	standin supabase script '{"max_rows": 0}'
	run -0 dt-fetch -c -q -r r2 -b 2 -m 2
	assert_line --index 0 --partial '{"id":4,'
	assert_line --index 1 --partial '{"id":5,'
}

@test "dt-fetch: a cut reply without dt_release (its migration not applied) says the rows come back after the lease" {
	messages 4
	standin supabase script '{"max_rows": 1}'
	sql 'alter function dt_release rename to dt_release_away' >/dev/null
	run -78 --separate-stderr dt-fetch -c -q -r r -b 2
	sql 'alter function dt_release_away rename to dt_release' >/dev/null
	assert_line --index 1 --partial '"message":"Supabase returned 1 of the 2 rows dt_claim leased: the project'"'"'s Max rows (API settings) is below BATCH_SIZE (2); set BATCH_SIZE to at most 1; the others come back when their lease ends (dt_release: HTTP 404: PGRST202: Could not find the function public.dt_release'
	run -0 sql "select count(*) from dt_results where status = 'leased'"
	assert_output 2
}

@test "dt-fetch --claim: 200,000 source rows, the first run and a later one, inside Supabase's statement timeouts" {
	# The stand-in runs service_role under authenticator's 8 s, as
	# Supabase does (t/081 checks it); each call below must finish in it.
	sql "insert into messages (text) select 'message ' || g from generate_series(1, 200000) g" >/dev/null
	# The first run: dt_results is empty, the first claim takes rows in.
	dt-fetch -c -q -r run-1 -b 1000 >"$BATS_TEST_TMPDIR/out"
	run -0 tail -n 1 "$BATS_TEST_TMPDIR/out"
	assert_output '{"stage":"dt-fetch","run_id":"run-1","status":0,"message":null,"counts":{"claimed":10000,"batches":10,"text_cut":0},"interrupted":false}'
	# Earlier runs took in and finished all but the last 10,000.
	sql "insert into dt_results (source_id, status, attempts, claims, done_at)
		select g::text, 'done', 1, 1, now() from generate_series(10001, 190000) g" >/dev/null
	sql 'analyze dt_results' >/dev/null
	dt-fetch -c -q -r run-2 -b 1000 -m 0 >"$BATS_TEST_TMPDIR/out"
	run -0 tail -n 1 "$BATS_TEST_TMPDIR/out"
	assert_output '{"stage":"dt-fetch","run_id":"run-2","status":0,"message":null,"counts":{"claimed":10000,"batches":11,"text_cut":0},"interrupted":false}'
	run -0 head -n 1 "$BATS_TEST_TMPDIR/out"
	assert_output --partial '{"id":190001,'
	# What dt-report and --peek ask of the same table.
	run -0 rest POST rpc/dt_backlog -d '{}'
	assert_output $'{"done": 180000, "failed": 0, "leased": 20000, "unclaimed": 0}\nHTTP 200'
	run -0 dt-fetch --peek -q -r peek
	assert_output '{"stage":"dt-fetch","run_id":"peek","status":0,"message":null,"counts":{"peeked":0,"batches":1,"text_cut":0},"interrupted":false}'
}

@test "dt_message_analysis: after a run, the bot reads each message's analysis with the secret key only" {
	messages 3
	dt-fetch -c -q -r run-1 |
		jq -c 'if .id == 2 then . + {error: {kind: "invalid_output", message: "no JSON", retryable: true}}
			elif .id then . + {analysis: {summary: "About \(.text).", sentiment: "neutral", topics: ["test"],
				language: "en", action_items: [], confidence: 0.5}, model: "sonar", prompt_version: "p1",
				usage: {prompt_tokens: 10, completion_tokens: 5, total_tokens: 15}, latency_ms: 7}
			else . end' >"$BATS_TEST_TMPDIR/analyzed"
	run -1 dt-store -q "$BATS_TEST_TMPDIR/analyzed"
	run -0 rest GET 'dt_message_analysis?select=message_id,status,sentiment,topics,language,summary,action_items,confidence,model,prompt_version&order=message_id'
	assert_output '[{"message_id":1,"status":"done","sentiment":"neutral","topics":["test"],"language":"en","summary":"About message 1.","action_items":[],"confidence":0.5,"model":"sonar","prompt_version":"p1"}, 
 {"message_id":2,"status":"pending","sentiment":null,"topics":null,"language":null,"summary":null,"action_items":null,"confidence":null,"model":null,"prompt_version":null}, 
 {"message_id":3,"status":"done","sentiment":"neutral","topics":["test"],"language":"en","summary":"About message 3.","action_items":[],"confidence":0.5,"model":"sonar","prompt_version":"p1"}]
HTTP 200'
	run -0 rest GET 'dt_message_analysis?select=message_id&analyzed_at=not.is.null&message_id=eq.3'
	assert_output $'[{"message_id":3}]\nHTTP 200'
	run -0 curl -sS -w ' %{http_code}' -H "apikey: $SUPABASE_PUBLISHABLE_KEY" "$SUPABASE_URL/rest/v1/dt_message_analysis"
	assert_output '{"code":"42501","details":null,"hint":null,"message":"permission denied for view dt_message_analysis"} 401'
}
