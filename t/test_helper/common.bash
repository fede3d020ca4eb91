# Loaded by every t/*.bats file: a fixed, hermetic environment.
#
#   load test_helper/common
#
# PATH has the build under test first (DT_BUILD, default build/), then
# t/bin, then the system.  HOME is the test's own temp dir.  Inherited
# configuration (DT_*, SUPABASE_*, PERPLEXITY_*, TELEGRAM_* and the seed
# variables) is cleared so a developer's shell cannot change a result.

DT_ROOT=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
export DT_ROOT
: "${DT_BUILD:=$DT_ROOT/build}"
export DT_BUILD

bats_require_minimum_version 1.5.0

bats_load_library bats-support
bats_load_library bats-assert
bats_load_library bats-file

dt_clean_env() {
	local v
	for v in $(compgen -e); do
		case $v in
		DT_ROOT | DT_BUILD | DT_BINDIR | DT_SANITIZED | DT_STACK_CACHE) ;;
		DT_* | SUPABASE_* | PERPLEXITY_* | TELEGRAM_* | PG* | \
			BATCH_SIZE | MAX_WORKERS | TIMEOUT_SECONDS)
			unset "$v" ;;
		esac
	done
}
dt_clean_env

# DT_BINDIR is set by t/run when the programs are wrapped (DEBUGGER).
PATH="${DT_BINDIR:-$DT_BUILD/bin}:$DT_BUILD/t:$DT_ROOT/t/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
export PATH

# unwrapped: true when the programs run as they are, not under t/run's
# DEBUGGER (valgrind makes them many times slower and bigger), so that an
# upper bound on time or memory means something.
unwrapped() {
	[ -z "${DT_BINDIR:-}" ]
}

export LC_ALL=C.UTF-8
export TZ=UTC

# Every test gets its own HOME and TMPDIR, both removed with the test's
# directory: a run the test kills cannot remove its own temporary files.
dt_common_setup() {
	export HOME="$BATS_TEST_TMPDIR/home" TMPDIR="$BATS_TEST_TMPDIR/tmp"
	mkdir -p "$HOME" "$TMPDIR"
}

setup() {
	dt_common_setup
}

# fixture NAME: the path of t/fixtures/NAME.
fixture() {
	printf '%s\n' "$DT_ROOT/t/fixtures/$1"
}

# assert_no_secret VALUE FILE...: fails if VALUE occurs in any FILE.
assert_no_secret() {
	local secret=$1 f
	shift
	[ -n "$secret" ] || fail "assert_no_secret: empty secret"
	for f in "$@"; do
		if grep -qF -- "$secret" "$f"; then
			fail "secret found in $f"
		fi
	done
}
