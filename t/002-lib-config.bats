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
	X_RATIO=0.25 run -0 libcheck opts
	assert_output --partial " ratio=0.25 "
	X_RATIO=nan run -78 --separate-stderr libcheck opts
	assert_equal "$stderr" "libcheck: error: X_RATIO: 'nan' is not a number (0 to 1)"
	X_RATIO=1.5 run -78 --separate-stderr libcheck opts
	assert_equal "$stderr" "libcheck: error: X_RATIO: 1.5 is out of range (0 to 1)"
	for v in 1 true YES on; do
		X_WEB=$v run -0 libcheck opts
		assert_output --partial " web=1 "
	done
	for v in 0 false no OFF; do
		X_WEB=$v run -0 libcheck opts
		assert_output --partial " web=0 "
	done
	X_WEB=maybe run -78 --separate-stderr libcheck opts
	assert_equal "$stderr" "libcheck: error: X_WEB: 'maybe' is not a boolean (1/0, true/false, yes/no, on/off)"
}

@test "config: an unset or empty variable takes the default; a set one is checked" {
	run -0 libcheck opts
	assert_output --partial "count=5 "
	X_COUNT= run -0 libcheck opts
	assert_output --partial "count=5 "
	X_COUNT=7 run -0 libcheck opts
	assert_output --partial "count=7 "
	X_COUNT=-1 run -78 --separate-stderr libcheck opts
	assert_equal "$stderr" "libcheck: error: X_COUNT: -1 is out of range (1 to 10)"
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

@test "config table: defaults, then the environment, then flags; operands stay" {
	run -0 libcheck opts
	assert_output "count=5 ratio=0.5 web=0 lang=0 name=(null) max_line=1048576 key=unset dry=0 check=0 args=0"
	X_COUNT=7 X_RATIO=0.25 X_WEB=yes X_LANG=de X_NAME=x DT_MAX_LINE=2048 X_KEY=abcdef \
		run -0 libcheck opts a b
	assert_output "count=7 ratio=0.25 web=1 lang=2 name=x max_line=2048 key=set dry=0 check=0 args=2"
	X_COUNT=7 X_WEB=0 X_NAME=x run -0 libcheck opts -c 3 -w --name=y -n -L 4096 --lang ru --ratio 1 a
	assert_output "count=3 ratio=1 web=1 lang=1 name=y max_line=4096 key=unset dry=1 check=0 args=1"
}

@test "config table: a bad variable is 78, a bad flag 64 with a hint, each named on one line" {
	X_COUNT=11 X_LANG=fr run -78 --separate-stderr libcheck opts
	assert_equal "$stderr" "libcheck: error: X_COUNT: 11 is out of range (1 to 10)
libcheck: error: X_LANG: 'fr' is not one of en, ru, de"
	# A variable is checked also when a flag overrides it.
	X_COUNT=x run -78 --separate-stderr libcheck opts -c 3
	assert_equal "$stderr" "libcheck: error: X_COUNT: 'x' is not a whole number (1 to 10)"
	run -64 --separate-stderr libcheck opts --ratio 2
	assert_equal "$stderr" "libcheck: error: --ratio: 2 is out of range (0 to 1)
Try 'libcheck --help'."
	run -64 --separate-stderr libcheck opts -z
	assert_equal "$stderr" "libcheck: invalid option -- 'z'
Try 'libcheck --help'."
	run -64 --separate-stderr libcheck opts --lang
	assert_equal "$stderr" "libcheck: option '--lang' requires an argument
Try 'libcheck --help'."
	# A secret never comes from a flag; it is read with its _FILE.
	X_KEY=abc X_KEY_FILE=/nonexistent run -78 --separate-stderr libcheck opts
	assert_equal "$stderr" "libcheck: error: X_KEY and X_KEY_FILE are both set; set only one"
}

@test "config table: --check-config makes every bad value 78 and, with -v, shows where each came from" {
	run -78 --separate-stderr libcheck opts --check-config -c 0
	assert_equal "$stderr" "libcheck: error: --count: 0 is out of range (1 to 10)"
	run -64 --separate-stderr libcheck opts --check-config -z
	X_LANG=ru X_KEY=s3cr3t-value run -0 --separate-stderr libcheck opts --check-config -v -c 2
	assert_output "count=2 ratio=0.5 web=0 lang=1 name=(null) max_line=1048576 key=set dry=0 check=1 args=0"
	assert_equal "$stderr" "libcheck: debug: X_RATIO = 0.5 (default)
libcheck: debug: X_WEB = 0 (default)
libcheck: debug: X_LANG = ru (environment)
libcheck: debug: X_NAME: not set
libcheck: debug: DT_MAX_LINE = 1048576 (default)
libcheck: debug: X_KEY: set
libcheck: debug: X_LIMIT: not set
libcheck: debug: --count = 2 (flag)"
	# Without -v, or without --check-config, nothing is shown.
	run -0 --separate-stderr libcheck opts --check-config
	assert_equal "$stderr" ""
	run -0 --separate-stderr libcheck opts -v
	assert_equal "$stderr" ""
}

@test "config table: --help is written from the table, sorted, with each variable, default and range" {
	run -0 --separate-stderr libcheck opts --help
	assert_equal "$stderr" ""
	assert_output "usage: libcheck opts [option ...]

      --check-config       check the settings (and read the secret files) and
                           exit: read no input, connect to nothing; print
                           nothing and exit 0 when valid, else one line per
                           problem and exit 78 (with -v: each setting's value
                           and where it came from)
  -c, --count n            how many (X_COUNT, default 5, 1 to 10)
  -h, --help               print this help and exit
  -L, --max-line bytes     longest input line in bytes (DT_MAX_LINE, default
                           1048576, 1024 to 1073741824)
      --lang en|ru|de      the language (X_LANG, default en)
  -n, --dry-run            change nothing
  -q, --quiet              log less (repeatable)
      --ratio r            a share (X_RATIO, default 0.5, 0 to 1)
  -t, --name name          a name (X_NAME)
  -V, --version            print the version and exit
  -v, --verbose            log more (repeatable: -vv traces HTTP)
  -w, --web                search the web (X_WEB, default 0)

Environment:
  X_KEY[_FILE]             a secret
  X_LIMIT                  a variable without a flag nor a default (1 to 10)

The end."
	# Bad values do not stand in the way of --help.
	X_COUNT=0 run -0 libcheck opts -h
	assert_line --index 0 "usage: libcheck opts [option ...]"
	run -0 libcheck opts -V
	assert_output "libcheck 0.1.0"
}

@test "config table: a setting several programs read has one default and range" {
	run -0 libcheck shared TIMEOUT_SECONDS
	assert_output 300
	TIMEOUT_SECONDS=0 run -78 --separate-stderr libcheck shared TIMEOUT_SECONDS
	assert_equal "$stderr" "libcheck: error: TIMEOUT_SECONDS: 0 is out of range (1 to 86400)"
	DT_SHARDS=4 run -0 libcheck shared DT_SHARDS
	assert_output 4
}

@test "config table: a shared setting lib/ reads itself is listed and shown, not checked twice" {
	run -0 --separate-stderr dt-store --help
	assert_line '  DT_SUPABASE_TRIES        tries of a Supabase request through an outage'
	assert_line '  SUPABASE_KEY[_FILE]      the project'"'"'s secret key, sb_secret_... (or the'
	SUPABASE_KEY=sb_secret_shown-never-1234 DT_SUPABASE_TRIES=7 \
		run -0 --separate-stderr dt-store --check-config -n -v
	assert_equal "$(grep -c 'DT_SUPABASE_TRIES' <<<"$stderr")" 1
	grep -qxF 'dt-store: debug: DT_SUPABASE_TRIES = 7 (environment)' <<<"$stderr" || fail "$stderr"
	grep -qxF 'dt-store: debug: SUPABASE_KEY: set' <<<"$stderr" || fail "$stderr"
	grep -qxF 'dt-store: debug: DT_SUPABASE_BACKOFF_MS = 500 (default)' <<<"$stderr" || fail "$stderr"
	[[ $stderr != *shown-never* ]] || fail "the key was shown"
	# Checked once, by lib/supabase.c.
	SUPABASE_URL=https://x.supabase.co SUPABASE_KEY=sb_secret_x DT_SUPABASE_TRIES=0 \
		run -78 --separate-stderr dt-store --check-config
	assert_equal "$stderr" "dt-store: error: DT_SUPABASE_TRIES: 0 is out of range (1 to 100)"
}
