# Starts t/stack/http-fixture for one test file.
#
#   setup_file() { fixture_server_start; }
#   teardown_file() { fixture_server_stop; }
#
# Exports FIXTURE_URL.  script_responses JSON sets what it answers next.

fixture_server_start() {
	local dir=$BATS_FILE_TMPDIR/fixture i
	mkdir -p "$dir"
	"$DT_ROOT/t/stack/http-fixture" --port-file "$dir/port" \
		>"$dir/log" 2>&1 &
	echo $! >"$dir/pid"
	for i in $(seq 1 100); do
		[ -s "$dir/port" ] && break
		sleep 0.05
	done
	[ -s "$dir/port" ] || {
		cat "$dir/log" >&2
		return 1
	}
	export FIXTURE_URL="http://127.0.0.1:$(cat "$dir/port")"
}

fixture_server_stop() {
	local pid
	pid=$(cat "$BATS_FILE_TMPDIR/fixture/pid" 2>/dev/null) || return 0
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# script_responses '[{"status":503},{"status":200,"body":"ok"}]'
script_responses() {
	curl -fsS -X POST --data-binary "{\"responses\":$1}" \
		"$FIXTURE_URL/_standin/script" >/dev/null
}

fixture_requests() {
	curl -fsS "$FIXTURE_URL/_standin/requests"
}

fixture_reset() {
	curl -fsS -X POST "$FIXTURE_URL/_standin/reset" >/dev/null
}
