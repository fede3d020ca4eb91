# bench/common.bash: what the bench scripts share (sourced, not run).
#
#   . "$(dirname "$0")/common.bash"
#
# Sets root (the project), bin (the built programs), work (a temporary
# directory removed at exit, with every process started here) and the
# environment dt-analyze needs apart from the API's address and key.

set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${DT_BUILD:-$root/build}/bin
work=$(mktemp -d "${TMPDIR:-/tmp}/dt-bench.XXXXXX")
py=/usr/bin/python3
bench_pids=()
bench_stack=

bench_cleanup() {
	local p
	for p in "${bench_pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	if [ -n "$bench_stack" ]; then
		"$root/t/stack/down" -q "$bench_stack" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap bench_cleanup EXIT

export DT_PROMPT_FILE=$root/analyze/prompt.txt
export DT_SCHEMA_FILE=$root/analyze/schema.json
export DT_ANALYZE=$bin/dt-analyze DT_LOG_LEVEL=error
unset DT_STATE_DIR DT_BUDGET_USD DT_PACK DT_RPM_WINDOW_MS

# say MESSAGE: a line for people, on stderr, named after the script.
say() {
	printf '%s: %s\n' "$(basename "$0" .sh)" "$*" >&2
}

# figure NAME VALUE UNIT TARGET PASS [EXTRA]: one figure line for
# bench/run.  VALUE is a number or null; PASS true, false or null; EXTRA
# a JSON object merged in (e.g. {"note":"..."} or {"skipped":"..."}).
figure() {
	jq -nc --arg f "$1" --argjson v "$2" --arg u "$3" --arg t "$4" \
		--argjson p "$5" --argjson x "${6:-{\}}" \
		'{figure: $f, value: $v, unit: $u, target: $t, pass: $p} + $x'
}

# calc EXPR [VAR=VALUE...]: prints an awk expression's value.
calc() {
	local e=$1
	shift
	local a=() kv
	for kv in "$@"; do a+=(-v "$kv"); done
	awk "${a[@]}" "BEGIN { print ($e) }"
}

# holds CONDITION [VAR=VALUE...]: prints true or false.
holds() {
	local e=$1
	shift
	calc "($e) ? \"true\" : \"false\"" "$@"
}

# now_ms: a monotonic-enough wall clock in milliseconds.
now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

# standin_start: starts a Perplexity stand-in of this script's own and
# exports PERPLEXITY_BASE_URL and PERPLEXITY_API_KEY for it.
standin_start() {
	local key
	key="bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
	DT_STANDIN_KEY=$key "$root/t/stack/perplexity-standin" \
		--listen 127.0.0.1:0 --port-file "$work/standin.port" \
		2>"$work/standin.log" &
	bench_pids+=($!)
	local _
	for _ in $(seq 200); do
		[ -s "$work/standin.port" ] && break
		sleep 0.05
	done
	[ -s "$work/standin.port" ] || {
		say "the Perplexity stand-in did not start: $(tail -1 "$work/standin.log")"
		exit 1
	}
	PERPLEXITY_BASE_URL=http://127.0.0.1:$(cat "$work/standin.port")
	export PERPLEXITY_BASE_URL PERPLEXITY_API_KEY=$key
}

# standin SCRIPT-JSON: resets the stand-in (script, log, rate window) and
# gives it a new script.  standin_requests: prints its request log.
standin() {
	curl -fsS -X POST "$PERPLEXITY_BASE_URL/_standin/reset" >/dev/null
	curl -fsS -X POST --data-binary "$1" \
		"$PERPLEXITY_BASE_URL/_standin/script" >/dev/null
}
standin_requests() {
	curl -fsS "$PERPLEXITY_BASE_URL/_standin/requests"
}

# stack_start: starts the local stack (PostgreSQL and the stand-ins) and
# exports what t/stack/up prints.
stack_start() {
	local env
	env=$("$root/t/stack/up" -d "$work/stack") || {
		say "the local stack did not start"
		exit 1
	}
	bench_stack=$work/stack
	eval "$env"
}

# texts N [DISTINCT] [SEED]: N messages' texts as JSON strings, one a
# line: English and Russian with emoji, 10 to 40 words, as a digital
# twin's messages are; with DISTINCT, only that many different texts,
# each repeated in turn.
texts() {
	"$py" - "$1" "${2:-0}" "${3:-11}" <<'PY'
import json, random, sys
n, distinct, seed = map(int, sys.argv[1:])
rnd = random.Random(seed)
en = ("Thanks for the meeting today. The release slipped again and the team "
      "is tired. Please send the report by Friday. I love the new design 😀 "
      "but the login page is broken.").split()
ru = ("Спасибо за встречу сегодня. Релиз опять сдвинулся, команда устала. "
      "Нужно отправить отчёт до пятницы. Новый дизайн отличный 🙂, но вход "
      "сломался.").split()
made = []
for i in range(1, (distinct or n) + 1):
    words = ru if i % 3 == 0 else en
    made.append(" ".join(rnd.choice(words)
                         for _ in range(rnd.randint(10, 40))))
for i in range(n):
    print(json.dumps(made[i % len(made)], ensure_ascii=False))
PY
}

# records N [DISTINCT]: N records as dt-fetch writes them (ids 1..N).
records() {
	texts "$@" | jq -cn '[inputs] | to_entries[] | {id: (.key + 1), text: .value,
		row: {chat_id: (100 + .key % 7)}, run_id: "bench", attempt: 1}'
}

# pack_note: prints {"note": "..."} when dt-analyze does not know DT_PACK,
# else {}.
pack_note() {
	if "$bin/dt-analyze" --help 2>&1 | grep -q DT_PACK; then
		echo '{}'
	else
		echo '{"note":"not available: DT_PACK not supported by dt-analyze"}'
	fi
}
