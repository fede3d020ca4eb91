#!/usr/bin/env bash
# bench/2-rate-limit.sh: messages a minute under a 30 requests-a-minute
# limit, packed.  The stand-in enforces 30 requests a window (429 with
# Retry-After beyond), dt-analyze knows the same limit (DT_RPM=30), with
# DT_PACK=10 and MAX_WORKERS=5, 400 ms a call.  So that the run takes
# seconds, not minutes, the window is 6 s on both sides (DT_RPM_WINDOW_MS,
# the stand-in's rpm_window_s): a "window-minute".  Figures:
#   - messages analysed per window-minute: the messages over the windows
#     the run used (its wall time in windows, plus the one it started in,
#     whose requests it got at once); target at least 8 x the limit (240)
#   - the requests answered 429: target at most 1 in 20 (no storm)
# The run is stopped after BENCH_RATE_SECONDS (45) and what it analysed
# by then counts.  BENCH_RATE_MESSAGES changes the 1,200 messages,
# BENCH_RATE_WINDOW_S the 6 s.
# shellcheck source=bench/common.bash
. "$(dirname "$0")/common.bash"

n=${BENCH_RATE_MESSAGES:-1200}
win=${BENCH_RATE_WINDOW_S:-6}
cap=${BENCH_RATE_SECONDS:-45}
limit=30
export MAX_WORKERS=5 DT_PACK=10 DT_RPM=$limit
export DT_RPM_WINDOW_MS=$((win * 1000))
note=$(pack_note)

standin_start
records "$n" >"$work/in"
standin "{\"latency_ms\":400,\"rpm_limit\":$limit,\"rpm_window_s\":$win}"
say "$n messages, $limit requests per $win s window, DT_PACK=10, MAX_WORKERS=5 (at most $cap s)"
s=$(now_ms)
timeout -s TERM -k 15 "$cap" "$root/analyze/dt-fanout" <"$work/in" \
	>"$work/out" 2>"$work/err" || say "dt-fanout exited $?: $(tail -1 "$work/err")"
secs=$(calc '(b - a) / 1000' a="$s" b="$(now_ms)")
done=$(jq -r 'select(.analysis) | .id' "$work/out" | sort -u | wc -l)
standin_requests >"$work/log"
read -r reqs limited < <(jq -rs '"\(length) \(map(select(.status == 429)) | length)"' "$work/log")
rate=$(calc 'int(d / (s / w + 1) + 0.5)' d="$done" s="$secs" w="$win")
say "$done of $n messages in $secs s: $rate per window-minute; $reqs requests, $limited answered 429"
figure "30 RPM limit: messages per window-minute, packed" "$rate" "msgs/window-minute" \
	">= $((8 * limit)) (8 x the limit)" "$(holds 'r >= 8 * l' r="$rate" l="$limit")" \
	"$(jq -nc --argjson x "$note" --argjson d "$done" --argjson s "$secs" '$x + {messages: $d, seconds: $s}')"
figure "30 RPM limit: requests answered 429" "$limited" "of $reqs" \
	"<= 1 in 20 requests" "$(holds 'q > 0 && l * 20 <= q' l="$limited" q="$reqs")"
