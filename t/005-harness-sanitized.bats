#!/usr/bin/env bats
# t/run --sanitized: a sanitizer report fails the run even when the test
# that ran the program ignored its exit status; a leak check cut short by
# SIGKILL is listed and does not.  Each case runs t/run on a bats file of
# its own, against programs built here with the sanitizer build's compiler.

load test_helper/common

setup() {
	dt_common_setup
	command -v clang >/dev/null || skip "clang not installed (make deps)"
	dir=$BATS_TEST_TMPDIR
	mkdir -p "$dir/build/bin"
}

# cc_san NAME SOURCE: a program built as make asan builds the stages.
cc_san() {
	printf '%s\n' "$2" >"$dir/$1.c"
	clang -fsanitize=address,undefined -fno-sanitize-recover=undefined -g \
		-o "$dir/build/bin/$1" "$dir/$1.c"
}

# inner BODY: a bats file with one test whose body is BODY.
inner() {
	printf '@test "inner" {\n%s\n}\n' "$1" >"$dir/inner.bats"
}

sanitized_run() {
	run --separate-stderr "$DT_ROOT/t/run" --jobs 1 --build "$dir/build" \
		--sanitized "$dir/inner.bats"
}

@test "t/run --sanitized: an UBSan report fails the run though the test passed" {
	cc_san ub '#include <limits.h>
int main(int argc, char **argv) { int x = INT_MAX; (void)argv; return (x + argc) & 1; }'
	inner "	run $dir/build/bin/ub"
	sanitized_run
	assert_equal "$status" 1
	assert_line 'bats: 1 passed, 0 failed, 0 skipped'
	[[ $stderr == *"runtime error: signed integer overflow"* ]] || fail "no UBSan report in: $stderr"
	[[ $stderr == *"t/run:   ubsan.ub."*": "*"runtime error"* ]] || fail "no summary line in: $stderr"
}

@test "t/run --sanitized: a leak report fails the run though the test passed" {
	cc_san leak '#include <stdlib.h>
int main(void) { char *volatile p = malloc(10); p = 0; return 0; }'
	inner "	run $dir/build/bin/leak"
	sanitized_run
	assert_equal "$status" 1
	[[ $stderr == *"ERROR: LeakSanitizer: detected memory leaks"* ]] || fail "no leak report in: $stderr"
}

@test "t/run --sanitized: a leak check cut short by SIGKILL fails nothing, and is listed" {
	# What the leak check's tracer leaves when its process is killed under
	# it: its one line, or nothing at all.
	inner '	d=${ASAN_OPTIONS#log_path=}; d=${d%%/asan:*}
	printf "==dt-store==4243==Unable to get registers from thread 4242.\n" >"$d/ubsan.dt-store.4242"
	: >"$d/ubsan.dt-fetch.4244"'
	sanitized_run
	assert_equal "$status" 0
	[[ $stderr == *"ubsan.dt-store.4242: a leak check cut short by SIGKILL, no finding"* ]] || fail "$stderr"
	[[ $stderr == *"ubsan.dt-fetch.4244: a leak check cut short by SIGKILL, no finding"* ]] || fail "$stderr"
	# The same line beside anything else is a finding.
	inner '	d=${ASAN_OPTIONS#log_path=}; d=${d%%/asan:*}
	printf "==dt-store==4243==Unable to get registers from thread 4242.\nSUMMARY: AddressSanitizer: 10 byte(s) leaked\n" >"$d/ubsan.dt-store.4242"'
	sanitized_run
	assert_equal "$status" 1
}
