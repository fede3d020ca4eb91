#!/usr/bin/env bash
# bench/4-pipeline.sh: the whole pipeline (dt-entrypoint: dt-fetch |
# dt-fanout | dt-store | dt-report) on the local stack (PostgreSQL, the
# Supabase, Perplexity and Telegram stand-ins), with its defaults apart
# from MAX_WORKERS=5 and no request limit (DT_RPM=0).  Figures:
#   - requests for a backlog with repeats: 100 messages with 10 distinct
#     texts, target at most 20 requests; then 100 new messages with the
#     same texts, a later run, target none
#   - the pipeline's peak memory: the PSS of all its processes summed
#     (bench/peak-pss, sampled every 20 ms) over a run of 300 distinct
#     messages at 400 ms a call.  Target at most 64 MiB: half the memory
#     the CronJob requests for the pod (k8s/base: 128Mi), so a run stays
#     well inside what the scheduler reserved for it, with room for the
#     page cache and a second worker process more than today.
# shellcheck source=bench/common.bash
. "$(dirname "$0")/common.bash"

export MAX_WORKERS=5 DT_RPM=0 PATH=$bin:$PATH
stack_start

# insert N [DISTINCT] [SEED]: adds N messages to the source table.
insert() {
	texts "$@" | jq -r '"insert into public.messages (text) values (\u0027" +
		gsub("\u0027"; "\u0027\u0027") + "\u0027);"' >"$work/insert.sql"
	psql -X -q -v ON_ERROR_STOP=1 -f "$work/insert.sql" >/dev/null
}

# run NAME SCRIPT [WRAPPER...]: one pipeline run, the Perplexity
# stand-in scripted with SCRIPT; sets reqs (the calls it got) and status.
# The stage outputs stay in $work/NAME.
run() {
	standin "$2"
	status=0
	DT_RUN_DIR=$work/$1 DT_RUN_ID=bench-$1 "${@:3}" dt-entrypoint \
		>"$work/$1.out" 2>"$work/$1.err" || status=$?
	[ "$status" -eq 0 ] || say "$1: dt-entrypoint exited $status: $(tail -1 "$work/$1.err")"
	reqs=$(standin_requests | jq -s 'map(select(.method == "POST")) | length')
}

say "a backlog with repeats: 100 messages, 10 distinct texts"
insert 100 10 21
run repeats-1 '{}'
first=$reqs
first_status=$status
insert 100 10 21
run repeats-2 '{}'
second=$reqs
stored=$(psql -X -A -t -q -c "select count(*) from public.dt_results where status = 'done'")
say "first run: $first requests (exit $first_status); a later run of the same texts: $reqs (exit $status); $stored of 200 rows stored"
figure "backlog with repeats: requests, 100 messages, 10 texts" "$first" requests \
	"<= 20" "$(holds 'r <= 20 && s == 0' r="$first" s="$first_status")"
figure "backlog with repeats: requests, a later run of the same texts" "$second" requests \
	"0" "$(holds 'r == 0 && s == 0 && k == 200' r="$second" s="$status" k="$stored")"

say "peak memory: 300 messages, 400 ms a call, MAX_WORKERS=5"
insert 300 0 22
s=$(now_ms)
run memory '{"latency_ms":400}' "$root/bench/peak-pss" -o "$work/pss.json" --
secs=$(calc '(b - a) / 1000' a="$s" b="$(now_ms)")
peak=$(jq -r '.peak_kib / 1024 | . * 10 | round / 10' "$work/pss.json")
say "peak PSS $peak MiB over $(jq -r .samples "$work/pss.json") samples in $secs s ($reqs requests, exit $status): $(jq -c .at_peak "$work/pss.json")"
figure "pipeline peak memory (PSS summed), MAX_WORKERS=5" "$peak" MiB "<= 64 MiB" \
	"$(holds 'p <= 64 && s == 0' p="$peak" s="$status")" \
	"$(jq -c '{at_peak_kib: .at_peak}' "$work/pss.json")"
