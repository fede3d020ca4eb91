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
{"stage":"dt-store","run_id":"run-1","status":1,"message":"1 records failed","counts":{"stored":2,"released":0,"failed":1,"skipped":0,"unchanged":0,"lost":0,"not_stored":0,"bad":0,"batches":2,"outages":0},"interrupted":false}'
	assert_equal "$stderr" 'dt-store: info: stored 2, failed 1, skipped 0 in 2 requests'
	run -0 sql "select source_id, status, attempts, analysis, model, total_tokens, latency_ms, last_error->>'kind' from dt_results order by 1"
	assert_output $'1\tdone\t1\t{"sentiment": "positive"}\tsonar\t15\t12\t
2\tpending\t1\t\t\t\t\tinvalid_output
3\tdone\t1\t{"sentiment": "positive"}\tsonar\t15\t12\t'
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
[2,"released","released",0]'
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
[3,"released","released",0]
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

@test "dt-store: a setup error (kind config) gives the row back with its attempt and its claim" {
	messages 2
	dt-fetch -c -q -r r1 | analyzed 'if .id == 1 then fatal("config") else err("timeout") end' >"$BATS_TEST_TMPDIR/in"
	# Given back is not failed: the stage's own status stays 0 (dt-analyze's
	# status says what went wrong).
	run -0 dt-store -q "$BATS_TEST_TMPDIR/in"
	run -0 jq -c 'select(.id) | [.id, .status, .store.outcome, .store.attempts]' <<<"$output"
	assert_output '[1,"released","released",0]
[2,"released","released",0]'
	run -0 sql "select source_id, status, attempts, claims, last_error->>'kind' from dt_results order by 1"
	assert_output $'1\tpending\t0\t0\tconfig\n2\tpending\t0\t1\ttimeout'
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
	# Each such record says why, and how its result could be kept.
	analyzed ok <"$BATS_TEST_TMPDIR/dead.out" >"$BATS_TEST_TMPDIR/late"
	before=$(results_md5)
	run -1 --separate-stderr dt-store "$BATS_TEST_TMPDIR/late"
	assert_line --index 0 --partial '"store":{"outcome":"lost","attempts":2},"status":"failed"}'
	assert_line --index 13 --partial '"counts":{"stored":0,"released":0,"failed":12,"skipped":0,"unchanged":0,"lost":12,'
	assert_equal "${stderr_lines[0]}" "dt-store: warning: record 1: lost: run dead no longer holds this row (its lease expired and another run took it over, or the id is not in dt_results); its result is in this run's analyze output, which dt-store --reclaim stores once no live run holds the row"
	assert_equal "$(grep -c ': lost: run dead no longer holds this row' <<<"$stderr")" 12
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

@test "dt-store: rows without text (empty, blank, NULL) are skipped: final, not failures, exit 0" {
	standin perplexity reset
	sql "insert into messages (text) values ('hello there'), (''), (E'  \\n '), (null)"
	dt-fetch -c -q -r r1 >"$BATS_TEST_TMPDIR/fetched"
	run -0 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/fetched"
	printf '%s\n' "${lines[@]}" >"$BATS_TEST_TMPDIR/analyzed"
	assert_equal "$stderr" ''
	run -0 jq -c 'select(.id) | [.id, .skip, (.analysis | type), .error]' "$BATS_TEST_TMPDIR/analyzed"
	assert_output '[1,null,"object",null]
[2,{"reason":"no_text","message":"the text is empty"},"null",null]
[3,{"reason":"no_text","message":"the text is blank"},"null",null]
[4,{"reason":"no_text","message":"the text is null"},"null",null]'
	run -0 jq -c 'select(.stage == "dt-analyze") | [.status, .counts.analyzed, .counts.skipped, .counts.errors]' "$BATS_TEST_TMPDIR/analyzed"
	assert_output '[0,1,3,0]'
	# One call, for the one text.
	assert_equal "$(standin perplexity requests | grep -c '"path"')" 1
	run -0 --separate-stderr dt-store "$BATS_TEST_TMPDIR/analyzed"
	run -0 jq -c 'select(.id) | [.id, .status, .store.outcome]' <<<"$output"
	assert_output '[1,"stored","stored"]
[2,"skipped","skipped"]
[3,"skipped","skipped"]
[4,"skipped","skipped"]'
	assert_equal "$stderr" 'dt-store: info: stored 1, failed 0, skipped 3 in 1 requests'
	run -0 sql "select source_id, status, attempts, analysis is null, last_error from dt_results order by 1"
	assert_output $'1\tdone\t1\tf\t
2\tskipped\t1\tt\t
3\tskipped\t1\tt\t
4\tskipped\t1\tt\t'
	# Final: never claimed again, by any run, and not in the backlog.
	run -0 dt-fetch -c -q -r r2
	assert_output --partial '"counts":{"claimed":0,'
	run -0 sql "select dt_backlog()"
	assert_output '{"done": 1, "failed": 0, "leased": 0, "unclaimed": 0}'
	# Replaying it changes nothing.
	before=$(results_md5)
	run -0 dt-store -q "$BATS_TEST_TMPDIR/analyzed"
	run -0 results_md5
	assert_output "$before"
}

@test "dt-store --reclaim: stores a saved run's results after its leases expired; rows settled or held meanwhile are left alone" {
	standin perplexity reset
	messages 5
	dt-fetch -c -q -r old -l 1 | analyzed ok >"$BATS_TEST_TMPDIR/analyze.ndjson"
	wait_leases_expired
	# Meanwhile: run "other" claimed and stored row 1; run "live" holds
	# row 2; a claim parked row 3 (its lease ran out once too often);
	# row 5 was claimed by run "gone", which died too.
	dt-fetch -c -q -r other -m 1 | analyzed ok | dt-store -q >/dev/null
	dt-fetch -c -q -r live -m 1 >/dev/null
	sql "update dt_results set status = 'failed', lease_until = null, last_error = '{\"kind\":\"lease_expired\",\"message\":\"x\"}' where source_id = '3'"
	sql "update dt_results set run_id = 'gone', claims = claims + 1, attempts = attempts + 1 where source_id = '5'"
	run -0 sql "select source_id, status, run_id from dt_results order by 1"
	assert_output $'1\tdone\tother\n2\tleased\tlive\n3\tfailed\told\n4\tleased\told\n5\tleased\tgone'
	# Without --reclaim the late results are lost, each with its hint.
	before=$(results_md5)
	run -1 --separate-stderr dt-store "$BATS_TEST_TMPDIR/analyze.ndjson"
	run -0 jq -c 'select(.id) | [.id, .status, .store.outcome]' <<<"$output"
	assert_output '[1,"failed","lost"]
[2,"failed","lost"]
[3,"stored","stored"]
[4,"stored","stored"]
[5,"failed","lost"]'
	assert_equal "$(grep -c 'dt-store --reclaim stores' <<<"$stderr")" 3
	assert_no_secret "$SUPABASE_KEY" <(printf '%s\n%s\n' "$output" "$stderr")
	# Rows 3 and 4 were still this run's (3 was parked only for want of
	# a result), so they took theirs.  Undo that, to reclaim them below.
	sql "update dt_results set status = 'leased', analysis = null, done_at = null where source_id = '4'"
	sql "update dt_results set status = 'failed', analysis = null, done_at = null, last_error = '{\"kind\":\"lease_expired\",\"message\":\"x\"}' where source_id = '3'"
	run -0 --separate-stderr dt-store --reclaim "$BATS_TEST_TMPDIR/analyze.ndjson"
	printf '%s\n' "${lines[@]}" >"$BATS_TEST_TMPDIR/out1"
	run -0 jq -c 'select(.id) | [.id, .status, .store.outcome]' "$BATS_TEST_TMPDIR/out1"
	assert_output '[1,"unchanged","settled"]
[2,"unchanged","held"]
[3,"stored","stored"]
[4,"stored","stored"]
[5,"stored","stored"]'
	run -0 tail -n 1 "$BATS_TEST_TMPDIR/out1"
	assert_output '{"stage":"dt-store","run_id":"old","status":0,"message":null,"counts":{"stored":3,"released":0,"failed":0,"skipped":0,"unchanged":2,"lost":0,"not_stored":0,"bad":0,"batches":1,"outages":0},"interrupted":false}'
	assert_equal "$stderr" 'dt-store: info: reclaimed: stored 3, failed 0, skipped 0, unchanged 2 in 1 requests'
	run -0 sql "select source_id, status, run_id, analysis is not null, attempts from dt_results order by 1"
	assert_output $'1\tdone\tother\tt\t2\n2\tleased\tlive\tf\t2\n3\tdone\told\tt\t1\n4\tdone\told\tt\t1\n5\tdone\told\tt\t2'
	# It talks to Supabase only; and reclaiming again changes nothing.
	assert_equal "$(standin perplexity requests | grep -c '"path"')" 0
	before=$(results_md5)
	run -0 dt-store -q --reclaim "$BATS_TEST_TMPDIR/analyze.ndjson"
	assert_equal "$output" "$(cat "$BATS_TEST_TMPDIR/out1")"
	run -0 results_md5
	assert_output "$before"
}

@test "dt-store --reclaim: racing a live claim, no row goes to both" {
	messages 600
	dt-fetch -c -q -r old -l 1 -b 600 -m 600 | analyzed ok >"$BATS_TEST_TMPDIR/analyze.ndjson"
	wait_leases_expired
	dt-fetch -c -q -r new -b 20 >"$BATS_TEST_TMPDIR/claimed" &
	fetcher=$!
	# The claim goes up from the first row, the reclaim down from the
	# last: they meet somewhere.
	tac "$BATS_TEST_TMPDIR/analyze.ndjson" >"$BATS_TEST_TMPDIR/reversed"
	dt-store -q --reclaim -b 20 "$BATS_TEST_TMPDIR/reversed" >"$BATS_TEST_TMPDIR/stored" || true
	wait "$fetcher"
	jq -r 'select(.id) | .id' "$BATS_TEST_TMPDIR/claimed" | sort >"$BATS_TEST_TMPDIR/a"
	jq -r 'select(.id and .status == "stored") | .id' "$BATS_TEST_TMPDIR/stored" | sort >"$BATS_TEST_TMPDIR/b"
	# Every row went to exactly one of them ...
	run -0 comm -12 "$BATS_TEST_TMPDIR/a" "$BATS_TEST_TMPDIR/b"
	assert_output ''
	assert_equal "$(cat "$BATS_TEST_TMPDIR/a" "$BATS_TEST_TMPDIR/b" | sort -u | wc -l)" 600
	# ... and the database agrees: reclaimed rows done, claimed rows leased.
	run -0 sql "select source_id from dt_results where status = 'done' and run_id = 'old' order by 1"
	assert_equal "$output" "$(cat "$BATS_TEST_TMPDIR/b")"
	run -0 sql "select source_id from dt_results where status = 'leased' and run_id = 'new' order by 1"
	assert_equal "$output" "$(cat "$BATS_TEST_TMPDIR/a")"
	# Those the claim got first were left alone, as held by a live run.
	run -0 jq -r 'select(.id and .status != "stored") | .store.outcome' "$BATS_TEST_TMPDIR/stored"
	assert_equal "$(sort -u <<<"$output")" "$(comm -23 <(seq 600 | sort) "$BATS_TEST_TMPDIR/b" | sed 's/.*/held/' | sort -u)"
}

@test "dt-store: bad lines, missing and wrong ids are reported and the rest is stored" {
	messages 2
	dt-fetch -c -q -r r | analyzed ok >"$BATS_TEST_TMPDIR/in"
	printf '%s\n' 'not json' '{"analysis":{}}' '{"id":1.5,"analysis":{},"run_id":"r"}' '{"id":1,"run_id":"r"}' >>"$BATS_TEST_TMPDIR/in"
	run -65 --separate-stderr dt-store "$BATS_TEST_TMPDIR/in"
	assert_equal "${#lines[@]}" 8
	assert_line '{"error":{"kind":"bad_record","message":"invalid JSON: invalid token near '"'"'not'"'"' (column 3)","retryable":false},"input":{"where":"'"$BATS_TEST_TMPDIR"'/in:4","excerpt":"not json"},"store":{"outcome":"bad_record","message":"invalid JSON: invalid token near '"'"'not'"'"' (column 3)"},"status":"failed"}'
	assert_line '{"analysis":{},"error":{"kind":"bad_record","message":"missing id","retryable":false},"store":{"outcome":"bad_record","message":"missing id"},"status":"failed"}'
	assert_line '{"id":1,"run_id":"r","error":{"kind":"bad_record","message":"no \"analysis\", \"error\" or \"skip\" object","retryable":false},"store":{"outcome":"bad_record","message":"no \"analysis\", \"error\" or \"skip\" object"},"status":"failed"}'
	assert_line '{"id":1.5,"analysis":{},"run_id":"r","error":{"kind":"bad_record","message":"id must be an integer or a string, not a fraction","retryable":false},"store":{"outcome":"bad_record","message":"id must be an integer or a string, not a fraction"},"status":"failed"}'
	assert_line --index 7 '{"stage":"dt-store","run_id":"r","status":65,"message":"4 bad input records","counts":{"stored":2,"released":0,"failed":4,"skipped":0,"unchanged":0,"lost":0,"not_stored":0,"bad":4,"batches":1,"outages":0},"interrupted":false}'
	run -0 sql "select count(*) from dt_results where status = 'done'"
	assert_output 2
}

@test "dt-store: a record given twice in one batch gets the server's one outcome on both lines" {
	messages 2
	dt-fetch -c -q -r r | analyzed ok | jq -c 'select(.id)' >"$BATS_TEST_TMPDIR/in"
	head -1 "$BATS_TEST_TMPDIR/in" >>"$BATS_TEST_TMPDIR/in"
	run -0 --separate-stderr dt-store "$BATS_TEST_TMPDIR/in"
	assert_equal "${#lines[@]}" 4
	run -0 jq -c 'select(.id) | [.id, .status, .store]' <<<"$output"
	assert_output '[1,"stored",{"outcome":"stored","attempts":1}]
[2,"stored",{"outcome":"stored","attempts":1}]
[1,"stored",{"outcome":"stored","attempts":1}]'
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
	# No waiting through the outage (below, 711 waits).
	DT_STORE_OUTAGE_SECONDS=0 run -69 --separate-stderr dt-store "$BATS_TEST_TMPDIR/in"
	assert_line --index 0 '{"id":1,"run_id":"r","attempt":1,"analysis":{"sentiment":"positive"},"model":"sonar","usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15},"latency_ms":12,"store":{"outcome":"not_stored","message":"Supabase unavailable: HTTP 503: PGRST001: Database client error. Retrying the connection."},"status":"failed"}'
	assert_line --index 4 '{"stage":"dt-store","run_id":"r","status":69,"message":"Supabase unavailable: HTTP 503: PGRST001: Database client error. Retrying the connection.","counts":{"stored":0,"released":0,"failed":3,"skipped":0,"unchanged":0,"lost":0,"not_stored":3,"bad":0,"batches":1,"outages":0},"interrupted":false}'
	run -0 sql "select count(*) from dt_results where status = 'leased'"
	assert_output 3
	assert_no_secret "$SUPABASE_KEY" <(printf '%s\n%s\n' "$output" "$stderr")
}

@test "dt-store: through an outage it probes and stores once Supabase is back; a stop leaves it half the drain window" {
	messages 3
	dt-fetch -c -q -r r | analyzed ok >"$BATS_TEST_TMPDIR/in"
	export DT_SUPABASE_TRIES=2 DT_STOP_FILE=$BATS_TEST_TMPDIR/stop
	# A 2 s outage, far longer than a request's own retries.
	standin supabase script '{"fail_for_ms": 2000, "match": "dt_settle"}'
	run -0 --separate-stderr dt-store "$BATS_TEST_TMPDIR/in"
	run -0 jq -c 'select(.id) | [.id, .status]' <<<"$output"
	assert_output '[1,"stored"]
[2,"stored"]
[3,"stored"]'
	run -0 grep -m 1 'probing' <<<"$stderr"
	[[ $output == 'dt-store: warning: Supabase unavailable (HTTP 503: PGRST001: Database client error. Retrying the connection.); probing again in '*' ms, giving up in 3600 s' ]]
	[[ $stderr == *'dt-store: info: Supabase answers again after '* ]]
	assert_no_secret "$SUPABASE_KEY" <(printf '%s\n' "$stderr")
	# The probes asked for nothing: an empty settle, never the batch.
	run -0 jq -c 'select(.path | endswith("dt_settle")) | .json.p_results | length' <(standin supabase requests)
	assert_equal "$(sort -u <<<"$output" | tr '\n' ' ')" '0 3 '
	# The run stopped 1 s ago and drains for 4 s: dt-store waits 1 s more.
	sql "update dt_results set status = 'leased', analysis = null"
	standin supabase script '{"fail": 100000}'
	touch -d '-1 second' "$DT_STOP_FILE"
	DT_DRAIN_SECONDS=4 run -69 --separate-stderr dt-store "$BATS_TEST_TMPDIR/in"
	run -0 jq -c 'select(.id) | .store.outcome' <<<"$output"
	assert_output $'"not_stored"\n"not_stored"\n"not_stored"'
	run -0 grep -m 1 'probing' <<<"$stderr"
	[[ $output == 'dt-store: warning: Supabase unavailable (HTTP 503: '*'giving up in 1 s' ]]
	assert_equal "$(grep -cE 'dt-store: error: Supabase still unavailable after [0-9]+ s \(HTTP 503: .*\); giving up$' <<<"$stderr")" 1
	# Stopped longer ago than that: it gives up at once.
	touch -d '-10 seconds' "$DT_STOP_FILE"
	DT_DRAIN_SECONDS=4 run -69 --separate-stderr dt-store "$BATS_TEST_TMPDIR/in"
	refute_output --partial 'probing again'
}

@test "dt-store: a batch that fails while the probes are answered is sent one by one, not waited on forever" {
	messages 3
	dt-fetch -c -q -r r | analyzed ok >"$BATS_TEST_TMPDIR/in"
	# Every settle with records fails; the empty probes get answers.
	standin supabase script '{"fail": 100000, "match": "dt_settle", "match_min_bytes": 100}'
	DT_SUPABASE_TRIES=1 run -69 --separate-stderr dt-store -b 3 "$BATS_TEST_TMPDIR/in"
	printf '%s\n' "${lines[@]}" >"$BATS_TEST_TMPDIR/out"
	run -0 grep -c 'dt-store: warning: a batch of 3 records failed (HTTP 503: PGRST001: Database client error. Retrying the connection.) while Supabase answers; sending them one by one' <<<"$stderr"
	assert_output 1
	run -0 grep -c "^dt-store: warning: record [123]: Supabase answers, but not to this record: HTTP 503: .*; it stays leased and comes back after the lease$" <<<"$stderr"
	assert_output 3
	run -0 jq -c 'select(.id) | [.id, .status, .store.outcome]' "$BATS_TEST_TMPDIR/out"
	assert_output '[1,"failed","not_stored"]
[2,"failed","not_stored"]
[3,"failed","not_stored"]'
	run -0 sql "select count(*) from dt_results where status = 'leased'"
	assert_output 3
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
	assert_line --index 0 '{"id":1,"run_id":"r","attempt":1,"analysis":{"sentiment":"positive"},"model":"sonar","usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15},"latency_ms":12,"store":{"outcome":"dry_run","run_id":"r","would":{"id":"1","analysis":{"sentiment":"positive"},"model":"sonar","prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"latency_ms":12}},"status":"unchanged"}'
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
	assert_output '{"stage":"dt-store","run_id":"r","status":0,"message":null,"counts":{"stored":3,"released":0,"failed":0,"skipped":0,"unchanged":0,"lost":0,"not_stored":0,"bad":0,"batches":1,"outages":0},"interrupted":false}'
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
		DT_STORE_OUTAGE_SECONDS=-1 DT_DRAIN_SECONDS=3601 \
		run -78 --separate-stderr dt-store --check-config -d x -r ''
	assert_equal "$output" ''
	assert_equal "$stderr" "dt-store: error: DT_STORE_BATCH: 1001 is out of range (1 to 1000)
dt-store: error: DT_STORE_MAX_DELAY_MS: -5 is out of range (0 to 3600000)
dt-store: error: DT_MAX_LINE: '1k' is not a whole number (1024 to 1073741824)
dt-store: error: DT_STORE_OUTAGE_SECONDS: -1 is out of range (0 to 86400)
dt-store: error: DT_DRAIN_SECONDS: 3601 is out of range (0 to 3600)
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

@test "dt-store: --help is written from its settings table; --reclaim has no short form" {
	run -0 --separate-stderr dt-store --help
	assert_line --index 0 'usage: dt-store [-hnqvV] [-b size] [-d ms] [-L bytes] [-r run-id]'
	assert_line '  -b, --batch-size n       records per request (DT_STORE_BATCH, default 100, 1'
	assert_line '  DT_STORE_OUTAGE_SECONDS  how long one Supabase outage is waited through'
	assert_line '      --reclaim            store a saved run'"'"'s output (its analyze.ndjson)'
	# -R is dt-fetch's --requeue (docs/options.md).
	run -64 --separate-stderr dt-store -R /dev/null
	assert_equal "$stderr" "dt-store: invalid option -- 'R'
Try 'dt-store --help'."
	run -64 --separate-stderr dt-store -b 0 /dev/null
	assert_equal "$stderr" "dt-store: error: --batch-size: 0 is out of range (1 to 1000)
Try 'dt-store --help'."
	DT_STORE_BATCH=0 run -78 --separate-stderr dt-store -n /dev/null
	assert_equal "$stderr" "dt-store: error: DT_STORE_BATCH: 0 is out of range (1 to 1000)"
}

@test "dt-store: a follower without a run_id of its own is asked about again in --run-id's run" {
	sql "insert into public.messages (text) values ('see you'), ('see you')" >/dev/null
	dt-fetch -c -q -r r1 --reuse v1 | analyzed 'if .skip then . else ok end' >"$BATS_TEST_TMPDIR/all"
	# The follower comes first, and waits for its row: it is sent again
	# in a later batch, still in run r1.
	jq -c 'select(.same_text) | .run_id = ""' "$BATS_TEST_TMPDIR/all" >"$BATS_TEST_TMPDIR/in"
	jq -c 'select(.same_text == null)' "$BATS_TEST_TMPDIR/all" >>"$BATS_TEST_TMPDIR/in"
	run -0 jq -c 'select(.id) | [.id, .run_id, .same_text.as]' "$BATS_TEST_TMPDIR/in"
	assert_output '[2,"","1"]
[1,"r1",null]'
	DT_STORE_BATCH=1 DT_STORE_MAX_DELAY_MS=0 run -0 --separate-stderr dt-store -r r1 "$BATS_TEST_TMPDIR/in"
	run -0 jq -sc 'map(select(.id) | [.id, .status, .store.outcome]) | sort[]' <<<"$output"
	assert_output '[1,"stored","stored"]
[2,"stored","stored"]'
	run -0 sql "select source_id, status, reused_from from dt_results order by 1"
	assert_output $'1\tdone\t\n2\tdone\t1'
}
