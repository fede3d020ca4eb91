#!/usr/bin/env bats
# lib/config: environment and flag values, strictly parsed.

load test_helper/common

@test "config: whole numbers are parsed strictly with one error naming the value" {
	run -0 libcheck ll BATCH_SIZE 100 1 1000
	assert_output 100
	run -78 --separate-stderr libcheck ll BATCH_SIZE 12x 1 1000
	assert_equal "$stderr" "libcheck: error: BATCH_SIZE: '12x' is not a whole number (1 to 1000)"
	run -78 --separate-stderr libcheck ll BATCH_SIZE ' 5' 1 1000
	assert_equal "$stderr" "libcheck: error: BATCH_SIZE: ' 5' is not a whole number (1 to 1000)"
	run -78 --separate-stderr libcheck ll BATCH_SIZE '' 1 1000
	assert_equal "$stderr" "libcheck: error: BATCH_SIZE: '' is not a whole number (1 to 1000)"
	run -78 --separate-stderr libcheck ll BATCH_SIZE 0 1 1000
	assert_equal "$stderr" "libcheck: error: BATCH_SIZE: 0 is out of range (1 to 1000)"
	run -78 --separate-stderr libcheck ll BATCH_SIZE 99999999999999999999 1 1000
	assert_equal "$stderr" "libcheck: error: BATCH_SIZE: 99999999999999999999 is out of range (1 to 1000)"
}

@test "config: fractions and booleans are parsed strictly" {
	run -0 libcheck double DT_BUDGET_USD 2.5 0 1000
	assert_output 2.5
	run -78 --separate-stderr libcheck double DT_BUDGET_USD nan 0 1000
	assert_equal "$stderr" "libcheck: error: DT_BUDGET_USD: 'nan' is not a number (0 to 1000)"
	run -78 --separate-stderr libcheck double DT_BUDGET_USD 1001 0 1000
	assert_equal "$stderr" "libcheck: error: DT_BUDGET_USD: 1001 is out of range (0 to 1000)"
	for v in 1 true YES on; do
		run -0 libcheck bool X "$v"
		assert_output 1
	done
	for v in 0 false no OFF; do
		run -0 libcheck bool X "$v"
		assert_output 0
	done
	run -78 --separate-stderr libcheck bool DT_WEB_SEARCH maybe
	assert_equal "$stderr" "libcheck: error: DT_WEB_SEARCH: 'maybe' is not a boolean (1/0, true/false, yes/no, on/off)"
}

@test "config: an unset or empty variable takes the default; a set one is checked" {
	run -0 libcheck env-ll BATCH_SIZE 100 1 1000
	assert_output 100
	BATCH_SIZE= run -0 libcheck env-ll BATCH_SIZE 100 1 1000
	assert_output 100
	BATCH_SIZE=7 run -0 libcheck env-ll BATCH_SIZE 100 1 1000
	assert_output 7
	BATCH_SIZE=-1 run -78 --separate-stderr libcheck env-ll BATCH_SIZE 100 1 1000
	assert_equal "$stderr" "libcheck: error: BATCH_SIZE: -1 is out of range (1 to 1000)"
}

@test "config: a secret comes from its variable or from NAME_FILE with the newline trimmed" {
	SUPABASE_KEY=abcdefgh run -0 --separate-stderr libcheck secret SUPABASE_KEY
	assert_output "8 bytes"
	printf 'file-secret-1\n' >"$BATS_TEST_TMPDIR/k"
	SUPABASE_KEY_FILE=$BATS_TEST_TMPDIR/k run -0 --separate-stderr libcheck secret SUPABASE_KEY
	assert_output "13 bytes"
	printf 'file-secret-1\r\n' >"$BATS_TEST_TMPDIR/k"
	SUPABASE_KEY_FILE=$BATS_TEST_TMPDIR/k run -0 --separate-stderr libcheck secret SUPABASE_KEY
	assert_output "13 bytes"
	assert_equal "$stderr" "libcheck: info: the secret is ***"
	run -0 libcheck secret SUPABASE_KEY
	assert_output unset
}

