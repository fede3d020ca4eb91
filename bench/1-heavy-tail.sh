#!/usr/bin/env bash
# bench/1-heavy-tail.sh: latency tails.  300 messages, one a request
# (DT_PACK=1), through dt-fanout with MAX_WORKERS=5 against the Perplexity
# stand-in answering in 400 ms, 5 % of calls in 4 s.  Figures:
#   - dt's wall time against a perfect fan-out of the very latencies the
#     stand-in drew (bench/perfect-fanout on its request log): target at
#     most 1.05 times it
#   - the plain Node.js version (bench/node: Perplexity's SDK and p-limit,
#     5 at a time) on the same messages and the same draws: target dt
#     ahead of it.  Without node or its packages it is skipped, and counts
#     as missed.
# BENCH_TAIL_MESSAGES changes the 300, BENCH_TAIL_SEED the draws (7).
# shellcheck source=bench/common.bash
. "$(dirname "$0")/common.bash"

n=${BENCH_TAIL_MESSAGES:-300}
seed=${BENCH_TAIL_SEED:-7}
export MAX_WORKERS=5 DT_PACK=1 DT_RPM=0
script="{\"latency_ms\":400,\"tail_rate\":0.05,\"tail_ms\":4000,\"seed\":$seed}"

standin_start
records "$n" >"$work/in"

# timed OUT CMD...: runs CMD on the messages; sets secs (wall time) and
# done (the records analysed).
timed() {
	local out=$1 s
	shift
	s=$(now_ms)
	"$@" <"$work/in" >"$work/$out" 2>"$work/$out.err" ||
		say "$1 exited $?: $(tail -1 "$work/$out.err")"
	secs=$(calc '(b - a) / 1000' a="$s" b="$(now_ms)")
	done=$(jq -r 'select(.analysis) | .id' "$work/$out" | sort -u | wc -l)
	[ "$done" -eq "$n" ] || say "$1: only $done of $n messages analysed"
}

say "dt: $n messages, 400 ms a call, 5 % at 4 s, DT_PACK=1, MAX_WORKERS=5"
standin "$script"
timed dt.out "$root/analyze/dt-fanout"
dt=$secs
dt_done=$done
standin_requests >"$work/dt.log"
perfect=$("$root/bench/perfect-fanout" 5 "$work/dt.log")
calls=$(jq -s 'map(select(.status == 200)) | length' "$work/dt.log")
ratio=$(calc 'p > 0 ? d / p : 0' d="$dt" p="$perfect")
say "dt: $dt s for $dt_done messages; a perfect fan-out of its $calls calls' latencies: $perfect s (x$ratio)"
pass=$(holds 'r > 0 && r <= 1.05 && k == n' r="$ratio" k="$dt_done" n="$n")
figure "heavy tail: dt's wall time, $n messages, 5 workers" "$dt" s \
	"<= 1.05 x a perfect fan-out ($(calc 'p * 1.05' p="$perfect") s)" "$pass" \
	"$(jq -nc --argjson r "$ratio" --argjson p "$perfect" '{ratio: $r, perfect: $p}')"
figure "heavy tail: a perfect fan-out of dt's latencies" "$perfect" s "" null

skip=
if ! command -v node >/dev/null; then
	skip="node not installed (tools/deps install)"
elif ! "$root/bench/node/install" --check 2>/dev/null &&
	! "$root/bench/node/install" >&2; then
	skip="bench/node's packages are not installed and npm ci failed"
fi
if [ -n "$skip" ]; then
	say "Node.js: skipped: $skip"
	figure "heavy tail: Node.js (SDK + p-limit) wall time" null s \
		"dt ahead (> $dt s)" false "$(jq -nc --arg s "$skip" '{skipped: $s}')"
	exit 0
fi
say "Node.js: the same messages and draws, Perplexity's SDK and p-limit(5)"
standin "$script"
timed node.out node "$root/bench/node/analyze.mjs"
standin_requests >"$work/node.log"
nperfect=$("$root/bench/perfect-fanout" 5 "$work/node.log")
say "Node.js: $secs s for $done messages (a perfect fan-out of its latencies: $nperfect s)"
figure "heavy tail: Node.js (SDK + p-limit) wall time" "$secs" s \
	"dt ahead (> $dt s)" "$(holds 'd < s' d="$dt" s="$secs")" \
	"$(jq -nc --argjson p "$nperfect" '{perfect: $p}')"
