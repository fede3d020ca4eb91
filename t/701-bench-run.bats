#!/usr/bin/env bats
# bench/run: runs the benchmark scripts, prints one table of figures
# against their targets, writes it as JSON and prints the JSON's path
# last; exit 0 only when every figure met its target.  Most scripts here
# are stand-ins written by each test; two real ones run in a tiny
# configuration, and the replay and memory tools they use are checked
# on their own.  The full benchmark is make bench (docs/bench.md).

load test_helper/common

setup() {
	dt_common_setup
	benches=$BATS_TEST_TMPDIR/bench
	out=$BATS_TEST_TMPDIR/out
	mkdir -p "$benches"
}

# script NAME: writes stdin to $benches/NAME and makes it executable.
script() {
	cat >"$benches/$1"
	chmod +x "$benches/$1"
}

met_scripts() {
	script 10-tail.sh <<'EOF'
#!/bin/sh
echo "tail bench chatter" >&2
echo '{"figure":"heavy tail: dt","value":36.01,"unit":"s","target":"<= 1.05 x a perfect fan-out (36.75 s)","pass":true,"perfect":35}'
echo '{"figure":"heavy tail: a perfect fan-out","value":35,"unit":"s","target":"","pass":null}'
EOF
	script 20-tokens.sh <<'EOF'
#!/bin/sh
echo '{"figure":"input tokens per message, packed","value":120,"unit":"tokens","target":"<= 1/4 of single (164.75)","pass":true}'
EOF
}

@test "bench/run: one table of every script's figures against their targets, the JSON path last" {
	met_scripts
	script 30-off.sh.disabled <<'EOF'
#!/bin/sh
echo '{"figure":"must not run","value":1}'
EOF
	run -0 --separate-stderr "$DT_ROOT/bench/run" --dir "$benches" --out "$out"
	assert_line --index 0 --regexp '^figure +value +target +result$'
	assert_line --index 2 --regexp '^heavy tail: dt +36.0 s +<= 1.05 x a perfect fan-out \(36.75 s\) +pass$'
	assert_line --index 3 --regexp '^heavy tail: a perfect fan-out +35 s +- +-$'
	assert_line --index 4 --regexp '^input tokens per message, packed +120 tokens +<= 1/4 of single \(164.75\) +pass$'
	refute_output --partial 'must not run'
	assert_equal "${#lines[@]}" 6
	json=${lines[-1]}
	assert_regex "$json" "^$out/bench-[0-9]{8}T[0-9]{6}Z\\.json\$"
	run -0 jq -c '[.met, .unmet, .skipped_counts_as_met, (.problems | length)]' "$json"
	assert_output '[true,[],false,0]'
	# Every figure with all its keys (extra ones kept), and its script.
	run -0 jq -c '.figures[0]' "$json"
	assert_output "{\"figure\":\"heavy tail: dt\",\"value\":36.01,\"unit\":\"s\",\"target\":\"<= 1.05 x a perfect fan-out (36.75 s)\",\"pass\":true,\"perfect\":35,\"script\":\"$benches/10-tail.sh\"}"
	run -0 jq -r '.figures | length' "$json"
	assert_output 3
	# Chatter passes through on stderr.
	run -0 --separate-stderr "$DT_ROOT/bench/run" --dir "$benches" --out "$out"
	assert_equal "${stderr_lines[0]}" "bench/run: running $benches/10-tail.sh"
	assert_equal "${stderr_lines[1]}" 'tail bench chatter'
	assert_equal "${stderr_lines[2]}" "bench/run: running $benches/20-tokens.sh"
}

@test "bench/run: a missed target exits 1 and is named in the JSON" {
	met_scripts
	script 30-rate.sh <<'EOF'
#!/bin/sh
echo '{"figure":"30 RPM limit: messages per window-minute","value":23,"unit":"msgs/window-minute","target":">= 240","pass":false,"note":"not available: DT_PACK not supported by dt-analyze"}'
EOF
	run -1 --separate-stderr "$DT_ROOT/bench/run" --dir "$benches" --out "$out"
	assert_line --index 5 --regexp '^30 RPM limit: messages per window-minute +23 msgs/window-minute +>= 240 +FAIL \(not available: DT_PACK not supported by dt-analyze\)$'
	run -0 jq -c '[.met, .unmet, (.problems | length), .figures[-1].note]' "${lines[-1]}"
	assert_output '[false,["30 RPM limit: messages per window-minute"],0,"not available: DT_PACK not supported by dt-analyze"]'
}

