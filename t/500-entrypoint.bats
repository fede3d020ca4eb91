#!/usr/bin/env bats
# entrypoint.sh (dt-entrypoint): configuration, exit status, run dir,
# stops and deadlines, against the local stack.

load test_helper/common
load test_helper/stack
load test_helper/faults

setup_file() {
	stack_up
}

teardown_file() {
	stack_down
}

setup() {
	faults_setup
	rows 30
}

# Every dt-entrypoint of this file runs with DT_TEST_MARK in its
# environment, which its children inherit.
dt-entrypoint() {
	DT_TEST_MARK=$BATS_TEST_TMPDIR command dt-entrypoint "$@"
}

# no_children: fails if any process started by this test's runs is left.
no_children() {
	local f left=
	for f in /proc/[0-9]*/environ; do
		if tr '\0' '\n' <"$f" 2>/dev/null | grep -qxF "DT_TEST_MARK=$BATS_TEST_TMPDIR"; then
			f=${f%/environ}
			left="$left ${f#/proc/}:$(cat "$f/comm" 2>/dev/null)"
		fi
	done
	[ -z "$left" ] || fail "left running:$left"
}

@test "entrypoint: --help, --version and a bad option" {
	run -0 dt-entrypoint --help
	assert_line --index 0 "usage: dt-entrypoint [-hnpqVv] [--check-config]"
	assert_output --partial "DT_DEADLINE_SECONDS (3300)"
	run -0 dt-entrypoint -V
	assert_output "dt-entrypoint 0.1.0"
	run -64 --separate-stderr dt-entrypoint --frobnicate
	assert_equal "$stderr" "dt-entrypoint: unknown option '--frobnicate'
Try 'dt-entrypoint --help'."
}

