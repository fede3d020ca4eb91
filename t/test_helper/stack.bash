# The local stack for bats files: PostgreSQL + the stand-ins.
#
#   load test_helper/common
#   load test_helper/stack
#   setup_file() { stack_up; }
#   teardown_file() { stack_down; }
#
# stack_up saves the exports of t/stack/up in the file's temp dir; every
# test re-reads them (common.bash clears inherited SUPABASE_*, PG* ...).

_stack_env() {
	printf '%s\n' "$BATS_FILE_TMPDIR/stack.env"
}

# stack_up [t/stack/up options]: starts a stack for this file.
stack_up() {
	"$DT_ROOT/t/stack/up" "$@" >"$(_stack_env)" 3>&- || return
	# shellcheck disable=SC1090
	. "$(_stack_env)"
}

# stack_down: stops the stack of this file.
stack_down() {
	[ -s "$(_stack_env)" ] || return 0
	# shellcheck disable=SC1090
	. "$(_stack_env)"
	"$DT_ROOT/t/stack/down" -q "$DT_STACK_DIR" 3>&-
}

# sql 'statement': runs SQL as the superuser and prints the rows
# unaligned, tab-separated, without headers.
sql() {
	psql -X -A -t -q -F $'\t' -v ON_ERROR_STOP=1 -c "$1"
}

# stack_reset: empties dt's tables and the sample source table.
stack_reset() {
	sql 'truncate public.dt_results, public.dt_runs, public.messages restart identity' >/dev/null
	standin supabase reset
}

# messages N: inserts N sample messages with ids 1..N (after stack_reset).
messages() {
	sql "insert into public.messages (text) select 'message ' || g from generate_series(1, $1) g"
}

# rest METHOD PATH [curl args...]: a PostgREST call with the service key.
# Prints the body, then a last line "HTTP <status>".
rest() {
	local method=$1 path=$2
	shift 2
	curl -sS -X "$method" -H "apikey: $SUPABASE_KEY" \
		-H "Authorization: Bearer $SUPABASE_KEY" \
		-H 'Content-Type: application/json' -w '\nHTTP %{http_code}\n' \
		"$@" "$SUPABASE_URL/rest/v1/$path"
}


# results_md5: a digest of the whole of dt_results, to show a step
# changed nothing.
results_md5() {
	sql "select md5(coalesce(string_agg(t::text, '|' order by source_id), '')) from public.dt_results t"
}

if [ -s "${BATS_FILE_TMPDIR:-/nonexistent}/stack.env" ]; then
	# shellcheck disable=SC1090
	. "$BATS_FILE_TMPDIR/stack.env"
fi
