#!/usr/bin/env bash
# entrypoint.sh: one run of the dt batch analyzer, as the CronJob's pod
# runs it.
#
#   dt-fetch --claim | dt-fanout (parallel --pipe dt-analyze) | dt-store | dt-report
#
# See docs/entrypoint.md.  Exit status: the most severe of the stages'
# statuses (docs/pipeline.md), or 78 when the configuration is bad.
set -euo pipefail

readonly prog=dt-entrypoint
readonly version=0.1.0

# lib/log.sh (dt_log, dt_log_relay, dt_exit_worst), installed in share/dt beside bin/
# (or lib/ beside entrypoint.sh in the source tree).
here=$(cd "$(dirname "$0")" && pwd)
for f in "$here/../share/dt/log.sh" "$here/lib/log.sh" /usr/local/share/dt/log.sh ""; do
	[ -z "$f" ] || [ ! -r "$f" ] || break
done
if [ -z "$f" ]; then
	echo "$prog: error: share/dt/log.sh not found (in $here/../share/dt or /usr/local/share/dt)" >&2
	exit 78
fi
# shellcheck source=lib/log.sh
. "$f"

usage() {
	cat <<'USAGE'
usage: dt-entrypoint [-hnpqVv] [--check-config]

Runs one batch: claims unanalyzed rows from Supabase, analyzes them with
Perplexity under GNU parallel, stores the results and sends the report.

      --check-config  check the configuration, every stage's included
                      (each stage's --check-config), and exit: claim
                      nothing, connect to nothing; print nothing and exit
                      0 when valid, else one line per problem and exit 78
  -h, --help      print this help and exit
  -n, --dry-run   check the configuration, print the backlog, the runs it
                  takes and their cost (dt-fetch --backlog | dt-analyze
                  --estimate); claim nothing, call no API
  -p, --preflight check the configuration, then ask each service without
                  changing anything (dt-fetch, dt-analyze and dt-report
                  --preflight): one line each; exit 0 when all are
                  ready, else 78 (something to fix) or 69 (unreachable)
  -q, --quiet     log less, this script and every stage (repeatable)
  -V, --version   print the version and exit
  -v, --verbose   log more, this script and every stage (repeatable:
                  -vv traces HTTP); with --check-config, each stage
                  shows its settings' values

Environment (secrets also as NAME_FILE, read from a mounted file):
  SUPABASE_URL, SUPABASE_KEY        Supabase project URL and service key
  PERPLEXITY_API_KEY                Perplexity API key
  TELEGRAM_BOT_TOKEN, TELEGRAM_CHAT_ID
                                    where the report goes (both or neither)
  BATCH_SIZE (100)                  rows per claim
  MAX_WORKERS (5)                   parallel analyzers
  TIMEOUT_SECONDS (300)             per API call
  DT_RUN_ID                         run id (default: the Job's name from
                                    DT_JOB_NAME, else generated)
  DT_RUN_DIR                        keep every stage's output here
  DT_DEADLINE_SECONDS (3300)        stop claiming after this long
  DT_DRAIN_SECONDS (60)             after a stop, how long in-flight work
                                    may take before it is killed
  DT_SHARDS (1), DT_SHARD_INDEX (0) scale-out: this pod is shard INDEX of
                                    N; shard 0 sends the one report
  DT_SHARD_WAIT_SECONDS             how long shard 0 waits for the others
                                    (default: until DT_DEADLINE_SECONDS)
  DT_REUSE (1)                      0: analyse every text, also one that
                                    was analysed before with the same
                                    prompt, schema and model (whose
                                    stored analysis is otherwise reused)
  DT_LOG_FORMAT (text)              json: every line on stderr is a JSON
                                    object, this script's and GNU
                                    parallel's lines included

Exit status: 0 all records handled; 1 some records failed; 64 usage;
65 bad input data; 69 a service unavailable; 74 output error; 75 temporary
failure; 78 bad configuration.  Several problems: the most severe.
USAGE
}

# This script's own lines, as the stages write theirs (lib/log.sh):
# DT_LOG_LEVEL and DT_LOG_FORMAT apply, secrets are redacted.
err() {
	dt_log "$prog" error "$*"
}

info() {
	dt_log "$prog" info "$*"
}

# Under DT_LOG_FORMAT=json every line on stderr goes out as one JSON
# object with the keys of the stages' own lines (ts, prog, level, msg):
# this script's, GNU parallel's and any shell's or crash's are turned
# into one by dt_log_relay (lib/log.sh), the stages' pass through it
# unchanged.  The relay is a grandchild, not a job (the waits below would
# wait for it); it ends once every process holding the FIFO has closed it.
relay_json_logs() {
	local dir
	[ "${DT_LOG_FORMAT:-}" = json ] || return 0
	dir=$(mktemp -d "${TMPDIR:-/tmp}/dt-log.XXXXXX") || return 0
	mkfifo -m 600 "$dir/fifo" || return 0
	# Both ends are opened here, the writing one first (read-write, so
	# neither open waits); the relay holds only the reading one.
	exec {log_w}<>"$dir/fifo"
	exec {log_r}<"$dir/fifo"
	rm -rf "$dir"
	# Its stdout stays ours (it writes nothing there), so a reader of
	# our stdout also waits for its last lines.
	(dt_log_relay "$prog" <&"$log_r" {log_w}>&- &)
	exec 2>&"$log_w" {log_w}>&- {log_r}<&-
}

config_errors=0

# need NAME: the variable must be set and non-empty.
need() {
	if [ -z "${!1:-}" ]; then
		err "$1 is not set"
		config_errors=$((config_errors + 1))
	fi
}

# need_secret NAME: NAME or NAME_FILE (a readable file), not both.
need_secret() {
	local file_var=$1_FILE
	local value=${!1:-} file=${!file_var:-}
	if [ -n "$value" ] && [ -n "$file" ]; then
		err "$1 and $file_var are both set; set only one"
		config_errors=$((config_errors + 1))
	elif [ -n "$file" ]; then
		if [ ! -r "$file" ] || [ ! -s "$file" ]; then
			err "$file_var: cannot read $file, or it is empty"
			config_errors=$((config_errors + 1))
		fi
	elif [ -z "$value" ]; then
		err "$1 is not set (nor $file_var)"
		config_errors=$((config_errors + 1))
	fi
}

# need_int NAME DEFAULT MIN MAX: MAX_WORKERS and DT_REUSE, which no stage
# checks (the stages check their own settings, and those they share,
# lib/config.c).
need_int() {
	local v=${!1:-$2}
	if ! [[ $v =~ ^[0-9]+$ ]] || [ "${#v}" -gt 9 ] || [ "$v" -lt "$3" ] ||
		[ "$v" -gt "$4" ]; then
		err "$1: '$v' is not a whole number ($3 to $4)"
		config_errors=$((config_errors + 1))
	fi
}

check_config() {
	need SUPABASE_URL
	need_secret SUPABASE_KEY
	need_secret PERPLEXITY_API_KEY
	if [ -n "${TELEGRAM_CHAT_ID:-}" ] || [ -n "${TELEGRAM_BOT_TOKEN:-}" ] ||
		[ -n "${TELEGRAM_BOT_TOKEN_FILE:-}" ]; then
		need TELEGRAM_CHAT_ID
		need_secret TELEGRAM_BOT_TOKEN
	fi
	# BATCH_SIZE, TIMEOUT_SECONDS, DT_DEADLINE_SECONDS, DT_SHARDS and
	# the rest belong to the stages, which check them below.
	need_int MAX_WORKERS 5 1 256
	need_int DT_REUSE 1 0 1
	if [ -n "${DT_RUN_DIR:-}" ] && ! mkdir -p "$DT_RUN_DIR" 2>/dev/null; then
		err "DT_RUN_DIR: cannot create $DT_RUN_DIR"
		config_errors=$((config_errors + 1))
	fi
	# Each stage checks the rest of its own configuration, the run id
	# included, which is made here for that.  A problem several stages
	# find (a variable they all read) is named once.
	DT_RUN_ID=$(make_run_id)
	export DT_RUN_ID
	local stage out line key seen=$'\n'
	for stage in dt-fetch dt-analyze dt-store dt-report; do
		if ! out=$("$stage" --check-config 2>&1 >/dev/null </dev/null); then
			config_errors=$((config_errors + 1))
		fi
		while IFS= read -r line; do
			[ -n "$line" ] || continue
			# The message without the program (and the time).
			key=${line#*\"level\":}
			[ "$key" != "$line" ] || key=${line#*: }
			case $seen in *$'\n'"$key"$'\n'*) continue ;; esac
			seen=$seen$key$'\n'
			printf '%s\n' "$line" >&2
		done <<<"$out"
	done
	[ "$config_errors" -eq 0 ]
}

make_run_id() {
	if [ -n "${DT_RUN_ID:-}" ]; then
		echo "$DT_RUN_ID"
	elif [ -n "${DT_JOB_NAME:-}" ]; then
		echo "$DT_JOB_NAME"
	else
		printf 'run-%s-%04x%04x\n' "$(date -u +%Y%m%dT%H%M%SZ)" \
			"$RANDOM" "$RANDOM"
	fi
}

# verbosity DELTA: DT_LOG_LEVEL raised (-v) or lowered (-q) by one, for
# this script and, exported, for every stage, as -v and -q do in each.
# A DT_LOG_LEVEL no stage knows is left for their checks to name.
verbosity() {
	local level=2
	if [ -n "${DT_LOG_LEVEL:-}" ]; then
		_dt_log_level "$DT_LOG_LEVEL" || return 0
		level=$REPLY
	fi
	level=$((level + $1))
	[ "$level" -ge 0 ] || level=0
	[ "$level" -le 4 ] || level=4
	export DT_LOG_LEVEL=$level
}

relay_json_logs
dry_run=0
preflight=0
check_only=0
while [ $# -gt 0 ]; do
	case $1 in
	-h | --help) usage; exit 0 ;;
	-V | --version) echo "$prog $version"; exit 0 ;;
	-n | --dry-run) dry_run=1; shift ;;
	-p | --preflight) preflight=1; shift ;;
	-q | --quiet) verbosity -1; shift ;;
	-v | --verbose) verbosity 1; shift ;;
	--check-config) check_only=1; shift ;;
	-[!-]?*)
		# Short options together (-vv, -nq): one at a time.
		set -- "${1:0:2}" "-${1:2}" "${@:2}"
		;;
	*)
		printf "%s: unknown option '%s'\nTry '%s --help'.\n" "$prog" "$1" "$prog" >&2
		exit 64
		;;
	esac