@test "a short option means one thing in every program, as docs/options.md says" {
	local p line letter long seen=
	for p in dt-fetch dt-analyze dt-store dt-report dt-entrypoint; do
		run -0 --separate-stderr "$p" --help
		while IFS= read -r line; do
			[[ $line =~ ^\ +-([A-Za-z]),\ --([a-z-]+) ]] || continue
			letter=${BASH_REMATCH[1]} long=${BASH_REMATCH[2]}
			case $seen in
			*" -$letter=--$long "*) ;;
			*" -$letter="*) fail "$p: -$letter is --$long, elsewhere:$seen" ;;
			*) seen="$seen -$letter=--$long " ;;
			esac
			grep -qF "| \`-$letter\` | \`--$long\` |" "$DT_ROOT/docs/options.md" ||
				fail "$p: -$letter, --$long is not in docs/options.md"
		done <<<"$output"
	done
	# Every letter of the table is some program's.
	while IFS= read -r line; do
		[[ $line =~ ^\|\ \`-([A-Za-z])\`\ \|\ \`(--[a-z-]+)\` ]] || continue
		[[ $seen == *" -${BASH_REMATCH[1]}=${BASH_REMATCH[2]} "* ]] ||
			[ "${BASH_REMATCH[1]}" = j ] ||
			fail "docs/options.md: -${BASH_REMATCH[1]} ${BASH_REMATCH[2]} is no program's"
	done <"$DT_ROOT/docs/options.md"
}

@test "every setting a program's --help names is documented in README.md or docs/" {
	local p v
	for p in dt-fetch dt-analyze dt-store dt-report dt-entrypoint; do
		run -0 --separate-stderr "$p" --help
		for v in $(grep -oE '\b(DT|SUPABASE|TELEGRAM|PERPLEXITY)_[A-Z_]+|\b(BATCH_SIZE|TIMEOUT_SECONDS|MAX_WORKERS)\b' <<<"$output" | sort -u); do
			grep -qF "\`$v\`" "$DT_ROOT/README.md" "$DT_ROOT"/docs/*.md ||
				fail "$p --help names $v, which no document does"
		done
	done
}

@test "the defaults the documents give are the programs' own" {
	local p line v d cell n=0
	for p in dt-fetch dt-analyze dt-store dt-report; do
		run --separate-stderr env -i PATH="$PATH" "$p" --check-config -v
		while IFS= read -r line; do
			[[ $line =~ ^$p:\ debug:\ ([A-Z_]+)\ =\ (.*)\ \(default\)$ ]] || continue
			v=${BASH_REMATCH[1]} d=${BASH_REMATCH[2]}
			# dt-entrypoint gives it its own default.
			[ "$v" != DT_SHARD_WAIT_SECONDS ] || continue
			# The tables whose second column is the default.
			cell=$(awk -F' [|] ' -v row="| \`$v\` |" '
				/^[|] variable [|] default [|]/ { t = 1 }
				!/^[|]/ { t = 0 }
				t && index($0, row) == 1 { gsub(/`/, "", $2); print $2 }' \
				"$DT_ROOT/README.md" "$DT_ROOT"/docs/*.md)
			# And dt-entrypoint's --help: "  NAME (default)".
			cell=$cell$'\n'$(dt-entrypoint --help | awk -v v="$v" '
				{ for (i = 1; i < NF; i++) if ($i == v || $i == v ",")
					if ($(i + 1) ~ /^[(]/) { d = $(i + 1); gsub(/[()]/, "", d); print d } }')
			while IFS= read -r c; do
				[ -z "$c" ] || [[ $c == "$d"* ]] || fail "$v: the program's default is $d, a document says $c"
				[ -z "$c" ] || n=$((n + 1))
			done <<<"$cell"
		done <<<"$stderr"
	done
	[ "$n" -ge 20 ] || fail "only $n defaults compared"
}

@test "entrypoint: a missing secret fails at once with its name and 78, before any claim" {
	unset PERPLEXITY_API_KEY
	SECONDS=0
	run -78 --separate-stderr dt-entrypoint
	[ "$SECONDS" -le 5 ] || fail "took $SECONDS s"
	assert_equal "${stderr_lines[0]}" "dt-entrypoint: error: PERPLEXITY_API_KEY is not set (nor PERPLEXITY_API_KEY_FILE)"
	assert_equal "$(count 'true')" 0
	run -0 bash -c "standin supabase requests | wc -l"
	assert_output 0
}

@test "entrypoint: every configuration problem is named, stages' own checks included" {
	export BATCH_SIZE=0 SUPABASE_URL= TELEGRAM_CHAT_ID=
	export DT_MAX_ATTEMPTS=zero
	run -78 --separate-stderr dt-entrypoint
	[[ $stderr == *"dt-entrypoint: error: SUPABASE_URL is not set"* ]] || fail "$stderr"
	[[ $stderr == *"dt-entrypoint: error: TELEGRAM_CHAT_ID is not set"* ]] || fail "$stderr"
	[[ $stderr == *"dt-fetch: error: BATCH_SIZE: 0 is out of range (1 to 1000)"* ]] || fail "$stderr"
	[[ $stderr == *"DT_MAX_ATTEMPTS"* ]] || fail "stage check missing: $stderr"
	assert_equal "$(count 'true')" 0
}

@test "entrypoint: --dry-run checks the configuration and claims nothing" {
	run -0 --separate-stderr dt-entrypoint --dry-run
	[[ $stderr == "dt-entrypoint: info: configuration is valid; run "*" would claim up to 10 rows per batch with 4 workers" ]] || fail "$stderr"
	assert_equal "$(count 'true')" 0
}

@test "entrypoint --check-config: every stage's check, nothing claimed or sent, exit 0 or 78" {
	run -0 --separate-stderr dt-entrypoint --check-config
	assert_equal "$output$stderr" ""
	BATCH_SIZE=0 DT_STORE_BATCH=1001 run -78 --separate-stderr dt-entrypoint --check-config
	assert_output ""
	assert_equal "$stderr" "dt-fetch: error: BATCH_SIZE: 0 is out of range (1 to 1000)
dt-store: error: DT_STORE_BATCH: 1001 is out of range (1 to 1000)"
	# A setting several stages share is checked where it is declared
	# once (lib/config.c) and named once.
	DT_SHARDS=2 DT_SHARD_INDEX=2 run -78 --separate-stderr dt-entrypoint --check-config
	assert_equal "$stderr" "dt-report: error: DT_SHARD_INDEX: 2 is not below DT_SHARDS (2)"
	assert_equal "$(count 'true')" 0
	run -0 bash -c "standin supabase requests | wc -l"
	assert_output 0
}

@test "entrypoint: -v and -q reach every stage; --check-config -v shows where each setting came from" {
	export TELEGRAM_BOT_TOKEN=123456:entrypoint-token-value TELEGRAM_CHAT_ID=-100123
	DT_STORE_BATCH=7 run -0 --separate-stderr dt-entrypoint --check-config -v
	assert_output ""
	has() { grep -qxF -- "$1" <<<"$stderr" || fail "no line '$1' in: $stderr"; }
	has "dt-store: debug: DT_STORE_BATCH = 7 (environment)"
	has "dt-report: debug: DT_REPORT_LANG = en (default)"
	has "dt-report: debug: TELEGRAM_BOT_TOKEN: set"
	# Shown once, by the first stage that reads it.
	assert_equal "$(grep -c ': debug: TIMEOUT_SECONDS = ' <<<"$stderr")" 1
	[[ $stderr != *entrypoint-token-value* ]] || fail "the token was shown"
	# -q: the entrypoint's and the stages' info lines are held back.
	run -0 --separate-stderr dt-entrypoint --dry-run
	[[ $stderr == *"dt-entrypoint: info: configuration is valid"* ]] || fail "$stderr"
	run -0 --separate-stderr dt-entrypoint -q --dry-run
	[[ $stderr != *"info:"* ]] || fail "$stderr"
	assert_output --partial "backlog:"
	# Letters together, as the stages take them.
	DT_LOG_LEVEL=warn run -0 --separate-stderr dt-entrypoint -vv --check-config
	grep -q '^dt-store: debug: DT_STORE_BATCH = ' <<<"$stderr" || fail "$stderr"
	DT_LOG_LEVEL=warn run -0 --separate-stderr dt-entrypoint -v --check-config
	assert_equal "$stderr" ""
}

@test "entrypoint: a clean run stores every row, keeps every stage's output and exits 0" {
	DT_RUN_ID=clean-1 run -0 --separate-stderr dt-entrypoint
	assert_equal "$(state)" "done	30	30	30"
	for f in fetch.ndjson analyze.ndjson store.ndjson report.json; do
		assert_file_exists "$DT_RUN_DIR/$f"
	done
	run -0 jq -r 'select(.stage == null) | .id' "$DT_RUN_DIR/fetch.ndjson"
	assert_equal "${#lines[@]}" 30
	run -0 jq -r '"\(.run_id) \(.records) \(.state)"' "$DT_RUN_DIR/report.json"
	assert_output "clean-1 30 ok"
	assert_equal "$(sql "select status, exit_code from public.dt_runs where run_id = 'clean-1'")" "ok	0"
	[[ $stderr == *"dt-entrypoint: info: run clean-1 finished: fetch 0, analyze 0, store 0, report 0; exit 0"* ]] || fail "$stderr"
	no_children
}

@test "entrypoint: the run id comes from DT_JOB_NAME when DT_RUN_ID is unset" {
	DT_JOB_NAME=batch-analyzer-29012345 run -0 --separate-stderr dt-entrypoint
	assert_equal "$(sql 'select run_id from public.dt_runs')" "batch-analyzer-29012345"
	assert_equal "$(sql 'select distinct run_id from public.dt_results')" "batch-analyzer-29012345"
}

@test "entrypoint: Supabase unavailable: exit 69, and the report still goes out saying so" {
	standin supabase script '{"fail": 1000}'
	DT_RUN_ID=nosupa run -69 --separate-stderr dt-entrypoint
	[[ $stderr == *"run nosupa finished: fetch 69,"* ]] || fail "$stderr"
	run -0 telegram_text
	assert_line --index 0 '❌ dt run: FAILED'
	assert_output --partial 'dt-fetch (exit 69'
	no_children
}

@test "entrypoint: SIGTERM mid-run stops claiming, stores what finished, reports partial, leaves no process" {
	rows 200
	export BATCH_SIZE=5 MAX_WORKERS=2
	standin perplexity script '{"latency_ms": 200}'
	DT_RUN_ID=term-1 DT_TEST_MARK=$BATS_TEST_TMPDIR command dt-entrypoint 2>"$BATS_TEST_TMPDIR/err" &
	pid=$!
	# Wait for the first stored results, then stop the run.
	for _ in $(seq 1 100); do
		[ "$(count "status = 'done'")" -gt 0 ] && break
		sleep 0.1
	done
	kill -TERM "$pid"
	wait "$pid" && status=0 || status=$?
	assert_equal "$status" 75
	grep -q "dt-entrypoint: info: stopping (SIGTERM)" "$BATS_TEST_TMPDIR/err" || fail "$(cat "$BATS_TEST_TMPDIR/err")"
	# Not everything was claimed; nothing is left leased; every claimed
	# row is either stored or released with its attempt given back.
	done=$(count "status = 'done'")
	[ "$done" -gt 0 ] && [ "$done" -lt 200 ] || fail "done: $done"
	assert_equal "$(count "status = 'leased'")" 0
	assert_equal "$(count "status = 'pending' and attempts <> 0")" 0
	run -0 telegram_text
	assert_output --partial 'partial'
	no_children
	# The next run finishes the rest.
	DT_RUN_ID=term-2 run -0 --separate-stderr dt-entrypoint
	assert_equal "$(count "status = 'done'")" 200
}

@test "entrypoint: DT_DEADLINE_SECONDS ends a run cleanly before Kubernetes would" {
	rows 200
	export BATCH_SIZE=5 MAX_WORKERS=2 DT_DEADLINE_SECONDS=2
	standin perplexity script '{"latency_ms": 200}'
	SECONDS=0
	DT_RUN_ID=deadline-1 run -75 --separate-stderr dt-entrypoint
	[ "$SECONDS" -le 15 ] || fail "took $SECONDS s"
	[[ $stderr == *"dt-entrypoint: info: stopping (deadline)"* ]] || fail "$stderr"
	# However far it got (a sanitizer build may get nowhere in 2 s), it
	# stopped before the end and left no row leased.
	assert_equal "$(count "status = 'leased'")" 0
	done=$(count "status = 'done'")
	[ "$done" -lt 200 ] || fail "done: $done"
	# The rows it claimed and did not analyze were given back with their
	# attempt, and the report says so: none of them counts as failed.
	released=$(count "status = 'pending' and attempts = 0 and claims > 0")
	run -0 jq -c '[.failed, (.by_status.released // 0), (.by_status.failed // 0)]' <<<"$output"
	assert_output "[0,$released,0]"
	no_children
}
