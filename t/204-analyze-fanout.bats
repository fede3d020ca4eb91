#!/usr/bin/env bats
# dt-fanout: dt-analyze under GNU parallel, as entrypoint.sh runs it.

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
	# One stage record per worker; their counts add up.
	assert_equal "$(jq -s 'map(select(.stage) | .counts.records) | add' "$BATS_TEST_TMPDIR/out")" 400
	[ "$(jq -c 'select(.stage)' "$BATS_TEST_TMPDIR/out" | wc -l)" -le 8 ]
}

@test "dt-fanout: one slow call does not hold up the other workers" {
	{
		records 4
		echo '{"id":"slow","text":"SLOW record"}'
		records 300 | jq -c '.id += 1000'
	} >"$BATS_TEST_TMPDIR/in"
	# The same input without the slow call, for the time it takes here.
	pplx script '{"latency_ms":20}'
	start=$(date +%s%N)
	run -0 --separate-stderr dt-fanout -j 4 <"$BATS_TEST_TMPDIR/in"
	base=$((($(date +%s%N) - start) / 1000000))
	pplx reset
	pplx script '{"latency_ms":20,"faults":[{"kind":"slow","ms":3000,"match":"SLOW"}]}'
	start=$(date +%s%N)
	run -0 --separate-stderr dt-fanout -j 4 <"$BATS_TEST_TMPDIR/in"
	elapsed=$((($(date +%s%N) - start) / 1000000))
	# Output streams in completion order: the slow record, fifth in the
	# input, comes after almost all the others; only the few queued to
	# the same worker wait for it.
	pos=$(printf '%s\n' "${lines[@]}" | jq -r 'select(.id) | .id' | grep -n '^slow$' | cut -d: -f1)
	[ "$pos" -gt 250 ]
	! unwrapped || [ "$elapsed" -lt $((base + 4500)) ] || fail "took $elapsed ms"
}

@test "dt-fanout: the most severe worker status is the fan-out's status" {
	{ records 30; echo 'not json'; records 30 | jq -c '.id += 100'; } >"$BATS_TEST_TMPDIR/in"
	run -65 --separate-stderr dt-fanout -j 3 <"$BATS_TEST_TMPDIR/in"
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -r 'select(.error) | .error.kind')" bad_record
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
	# One per worker started, at least one.
	assert_equal "$(echo "$output" | jq -c '[.stage, .status, .counts.records]' | sort -u)" '["dt-analyze",0,0]'
	[ "${#lines[@]}" -ge 1 ] && [ "${#lines[@]}" -le 4 ]
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
	# parallel may start one more worker after it gave up on the others,
	# and dt-fanout may have removed its directory by then.
	export DT_FANOUT_OUTPUT_LOCK=$BATS_TEST_TMPDIR/gone/output.lock
	run -78 --separate-stderr env -u PERPLEXITY_API_KEY dt-analyze </dev/null
	assert_equal "$stderr" "dt-analyze: error: PERPLEXITY_API_KEY (or PERPLEXITY_API_KEY_FILE) is not set"
	# A worker that takes it says when it writes without the lock.
	run -0 --separate-stderr dt-analyze </dev/null
	assert_equal "${stderr_lines[0]}" "dt-analyze: warning: $DT_FANOUT_OUTPUT_LOCK: No such file or directory; writing without the output lock"
}

@test "dt-fanout: a long record does not make parallel deal out the rest in big lumps" {
	pplx script '{"latency_ms":20}'
	{
		records 40
		jq -nc --arg t "$(head -c 60000 /dev/zero | tr '\0' y)" '{id: "long", text: $t}'
		records 300 | jq -c '.id += 1000'
	} >"$BATS_TEST_TMPDIR/in"
	DT_MAX_TEXT_BYTES=100000 run -0 --separate-stderr dt-fanout -j 4 <"$BATS_TEST_TMPDIR/in"
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -r 'select(.id) | .id' | sort -u | wc -l)" 341
	# Every worker takes its share: none is left with a handful.
	min=$(printf '%s\n' "${lines[@]}" | jq -s 'map(select(.stage) | .counts.records) | min')
	[ "$min" -ge 40 ]
}

# left_in_pipe: starts dt-analyze on a pipe already holding the input
# file, waits until its first call reaches the stand-in and prints how
# many bytes of input are still in the pipe (FIONREAD).
left_in_pipe() {
	/usr/bin/python3 - "$BATS_TEST_TMPDIR/in" "$PPLX_URL" <<'PY'
import fcntl, os, subprocess, sys, termios, time, urllib.request, array
data = open(sys.argv[1], "rb").read()
r, w = os.pipe()
os.write(w, data)
p = subprocess.Popen(["dt-analyze"], stdin=r, stdout=subprocess.DEVNULL)
os.close(r)
for _ in range(200):
    with urllib.request.urlopen(sys.argv[2] + "/_standin/requests") as f:
        if f.read().strip():
            break
    time.sleep(0.02)
n = array.array("i", [0])
fcntl.ioctl(w, termios.FIONREAD, n)
print(n[0])
os.close(w)
p.wait()
PY
}

@test "dt-analyze: a worker takes 512 bytes at a time out of its pipe, so the rest stays queued there" {
	pplx script '{"faults":[{"kind":"slow","ms":300,"first":1}]}'
	records 12 >"$BATS_TEST_TMPDIR/in"
	size=$(wc -c <"$BATS_TEST_TMPDIR/in")
	[ "$size" -gt 1024 ]
	assert_equal "$(left_in_pipe)" $((size - 512))
	# 0 reads as much as there is, as from a file.
	pplx reset
	pplx script '{"faults":[{"kind":"slow","ms":300,"first":1}]}'
	assert_equal "$(DT_STDIN_READ_BYTES=0 left_in_pipe)" 0
}
