#!/usr/bin/env bats
# dt-report and the database: the run ledger, the backlog and the
# previous run, on the local stack (real PostgreSQL, t/stack/up).

bats_require_minimum_version 1.5.0
load test_helper/common

setup_file() {
	"$DT_ROOT/t/stack/up" -m 5 >"$BATS_FILE_TMPDIR/stack.env" 3>&-
}

teardown_file() {
	(. "$BATS_FILE_TMPDIR/stack.env" && "$DT_ROOT/t/stack/down" -q "$DT_STACK_DIR")
}

setup() {
	dt_common_setup
	# shellcheck disable=SC1091
	. "$BATS_FILE_TMPDIR/stack.env"
	psql -XAqc 'delete from public.dt_runs'
	standin telegram reset
	standin supabase reset
	cd "$DT_ROOT"
	export DT_REPORT_SCHEMA=$DT_ROOT/analyze/schema.json
	export DT_RUN_STARTED_AT=2024-05-01T10:00:00Z
	export DT_RUN_FINISHED_AT=2024-05-01T10:04:12Z
}

@test "dt-report: writes one ledger row per run and reports the backlog" {
	run -0 --separate-stderr dt-report t/fixtures/report/run-ok.ndjson
	assert_equal "$(jq -cS .backlog <<<"$output")" '{"done":0,"failed":0,"leased":0,"unclaimed":5}'
	assert_equal "$(jq -r .ledger <<<"$output")" written
	run -0 psql -XAtF' ' -c "select run_id, status, exit_code, counts->>'records', counts->>'failed',
		tokens, cost_usd, started_at at time zone 'UTC', finished_at at time zone 'UTC',
		summary->>'state' from public.dt_runs"
	assert_output '2024-05-01T10-00-00Z-a1b2 ok 0 6 0 2808 0.0062 2024-05-01 10:00:00 2024-05-01 10:04:12 ok'
	standin telegram requests | jq -r 'select(.message) | .message.text' >"$BATS_TEST_TMPDIR/text"
	grep -qF "Backlog: 5 unclaimed · 0 leased · 0 parked" "$BATS_TEST_TMPDIR/text"
}

@test "dt-report: the next run shows the difference from the previous one" {
	run -0 --separate-stderr dt-report t/fixtures/report/run-ok.ndjson
	run -75 --separate-stderr env DT_RUN_FINISHED_AT=2024-05-01T14:04:12Z dt-report t/fixtures/report/run-partial.ndjson
	assert_equal "$(jq -c .previous <<<"$output")" \
		'{"run_id":"2024-05-01T10-00-00Z-a1b2","finished_at":"2024-05-01T10:04:12+00:00","delta":{"records":-2,"failed":3,"tokens":-2688,"cost_usd":-0.006}}'
	standin telegram requests | jq -r 'select(.message) | .message.text' | tail -n +1 >"$BATS_TEST_TMPDIR/text"
	grep -qF "Since the last run: records −2 · failed +3 · tokens −2,688 · cost −\$0.0060" "$BATS_TEST_TMPDIR/text"
	run -0 psql -XAt -c "select run_id || ' ' || status || ' ' || exit_code from public.dt_runs order by finished_at"
	assert_output '2024-05-01T10-00-00Z-a1b2 ok 0
2024-05-01T14-00-00Z-e5f6 partial 75'
}

@test "dt-report: reporting the same run again updates its row" {
	run -0 --separate-stderr dt-report t/fixtures/report/run-ok.ndjson
	run -0 --separate-stderr env DT_RUN_FINISHED_AT=2024-05-01T10:05:00Z dt-report t/fixtures/report/run-ok.ndjson
	assert_equal "$(jq -c .previous <<<"$output")" null
	run -0 psql -XAt -c "select count(*), max(finished_at at time zone 'UTC') from public.dt_runs"
	assert_output '1|2024-05-01 10:05:00'
}

