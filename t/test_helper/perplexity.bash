# Helpers for the dt-analyze tests: a private Perplexity stand-in.
#
#   load test_helper/perplexity
#   setup_file() { pplx_start; }     teardown_file() { pplx_stop; }
#
# pplx_start starts t/stack/perplexity-standin on a free loopback port
# with a fresh key and exports PERPLEXITY_BASE_URL, PERPLEXITY_API_KEY,
# and the prompt and schema files of the source tree.  pplx_env (call it
# from setup) exports them again after common.bash cleared them, resets
# the stand-in and gives each test its own state directory.  It sets
# DT_PACK=1, one record per request, as most tests here are about what
# happens to one record's call; a test of packed requests sets DT_PACK.

pplx_start() {
	local dir=$BATS_FILE_TMPDIR/pplx _
	mkdir -p "$dir"
	PPLX_KEY="pplx-test-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
	DT_STANDIN_KEY=$PPLX_KEY "$DT_ROOT/t/stack/perplexity-standin" \
		--listen 127.0.0.1:0 --port-file "$dir/port" \
		>"$dir/log" 2>&1 &
	echo $! >"$dir/pid"
	for _ in $(seq 100); do
		[ -s "$dir/port" ] && break
		sleep 0.05
	done
	[ -s "$dir/port" ] || { cat "$dir/log" >&2; return 1; }
	PPLX_URL="http://127.0.0.1:$(cat "$dir/port")"
	echo "$PPLX_KEY" >"$dir/key"
	echo "$PPLX_URL" >"$dir/url"
}

pplx_stop() {
	local pid
	pid=$(cat "$BATS_FILE_TMPDIR/pplx/pid" 2>/dev/null) || return 0
	kill "$pid" 2>/dev/null || true
}

pplx_env() {
	PPLX_KEY=$(cat "$BATS_FILE_TMPDIR/pplx/key")
	PPLX_URL=$(cat "$BATS_FILE_TMPDIR/pplx/url")
	export PERPLEXITY_BASE_URL=$PPLX_URL PERPLEXITY_API_KEY=$PPLX_KEY
	export DT_PROMPT_FILE=$DT_ROOT/analyze/prompt.txt
	export DT_SCHEMA_FILE=$DT_ROOT/analyze/schema.json
	export DT_STATE_DIR=$BATS_TEST_TMPDIR/state
	export DT_RETRY_BASE_MS=50 DT_RPM=0 DT_PACK=1
	mkdir -p "$DT_STATE_DIR"
	pplx reset
}

# pplx script|requests|reset ...: the stand-in's control endpoints.
pplx() {
	PERPLEXITY_BASE_URL=$PPLX_URL standin perplexity "$@"
}

# records N [TEXT]: N source records with ids 1..N on stdout.
records() {
	local n=$1 text=${2:-Thanks for the great meeting! Please send the report by Friday.}
	jq -nc --argjson n "$n" --arg t "$text" \
		'range(1; $n + 1) | {id: ., text: ($t + " #" + (. | tostring)), run_id: "run-1", attempt: 1}'
}
