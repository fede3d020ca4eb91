#!/usr/bin/env bash
# bench/analyze.sh: dt-analyze through dt-fanout against the Perplexity
# stand-in; prints its figures as JSON lines (see bench/run):
#   - 2,000 records, 50 ms a call, 20 workers: wall time against the ideal
#     (records x latency / workers), target within 10 %
#   - the same with 1 % of calls taking 2 s: target within 25 % of the
#     ideal for the mean latency (0.99 x 50 ms + 0.01 x 2 s)
#   - dt-analyze's own CPU per record (user + system time the workers
#     report in their stage records, over the records), target < 100 us:
#     one worker against an API that answers at once, so that waiting and
#     the contention of 20 processes on a small machine are left out (the
#     figure under 20 workers is printed too); beside it what libcurl and
#     the kernel alone take for the same call (bench/curl-floor.c)
#   - what no fan-out avoids: GNU parallel's own start with 20 jobs, and
#     for the heavy tail the wall time of a perfect fan-out on the same
#     latencies
#   - peak RSS of a worker, target < 16 MiB
#   - instructions per record (callgrind: one dt-analyze on 200 and on
#     600 records, the difference over 400), which unlike microseconds
#     does not move with the machine's load; skipped without valgrind
#   - throughput with 1, 2, 4, 8, 16 and 32 workers at 50 ms (chart)
# BENCH_RECORDS changes the 2,000.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${DT_BUILD:-$root/build}/bin
n=${BENCH_RECORDS:-2000}
work=$(mktemp -d "${TMPDIR:-/tmp}/dt-bench-analyze.XXXXXX")
standin=
cleanup() {
	[ -n "$standin" ] && kill "$standin" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

key="bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
DT_STANDIN_KEY=$key "$root/t/stack/perplexity-standin" --listen 127.0.0.1:0 \
	--port-file "$work/port" 2>"$work/standin.log" &
standin=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
[ -s "$work/port" ] || { echo "analyze: the stand-in did not start" >&2; exit 1; }
url=http://127.0.0.1:$(cat "$work/port")

export PERPLEXITY_BASE_URL=$url PERPLEXITY_API_KEY=$key
export DT_PROMPT_FILE=$root/analyze/prompt.txt DT_SCHEMA_FILE=$root/analyze/schema.json
export DT_ANALYZE=$bin/dt-analyze DT_RPM=0 DT_LOG_LEVEL=error
unset DT_STATE_DIR DT_BUDGET_USD

# Texts like a digital twin's messages: English and Russian, emoji, 60 to
# 300 bytes.
/usr/bin/python3 - "$((n > 3200 ? n : 3200))" >"$work/in" <<'PY'
import json, random, sys
rnd = random.Random(11)
en = ("Thanks for the meeting today. The release slipped again and the team "
      "is tired. Please send the report by Friday. I love the new design 😀 "
      "but the login page is broken.").split()
ru = ("Спасибо за встречу сегодня. Релиз опять сдвинулся, команда устала. "
      "Нужно отправить отчёт до пятницы. Новый дизайн отличный 🙂, но вход "
      "сломался.").split()
for i in range(1, int(sys.argv[1]) + 1):
    words = ru if i % 3 == 0 else en
    text = " ".join(rnd.choice(words) for _ in range(rnd.randint(10, 40)))
    print(json.dumps({"id": i, "text": text, "row": {"chat_id": 100 + i % 7},
                      "run_id": "bench", "attempt": 1}, ensure_ascii=False))
PY

script() {
	curl -fsS -X POST "$url/_standin/reset" >/dev/null
	curl -fsS -X POST --data-binary "$1" "$url/_standin/script" >/dev/null
}

# run WORKERS RECORDS: runs the fan-out on the first RECORDS records;
# sets wall (s), cpu_us (per record), rss_mib (largest worker), done.
run() {
	head -n "$2" "$work/in" >"$work/part"
	local s e
	s=$(date +%s%N)
	"$root/analyze/dt-fanout" -j "$1" <"$work/part" >"$work/out" 2>"$work/err" || {
		echo "analyze: dt-fanout failed with status $?:" >&2
		tail -5 "$work/err" >&2
	}
	e=$(date +%s%N)
	wall=$(awk -v a="$s" -v b="$e" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
	done=$(jq -r 'select(.analysis) | .id' "$work/out" | sort -u | wc -l)
	cpu_us=$(jq -s 'map(select(.stage)) as $s |
		(($s | map(.resources.cpu_ms) | add) * 1000 /
		 ([($s | map(.counts.records) | add), 1] | max)) | . * 10 | round / 10' "$work/out")
	rss_mib=$(jq -s 'map(select(.stage) | .resources.maxrss_kb) | max / 1024 |
		. * 10 | round / 10' "$work/out")
	[ "$done" -eq "$2" ] || echo "analyze: only $done of $2 records analyzed" >&2
}

figure() {
	printf '{"figure":"%s","value":%s,"unit":"%s","target":"%s","pass":%s%s}\n' "$@"
}
within() {
	awk -v v="$1" -v lim="$2" 'BEGIN { print (v <= lim) ? "true" : "false" }'
}

echo "analyze: $n records, 50 ms, 20 workers" >&2
script '{"latency_ms":50}'
run 20 "$n"
ideal=$(awk -v n="$n" 'BEGIN { printf "%.3f", n * 0.050 / 20 }')
lim=$(awk -v i="$ideal" 'BEGIN { printf "%.3f", i * 1.10 }')
echo "analyze: wall $wall s, ideal $ideal s" >&2
figure "dt-analyze $n records, 50 ms, 20 workers" "$wall" "s" \
	"<= $lim s (ideal $ideal s + 10%)" "$(within "$wall" "$lim")" ""
# The fixed cost no fan-out through GNU parallel avoids: parallel
# starting 20 jobs (cat) on empty input, the best of three.
pstart=$(for _ in 1 2 3; do
	s=$(date +%s%N)
	parallel --pipe --round-robin -j 20 --block 1024 -N1 --ungroup cat </dev/null
	echo $((($(date +%s%N) - s) / 1000000))
done | sort -n | head -1)
figure "GNU parallel starting 20 jobs on empty input" \
	"$(awk -v m="$pstart" 'BEGIN { printf "%.3f", m / 1000 }')" "s" "" null ""
figure "dt-analyze CPU per record, 20 workers on this machine" "$cpu_us" "us/record" "" null ""
figure "dt-analyze peak RSS per worker" "$rss_mib" "MiB" "< 16 MiB" \
	"$(within "$rss_mib" 15.999)" ""

# Own CPU without the contention of 20 processes on a small machine: one
# worker, an API that answers at once, start-up included.  Beside it the
# share no caller of libcurl avoids: the same POST, the handle set up as
# lib/http.c does, in a loop doing nothing else (bench/curl-floor.c),
# against the same stand-in.  CPU time moves a lot from run to run on a
# shared machine: three runs of each, taken in turns, and the medians.
echo "analyze: own CPU, 1 worker, $n records, 0 ms; libcurl alone" >&2
script '{}'
floor=
if cc -O2 -o "$work/curl-floor" "$root/bench/curl-floor.c" \
	$(pkg-config --cflags --libs libcurl) 2>"$work/cc.log"; then
	floor=$work/curl-floor
else
	echo "analyze: cannot build bench/curl-floor.c: $(head -1 "$work/cc.log")" >&2
fi
: >"$work/own"
: >"$work/floor"
for _ in 1 2 3; do
	run 1 "$n"
	echo "$cpu_us" >>"$work/own"
	if [ -n "$floor" ]; then
		[ -s "$work/body" ] ||
			curl -fsS "$url/_standin/requests" | tail -1 | jq -c .json >"$work/body"
		"$floor" "$url/v1/agent" "$key" "$work/body" "$n" |
			awk '{ printf "%.1f\n", $1 + $2 }' >>"$work/floor"
	fi
done
median() { sort -n "$1" | sed -n 2p; }
own=$(median "$work/own")
echo "analyze: own CPU $(tr '\n' ' ' <"$work/own")us; libcurl alone $(tr '\n' ' ' <"$work/floor")us" >&2
figure "dt-analyze own CPU per record" "$own" "us/record" "< 100 us/record" \
	"$(within "$own" 99.999)" ""
if [ -s "$work/floor" ]; then
	floor_us=$(median "$work/floor")
	figure "libcurl alone: one call as dt-analyze makes it, nothing else" \
		"$floor_us" "us/call" "" null ""
	figure "dt-analyze CPU per record beyond the HTTP call" \
		"$(awk -v a="$own" -v b="$floor_us" 'BEGIN { printf "%.1f", a - b }')" \
		"us/record" "" null ""
fi

# Instructions per record, start-up apart: callgrind counts the same on
# a busy machine as on an idle one.
if command -v valgrind >/dev/null; then
	echo "analyze: instructions per record (callgrind, 200 and 600 records)" >&2
	ir() {
		head -n "$1" "$work/in" >"$work/part"
		rm -rf "$work/cgstate"
		mkdir "$work/cgstate"
		DT_STATE_DIR=$work/cgstate valgrind --tool=callgrind \
			--callgrind-out-file=/dev/null "$bin/dt-analyze" \
			<"$work/part" 2>&1 >/dev/null |
			sed -n 's/^==[0-9]*== Collected : //p'
	}
	a=$(ir 200)
	b=$(ir 600)
	if [ -n "$a" ] && [ -n "$b" ]; then
		figure "dt-analyze instructions per record" "$(((b - a) / 400))" \
			"instructions/record" "" null ""
		figure "dt-analyze start-up instructions" "$((a - (b - a) / 2))" \
			"instructions" "" null ""
	fi
fi

echo "analyze: the same with 1% of calls at 2 s" >&2
script '{"latency_ms":50,"tail_rate":0.01,"tail_ms":2000,"seed":7}'
run 20 "$n"
calls=$(curl -fsS "$url/_standin/requests" | wc -l)
ideal=$(awk -v n="$n" 'BEGIN { printf "%.3f", n * (0.99 * 0.050 + 0.01 * 2.0) / 20 }')
lim=$(awk -v i="$ideal" 'BEGIN { printf "%.3f", i * 1.25 }')
# The floor for these very latencies: the stand-in draws the slow calls
# from random.Random(seed), one draw a call in the order they arrive;
# a perfect fan-out hands each record to the first of the 20 workers to
# be free, with no start-up and no cost of its own.
read -r floor slow < <(/usr/bin/python3 -c '
import heapq, random, sys
n, seed = int(sys.argv[1]), int(sys.argv[2])
r, slots, slow = random.Random(seed), [0.0] * 20, 0
for _ in range(n):
    d = 2.0 if r.random() < 0.01 else 0.050
    slow += d > 1
    heapq.heapreplace(slots, slots[0] + d)
print("%.3f %d" % (max(slots), slow))' "$calls" 7)
echo "analyze: wall $wall s, ideal $ideal s ($calls calls, $slow of them slow; a perfect fan-out needs $floor s)" >&2
figure "dt-analyze $n records, 1% at 2 s, 20 workers" "$wall" "s" \
	"<= $lim s (ideal $ideal s + 25%)" "$(within "$wall" "$lim")" ""
figure "dt-analyze $n records, 1% at 2 s: a perfect fan-out on the same latencies ($slow slow calls)" \
	"$floor" "s" "" null ""

script '{"latency_ms":50}'
for w in 1 2 4 8 16 32; do
	run "$w" $((w * 100))
	rate=$(awk -v n=$((w * 100)) -v t="$wall" 'BEGIN { printf "%.1f", n / t }')
	echo "analyze: $w workers: $rate records/s" >&2
	figure "dt-analyze throughput, $w workers, 50 ms" "$rate" "records/s" "" null \
		",\"workers\":$w,\"ideal\":$((w * 20)),\"series\":\"dt-fanout\""
done
