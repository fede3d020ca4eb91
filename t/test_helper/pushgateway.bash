# A real Prometheus Pushgateway (Debian's prometheus-pushgateway) for tests.
#
#   load test_helper/pushgateway
#   setup_file() { pushgateway_start; }
#   teardown_file() { pushgateway_stop; }
#   setup() { ...; pushgateway_env; pushgateway_wipe; }
#
# pushgateway_start starts it on a free loopback port (port 0; the port it
# got is read from its "Listening on" log line), with no persistence file
# and the admin API on (for wipe), and exports PUSHGATEWAY_URL.
# common.bash clears inherited variables in every test, so a test's setup
# calls pushgateway_env to export PUSHGATEWAY_URL again.

pushgateway_start() {
	local dir=${BATS_FILE_TMPDIR:?}/pushgateway addr
	mkdir -p "$dir"
	command -v prometheus-pushgateway >/dev/null || {
		echo "pushgateway: prometheus-pushgateway is not installed (tools/deps install)" >&2
		return 1
	}
	prometheus-pushgateway --web.listen-address=127.0.0.1:0 \
		--persistence.file= --web.enable-admin-api --log.level=info \
		</dev/null >"$dir/log" 2>&1 3>&- &
	echo $! >"$dir/pid"
	addr=
	for _ in $(seq 100); do
		addr=$(sed -n 's/.*msg="Listening on" address=\(127\.0\.0\.1:[0-9]*\).*/\1/p' "$dir/log" | head -n 1)
		[ -n "$addr" ] && break
		sleep 0.1
	done
	[ -n "$addr" ] || {
		echo "pushgateway: did not start:" >&2
		cat "$dir/log" >&2
		return 1
	}
	for _ in $(seq 50); do
		curl -fsS -o /dev/null "http://$addr/-/ready" && break
		sleep 0.1
	done
	export PUSHGATEWAY_URL=http://$addr
	echo "export PUSHGATEWAY_URL=$PUSHGATEWAY_URL" >"$dir/env"
}

pushgateway_env() {
	# shellcheck disable=SC1091
	. "${BATS_FILE_TMPDIR:?}/pushgateway/env"
}

pushgateway_stop() {
	local pid
	pid=$(cat "${BATS_FILE_TMPDIR:?}/pushgateway/pid" 2>/dev/null) || return 0
	kill "$pid" 2>/dev/null || true
}

# pushgateway_wipe: deletes every pushed group.
pushgateway_wipe() {
	curl -fsS -X PUT "$PUSHGATEWAY_URL/api/v1/admin/wipe" >/dev/null
}

# pushgateway_metrics [NAME-PREFIX]: the scraped samples (not comments),
# only those whose metric name starts with NAME-PREFIX when given.
pushgateway_metrics() {
	curl -fsS "$PUSHGATEWAY_URL/metrics" | grep -v '^#' |
		{ if [ -n "${1:-}" ]; then grep "^$1" || true; else cat; fi; }
}