done

check_config || exit 78
[ "$check_only" = 0 ] || exit 0

# The runbook's first step: each stage asks its own service, changing
# nothing, and prints one line; the worst status wins.
if [ "$preflight" = 1 ]; then
	s_fetch=0 s_analyze=0 s_report=0
	dt-fetch --preflight || s_fetch=$?
	dt-analyze --preflight || s_analyze=$?
	dt-report --preflight || s_report=$?
	exit "$(dt_exit_worst "$s_fetch" "$s_analyze" "$s_report")"
fi

# A text analysed before with the same prompt, schema and model (the
# prompt version) is not sent again: dt-fetch claims it with the stored
# analysis, which dt-analyze passes through (docs/supabase.md).
reuse=()
if [ "${DT_REUSE:-1}" = 1 ]; then
	prompt_version=$(dt-analyze --prompt-version) || exit 78
	reuse=(--reuse "$prompt_version")
fi

DT_RUN_ID=$(make_run_id)
DT_RUN_STARTED_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
export DT_RUN_ID DT_RUN_STARTED_AT
state=$(mktemp -d "${TMPDIR:-/tmp}/dt-run.XXXXXX")
export DT_STATE_DIR=$state
# No child outlives dt-entrypoint, however it ends (SIGKILL included):
# each stage watches this process (DT_WATCH_PID, lib/cli.c) and ends
# with it, and the timers below wait on a lifeline, a FIFO that only
# this shell holds open for writing, whose end they see when it is gone.
export DT_WATCH_PID=$$
mkfifo "$state/lifeline"
exec {lifeline_w}<>"$state/lifeline"
exec {lifeline}<"$state/lifeline"
export DT_STOP_FILE=$state/stop
# dt-report fails the run when one of these sent no stage record (it
# crashed or was killed before its end).
export DT_EXPECT_STAGES=dt-fetch,dt-analyze,dt-store
shards=${DT_SHARDS:-1}
shard_index=${DT_SHARD_INDEX:-0}
# The run.  The shards of a scale-out run share it, but each claims and
# stores as "<run>/<index>": dt_claim leases rows to a run id and takes a
# repeated claim key ("<run id>:<batch>") of the same run for a retry, so
# pods claiming under one id would be handed each other's batches.
run=$DT_RUN_ID
if [ "$shards" -gt 1 ]; then
	DT_RUN_ID=$run/$shard_index
