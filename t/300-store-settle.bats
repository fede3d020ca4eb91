#!/usr/bin/env bats
# dt-store against the local stack: batching, idempotence, attempts,
# leases, bad input and outages.

load test_helper/common
load test_helper/stack

setup_file() { stack_up; }
teardown_file() { stack_down; }

setup() {
	dt_common_setup
	stack_reset
	export DT_SUPABASE_BACKOFF_MS=5
}

# analyzed FILTER <in >out: turns source records into analyzed records;
# FILTER (jq) decides per record, e.g. 'ok' or 'err("invalid_output")'.
analyzed() {
	jq -c "def ok: . + {analysis: {sentiment: \"positive\"}, model: \"sonar\",
		usage: {prompt_tokens: 10, completion_tokens: 5, total_tokens: 15}, latency_ms: 12};
	def err(k): . + {error: {kind: k, message: (k + \" here\"), retryable: true}};
	def fatal(k): . + {error: {kind: k, message: (k + \" here\"), retryable: false}};
	if .id then $1 else . end"
}

# wait_leases_expired: waits (up to 5 s) until no lease is live by the
# database's clock.
wait_leases_expired() {
	local i
	for i in $(seq 100); do
		[ "$(sql "select count(*) from dt_results where status = 'leased' and lease_until >= now()")" = 0 ] && return 0
		sleep 0.05
	done
	fail "leases still live after 5 s"
}

@test "dt-store: stores results and writes one status line per record after commit" {
	messages 3
	dt-fetch -c -q -r run-1 | analyzed 'if .id == 2 then err("invalid_output") else ok end' >"$BATS_TEST_TMPDIR/in"
	run -1 --separate-stderr dt-store -b 2 "$BATS_TEST_TMPDIR/in"
	assert_output '{"id":1,"run_id":"run-1","attempt":1,"analysis":{"sentiment":"positive"},"model":"sonar","usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15},"latency_ms":12,"store":{"outcome":"stored","attempts":1},"status":"stored"}
{"id":2,"run_id":"run-1","attempt":1,"error":{"kind":"invalid_output","message":"invalid_output here","retryable":true},"store":{"outcome":"retry","attempts":1},"status":"failed"}
{"id":3,"run_id":"run-1","attempt":1,"analysis":{"sentiment":"positive"},"model":"sonar","usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15},"latency_ms":12,"store":{"outcome":"stored","attempts":1},"status":"stored"}
{"stage":"dt-fetch","run_id":"run-1","status":0,"message":null,"counts":{"claimed":3,"batches":2,"text_cut":0},"interrupted":false}
{"stage":"dt-store","run_id":"run-1","status":1,"message":"1 records failed","counts":{"stored":2,"failed":1,"skipped":0,"not_stored":0,"bad":0,"batches":2},"interrupted":false}'
	assert_equal "$stderr" 'dt-store: info: stored 2, failed 1, skipped 0 in 2 requests'
	run -0 sql "select source_id, status, attempts, analysis, model, total_tokens, latency_ms, last_error->>'kind' from dt_results order by 1"
	assert_output $'1\tdone\t1\t{"sentiment": "positive"}\tsonar\t15\t12\t
2\tpending\t1\t\t\t\t\tinvalid_output
3\tdone\t1\t{"sentiment": "positive"}\tsonar\t15\t12\t'
}

@test "dt-store: its encoder writes what Jansson writes, byte for byte" {
	run -0 --separate-stderr store-encode "$(fixture store/encode.ndjson)"
	assert_output '21 values, 7 objects'
	assert_equal "$stderr" ''
}

# capture_once FILE REPLY: a one-request HTTP server on a free loopback
# port that saves the raw request body in FILE and answers 200 with REPLY
# (JSON).  Sets capture_url and capture_pid.  The stand-in parses bodies,
# so it cannot show how numbers were written.
capture_once() {
	/usr/bin/python3 -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        open(sys.argv[1], "wb").write(body)
        out = sys.argv[2].encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1] + ".port", "w").write(str(s.server_port))
s.handle_request()
' "$1" "$2" &
	capture_pid=$!
	for _ in $(seq 100); do
		[ -s "$1.port" ] && break
		sleep 0.05
	done
	capture_url=http://127.0.0.1:$(cat "$1.port")
}

@test "dt-store: numbers go to Supabase as the status lines show them, without binary rounding digits" {
	printf '%s\n' '{"id":7,"run_id":"r","analysis":{"score":0.1,"n":3},"model":"sonar","usage":{"total_tokens":9},"cost_usd":0.3}' >"$BATS_TEST_TMPDIR/in"
	capture_once "$BATS_TEST_TMPDIR/body" '[{"source_id":"7","outcome":"stored","attempts":1}]'
	SUPABASE_URL=$capture_url DT_SUPABASE_TRIES=1 run -0 --separate-stderr dt-store -q "$BATS_TEST_TMPDIR/in"
	wait "$capture_pid"
	assert_line --index 0 '{"id":7,"run_id":"r","analysis":{"score":0.1,"n":3},"model":"sonar","usage":{"total_tokens":9},"cost_usd":0.3,"store":{"outcome":"stored","attempts":1},"status":"stored"}'
	run -0 cat "$BATS_TEST_TMPDIR/body"
	assert_output '{"p_run_id":"r","p_results":[{"id":"7","analysis":{"score":0.1,"n":3},"model":"sonar","total_tokens":9,"cost_usd":0.3}]}'
}

@test "dt-store: replaying the same analyzed output twice changes nothing the second time" {
	messages 20
	dt-fetch -c -q -r run-1 | analyzed 'if .id % 3 == 0 then err("timeout") elif .id % 3 == 1 then err("invalid_output") else ok end' >"$BATS_TEST_TMPDIR/in"
	dt-store -q "$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out1" || true
	before=$(results_md5)
	dt-store -q "$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out2" || true
	run -0 results_md5
	assert_output "$before"
	run -0 diff "$BATS_TEST_TMPDIR/out1" "$BATS_TEST_TMPDIR/out2"
}

@test "dt-store: record-specific failures park a row after max attempts; outages burn none" {
	messages 2
	for run in r1 r2 r3; do
		dt-fetch -c -q -r "$run" -a 3 | analyzed 'if .id == 1 then err("invalid_output") else err("rate_limited") end' >"$BATS_TEST_TMPDIR/in.$run"
		dt-store -q "$BATS_TEST_TMPDIR/in.$run" >"$BATS_TEST_TMPDIR/out.$run" || true
	done
	run -0 jq -c 'select(.id) | [.id, .status, .store.outcome, .store.attempts]' "$BATS_TEST_TMPDIR/out.r3"
	assert_output '[1,"failed","failed",3]
[2,"failed","released",0]'
	run -0 sql "select source_id, status, attempts, claims from dt_results order by 1"
	assert_output $'1\tfailed\t3\t3\n2\tpending\t0\t3'
	# A parked row is not claimed again; the released one is.
	run -0 dt-fetch -c -q -r r4 -a 3
	assert_line --index 0 '{"id":2,"text":"message 2","row":{"id":2},"run_id":"r4","attempt":1}'
	assert_equal "${#lines[@]}" 2
	run -0 sql "select dt_backlog()"
	assert_output '{"done": 0, "failed": 1, "leased": 1, "unclaimed": 0}'
}

@test "dt-store: an error that is not retryable parks the row at once; an outage still releases it" {
	messages 4
	dt-fetch -c -q -r r1 -a 3 | analyzed 'if .id == 1 then fatal("bad_record") elif .id == 2 then fatal("too_large")
		elif .id == 3 then fatal("timeout") else err("invalid_output") end' >"$BATS_TEST_TMPDIR/in"
	run -1 dt-store -q "$BATS_TEST_TMPDIR/in"
	run -0 jq -c 'select(.id) | [.id, .status, .store.outcome, .store.attempts]' <<<"$output"
	assert_output '[1,"failed","failed",1]
[2,"failed","failed",1]
[3,"failed","released",0]
[4,"failed","retry",1]'
	run -0 sql "select source_id, status, attempts, last_error from dt_results order by 1"
	assert_output $'1\tfailed\t1\t{"kind": "bad_record", "message": "bad_record here", "retryable": false}
2\tfailed\t1\t{"kind": "too_large", "message": "too_large here", "retryable": false}
3\tpending\t0\t{"kind": "timeout", "message": "timeout here", "retryable": false}
4\tpending\t1\t{"kind": "invalid_output", "message": "invalid_output here", "retryable": true}'
	# Replaying it changes nothing; the next run gets only rows 3 and 4.
	run -1 dt-store -q "$BATS_TEST_TMPDIR/in"
	run -0 sql "select source_id, status, attempts from dt_results order by 1"
	assert_output $'1\tfailed\t1\n2\tfailed\t1\n3\tpending\t0\n4\tpending\t1'
	run -0 dt-fetch -c -q -r r2
	run -0 jq -c 'select(.id) | .id' <<<"$output"
	assert_output $'3\n4'
}

@test "dt-store: a run killed between fetch and store loses nothing once the lease expires" {
	messages 30
	dt-fetch -c -q -r dead -l 1 -m 12 >"$BATS_TEST_TMPDIR/dead.out"
	# The analyzer of run "dead" is SIGKILLed: nothing of it is stored.
	# Its leases end a second after the claim, by the database's clock.
	run -0 sql "select lease_until - claimed_at, count(*) from dt_results where run_id = 'dead' group by 1"
	assert_output $'00:00:01\t12'
	wait_leases_expired
	dt-fetch -c -q -r next | analyzed ok >"$BATS_TEST_TMPDIR/in"
	run -0 jq -s '[.[] | select(.id)] | length' "$BATS_TEST_TMPDIR/in"
	assert_output 30
	dt-store -q "$BATS_TEST_TMPDIR/in" >/dev/null
	run -0 sql "select count(*), count(distinct source_id), count(*) filter (where status = 'done') from dt_results"
	assert_output $'30\t30\t30'
	run -0 sql "select sum(attempts) from dt_results where source_id::int <= 12"
	assert_output 24
	# What the dead run stores late is refused: the row is no longer its.
	analyzed ok <"$BATS_TEST_TMPDIR/dead.out" >"$BATS_TEST_TMPDIR/late"
	before=$(results_md5)
	run -1 dt-store -q "$BATS_TEST_TMPDIR/late"
	assert_line --index 0 --partial '"store":{"outcome":"lost","attempts":2},"status":"skipped"}'
	run -0 results_md5
	assert_output "$before"
}

@test "dt-store: a row whose run dies every time is parked, not claimed forever" {
	messages 1
	n=0
	for run in a b c; do
		dt-fetch -c -q -r "$run" -l 1 -a 3 >/dev/null
		n=$((n + 1))
		run -0 sql "select status, run_id, attempts from dt_results"
		assert_output "leased"$'\t'"$run"$'\t'"$n"
		# The run dies.  Its lease is moved into the past instead of
		# waited for (the test above waits for a real one).
		sql "update dt_results set lease_until = now() - interval '1 millisecond' where status = 'leased'"
	done
	run -0 dt-fetch -c -q -r d -a 3
	assert_output '{"stage":"dt-fetch","run_id":"d","status":0,"message":null,"counts":{"claimed":0,"batches":1,"text_cut":0},"interrupted":false}'
	run -0 sql "select status, attempts, last_error->>'kind' from dt_results"
	assert_output $'failed\t3\tlease_expired'
}

@test "dt-store: bad lines, missing and wrong ids are reported and the rest is stored" {
	messages 2
	dt-fetch -c -q -r r | analyzed ok >"$BATS_TEST_TMPDIR/in"
	printf '%s\n' 'not json' '{"analysis":{}}' '{"id":1.5,"analysis":{},"run_id":"r"}' '{"id":1,"run_id":"r"}' >>"$BATS_TEST_TMPDIR/in"
	run -65 --separate-stderr dt-store "$BATS_TEST_TMPDIR/in"
	assert_equal "${#lines[@]}" 8
	assert_line '{"error":{"kind":"bad_record","message":"invalid JSON: invalid token near '"'"'not'"'"' (column 3)","retryable":false},"input":{"where":"'"$BATS_TEST_TMPDIR"'/in:4","excerpt":"not json"},"store":{"outcome":"bad_record","message":"invalid JSON: invalid token near '"'"'not'"'"' (column 3)"},"status":"failed"}'
	assert_line '{"analysis":{},"error":{"kind":"bad_record","message":"missing id","retryable":false},"store":{"outcome":"bad_record","message":"missing id"},"status":"failed"}'
	assert_line '{"id":1,"run_id":"r","error":{"kind":"bad_record","message":"neither an \"analysis\" nor an \"error\" object","retryable":false},"store":{"outcome":"bad_record","message":"neither an \"analysis\" nor an \"error\" object"},"status":"failed"}'
	assert_line '{"id":1.5,"analysis":{},"run_id":"r","error":{"kind":"bad_record","message":"id must be an integer or a string, not a fraction","retryable":false},"store":{"outcome":"bad_record","message":"id must be an integer or a string, not a fraction"},"status":"failed"}'
	assert_line --index 7 '{"stage":"dt-store","run_id":"r","status":65,"message":"4 bad input records","counts":{"stored":2,"failed":4,"skipped":0,"not_stored":0,"bad":4,"batches":1},"interrupted":false}'
	run -0 sql "select count(*) from dt_results where status = 'done'"
	assert_output 2
}

@test "dt-store: a 1 MiB text and a batch the server rejects with 400 lose nothing" {
	sql "insert into messages (text) values (repeat('x', 1048000)), ('short'), ('other')"
	dt-fetch -c -q -r r | analyzed 'if .id == 2 then ok | .analysis.note = "a\u0000b" else ok end' >"$BATS_TEST_TMPDIR/in"
	# dt-fetch cut it (DT_FETCH_MAX_TEXT_BYTES) so its line fits.
	run -0 jq -c 'select(.id == 1) | [(.text | length), .text_bytes]' "$BATS_TEST_TMPDIR/in"
	assert_output '[65536,1048000]'
	run -65 --separate-stderr dt-store "$BATS_TEST_TMPDIR/in"
	[[ $stderr == *'dt-store: warning: a batch of 3 records was rejected (HTTP 400: 22P05: unsupported Unicode escape sequence'*'sending them one by one'* ]]
	run -0 jq -c 'select(.id) | [.id, .status, .store.outcome]' <<<"$output"
	assert_output '[1,"stored","stored"]
[2,"failed","not_stored"]
[3,"stored","stored"]'
	run -0 sql "select source_id, status from dt_results order by 1"
	assert_output $'1\tdone\n2\tleased\n3\tdone'
}

@test "dt-store: Supabase unavailable: records are not stored, stay leased, exit 69" {
	messages 3
	dt-fetch -c -q -r r | analyzed ok >"$BATS_TEST_TMPDIR/in"
	standin supabase script '{"fail": 100}'
	run -69 --separate-stderr dt-store "$BATS_TEST_TMPDIR/in"
	assert_line --index 0 '{"id":1,"run_id":"r","attempt":1,"analysis":{"sentiment":"positive"},"model":"sonar","usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15},"latency_ms":12,"store":{"outcome":"not_stored","message":"Supabase unavailable: HTTP 503: PGRST001: Database client error. Retrying the connection."},"status":"failed"}'
	assert_line --index 4 '{"stage":"dt-store","run_id":"r","status":69,"message":"Supabase unavailable: HTTP 503: PGRST001: Database client error. Retrying the connection.","counts":{"stored":0,"failed":3,"skipped":0,"not_stored":3,"bad":0,"batches":1},"interrupted":false}'
	run -0 sql "select count(*) from dt_results where status = 'leased'"
	assert_output 3
	assert_no_secret "$SUPABASE_KEY" <(printf '%s\n%s\n' "$output" "$stderr")
}

@test "dt-store: a settle whose reply was lost is retried and reports the same outcome" {
	messages 2
	dt-fetch -c -q -r r | analyzed ok >"$BATS_TEST_TMPDIR/in"
	standin supabase script '{"drop": 1, "match": "dt_settle"}'
	run -0 --separate-stderr dt-store "$BATS_TEST_TMPDIR/in"
	run -0 jq -c 'select(.id) | [.id, .status]' <<<"$output"
	assert_output '[1,"stored"]
[2,"stored"]'
}

@test "dt-store: a slow trickle is written before the input ends" {
	messages 2
	dt-fetch -c -q -r r | analyzed ok | grep '"id"' >"$BATS_TEST_TMPDIR/in"
	mkfifo "$BATS_TEST_TMPDIR/fifo"
	dt-store -q -d 100 <"$BATS_TEST_TMPDIR/fifo" >"$BATS_TEST_TMPDIR/out" &
	pid=$!
	exec 5>"$BATS_TEST_TMPDIR/fifo"
	head -n 1 "$BATS_TEST_TMPDIR/in" >&5
	for i in $(seq 50); do
		[ -s "$BATS_TEST_TMPDIR/out" ] && break
		sleep 0.05
	done
	run -0 jq -c '[.id, .status]' "$BATS_TEST_TMPDIR/out"
	assert_output '[1,"stored"]'
	tail -n 1 "$BATS_TEST_TMPDIR/in" >&5
	exec 5>&-
	wait "$pid"
	run -0 jq -c 'select(.id) | [.id, .status]' "$BATS_TEST_TMPDIR/out"
	assert_output '[1,"stored"]
[2,"stored"]'
}

@test "dt-store --dry-run: prints what it would write and touches nothing" {
	messages 1
	dt-fetch -c -q -r r | analyzed ok >"$BATS_TEST_TMPDIR/in"
	before=$(results_md5)
	standin supabase reset
	run -0 dt-store -q -n "$BATS_TEST_TMPDIR/in"
	assert_line --index 0 '{"id":1,"run_id":"r","attempt":1,"analysis":{"sentiment":"positive"},"model":"sonar","usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15},"latency_ms":12,"store":{"outcome":"dry_run","run_id":"r","would":{"id":"1","analysis":{"sentiment":"positive"},"model":"sonar","prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"latency_ms":12}},"status":"skipped"}'
	run -0 results_md5
	assert_output "$before"
	run -0 standin supabase requests
	assert_output ''
}

# wait_catching PID: waits (up to 5 s) until PID has its SIGTERM handler.
wait_catching() {
	local i mask
	for i in $(seq 250); do
		mask=$(awk '/^SigCgt:/ { print $2 }' "/proc/$1/status" 2>/dev/null) || true
		[ -n "$mask" ] && (((0x$mask >> 14) & 1)) && return 0
		sleep 0.02
	done
	fail "process $1 does not catch SIGTERM"
}

@test "dt-store: SIGTERM does not lose a batch: the rest of the input is still stored" {
	messages 3
	dt-fetch -c -q -r r | analyzed ok | grep '"id"' >"$BATS_TEST_TMPDIR/in"
	mkfifo "$BATS_TEST_TMPDIR/fifo"
	# A long delay keeps the first record's batch open when the signal comes.
	dt-store -d 60000 <"$BATS_TEST_TMPDIR/fifo" >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" &
	pid=$!
	exec 5>"$BATS_TEST_TMPDIR/fifo"
	head -n 1 "$BATS_TEST_TMPDIR/in" >&5
	wait_catching "$pid"
	kill -TERM "$pid"
	sleep 0.1
	kill -0 "$pid"
	tail -n 2 "$BATS_TEST_TMPDIR/in" >&5
	exec 5>&-
	status=0
	wait "$pid" || status=$?
	assert_equal "$status" 0
	run -0 jq -c 'select(.id) | [.id, .status, .store.outcome]' "$BATS_TEST_TMPDIR/out"
	assert_output '[1,"stored","stored"]
[2,"stored","stored"]
[3,"stored","stored"]'
	run -0 tail -n 1 "$BATS_TEST_TMPDIR/out"
	assert_output '{"stage":"dt-store","run_id":"r","status":0,"message":null,"counts":{"stored":3,"failed":0,"skipped":0,"not_stored":0,"bad":0,"batches":1},"interrupted":false}'
	run -0 cat "$BATS_TEST_TMPDIR/err"
	assert_output 'dt-store: warning: SIGTERM: storing the rest of the input before exiting
dt-store: info: stored 3, failed 0, skipped 0 in 1 requests'
	run -0 sql "select count(*) from dt_results where status = 'done'"
	assert_output 3
}

@test "dt-store: a second signal ends it at once" {
	mkfifo "$BATS_TEST_TMPDIR/fifo"
	dt-store -q <"$BATS_TEST_TMPDIR/fifo" >"$BATS_TEST_TMPDIR/out" &
	pid=$!
	exec 5>"$BATS_TEST_TMPDIR/fifo"
	wait_catching "$pid"
	kill -INT "$pid"
	sleep 0.1
	kill -0 "$pid"
	kill -INT "$pid"
	status=0
	wait "$pid" || status=$?
	exec 5>&-
	assert_equal "$status" 130
	run -0 cat "$BATS_TEST_TMPDIR/out"
	assert_output ''
}

@test "dt-store --check-config: a valid configuration passes silently; reads no input, sends no request" {
	mkfifo "$BATS_TEST_TMPDIR/fifo"
	# Held open for writing and never written: reading it would block.
	exec 5<>"$BATS_TEST_TMPDIR/fifo"
	run -0 --separate-stderr timeout 10 dt-store --check-config <"$BATS_TEST_TMPDIR/fifo"
	assert_equal "$output$stderr" ''
	run -0 --separate-stderr timeout 10 dt-store --check-config -b 1000 -r run-1 "$BATS_TEST_TMPDIR/fifo"
	assert_equal "$output$stderr" ''
	exec 5>&-
	run -0 standin supabase requests
	assert_output ''
	start=$(date +%s%N)
	SUPABASE_URL=http://127.0.0.1:1 DT_SUPABASE_BACKOFF_MS=2000 run -0 --separate-stderr dt-store --check-config
	elapsed=$((($(date +%s%N) - start) / 1000000))
	assert_equal "$output$stderr" ''
	! unwrapped || [ "$elapsed" -lt 1500 ] || fail "took $elapsed ms"
	# --dry-run needs no Supabase settings.
	SUPABASE_URL= SUPABASE_KEY= run -0 --separate-stderr dt-store --check-config -n
	assert_equal "$output$stderr" ''
}

@test "dt-store --check-config: one line per problem, exit 78" {
	SUPABASE_URL=https://x.supabase.co?x=1 SUPABASE_KEY= SUPABASE_KEY_FILE=$BATS_TEST_TMPDIR/none \
		DT_STORE_BATCH=1001 DT_STORE_MAX_DELAY_MS=-5 DT_MAX_LINE=1k TIMEOUT_SECONDS=0 \
		run -78 --separate-stderr dt-store --check-config -d x -r ''
	assert_equal "$output" ''
	assert_equal "$stderr" "dt-store: error: DT_STORE_BATCH: 1001 is out of range (1 to 1000)
dt-store: error: DT_STORE_MAX_DELAY_MS: -5 is out of range (0 to 3600000)
dt-store: error: DT_MAX_LINE: '1k' is not a whole number (1024 to 1073741824)
dt-store: error: --max-delay: 'x' is not a whole number (0 to 3600000)
dt-store: error: DT_RUN_ID/--run-id: must be 1 to 200 characters
dt-store: error: SUPABASE_URL: must be the bare project URL, without a query, fragment or spaces
dt-store: error: TIMEOUT_SECONDS: 0 is out of range (1 to 86400)
dt-store: error: SUPABASE_KEY_FILE: cannot read $BATS_TEST_TMPDIR/none: No such file or directory"
	run -64 --separate-stderr dt-store --check-config -z
	assert_equal "$stderr" "dt-store: invalid option -- 'z'
Try 'dt-store --help'."
	run -0 standin supabase requests
	assert_output ''
}
