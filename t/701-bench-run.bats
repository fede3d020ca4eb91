#!/usr/bin/env bats
# bench/run: runs the benchmark scripts, prints one table, writes the
# JSON table and the worker chart.  The scripts here are stand-ins
# written by each test; the real ones are bench/*.sh.

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

fetch_script() {
	script 10-fetch.sh <<'EOF'
#!/bin/sh
echo "fetch bench chatter" >&2
echo '{"figure":"dt-fetch claim+stream","value":12345.6,"unit":"rows/s","target":"","pass":null}'
echo '{"figure":"dt-fetch own CPU per row","value":8.123,"unit":"us/row","target":"< 20 us/row","pass":true}'
EOF
}

analyze_script() {
	script 20-analyze.sh <<'EOF'
#!/bin/sh
for w in 1 2 4 8 16 32; do
	printf '{"figure":"dt-analyze throughput, %d workers, 50 ms","value":%d,"unit":"records/s","target":"","pass":null,"workers":%d,"ideal":%d}\n' \
	    "$w" $((w * 19)) "$w" $((w * 20))
done
EOF
}

@test "bench/run: one table of every script's figures, the JSON path last" {
	fetch_script
	analyze_script
	script 30-off.sh.disabled <<'EOF'
#!/bin/sh
echo '{"figure":"must not run","value":1}'
EOF
	run -0 --separate-stderr "$DT_ROOT/bench/run" --dir "$benches" --out "$out"
	assert_line --index 0 --regexp '^figure +value +target +result$'
	assert_line --index 2 --regexp '^dt-fetch claim\+stream +12346 rows/s +- +-$'
	assert_line --index 3 --regexp '^dt-fetch own CPU per row +8.12 us/row +< 20 us/row +pass$'
	assert_line --index 4 --regexp '^dt-analyze throughput, 1 workers, 50 ms +19 records/s +- +-$'
	assert_line --index 9 --regexp '^dt-analyze throughput, 32 workers, 50 ms +608 records/s +- +-$'
	refute_output --partial 'must not run'
	json=${lines[-1]}
	assert_regex "$json" "^$out/bench-[0-9]{8}T[0-9]{6}Z\\.json\$"
	assert_file_exists "$json"
	assert_line --index 10 "chart: ${json%.json}-workers.svg"
	assert_equal "${#lines[@]}" 12
	run -0 jq -c '[.figures[] | [.figure, .value, .target, .pass]] | .[0:2]' "$json"
	assert_output '[["dt-fetch claim+stream",12345.6,"",null],["dt-fetch own CPU per row",8.123,"< 20 us/row",true]]'
	run -0 jq -r '"\(.figures | length) \(.problems | length) \(.chart)"' "$json"
	assert_output "8 0 ${json%.json}-workers.svg"
	# Chatter passes through on stderr.
	run -0 --separate-stderr "$DT_ROOT/bench/run" --dir "$benches" --out "$out"
	assert_equal "${stderr_lines[0]}" "bench/run: running $benches/10-fetch.sh"
	assert_equal "${stderr_lines[1]}" 'fetch bench chatter'
	assert_equal "${stderr_lines[2]}" "bench/run: running $benches/20-analyze.sh"
}

@test "bench/run: the chart plots throughput and the ideal against workers" {
	analyze_script
	run -0 --separate-stderr "$DT_ROOT/bench/run" --dir "$benches" --out "$out"
	svg=${lines[-2]#chart: }
	assert_file_exists "$svg"
	/usr/bin/python3 -c 'import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])' "$svg"
	# Six points, a measured line and a dashed ideal line, the x labels.
	run -0 grep -c '<circle ' "$svg"
	assert_output 6
	run -0 grep -c 'stroke-dasharray' "$svg"
	assert_output 2
	for w in 1 2 4 8 16 32; do
		grep -q ">$w workers: $((w * 19))</title>" "$svg" || fail "no point for $w workers"
	done
	grep -q '>records/s</text>' "$svg" || fail "no y axis label"
}

@test "bench/run: worker counts are read from figure names when not tagged" {
	script 20-analyze.sh <<'EOF'
#!/bin/sh
echo '{"figure":"dt-analyze 2 workers","value":39,"unit":"records/s"}'
echo '{"figure":"dt-analyze 4 workers","value":77,"unit":"records/s"}'
echo '{"figure":"dt-analyze 4 workers CPU","value":50,"unit":"us/record"}'
EOF
	run -0 --separate-stderr "$DT_ROOT/bench/run" --dir "$benches" --out "$out"
	svg=${lines[-2]#chart: }
	run -0 grep -c '<circle ' "$svg"
	assert_output 2
	# The y axis names the charted figures' unit only.
	run -0 grep -c '>records/s</text>' "$svg"
	assert_output 1
}

@test "bench/run: a missed target, a bad line and a failed script exit 1" {
	script 10-bad.sh <<'EOF'
#!/bin/sh
echo '{"figure":"dt-report 1M records CPU","value":2.5,"unit":"s","target":"< 2 s","pass":false}'
echo 'this is not json'
echo '{"value":3}'
echo '{"figure":"x","value":"fast"}'
exit 3
EOF
	run -1 --separate-stderr "$DT_ROOT/bench/run" --dir "$benches" --out "$out"
	assert_line --index 2 --regexp '^dt-report 1M records CPU +2.5 s +< 2 s +FAIL$'
	assert_line "problem: $benches/10-bad.sh: stdout line 2: not JSON (Expecting value)"
	assert_line "problem: $benches/10-bad.sh: stdout line 3: no \"figure\" name"
	assert_line "problem: $benches/10-bad.sh: stdout line 4: \"value\" is not a number or null"
	assert_line "problem: $benches/10-bad.sh: exited with status 3"
	assert_equal "${stderr_lines[-1]}" 'bench/run: no figures with a worker count: no chart drawn'
	run -0 jq -r '.problems | length' "${lines[-1]}"
	assert_output 4
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