fi

if [ "$dry_run" = 1 ]; then
	info "configuration is valid; run $run would claim up to" \
		"${BATCH_SIZE:-100} rows per batch with ${MAX_WORKERS:-5} workers"
	# The backlog and what it will take: read-only, no API call.
	status=0
	dt-fetch --backlog >"$state/backlog.json" &&
		dt-analyze --estimate <"$state/backlog.json" || status=$?
	rm -rf "$state"
	exit "$status"
fi

# out FILE: a copy of what flows past, kept as DT_RUN_DIR/FILE.
out() {
	if [ -n "${DT_RUN_DIR:-}" ]; then
		tee "$DT_RUN_DIR/$1"
	else
		cat
	fi
}

if [ "$shards" -gt 1 ]; then
	info "run $run starting (shard $shard_index of $shards)"
else
	info "run $run starting"
fi
# guard: started first in a subshell that leads a process group of its
# own (set -m), kills that whole group with SIGKILL once dt-entrypoint is
# gone (the lifeline's end).  Then nothing in the group outlives it, not
# even a process that watches nothing (the subshells, tee, dt-fanout,
# parallel) or a stage whose watch did not act.  Sets guard to its pid,
# which the subshell kills when its work is done.
guard() {
	local group=$BASHPID
	(
		read -r -u "$lifeline" _ || kill -KILL -- -"$group"
	) >/dev/null &
	guard=$!
}

