#!/usr/bin/env bats
# dt-fanout: dt-analyze under GNU parallel, as entrypoint.sh runs it:
# short-lived jobs of DT_PACK records, MAX_WORKERS calls at a time.

load test_helper/common
load test_helper/perplexity

setup_file() { pplx_start; }
teardown_file() { pplx_stop; }

setup() {
	dt_common_setup
	pplx_env
	PATH=$DT_ROOT/analyze:$PATH
}

@test "dt-fanout: every record comes out exactly once, whole, under faults and uneven latency" {
	pplx script '{"latency_ms":5,"jitter_ms":30,"seed":3,"faults":[{"kind":"503","rate":0.1},{"kind":"drop","rate":0.05}]}'
	# Texts of very different lengths, up to 20 KB, so that blocks and
	# lines are cut at every kind of place.
	jq -nc 'range(1; 401) | {id: ., text: ("Спасибо 😀 thanks " * (1 + (. * 37 % 300))), run_id: "r"}' >"$BATS_TEST_TMPDIR/in"
	DT_HTTP_TRIES=8 DT_MAX_TEXT_BYTES=100000 run -0 --separate-stderr dt-fanout -j 8 <"$BATS_TEST_TMPDIR/in"
	printf '%s\n' "${lines[@]}" >"$BATS_TEST_TMPDIR/out"
	# Every line is one JSON object.
	assert_equal "$(jq -c 'type' "$BATS_TEST_TMPDIR/out" | sort | uniq -c | awk '{print $1, $2}')" "$(( 400 + $(jq -c 'select(.stage)' "$BATS_TEST_TMPDIR/out" | wc -l) )) \"object\""
	assert_equal "$(jq -r 'select(.id) | .id' "$BATS_TEST_TMPDIR/out" | sort -n | uniq -c | awk '$1 != 1' | wc -l)" 0
	assert_equal "$(jq -r 'select(.id) | .id' "$BATS_TEST_TMPDIR/out" | sort -n | tr '\n' ' ')" "$(seq 400 | tr '\n' ' ')"
	assert_equal "$(jq -r 'select(.id) | .analysis.language' "$BATS_TEST_TMPDIR/out" | sort | uniq -c | awk '{print $1, $2}')" "400 ru"
	# Texts come back byte for byte.
	assert_equal "$(jq -c 'select(.id) | [.id, .text]' "$BATS_TEST_TMPDIR/out" | sort | md5sum)" "$(jq -c '[.id, .text]' "$BATS_TEST_TMPDIR/in" | sort | md5sum)"
	# One stage record for all the jobs, the last line; its counts add up.
	assert_equal "$(jq -c 'select(.stage)' "$BATS_TEST_TMPDIR/out" | wc -l)" 1
	assert_equal "$(tail -1 "$BATS_TEST_TMPDIR/out" | jq -c '[.stage, .status, .counts.records, .counts.analyzed]')" '["dt-analyze",0,400,400]'
}

# over_slow LOG: the input positions (ids 1000 up) of the calls that
# reached the stand-in while the call of the record "slow" was on the
# wire ("during") and after it was answered ("after"), one line each.
over_slow() {
	jq -rs '(map(select(.json | tostring | test("SLOW"))) | first) as $s |
		($s.t + $s.delay_ms / 1000) as $answered |
		map(select(.json | tostring | test("SLOW") | not) |
			{id: ([.json | tostring | scan("#[0-9]+")] | last | .[1:] | tonumber),
			 after: (.t > $answered)}) |
		"during \(map(select(.after | not) | .id) | max // 0)",
		"after \(map(select(.after) | .id) | min // 100000)",
		"calls \(length)"' "$1"
}