@test "dt-report: the ledger unavailable is a warning, the run's status stays 0, and the report still goes out" {
	standin supabase script '{"fail":100,"match":"dt_runs"}'
	run -0 --separate-stderr env DT_SUPABASE_TRIES=1 dt-report t/fixtures/report/run-ok.ndjson
	grep -vE '^dt-report: warning: supabase: (GET|POST) http://127.0.0.1:[0-9]+/rest/v1/dt_runs.*: HTTP 503; giving up after 1 tries$' <<<"$stderr" >"$BATS_TEST_TMPDIR/errors" || true
	assert_equal "$(cat "$BATS_TEST_TMPDIR/errors")" "dt-report: warning: supabase: GET /rest/v1/dt_runs: HTTP 503: PGRST001: Database client error. Retrying the connection.
dt-report: info: report sent to Telegram (1 message, silently)
dt-report: warning: supabase: POST /rest/v1/dt_runs: HTTP 503: PGRST001: Database client error. Retrying the connection."
	jq -e '.report.sent and .exit_code == 0 and .ledger == "failed"' <<<"$output" >/dev/null || fail "$output"
	assert_equal "$(standin telegram requests | jq -c 'select(.message)' | wc -l)" 1
	run -0 psql -XAt -c 'select count(*) from public.dt_runs'
	assert_output 0
}

@test "dt-report: a shard whose ledger row cannot be written fails (75): the row is its report" {
	standin supabase script '{"fail":100,"match":"dt_runs"}'
	run -75 --separate-stderr env DT_SUPABASE_TRIES=1 DT_SHARDS=2 DT_SHARD_INDEX=1 DT_RUN_ID=split-9 \
		dt-report t/fixtures/report/run-ok.ndjson
	jq -e '.exit_code == 75 and .ledger == "failed"' <<<"$output" >/dev/null || fail "$output"
}

@test "dt-report: --dry-run reads the backlog but writes no ledger row" {
	run -0 --separate-stderr dt-report -n --message-file /dev/null t/fixtures/report/run-ok.ndjson
	jq -e '.backlog.unclaimed == 5' <<<"$output" >/dev/null
	run -0 psql -XAt -c 'select count(*) from public.dt_runs'
	assert_output 0
}

@test "dt-report: the service key appears in no output" {
	standin supabase script '{"fail":1,"match":"dt_backlog"}'
	run -0 --separate-stderr dt-report -vv t/fixtures/report/run-ok.ndjson
	printf '%s\n%s\n' "$output" "$stderr" >"$BATS_TEST_TMPDIR/all"
	assert_no_secret "$SUPABASE_KEY" "$BATS_TEST_TMPDIR/all"
	assert_no_secret "$TELEGRAM_BOT_TOKEN" "$BATS_TEST_TMPDIR/all"
}

# shard_run N K FILE: dt-report as shard K of N over FILE.
shard_run() {
	DT_SHARDS=$1 DT_SHARD_INDEX=$2 DT_RUN_ID=split-1 dt-report "$3"
}

@test "dt-report: shards write <run>/<index> rows and send nothing; --merge-shards sends one report, exactly as one run" {
	local f=t/fixtures/report/run-ok.ndjson t=$BATS_TEST_TMPDIR
	# The run split in two: the first five lines, the rest.
	head -n 5 "$f" >"$t/a"
	tail -n +6 "$f" >"$t/b"
	run -0 --separate-stderr shard_run 2 0 "$t/a"
	assert_equal "$stderr" "dt-report: info: shard 0 of 2: the run's report is sent by shard 0"
	run -0 --separate-stderr shard_run 2 1 "$t/b"
	assert_equal "$(standin telegram requests | wc -l)" 0
	run -0 psql -XAt -c "select string_agg(run_id || ' ' || (counts->>'records'), ',' order by run_id) from public.dt_runs"
	assert_output 'split-1/0 4,split-1/1 2'
	run -0 --separate-stderr env DT_RUN_ID=split-1 dt-report --merge-shards 2
	assert_equal "$stderr" "dt-report: info: report sent to Telegram (1 message, silently)"
	merged=$output
	run -0 --separate-stderr env DT_RUN_ID=whole dt-report -n --message-file "$t/whole.html" "$f"
	# Everything but the run id, the shards and the report's own record
	# is what one dt-report over the whole run says.
	filter='del(.run_id, .shards, .report, .ledger, .backlog, .previous, .by_status, .stages) | .analysis.fields.topics.top |= sort_by(.value)'
	assert_equal "$(jq -cS "$filter" <<<"$merged")" "$(jq -cS "$filter" <<<"$output")"
	assert_equal "$(jq -c '[.shards, .by_status, [.stages[] | [.stage, .reports]]]' <<<"$merged")" \
		'[{"of":2,"merged":[0,1],"missing":[]},{"stored":6},[["dt-fetch",1],["dt-analyze",2],["dt-store",1]]]'
	assert_equal "$(standin telegram requests | jq -r 'select(.message) | .message.text' | sed -n 2,3p)" "Run: split-1
Shards: 2 of 2"
	run -0 psql -XAt -c "select run_id, status, counts->>'records' from public.dt_runs where run_id = 'split-1'"
	assert_output 'split-1|ok|6'
}