@test "bench/run: a skipped figure says why and counts as not met" {
	met_scripts
	script 30-image.sh <<'EOF'
#!/bin/sh
echo '{"figure":"container image size","value":null,"unit":"MB","target":"<= 175 MB","pass":false,"skipped":"needs root (debootstrap and rootful podman)"}'
EOF
	run -1 --separate-stderr "$DT_ROOT/bench/run" --dir "$benches" --out "$out"
	assert_line --index 5 --regexp '^container image size +- +<= 175 MB +skipped: needs root \(debootstrap and rootful podman\)$'
	run -0 jq -c '[.met, .unmet, .skipped_counts_as_met, .figures[-1].skipped]' "${lines[-1]}"
	assert_output '[false,["container image size"],false,"needs root (debootstrap and rootful podman)"]'
	# Skipped counts as missed even where the script says pass.
	script 30-image.sh <<'EOF'
#!/bin/sh
echo '{"figure":"container image size","value":null,"target":"<= 175 MB","pass":true,"skipped":"no podman"}'
EOF
	run -1 --separate-stderr "$DT_ROOT/bench/run" --dir "$benches" --out "$out"
	assert_line --index 5 --regexp '^container image size +- +<= 175 MB +skipped: no podman$'
}

@test "bench/run: a bad line and a failed script exit 1" {
	script 10-bad.sh <<'EOF'
#!/bin/sh
echo '{"figure":"dt pipeline peak memory","value":70,"unit":"MiB","target":"<= 64 MiB","pass":false}'
echo 'this is not json'
echo '{"value":3}'
echo '{"figure":"x","value":"fast"}'
echo '{"figure":"y","value":1,"target":"<= 2"}'
echo '{"figure":"z","value":1,"note":7}'
exit 3
EOF
	run -1 --separate-stderr "$DT_ROOT/bench/run" --dir "$benches" --out "$out"
	assert_line --index 2 --regexp '^dt pipeline peak memory +70 MiB +<= 64 MiB +FAIL$'
	assert_line "problem: $benches/10-bad.sh: stdout line 2: not JSON (Expecting value)"
	assert_line "problem: $benches/10-bad.sh: stdout line 3: no \"figure\" name"
	assert_line "problem: $benches/10-bad.sh: stdout line 4: \"value\" is not a number or null"
	assert_line "problem: $benches/10-bad.sh: stdout line 5: a target but no \"pass\""
	assert_line "problem: $benches/10-bad.sh: stdout line 6: \"note\" is not a string"
	assert_line "problem: $benches/10-bad.sh: exited with status 3"
	run -0 jq -c '[.met, (.problems | length)]' "${lines[-1]}"
	assert_output '[false,6]'
	# A failed script alone fails the run, its figures all met.
	script 10-bad.sh <<'EOF'
#!/bin/sh
echo '{"figure":"ok","value":1,"target":"<= 2","pass":true}'
exit 1
EOF
	run -1 --separate-stderr "$DT_ROOT/bench/run" --dir "$benches" --out "$out"
	assert_line "problem: $benches/10-bad.sh: exited with status 1"
}

@test "bench/run: a script over BENCH_TIMEOUT is stopped and reported" {
	script 10-slow.sh <<'EOF'
#!/bin/sh
echo '{"figure":"before the hang","value":1}'
sleep 60
EOF
	BENCH_TIMEOUT=1 run -1 --separate-stderr "$DT_ROOT/bench/run" --dir "$benches" --out "$out"
	assert_line --regexp '^before the hang +1 +- +-$'
	assert_line "problem: $benches/10-slow.sh: timed out after 1 s"
}