@test "dt-fanout: a slow call holds up no record but its own; the other calls go on" {
	{
		records 4
		echo '{"id":"slow","text":"SLOW record"}'
		records 300 | jq -c '.id += 1000 | .text += " #\(.id)"'
	} >"$BATS_TEST_TMPDIR/in"
	pplx script '{"latency_ms":20,"faults":[{"kind":"slow","ms":3000,"match":"SLOW"}]}'
	DT_PACK=1 run -0 --separate-stderr dt-fanout -j 4 <"$BATS_TEST_TMPDIR/in"
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -r 'select(.id) | .id' | sort -u | wc -l)" 305
	pplx requests >"$BATS_TEST_TMPDIR/log"
	over_slow "$BATS_TEST_TMPDIR/log" >"$BATS_TEST_TMPDIR/over"
	during=$(awk '$1 == "during" { print $2 }' "$BATS_TEST_TMPDIR/over")
	after=$(awk '$1 == "after" { print $2 }' "$BATS_TEST_TMPDIR/over")
	# Other calls went on while the slow one was on the wire ...
	[ "$during" -gt 1000 ] || fail "$(cat "$BATS_TEST_TMPDIR/over")"
	# ... and no record waited for it: every call made after its answer
	# is for a record later in the input than those made during it (but
	# for the 12 jobs started side by side, which take the free call
	# slots in any order).  Records queued behind the slow call would be
	# far earlier.
	[ "$after" -gt $((during - 12)) ] || fail "$(cat "$BATS_TEST_TMPDIR/over")"
}

@test "dt-fanout: no more than MAX_WORKERS calls are on the wire at once, though twice as many jobs run" {
	pplx script '{"latency_ms":30,"jitter_ms":30,"seed":5}'
	records 60 >"$BATS_TEST_TMPDIR/in"
	DT_PACK=1 run -0 --separate-stderr dt-fanout -j 3 <"$BATS_TEST_TMPDIR/in"
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -r 'select(.id) | .id' | sort -u | wc -l)" 60
	# From the stand-in's log: each call from its arrival to its answer
	# (arrival plus the latency it drew); the most at any one time.
	# A job's call slot is free only once the job has its answer, so
	# the next call arrives after it.
	most=$(pplx requests | jq -rs 'map([.t, 1], [.t + .delay_ms / 1000, -1]) | sort_by(.[0], .[1]) |
		reduce .[] as $e ({n: 0, max: 0}; .n += $e[1] | .max = ([.max, .n] | max)) | .max')
	[ "$most" -le 3 ] || fail "$most calls at once"
	[ "$most" -ge 2 ] || fail "$most calls at once"
}

@test "dt-fanout: the most severe worker status is the fan-out's status" {
	{ records 30; echo 'not json'; records 30 | jq -c '.id += 100'; } >"$BATS_TEST_TMPDIR/in"
	run -65 --separate-stderr dt-fanout -j 3 <"$BATS_TEST_TMPDIR/in"
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -r 'select(.error) | .error.kind')" bad_record
	# The first group is dt-fanout's own job; its status counts the same.
	{ echo 'not json'; records 30; } >"$BATS_TEST_TMPDIR/in1"
	run -65 --separate-stderr dt-fanout -j 3 <"$BATS_TEST_TMPDIR/in1"
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -r 'select(.id) | .id' | wc -l)" 30
	records 40 >"$BATS_TEST_TMPDIR/in2"
	pplx reset
	# A new run's state: the first call is made alone again.
	rm -f "$DT_STATE_DIR/analyze.state"
	PERPLEXITY_API_KEY=not-the-key-42 run -78 --separate-stderr dt-fanout -j 3 <"$BATS_TEST_TMPDIR/in2"
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -r 'select(.id) | .error.kind' | sort -u)" config
	# One call and one line for all three workers.
	assert_equal "$(pplx requests | wc -l)" 1
	assert_equal "$(printf '%s\n' "${stderr_lines[@]}" | grep -c '^dt-analyze:')" 1
}

@test "dt-fanout: empty input still gives the stage record; bad options are usage errors" {
	run -0 --separate-stderr dt-fanout -j 4 </dev/null
	assert_equal "$(echo "$output" | jq -c .)" "$(echo "$output" | jq -c 'select([.stage, .status, .counts.records] == ["dt-analyze",0,0])')"
	assert_equal "${#lines[@]}" 1
	run -64 --separate-stderr dt-fanout -j
	assert_equal "${stderr_lines[0]}" "dt-fanout: -j needs a value"
	MAX_WORKERS=0 run -78 --separate-stderr dt-fanout </dev/null
	assert_equal "$stderr" "dt-fanout: MAX_WORKERS: '0' is not a whole number from 1 up"
	# Options after the fan-out's own go to every worker.
	records 3 >"$BATS_TEST_TMPDIR/in"
	run -0 --separate-stderr dt-fanout -j 2 -- --model other/model <"$BATS_TEST_TMPDIR/in"
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -r 'select(.id) | .model' | sort -u)" other/model
}