set -m # the pipeline gets its own process group, so a drain can end it
(
	set +e
	exec {lifeline_w}>&-
	guard
	exec {lifeline}<&-
	dt-fetch --claim "${reuse[@]}" | out fetch.ndjson | dt-fanout | out analyze.ndjson |
		dt-store | out store.ndjson | DT_RUN_ID=$run dt-report |
		out report.json
	echo "${PIPESTATUS[0]} ${PIPESTATUS[2]} ${PIPESTATUS[4]} ${PIPESTATUS[6]}" \
		>"$state/status"
	kill "$guard" 2>/dev/null
) &
pipeline=$!
set +m

# after SECONDS COMMAND...: runs COMMAND after SECONDS in a child, a
# subshell and nothing else, which ends without running it when it is
# killed first or when dt-entrypoint ends (the read sees the lifeline's
# end: status 1; a timeout is above 128).  Sets $! to the child.
after() {
	local seconds=$1
	shift
	(
		exec {lifeline_w}>&-
		s=0
		read -r -t "$seconds" -u "$lifeline" _ || s=$?
		[ "$s" -le 128 ] || "$@"
	) &
}

stopping=0
stopped_at=0
drainer=
# A stop (SIGTERM from Kubernetes, SIGINT, the deadline) tells dt-fetch
# to claim no more and dt-analyze to finish its calls in flight; what is
# left flows through dt-store and dt-report as usual, marked partial.
# After DT_DRAIN_SECONDS whatever still runs is killed.
# shellcheck disable=SC2317 # called from traps
stop() {
	[ "$stopping" = 0 ] || return 0
	stopping=1
	stopped_at=$SECONDS
	info "stopping ($1): no more claims; draining for ${DT_DRAIN_SECONDS:-60} s"
	: >"$DT_STOP_FILE"
	after "${DT_DRAIN_SECONDS:-60}" kill -KILL -- -"$pipeline"
	drainer=$!
}
trap 'stop SIGTERM' TERM
trap 'stop SIGINT' INT
trap 'stop deadline' USR1
after "${DT_DEADLINE_SECONDS:-3300}" kill -USR1 $$
timer=$!

while kill -0 "$pipeline" 2>/dev/null; do
	wait "$pipeline" || true
done
kill "$timer" ${drainer:+"$drainer"} 2>/dev/null || true
wait 2>/dev/null || true

if [ -s "$state/status" ]; then
	read -r s_fetch s_analyze s_store s_report <"$state/status"
else
	err "the pipeline was killed before it finished"
	s_fetch=75 s_analyze=75 s_store=75 s_report=75
fi
status=$(dt_exit_worst "$s_fetch" "$s_analyze" "$s_store" "$s_report")

# Scale-out: shard 0 reports the whole run once the other shards'
# ledger rows are in (dt-report --merge-shards), waiting at most until
# the deadline or DT_SHARD_WAIT_SECONDS.  After a stop the other pods,
# stopped at the same moment, have what is left of the drain period (and
# a little for their report); a stop during the wait cuts it to
# DT_DRAIN_SECONDS (dt-report watches the stop file).  Its status joins
# this pod's.
s_merge=
if [ "$shards" -gt 1 ] && [ "$shard_index" = 0 ]; then
	left=$((${DT_DEADLINE_SECONDS:-3300} - SECONDS))
	if [ "$stopping" = 1 ]; then
		left=$((${DT_DRAIN_SECONDS:-60} - (SECONDS - stopped_at) + 2))
	fi
	[ "$left" -ge 0 ] || left=0
	wait_s=${DT_SHARD_WAIT_SECONDS:-$left}
	[ "$wait_s" -le "$left" ] || wait_s=$left
	(
		set +e
		exec {lifeline_w}>&- {lifeline}<&-
		DT_RUN_ID=$run DT_SHARD_WAIT_SECONDS=$wait_s \
			dt-report --merge-shards "$shards" </dev/null |
			out merge.json
		echo "${PIPESTATUS[0]}" >"$state/merge"
	) &
	merger=$!
	while kill -0 "$merger" 2>/dev/null; do
		wait "$merger" || true
	done
	if [ -s "$state/merge" ]; then
		read -r s_merge <"$state/merge"
	else
		s_merge=75
	fi
	status=$(dt_exit_worst "$status" "$s_merge")
	kill ${drainer:+"$drainer"} 2>/dev/null || true
	wait 2>/dev/null || true
fi
rm -rf "$state"
info "run $run finished: fetch $s_fetch, analyze $s_analyze," \
	"store $s_store, report $s_report${s_merge:+, merge $s_merge}; exit $status"
exit "$status"