@test "config: bad secret files fail with the variable and path, never the contents" {
	printf 'abc-secret\n' >"$BATS_TEST_TMPDIR/k"
	SUPABASE_KEY=zzzz-other SUPABASE_KEY_FILE=$BATS_TEST_TMPDIR/k run -78 --separate-stderr libcheck secret SUPABASE_KEY
	assert_equal "$stderr" "libcheck: error: SUPABASE_KEY and SUPABASE_KEY_FILE are both set; set only one"
	SUPABASE_KEY_FILE=$BATS_TEST_TMPDIR/none run -78 --separate-stderr libcheck secret SUPABASE_KEY
	assert_equal "$stderr" "libcheck: error: SUPABASE_KEY_FILE: cannot read $BATS_TEST_TMPDIR/none: No such file or directory"
	: >"$BATS_TEST_TMPDIR/empty"
	SUPABASE_KEY_FILE=$BATS_TEST_TMPDIR/empty run -78 --separate-stderr libcheck secret SUPABASE_KEY
	assert_equal "$stderr" "libcheck: error: SUPABASE_KEY_FILE: $BATS_TEST_TMPDIR/empty: file is empty"
	printf 'line-one-secret\nline-two-secret\n' >"$BATS_TEST_TMPDIR/two"
	SUPABASE_KEY_FILE=$BATS_TEST_TMPDIR/two run -78 --separate-stderr libcheck secret SUPABASE_KEY
	assert_equal "$stderr" "libcheck: error: SUPABASE_KEY_FILE: $BATS_TEST_TMPDIR/two: file holds more than one line"
}

@test "config: a key or token with white space or a control character is refused, naming the variable, never the value" {
	SUPABASE_KEY=$'secret-value-1\n' run -78 --separate-stderr libcheck secret SUPABASE_KEY
	assert_equal "$stderr" "libcheck: error: SUPABASE_KEY: the value contains a line break (byte 15); remove it"
	PERPLEXITY_API_KEY='pplx-abc secret' run -78 --separate-stderr libcheck secret PERPLEXITY_API_KEY
	assert_equal "$stderr" "libcheck: error: PERPLEXITY_API_KEY: the value contains white space (byte 9); remove it"
	TELEGRAM_BOT_TOKEN=$'123:tok\x01en' run -78 --separate-stderr libcheck secret TELEGRAM_BOT_TOKEN
	assert_equal "$stderr" "libcheck: error: TELEGRAM_BOT_TOKEN: the value contains a control character (byte 8); remove it"
	# A file's one trailing newline is trimmed; what is left must be clean.
	printf 'file-secret-2 \n' >"$BATS_TEST_TMPDIR/k"
	SUPABASE_KEY_FILE=$BATS_TEST_TMPDIR/k run -78 --separate-stderr libcheck secret SUPABASE_KEY
	assert_equal "$stderr" "libcheck: error: SUPABASE_KEY_FILE: the value contains white space (byte 14); remove it"
	printf '\tfile-secret-2' >"$BATS_TEST_TMPDIR/k"
	SUPABASE_KEY_FILE=$BATS_TEST_TMPDIR/k run -78 --separate-stderr libcheck secret SUPABASE_KEY
	assert_equal "$stderr" "libcheck: error: SUPABASE_KEY_FILE: the value contains white space (byte 1); remove it"
	assert_equal "$output" ""
}

@test "config: exit statuses are ranked by severity" {
	run -0 libcheck worse 0 1
	assert_output 1
	run -0 libcheck worse 65 75
	assert_output 75
	run -0 libcheck worse 69 75
	assert_output 69
	run -0 libcheck worse 78 64
	assert_output 78
	run -0 libcheck worse 141 0
	assert_output 141
	run -0 libcheck worse 1 141
	assert_output 1
	run -0 libcheck worse 2 69
	assert_output 2
}

@test "config: the scripts rank exit statuses as the programs do" {
	local a b c
	for a in 0 1 2 64 65 69 74 75 78 137 141; do
		for b in 0 1 2 64 65 69 74 75 78 137 141; do
			run -0 libcheck worse "$a" "$b"
			c=$output
			run -0 bash -c '. "$1" && dt_exit_worst "$2" "$3"' x \
				"$DT_BUILD/share/dt/log.sh" "$a" "$b"
			assert_equal "$output" "$c"
		done
	done
}

@test "config: the scripts take the ranking from exit.def beside log.sh" {
	local d=$BATS_TEST_TMPDIR/share
	mkdir "$d"
	cp "$DT_BUILD/share/dt/log.sh" "$d/"
	printf 'DT_SEVERITY(0)\nDT_SEVERITY(-1)\nDT_SEVERITY(78)\n' >"$d/exit.def"
	run -0 bash -c '. "$1" && dt_exit_worst 78 0 && dt_exit_worst 78 2' x "$d/log.sh"
	assert_output $'0\n2'
	rm "$d/exit.def"
	run -0 --separate-stderr bash -c '. "$1" && dt_exit_worst 0 1' x "$d/log.sh"
	assert_output 78
	assert_equal "$stderr" "dt_exit_worst: cannot read $d/exit.def"
}
