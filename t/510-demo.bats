#!/usr/bin/env bats
# make demo (demo/run): the whole job on the local stand-ins, twice.

load test_helper/common

setup() {
	dt_common_setup
	[ -z "${DT_SANITIZED:-}" ] || skip "the demo runs once, on the plain build"
}

# As root, the demo runs from a copy of the checkout under a directory
# only root may enter (a clone in /root, say): PostgreSQL runs as the
# postgres user, who cannot reach it.
@test "demo: two runs of the whole job on the local stack, then nothing left running" {
	root=$DT_ROOT
	if [ "$(id -u)" -eq 0 ]; then
		mkdir -m 700 "$BATS_TEST_TMPDIR/private"
		root=$BATS_TEST_TMPDIR/private/dt
		mkdir "$root"
		git -C "$DT_ROOT" ls-files -z --cached --others --exclude-standard |
			(cd "$DT_ROOT" && xargs -0 tar -cf - --no-recursion 2>/dev/null) | tar -C "$root" -xf -
		DT_BUILD=$root/build
		make -C "$root" -j2 all >"$BATS_TEST_TMPDIR/make.log" 2>&1
	fi
	export DT_BUILD
	run -0 "$root/demo/run"
	assert_line --regexp '^stack: '
	stack=$(sed -n 's/^stack: //p' <<<"$output")
	pgdir=$(sed -n "s/^PostgreSQL's files: //p" <<<"$output")
	if [ "$(id -u)" -eq 0 ]; then
		[[ $pgdir == /tmp/dt-pg.* ]]
	fi
	# Run 1 analyzed everything it could and skipped the rows without
	# text (empty, blank, NULL), which are not failures.
	assert_line "200 messages waiting in public.messages"
	assert_line --partial "run demo-1 finished: fetch 0,"
	# 37 texts were analysed; the other rows repeat one of them.
	assert_line --regexp '^Records: 200 — stored 197 \(160 reused at no cost\) · skipped \(no text\) 3$'
	assert_line --partial "Sentiment: "
	assert_line --regexp '^ done +\| +197$'
	assert_line --regexp '^ skipped +\| +3$'
	# Run 2 found nothing to do.
	assert_line --partial "run demo-2 finished: fetch 0, analyze 0, store 0, report 0; exit 0"
	assert_line --regexp '^run demo-2: 0 records, backlog '
	# Each stage's output of run 1 is kept for replay, and replays.
	for f in fetch.ndjson analyze.ndjson store.ndjson report.json; do
		assert_file_exists "$DT_BUILD/demo/run-1/$f"
	done
	# Run 1's replay counts them the same: 200 records, none failed.
	run -0 --separate-stderr dt-report --dry-run "$DT_BUILD/demo/run-1/store.ndjson"
	assert_equal "$(jq -c '[.records, .failed, .by_status.skipped]' <<<"$output")" '[200,0,3]'
	# Everything the demo started has stopped, and its stack is gone.
	run pgrep -f "$stack/"
	assert_equal "$status" 1
	assert_not_exist "$stack"
	if [ -n "$pgdir" ]; then
		run pgrep -f "$pgdir/"
		assert_equal "$status" 1
		assert_not_exist "$pgdir"
	fi
}

@test "demo: a step that fails stops the demo and names the step" {
	export DT_BUILD
	DT_PG_BIN=$BATS_TEST_TMPDIR/no-such-dir run -1 --separate-stderr "$DT_ROOT/demo/run"
	assert_line --partial "Starting the local stack"
	refute_line --partial "messages waiting"
	assert_equal "${#stderr_lines[@]}" 2
	assert_equal "${stderr_lines[0]}" "t/stack/up: PostgreSQL server not found (install postgresql, or set DT_PG_BIN)"
	[[ ${stderr_lines[1]} =~ ^demo/run:\ failed\ at\ line\ [0-9]+,\ in\ step\ \"Starting\ the\ local\ stack\ .*\",\ with\ status\ 1$ ]]
}
