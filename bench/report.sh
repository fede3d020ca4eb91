#!/usr/bin/env bash
# bench/report.sh: dt-report over N status records (default 100,000)
# shaped like dt-store's output (the analysed record passed through with
# its status); prints dt-report's CPU seconds, records/s, peak RSS and
# instructions per record (callgrind, when valgrind is there) as
# JSON lines (see bench/run).  Targets: under 2 s CPU, under 16 MiB.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${DT_BUILD:-$root/build}/bin
n=${BENCH_RECORDS:-100000}
work=$(mktemp -d "${TMPDIR:-/tmp}/dt-bench-report.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "report: writing $n status records" >&2
/usr/bin/python3 - "$n" >"$work/in" <<'PY'
import random, sys
n = int(sys.argv[1])
rnd = random.Random(42)
topics = ["доставка", "billing", "refunds", "login", "app crash", "оплата",
          "support", "pricing", "вход", "сроки"] + ["topic %d" % i for i in range(500)]
sent = ["positive", "neutral", "negative", "mixed"]
out = sys.stdout
for i in range(n):
    t = rnd.sample(topics[:10], 2) + [rnd.choice(topics)]
    if i % 50 == 0:
        out.write('{"id":%d,"text":"Приложение падает при входе, помогите пожалуйста","row":{"chat":"private"},"run_id":"bench","attempt":1,"error":{"kind":"timeout","message":"no answer in 300 s","retryable":true},"latency_ms":300000,"tries":3,"status":"stored"}\n' % i)
        continue
    out.write('{"id":%d,"text":"Где мой заказ? Жду уже неделю, а статус не меняется 😕","row":{"chat":"private"},"run_id":"bench","attempt":1,'
              '"analysis":{"summary":"The customer waits for an order that has not moved for a week.","sentiment":"%s","topics":["%s","%s","%s"],'
              '"language":"%s","action_items":["check the order"],"confidence":0.%d},"model":"perplexity/sonar",'
              '"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,"cost_usd":0.00%d},"latency_ms":%d,"tries":1,'
              '"prompt_version":"ab12cd34ef56","status":"stored"}\n'
              % (i, sent[i % 4], t[0], t[1], t[2], "ru" if i % 3 else "en", 50 + i % 50,
                 400 + i % 37, 60 + i % 29, 460 + i % 37 + i % 29, 10 + i % 90, 200 + (i * 7919) % 4000))
PY
bytes=$(stat -c %s "$work/in")
echo "report: $bytes bytes; running dt-report" >&2
/usr/bin/time -f '%e %U %S %M' -o "$work/time" \
	"$bin/dt-report" -q -n -m /dev/null "$work/in" >"$work/summary" || true
jq -e --argjson n "$n" '.records == $n' "$work/summary" >/dev/null ||
	echo "report: the summary does not count $n records" >&2
# GNU time puts "Command exited with non-zero status 1" first: records
# with errors make dt-report exit 1.
read -r e u s m < <(tail -n 1 "$work/time")

figure() {
	printf '{"figure":"%s","value":%s,"unit":"%s","target":"%s","pass":%s}\n' "$@"
}
cpu=$(awk -v u="$u" -v s="$s" 'BEGIN{printf "%.2f", u + s}')
figure "dt-report $n status records CPU" "$cpu" "s" "< 2 s" \
	"$(awk -v c="$cpu" 'BEGIN{print (c < 2) ? "true" : "false"}')"
figure "dt-report records/s" "$(awk -v n="$n" -v e="$e" 'BEGIN{printf "%.0f", n / (e > 0 ? e : 0.001)}')" \
	"records/s" "" null
mib=$(awk -v m="$m" 'BEGIN{printf "%.1f", m / 1024}')
figure "dt-report peak RSS" "$mib" "MiB" "< 16 MiB" \
	"$(awk -v m="$mib" 'BEGIN{print (m < 16) ? "true" : "false"}')"

# Instructions per record (callgrind on the first 100,000 records, start-up
# included), which unlike seconds do not move with the machine's load.
if command -v valgrind >/dev/null; then
	k=$((n < 100000 ? n : 100000))
	head -n "$k" "$work/in" >"$work/part"
	# dt-report's own status (65: the bench has error records) is not
	# the point here.
	ir=$({ valgrind --tool=callgrind --callgrind-out-file=/dev/null \
		"$bin/dt-report" -q -n -m /dev/null "$work/part" 2>&1 >/dev/null ||
		true; } | sed -n 's/^==[0-9]*== Collected : //p')
	if [ -n "$ir" ]; then
		figure "dt-report instructions per record" "$((ir / k))" \
			"instructions/record" "" null
	fi
fi
