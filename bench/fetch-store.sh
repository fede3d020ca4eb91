#!/usr/bin/env bash
# bench/fetch-store.sh: claim + stream and store N rows (default 100,000)
# through the local stack; prints rows/s, our own CPU per row and peak
# RSS for dt-fetch and dt-store as JSON lines (see bench/run).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${DT_BUILD:-$root/build}/bin
n=${BENCH_ROWS:-100000}
work=$(mktemp -d "${TMPDIR:-/tmp}/dt-bench.XXXXXX")
trap '"$root/t/stack/down" -q "${DT_STACK_DIR:-}" 2>/dev/null; rm -rf "$work"' EXIT

echo "fetch-store: starting the stack with $n rows" >&2
stack_env=$("$root/t/stack/up" -m "$n")
eval "$stack_env"

# figure NAME VALUE UNIT TARGET PASS
figure() {
	printf '{"figure":"%s","value":%s,"unit":"%s","target":"%s","pass":%s}\n' "$@"
}

# measure OUT PROG ARGS...: runs PROG, leaving "elapsed user sys maxrss_kb" in OUT.time
measure() {
	local out=$1
	shift
	/usr/bin/time -f '%e %U %S %M' -o "$out.time" "$@"
}

measure "$work/fetch" "$bin/dt-fetch" -c -q -r bench -b 1000 -m 0 >"$work/fetch.out"
jq -c 'if .id then del(.text) + {analysis: {sentiment: "neutral", topics: ["bench"]},
	model: "sonar", usage: {prompt_tokens: 50, completion_tokens: 20, total_tokens: 70},
	latency_ms: 100} else . end' "$work/fetch.out" >"$work/store.in"
measure "$work/store" "$bin/dt-store" -q -b 500 <"$work/store.in" >"$work/store.out"

got=$(grep -c '"status":"stored"' "$work/store.out" || true)
[ "$got" -eq "$n" ] || echo "fetch-store: only $got of $n rows stored" >&2

report() {
	local name=$1 file=$2 e u s m
	read -r e u s m <"$file.time"
	figure "$name rows/s" "$(awk -v n="$n" -v e="$e" 'BEGIN{printf "%.0f", n / (e > 0 ? e : 0.001)}')" "rows/s" "" null
	cpu=$(awk -v n="$n" -v u="$u" -v s="$s" 'BEGIN{printf "%.2f", (u + s) * 1e6 / n}')
	figure "$name own CPU per row" "$cpu" "us/row" "< 20 us/row" \
		"$(awk -v c="$cpu" 'BEGIN{print (c < 20) ? "true" : "false"}')"
	mib=$(awk -v m="$m" 'BEGIN{printf "%.1f", m / 1024}')
	figure "$name peak RSS" "$mib" "MiB" "< 16 MiB" \
		"$(awk -v m="$mib" 'BEGIN{print (m < 16) ? "true" : "false"}')"
}
report "dt-fetch claim+stream" "$work/fetch"
report "dt-store store" "$work/store"