@test "dt-fanout: the workers share a state directory it makes and removes" {
	unset DT_STATE_DIR
	records 50 >"$BATS_TEST_TMPDIR/in"
	DT_RPM=1000 run -0 --separate-stderr dt-fanout -j 4 <"$BATS_TEST_TMPDIR/in"
	assert_equal "$(ls -A "$TMPDIR")" ""
	# One left by a fan-out killed with SIGKILL goes the next time; one
	# whose fan-out still runs stays.
	mkdir "$TMPDIR/dt-fanout.dead1" "$TMPDIR/dt-fanout.live1"
	sh -c 'echo $$' >"$TMPDIR/dt-fanout.dead1/pid"
	echo $$ >"$TMPDIR/dt-fanout.live1/pid"
	run -0 --separate-stderr dt-fanout -j 2 <"$BATS_TEST_TMPDIR/in"
	assert_equal "$(ls -A "$TMPDIR")" "dt-fanout.live1"
}

@test "dt-fanout: workers refusing their configuration make the fan-out exit 78" {
	records 200 >"$BATS_TEST_TMPDIR/in"
	run -78 --separate-stderr env -u PERPLEXITY_API_KEY dt-fanout -j 4 <"$BATS_TEST_TMPDIR/in"
	assert_output ""
	assert_equal "$(printf '%s\n' "${stderr_lines[@]}" | sort -u)" "dt-analyze: error: PERPLEXITY_API_KEY (or PERPLEXITY_API_KEY_FILE) is not set"
	assert_equal "$(pplx requests | wc -l)" 0
}

@test "dt-analyze: a worker refusing its configuration touches none of the fan-out's files" {
	export DT_FANOUT_STAGE_DIR=$BATS_TEST_TMPDIR/stages
	mkdir "$DT_FANOUT_STAGE_DIR"
	run -78 --separate-stderr env -u PERPLEXITY_API_KEY dt-analyze </dev/null
	assert_equal "$stderr" "dt-analyze: error: PERPLEXITY_API_KEY (or PERPLEXITY_API_KEY_FILE) is not set"
	assert_equal "$(ls -A "$DT_FANOUT_STAGE_DIR")" ""
	# A worker that takes it writes its stage record there, not to stdout.
	records 2 >"$BATS_TEST_TMPDIR/in"
	run -0 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/in"
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -c 'select(.stage)')" ""
	assert_equal "$(jq -c '[.stage, .counts.records]' "$DT_FANOUT_STAGE_DIR"/stage.*)" '["dt-analyze",2]'
	# Without the directory it says so and writes it to stdout.
	rm -r "$DT_FANOUT_STAGE_DIR"
	run -0 --separate-stderr dt-analyze "$BATS_TEST_TMPDIR/in"
	assert_equal "${stderr_lines[0]}" "dt-analyze: warning: $DT_FANOUT_STAGE_DIR/stage.${stderr_lines[0]##*/stage.}"
	[[ "${stderr_lines[0]}" == *": No such file or directory; writing the stage record to standard output" ]]
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -c 'select(.stage) | .counts.records')" 2
}

