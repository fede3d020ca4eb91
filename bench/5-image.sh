#!/usr/bin/env bash
# bench/5-image.sh: the container image's size.  Builds the image
# (tools/image build, as t/602-deploy-image.bats does: root, podman, runc
# and debootstrap for the base where no registry is reachable) and reads
# its size (tools/image size).  Target at most 175 MB: the 159 MB
# docs/deploy.md accounts for (Debian slim 82 MB, GNU parallel's Perl
# 47 MB, libcurl and its libraries, dt's programs under 1 MB) plus 10 %,
# so that a new dependency is a decision, not an accident.  Where the
# image cannot be built the figure says why it was skipped; a skipped
# figure counts as missed (the issue asks for the image size).
# DT_IMAGE_BASE (default debootstrap) as for tools/image.
# shellcheck source=bench/common.bash
. "$(dirname "$0")/common.bash"

limit_mb=175
name="container image size"
target="<= $limit_mb MB"

skip() {
	say "skipped: $1"
	figure "$name" null MB "$target" false "$(jq -nc --arg s "$1" '{skipped: $s}')"
	exit 0
}

for f in podman runc debootstrap; do
	command -v "$f" >/dev/null || skip "$f not installed (tools/deps install)"
done
[ "$(id -u)" -eq 0 ] || skip "needs root (debootstrap and rootful podman)"

say "building the image (tools/image build)"
DT_IMAGE_BASE=${DT_IMAGE_BASE:-debootstrap} "$root/tools/image" build \
	>"$work/build.log" 2>&1 ||
	skip "tools/image build failed: $(grep -v '^$' "$work/build.log" | tail -1)"
bytes=$("$root/tools/image" size 2>"$work/size.err") ||
	skip "tools/image size failed: $(tail -1 "$work/size.err")"
mb=$(calc 'int(b / 100000 + 0.5) / 10' b="$bytes")
say "$("$root/tools/image" name): $bytes bytes"
figure "$name" "$mb" MB "$target" "$(holds 'b <= l * 1000000' b="$bytes" l="$limit_mb")" \
	"{\"bytes\":$bytes}"