@test "dt-report: --merge-shards gives up after DT_SHARD_WAIT_SECONDS and reports partial, naming the missing shard" {
	run -0 --separate-stderr shard_run 3 0 t/fixtures/report/run-ok.ndjson
	run -0 --separate-stderr shard_run 3 1 t/fixtures/report/run-ok.ndjson
	SECONDS=0
	run -1 --separate-stderr env DT_RUN_ID=split-1 DT_SHARD_WAIT_SECONDS=2 dt-report --merge-shards 3
	[ "$SECONDS" -ge 2 ] && [ "$SECONDS" -le 6 ] || fail "took $SECONDS s"
	assert_equal "$stderr" "dt-report: info: 2 of 3 shards finished; waiting up to 2 s for the others
dt-report: warning: run split-1: no finished ledger row from shard 2; the report is partial
dt-report: info: report sent to Telegram (1 message, with notification)"
	assert_equal "$(jq -c '[.state, .exit_code, .records, .shards]' <<<"$output")" \
		'["partial",1,12,{"of":3,"merged":[0,1],"missing":[2]}]'
	run -0 bash -c "standin telegram requests | jq -r 'select(.message) | .message.text'"
	assert_line --index 0 '⚠️ dt run: partial'
	assert_line --index 2 'Shards: 2 of 3; missing: 2 (no finished ledger row)'
}

@test "dt-report: shard rows are not taken for the previous run" {
	run -0 --separate-stderr shard_run 2 0 t/fixtures/report/run-ok.ndjson
	run -0 --separate-stderr env DT_RUN_ID=next dt-report t/fixtures/report/run-ok.ndjson
	assert_equal "$(jq -c .previous <<<"$output")" null
}

@test "dt-report: a whole run over rows without text exits 0, reports ok silently and counts them skipped in the ledger" {
	psql -XAqc "truncate public.dt_results; insert into public.messages (text) values (''), (null), (E' \n')"
	export DT_RUN_ID=run-skips
	unset DT_RUN_STARTED_AT
	dt-fetch -c -q | dt-analyze -q | dt-store -q | dt-report -q >"$BATS_TEST_TMPDIR/summary"
	assert_equal "${PIPESTATUS[*]}" '0 0 0 0'
	assert_equal "$(jq -c '[.state, .exit_code, .records, .failed, .by_status, .by_error]' "$BATS_TEST_TMPDIR/summary")" \
		'["ok",0,8,0,{"stored":5,"skipped":3},{}]'
	run -0 psql -XAt -c "select status, exit_code, counts->'by_status' from public.dt_runs where run_id = 'run-skips'"
	assert_output 'ok|0|{"stored": 5, "skipped": 3}'
	assert_equal "$(standin telegram requests | jq -c 'select(.message) | .message.disable_notification')" true
	run -0 psql -XAt -c "select status, count(*) from public.dt_results group by 1 order by 1"
	assert_output $'done|5\nskipped|3'
	psql -XAqc "truncate public.dt_results; delete from public.messages where id > 5"
}