@test "dt-analyze --merge-stages: one stage record summing the jobs' own" {
	d=$BATS_TEST_TMPDIR/stages
	mkdir "$d"
	echo '{"stage":"dt-analyze","run_id":null,"status":0,"message":null,"counts":{"records":3,"analyzed":3,"errors":0,"passed":0,"bad":0,"skipped":0},"tokens":30,"cost_usd":0.25,"prompt_version":"p1","resources":{"cpu_ms":10,"maxrss_kb":9000},"interrupted":false}' >"$d/stage.1"
	echo '{"stage":"dt-analyze","run_id":"r","status":1,"message":"some records failed","counts":{"records":2,"analyzed":1,"errors":1,"passed":0,"bad":0,"skipped":0,"timeout":1},"tokens":20,"cost_usd":0.5,"prompt_version":"p1","resources":{"cpu_ms":5,"maxrss_kb":9500},"interrupted":false}' >"$d/stage.2"
	echo '{"stage":"dt-analyze","run_id":"r","status":75,"message":"interrupted by a signal","counts":{"records":1,"analyzed":0,"errors":0,"passed":0,"bad":0,"skipped":0},"tokens":0,"cost_usd":0,"prompt_version":"p1","interrupted":true}' >"$d/stage.3"
	# A job that ended before its stage record, and one cut short.
	: >"$d/stage.4"
	echo '{"stage":"dt-analyze","run_id":"r","sta' >"$d/stage.5"
	echo 'not mine' >"$d/other"
	run -0 --separate-stderr dt-analyze --merge-stages "$d"
	assert_equal "${#lines[@]}" 1
	assert_equal "$(echo "$output" | jq -c 'del(.cost_usd)')" '{"stage":"dt-analyze","run_id":"r","status":75,"message":"interrupted by a signal","counts":{"records":6,"analyzed":4,"errors":1,"passed":0,"bad":0,"skipped":0,"timeout":1},"tokens":50,"prompt_version":"p1","resources":{"cpu_ms":15,"maxrss_kb":9500},"interrupted":true}'
	assert_equal "$(echo "$output" | jq .cost_usd)" 0.75
	assert_equal "${#stderr_lines[@]}" 1
	[[ "${stderr_lines[0]}" == "dt-analyze: warning: $d/stage.5: not a stage record ("*"); left out of the stage record" ]]
	# Records the API refused one by one, told once for all the jobs
	# while the circuit stays closed.
	rm "$d/stage.5"
	jq -c '.refused = {records: 2, last: "id 4: HTTP 400: no"}' "$d/stage.1" >"$d/job" && mv "$d/job" "$d/stage.1"
	jq -c '.refused = {records: 1, last: "id 9: HTTP 400: nope"}' "$d/stage.2" >"$d/job" && mv "$d/job" "$d/stage.2"
	run -0 --separate-stderr dt-analyze --merge-stages "$d"
	assert_equal "$stderr" "dt-analyze: warning: 3 records were refused by the API with an answer other records did not get (last: id 9: HTTP 400: nope); given back without using an attempt"
	assert_equal "$(echo "$output" | jq -c '[.counts.records, has("refused")]')" '[6,false]'
	# No stage record at all: nothing.
	run -0 --separate-stderr dt-analyze --merge-stages "$BATS_TEST_TMPDIR"
	assert_output ""
	run -74 --separate-stderr dt-analyze --merge-stages "$BATS_TEST_TMPDIR/none"
	assert_equal "$stderr" "dt-analyze: error: $BATS_TEST_TMPDIR/none: No such file or directory"
}

@test "dt-fanout: a long record among short ones: each job still takes its DT_PACK records" {
	pplx script '{"latency_ms":20}'
	{
		records 40
		jq -nc --arg t "$(head -c 60000 /dev/zero | tr '\0' y)" '{id: "long", text: $t}'
		records 300 | jq -c '.id += 1000'
	} >"$BATS_TEST_TMPDIR/in"
	DT_PACK=7 DT_MAX_TEXT_BYTES=100000 run -0 --separate-stderr dt-fanout -j 4 <"$BATS_TEST_TMPDIR/in"
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -r 'select(.id) | .id' | sort -u | wc -l)" 341
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -c 'select(.stage) | .counts.records')" 341
	# A job's records come out together: the output is groups of 7 (the
	# last 5), in the input's groups, whatever parallel's block size.
	printf '%s\n' "${lines[@]}" | jq -r 'select(.id) | .id' >"$BATS_TEST_TMPDIR/ids"
	jq -r '.id' "$BATS_TEST_TMPDIR/in" | awk '{ print int((NR - 1) / 7), $0 }' >"$BATS_TEST_TMPDIR/groups"
	awk 'NR == FNR { g[$2] = $1; next } { print g[$1] }' "$BATS_TEST_TMPDIR/groups" "$BATS_TEST_TMPDIR/ids" | uniq -c | awk '{ print $1 }' | sort -n | uniq -c | awk '{ print $1, $2 }' >"$BATS_TEST_TMPDIR/sizes"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/sizes")" "$(printf '1 5\n48 7')"
}

