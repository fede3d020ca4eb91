#!/usr/bin/env bats
# lib/ndjson: the streaming reader and the writer every stage uses.

load test_helper/common

@test "ndjson: bad lines are reported with source and line number, and reading goes on" {
	cd "$DT_ROOT"
	run -65 --separate-stderr ndjson-cat t/fixtures/ndjson/mixed.ndjson
	assert_output "$(cat t/fixtures/ndjson/mixed.out)"
	assert_equal "$stderr" "$(cat t/fixtures/ndjson/mixed.err)"
}

@test "ndjson: stdin is <stdin> in messages; blank and whitespace-only lines are skipped" {
	printf '\n \t \n{"id":1}\r\n\n[]\n' >"$BATS_TEST_TMPDIR/in"
	run -65 --separate-stderr ndjson-cat <"$BATS_TEST_TMPDIR/in"
	assert_line --index 0 '{"id":1}'
	assert_equal "${stderr_lines[0]}" "ndjson-cat: warning: <stdin>:5: not a JSON object (got an array)"
	assert_equal "${stderr_lines[1]}" "ndjson-cat: 1 records, 1 bad lines"
}

@test "ndjson: files are read in order and - names stdin" {
	echo '{"n":1}' >"$BATS_TEST_TMPDIR/a"
	echo '{"n":3}' >"$BATS_TEST_TMPDIR/c"
	run -0 --separate-stderr ndjson-cat "$BATS_TEST_TMPDIR/a" - "$BATS_TEST_TMPDIR/c" <<<'{"n":2}'
	assert_output $'{"n":1}\n{"n":2}\n{"n":3}'
}

@test "ndjson: a file that cannot be opened is an error and the next file is still read" {
	echo '{"n":2}' >"$BATS_TEST_TMPDIR/b"
	run -66 --separate-stderr ndjson-cat "$BATS_TEST_TMPDIR/missing" "$BATS_TEST_TMPDIR/b"
	assert_output '{"n":2}'
	assert_equal "${stderr_lines[0]}" "ndjson-cat: error: $BATS_TEST_TMPDIR/missing: No such file or directory"
}

@test "ndjson: a line over the limit is rejected and the following line is read" {
	{
		printf '{"a":"%s"}\n' "$(head -c 300 /dev/zero | tr '\0' x)"
		echo '{"after":true}'
	} >"$BATS_TEST_TMPDIR/in"
	run -65 --separate-stderr ndjson-cat -m 100 "$BATS_TEST_TMPDIR/in"
	assert_line --index 1 '{"after":true}'
	assert_equal "${stderr_lines[0]}" "ndjson-cat: warning: $BATS_TEST_TMPDIR/in:1: line too long (limit 100 bytes)"
	run -0 jq -r '.input.excerpt | length' <<<"${lines[0]}"
	assert_output 100
}

@test "ndjson: a line of exactly the limit is accepted" {
	printf '{"a":"%s"}\n' "$(head -c 92 /dev/zero | tr '\0' x)" >"$BATS_TEST_TMPDIR/in"
	run -0 --separate-stderr ndjson-cat -m 100 "$BATS_TEST_TMPDIR/in"
	assert_equal "${#output}" 100
}

@test "ndjson: the default limit is 1 MiB" {
	# 1 MiB of JSON on one line is accepted, 1 MiB + 1 is not.
	/usr/bin/python3 -c 'import sys; n=1048576-8; sys.stdout.write("{\"a\":\"" + "x"*n + "\"}\n" + "{\"a\":\"" + "x"*(n+1) + "\"}\n")' >"$BATS_TEST_TMPDIR/in"
	run -65 --separate-stderr ndjson-cat "$BATS_TEST_TMPDIR/in"
	assert_equal "${#lines[@]}" 2
	assert_equal "${stderr_lines[0]}" "ndjson-cat: warning: $BATS_TEST_TMPDIR/in:2: line too long (limit 1048576 bytes)"
}

@test "ndjson: memory stays flat for a 64 MiB line and many records" {
	[ -z "${DT_SANITIZED:-}" ] || skip "sanitizer builds use more memory by design"
	{
		head -c $((64 * 1024 * 1024)) /dev/zero | tr '\0' x
		echo
		for _ in $(seq 1 2000); do echo '{"id":1,"text":"some text"}'; done
	} >"$BATS_TEST_TMPDIR/in"
	run -65 --separate-stderr ndjson-cat -r "$BATS_TEST_TMPDIR/in"
	assert_equal "${#lines[@]}" 2001
	kb=$(printf '%s\n' "${stderr_lines[@]}" | awk '/^VmHWM:/ { print $2 }')
	[ "$kb" -lt 16384 ] || fail "peak RSS $kb kB"
}

@test "ndjson: invalid UTF-8 is rejected: overlong, surrogate, above U+10FFFF, truncated" {
	printf '{"a":"\xc0\xaf"}\n{"a":"\xed\xa0\x80"}\n{"a":"\xf4\x90\x80\x80"}\n{"a":"\xe2\x82"}\n{"ok":"\xe2\x82\xac"}\n' >"$BATS_TEST_TMPDIR/in"
	run -65 --separate-stderr ndjson-cat "$BATS_TEST_TMPDIR/in"
	assert_line --index 4 '{"ok":"€"}'
	for i in 0 1 2 3; do
		assert_equal "${stderr_lines[$i]}" "ndjson-cat: warning: $BATS_TEST_TMPDIR/in:$((i + 1)): not valid UTF-8 (byte 7)"
	done
}

@test "ndjson: a NUL byte in a line is invalid JSON, an escaped one is fine" {
	printf '{"a":"x\0y"}\n{"a":"x\\u0000y"}\n' >"$BATS_TEST_TMPDIR/in"
	run -65 --separate-stderr ndjson-cat "$BATS_TEST_TMPDIR/in"
	assert_output --partial '{"a":"x\u0000y"}'
	assert_equal "${stderr_lines[0]}" "ndjson-cat: warning: $BATS_TEST_TMPDIR/in:1: invalid JSON: control character 0x0 near '\"x' (column 7)"
}

@test "ndjson: a write error ends the program with status 74 and one message" {
	run -74 --separate-stderr bash -c 'exec ndjson-cat "$1" >/dev/full' _ "$(fixture ndjson/mixed.ndjson)"
	assert_equal "${stderr_lines[0]}" "ndjson-cat: error: cannot write standard output: No space left on device"
	run grep -c 'cannot write' <<<"$stderr"
	assert_output 1
}

@test "ndjson: a reader that goes away (EPIPE) ends the writer quietly with 141" {
	for _ in $(seq 1 20000); do echo '{"id":1}'; done >"$BATS_TEST_TMPDIR/in"
	bash -c 'ndjson-cat "$1" 2>"$2" | head -n 1 >/dev/null; echo "${PIPESTATUS[0]}" >"$3"' _ \
		"$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/err" "$BATS_TEST_TMPDIR/status"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/status")" 141
	run grep -c 'cannot write' "$BATS_TEST_TMPDIR/err"
	assert_output 0
}