@test "bench/run: usage" {
	run -0 --separate-stderr "$DT_ROOT/bench/run" --help
	assert_line --index 0 'usage: bench/run [-h] [-d dir] [-o dir] [script ...]'
	run -64 --separate-stderr "$DT_ROOT/bench/run" --frobnicate
	assert_equal "$stderr" "bench/run: unknown option --frobnicate
Try 'bench/run --help'."
	BENCH_TIMEOUT=soon run -64 --separate-stderr "$DT_ROOT/bench/run" --dir "$benches"
	assert_equal "$stderr" "bench/run: BENCH_TIMEOUT: not a positive number of seconds: soon
Try 'bench/run --help'."
}

@test "bench/perfect-fanout: each call goes to the slot free first, no start-up" {
	log=$BATS_TEST_TMPDIR/log
	# 2 slots: 1 s and 4 s start; 1 s ends at 1, 1 s then ends at 2,
	# 1 s at 3, 1 s at 4 as the 4 s ends: 4 s.  A 429 got no drawn
	# latency and takes no slot time.
	for ms in 1000 4000 1000 1000 1000; do
		printf '{"path":"/v1/agent","status":200,"delay_ms":%d}\n' "$ms"
	done >"$log"
	echo '{"path":"/v1/agent","status":429}' >>"$log"
	run -0 "$DT_ROOT/bench/perfect-fanout" 2 "$log"
	assert_output '4.000'
	run -0 "$DT_ROOT/bench/perfect-fanout" 1 <"$log"
	assert_output '8.000'
	run -0 "$DT_ROOT/bench/perfect-fanout" 5 "$log"
	assert_output '4.000'
	run -64 --separate-stderr "$DT_ROOT/bench/perfect-fanout" 0 "$log"
	assert_equal "$stderr" "usage: perfect-fanout WORKERS [LOG]"
}

@test "bench/peak-pss: the peak memory of a command and its children, and its status" {
	res=$BATS_TEST_TMPDIR/pss.json
	# A child holding 48 MiB it has written to (so it is resident).
	run -3 "$DT_ROOT/bench/peak-pss" -i 10 -o "$res" -- bash -c \
		'/usr/bin/python3 -c "import time; b = bytearray(48 << 20); time.sleep(0.5)"; exit 3'
	run -0 jq -r '"\(.status) \(.peak_kib >= 48 * 1024) \(.peak_kib < 96 * 1024) \(.at_peak.python3 >= 48 * 1024) \(.samples > 5)"' "$res"
	assert_output '3 true true true true'
	run -64 --separate-stderr "$DT_ROOT/bench/peak-pss" -i 0 -- true
	assert_equal "${stderr_lines[0]}" "bench/peak-pss: interval: not a positive number of ms: 0"
}

@test "bench: the real scripts in a tiny configuration print well-formed figures" {
	# 4 messages for the token figure, 10 for the heavy tail (dt and, when
	# it is installed, the Node.js version): whether targets are met at
	# this size says nothing; the figures and their shape do.
	BENCH_TOKENS_MESSAGES=4 BENCH_TAIL_MESSAGES=10 \
		run --separate-stderr "$DT_ROOT/bench/run" --out "$out" \
		"$DT_ROOT/bench/3-tokens.sh" "$DT_ROOT/bench/1-heavy-tail.sh"
	json=${lines[-1]}
	assert_file_exists "$json"
	run -0 jq -r '.problems[]' "$json"
	assert_output ''
	run -0 jq -r '.figures[] | "\(.figure)|\(.unit)|\(.value | type)|\(.pass | type)"' "$json"
	assert_line --index 0 'input tokens per message, packed (DT_PACK=10)|tokens|number|boolean'
	assert_line --index 1 'input tokens per message, single (DT_PACK=1)|tokens|number|null'
	assert_line --index 2 "heavy tail: dt's wall time, 10 messages, 5 workers|s|number|boolean"
	assert_line --index 3 "heavy tail: a perfect fan-out of dt's latencies|s|number|null"
	assert_line --index 4 --regexp '^heavy tail: Node.js \(SDK \+ p-limit\) wall time\|s\|(number|null)\|boolean$'
	# The perfect fan-out of 10 calls in 5 slots takes at least two calls'
	# worth of the 400 ms latency and no more than all ten at 4 s.
	run -0 jq -r '.figures[3].value | . >= 0.8 and . <= 40' "$json"
	assert_output true
}