@test "dt-fanout: each job's DT_PACK records go out as one packed request" {
	records 40 >"$BATS_TEST_TMPDIR/in"
	DT_PACK=10 run -0 --separate-stderr dt-fanout -j 2 <"$BATS_TEST_TMPDIR/in"
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -r 'select(.id) | .analysis.sentiment' | sort | uniq -c | awk '{print $1, $2}')" "40 positive"
	# However parallel's writes to a job's pipe are cut up.
	assert_equal "$(pplx requests | jq -c .items | sort | uniq -c | awk '{print $1, $2}')" "4 10"
}

@test "dt-analyze: a fan-out job waits for its whole group, however its input pauses" {
	records 5 >"$BATS_TEST_TMPDIR/in"
	# One record, a pause, the other four: alone, dt-analyze sends what it
	# holds at the pause; as a fan-out job (DT_FANOUT_SLOTS), whose input
	# is one group that ends, it waits for the rest.
	{ head -1 "$BATS_TEST_TMPDIR/in"; sleep 1; tail -n +2 "$BATS_TEST_TMPDIR/in"; } |
		DT_PACK=5 DT_FANOUT_SLOTS=2 dt-analyze >"$BATS_TEST_TMPDIR/out"
	assert_equal "$(jq -r 'select(.id) | .analysis.sentiment' "$BATS_TEST_TMPDIR/out" | sort | uniq -c | awk '{print $1, $2}')" "5 positive"
	assert_equal "$(pplx requests | jq -c .items)" 5
	pplx reset
	{ head -1 "$BATS_TEST_TMPDIR/in"; sleep 1; tail -n +2 "$BATS_TEST_TMPDIR/in"; } |
		DT_PACK=5 dt-analyze >"$BATS_TEST_TMPDIR/out"
	assert_equal "$(pplx requests | jq -c .items | tr '\n' ' ')" "null 4 "
}

@test "dt-fanout: the first group's call goes out while GNU parallel is still starting; its records come out first" {
	pplx script '{"latency_ms":300}'
	# A parallel that starts only once the stand-in has had a call (or
	# after 10 s), and leaves how many tenths of a second it waited.
	mkdir "$BATS_TEST_TMPDIR/bin"
	cat >"$BATS_TEST_TMPDIR/bin/parallel" <<-EOF
	#!/bin/sh
	i=0
	while [ \$i -lt 100 ] && [ -z "\$(curl -fsS $PPLX_URL/_standin/requests)" ]; do
		sleep 0.1
		i=\$((i + 1))
	done
	echo \$i >"$BATS_TEST_TMPDIR/waited"
	exec $(command -v parallel) "\$@"
	EOF
	chmod +x "$BATS_TEST_TMPDIR/bin/parallel"
	# The second group has no text: without a call, its job would end
	# long before the first group's.
	jq -nc 'range(1; 6) | {id: ., text: "hello \(.)"}' >"$BATS_TEST_TMPDIR/in"
	jq -nc 'range(6; 11) | {id: .}' >>"$BATS_TEST_TMPDIR/in"
	PATH=$BATS_TEST_TMPDIR/bin:$PATH DT_PACK=5 run -65 --separate-stderr dt-fanout -j 2 <"$BATS_TEST_TMPDIR/in"
	[ "$(cat "$BATS_TEST_TMPDIR/waited")" -lt 100 ] || fail "no call before parallel started"
	assert_equal "$(printf '%s\n' "${lines[@]}" | head -5 | jq -r .id | tr '\n' ' ')" "1 2 3 4 5 "
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -r 'select(.error) | .id' | sort -n | tr '\n' ' ')" "6 7 8 9 10 "
	assert_equal "$(pplx requests | wc -l)" 1
}
