#!/usr/bin/env bats
# lib/log: one line per diagnostic, levels, JSON format, redaction.

load test_helper/common

@test "log: lines are 'prog: level: message' and levels filter them" {
	run -0 --separate-stderr libcheck log 1 'something odd'
	assert_equal "$stderr" "libcheck: warning: something odd"
	run -0 --separate-stderr libcheck log 3 'details'
	assert_equal "$stderr" ""
	run -0 --separate-stderr libcheck log 3 'details' -v
	assert_equal "$stderr" "libcheck: debug: details"
	run -0 --separate-stderr libcheck log 1 'quiet' -q -q
	assert_equal "$stderr" ""
	DT_LOG_LEVEL=debug run -0 --separate-stderr libcheck log 3 'details'
	assert_equal "$stderr" "libcheck: debug: details"
	DT_LOG_LEVEL=error run -0 --separate-stderr libcheck log 1 'hidden'
	assert_equal "$stderr" ""
}

@test "log: a bad DT_LOG_LEVEL or DT_LOG_FORMAT is a configuration error" {
	DT_LOG_LEVEL=loud run -78 --separate-stderr libcheck log 0 x
	assert_equal "$stderr" "libcheck: error: DT_LOG_LEVEL: 'loud' is not one of error, warn, info, debug, trace"
	DT_LOG_FORMAT=xml run -78 --separate-stderr libcheck log 0 x
	assert_equal "$stderr" "libcheck: error: DT_LOG_FORMAT: 'xml' is not one of text, json"
}

@test "log: DT_LOG_FORMAT=json writes one parseable object per line" {
	DT_LOG_FORMAT=json run -0 --separate-stderr libcheck log 0 $'two\nlines "quoted" \\ tab\there'
	run -0 jq -c '{prog, level, msg}' <<<"$stderr"
	assert_output '{"prog":"libcheck","level":"error","msg":"two lines \"quoted\" \\ tab\there"}'
	DT_LOG_FORMAT=json run -0 --separate-stderr libcheck log 0 x
	[[ $stderr =~ ^\{\"ts\":\"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{12}Z\" ]] || fail "no timestamp: $stderr"
}

@test "log: a message is always one line" {
	run -0 --separate-stderr libcheck log 0 $'a\nb\rc'
	assert_equal "$stderr" "libcheck: error: a b c"
}

@test "log: every configured secret is redacted from every line, whatever the level" {
	export SUPABASE_KEY=eyJhbGciOiJIUzI1NiJ9.service-secret.sig
	export PERPLEXITY_API_KEY=pplx-0123456789abcdef
	export TELEGRAM_BOT_TOKEN=123456789:AAHsecret-token-value
	msg="key=$SUPABASE_KEY pplx=$PERPLEXITY_API_KEY url=https://api.telegram.org/bot$TELEGRAM_BOT_TOKEN/sendMessage"
	for level in 0 1 2 3 4; do
		run -0 --separate-stderr libcheck log "$level" "$msg" -v -v -v
		assert_equal "$stderr" "libcheck: $(echo error warning info debug trace | cut -d' ' -f$((level + 1))): key=*** pplx=*** url=https://api.telegram.org/bot***/sendMessage"
	done
	DT_LOG_FORMAT=json run -0 --separate-stderr libcheck log 0 "$msg"
	refute_output --partial "$SUPABASE_KEY"
	assert_no_secret "$PERPLEXITY_API_KEY" <(echo "$stderr")
	assert_no_secret "$TELEGRAM_BOT_TOKEN" <(echo "$stderr")
	assert_no_secret "$SUPABASE_KEY" <(echo "$stderr")
}

@test "log: Supabase's secret and publishable keys and the legacy JWTs are redacted under every name" {
	export SUPABASE_KEY=sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz
	export SUPABASE_PUBLISHABLE_KEY=sb_publishable_ACJWlzQHlZjBrEguHvfOxg_3BJgxAaH
	export SUPABASE_SERVICE_ROLE_JWT=eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.sig
	export SUPABASE_ANON_KEY=eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.sig
	run -0 --separate-stderr libcheck log 3 "a=$SUPABASE_KEY b=$SUPABASE_PUBLISHABLE_KEY c=$SUPABASE_SERVICE_ROLE_JWT d=$SUPABASE_ANON_KEY" -v -v -v
	assert_equal "$stderr" "libcheck: debug: a=*** b=*** c=*** d=***"
}

@test "log: a secret read from a _FILE is redacted too, and cut lines leave no prefix of it" {
	printf 'file-held-secret-0123456789\n' >"$BATS_TEST_TMPDIR/k"
	export PERPLEXITY_API_KEY_FILE=$BATS_TEST_TMPDIR/k
	run -0 --separate-stderr libcheck log 0 "x file-held-secret-0123456789 y"
	assert_equal "$stderr" "libcheck: error: x *** y"
	# The secret straddles the 4096-byte cut of a long message.
	long=$(head -c 4080 /dev/zero | tr '\0' a)
	run -0 --separate-stderr libcheck log 0 "${long}file-held-secret-0123456789"
	refute [ -z "$stderr" ]
	[[ $stderr != *file-held* ]] || fail "prefix of secret leaked"
}

@test "log: users' text appears only at debug level" {
	echo '{"id":1,"text":"мой личный текст"}' >"$BATS_TEST_TMPDIR/in"
	run -0 --separate-stderr dt-analyze --dry-run "$BATS_TEST_TMPDIR/in"
	[[ $stderr != *личный* ]] || fail "$stderr"
	run -0 --separate-stderr dt-analyze --dry-run -v "$BATS_TEST_TMPDIR/in"
	grep -qxF "dt-analyze: debug: text: мой личный текст" <<<"$stderr" ||
		fail "$stderr"
}
