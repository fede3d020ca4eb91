#!/usr/bin/env bats
# t/stack/up and t/stack/down: the local stack itself.

load test_helper/common

# alive DIR: prints the pids of processes whose command line names DIR.
alive() {
	local p
	for p in /proc/[0-9]*; do
		tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF -- "$1/" && echo "${p#/proc/}"
	done
	return 0
}

@test "stack: --help prints the usage and exits 0" {
	run -0 --separate-stderr "$DT_ROOT/t/stack/up" --help
	assert_line --index 0 'usage: t/stack/up [-h] [-d dir] [-m count]'
	assert_equal "$stderr" ''
	run -0 "$DT_ROOT/t/stack/down" --help
	assert_line --index 0 'usage: t/stack/down [-hkq] [dir]'
}

@test "stack: a bad option is a usage error" {
	run -64 --separate-stderr "$DT_ROOT/t/stack/up" --frobnicate
	assert_equal "$stderr" "t/stack/up: unknown option: --frobnicate
Try 't/stack/up --help'."
	assert_equal "$output" ''
}

@test "stack: up prints exports that reach PostgreSQL and the data API; down stops it all" {
	dir=$(mktemp -u /tmp/dt-stack-test.XXXXXX)
	"$DT_ROOT/t/stack/up" -d "$dir" -m 3 >"$BATS_TEST_TMPDIR/env" 3>&-
	run -0 cut -d= -f1 "$BATS_TEST_TMPDIR/env"
	assert_output "export DT_STACK_DIR
export SUPABASE_URL
export SUPABASE_KEY
export SUPABASE_PUBLISHABLE_KEY
export SUPABASE_SERVICE_ROLE_JWT
export SUPABASE_ANON_KEY
export SUPABASE_JWT_SECRET
export PGHOST
export PERPLEXITY_BASE_URL
export PERPLEXITY_API_KEY
export TELEGRAM_API_URL
export TELEGRAM_BOT_TOKEN
export TELEGRAM_CHAT_ID"
	. "$BATS_TEST_TMPDIR/env"
	assert_equal "$DT_STACK_DIR" "$dir"
	assert_equal "$PGHOST" "$dir/run"
	[[ $TELEGRAM_BOT_TOKEN =~ ^[1-9][0-9]{9}:AAH[A-Za-z0-9_-]{32}$ ]]
	[[ $TELEGRAM_CHAT_ID =~ ^-100[1-9][0-9]{9}$ ]]
	[[ $SUPABASE_URL =~ ^http://127\.0\.0\.1:[0-9]+$ ]]
	# Supabase's new API keys by default; the legacy JWTs beside them.
	[[ $SUPABASE_KEY =~ ^sb_secret_[A-Za-z0-9_-]{22}_[A-Za-z0-9_-]{8}$ ]]
	[[ $SUPABASE_PUBLISHABLE_KEY =~ ^sb_publishable_[A-Za-z0-9_-]{22}_[A-Za-z0-9_-]{8}$ ]]
	[[ $SUPABASE_SERVICE_ROLE_JWT =~ ^eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$ ]]
	[[ $SUPABASE_ANON_KEY =~ ^eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$ ]]

	run -0 psql -XAtc 'select count(*) from public.messages'
	assert_output 3
	run -0 curl -sS -H "apikey: $SUPABASE_KEY" "$SUPABASE_URL/rest/v1/messages?select=id&order=id"
	assert_output '[{"id":1}, 
 {"id":2}, 
 {"id":3}]'
	run -0 curl -sS "$SUPABASE_URL/_standin/health"
	assert_output '{"ok": true, "name": "supabase"}'

	run -0 alive "$dir"
	[ "${#lines[@]}" -ge 2 ]
	run -0 "$DT_ROOT/t/stack/down" "$dir"
	run -0 alive "$dir"
	assert_output ''
	assert_not_exist "$dir"
}

@test "stack: a failure halfway through up leaves no process and no directory" {
	mkdir "$BATS_TEST_TMPDIR/migrations"
	echo 'create table broken (;' >"$BATS_TEST_TMPDIR/migrations/20261128000000_broken.sql"
	dir=$(mktemp -u /tmp/dt-stack-test.XXXXXX)
	DT_STACK_MIGRATIONS=$BATS_TEST_TMPDIR/migrations run -1 --separate-stderr \
		"$DT_ROOT/t/stack/up" -d "$dir" 3>&-
	assert_equal "$output" ''
	[[ $stderr == *'syntax error at or near ";"'* ]]
	[[ $stderr == *'t/stack/up: psql -1 -f '*'/migrations/20261128000000_broken.sql'*' failed'* ]]
	run -0 alive "$dir"
	assert_output ''
	assert_not_exist "$dir"
}

@test "stack: as root, a stack under a private directory works, and down removes all of it" {
	[ "$(id -u)" -eq 0 ] || skip "only root runs PostgreSQL as another user"
	private=$BATS_TEST_TMPDIR/private
	mkdir -m 700 "$private"
	dir=$private/stack
	"$DT_ROOT/t/stack/up" -d "$dir" -m 2 >"$BATS_TEST_TMPDIR/env" 3>&-
	. "$BATS_TEST_TMPDIR/env"
	# The postgres user cannot enter $private: the cluster went elsewhere.
	run -0 cat "$dir/pgdir"
	pgdir=$output
	[[ $pgdir == /tmp/dt-pg.* ]]
	assert_equal "$PGHOST" "$pgdir/run"
	run -0 psql -XAtc 'select count(*) from public.messages'
	assert_output 2
	run -0 curl -sS -H "apikey: $SUPABASE_KEY" "$SUPABASE_URL/rest/v1/messages?select=id&order=id&limit=1"
	assert_output '[{"id":1}]'
	run -0 alive "$pgdir"
	[ "${#lines[@]}" -ge 1 ]

	run -0 "$DT_ROOT/t/stack/down" "$dir"
	run -0 alive "$pgdir"
	assert_output ''
	run -0 alive "$dir"
	assert_output ''
	assert_not_exist "$dir"
	assert_not_exist "$pgdir"
}

@test "stack: down without a stack says so" {
	run -1 --separate-stderr "$DT_ROOT/t/stack/down"
	assert_equal "$stderr" "t/stack/down: no stack at '' (set DT_STACK_DIR)"
	run -0 "$DT_ROOT/t/stack/down" -q "$BATS_TEST_TMPDIR/none"
}
