#!/bin/bash
# End-to-end: `fulcrum image import/ls/rm` on the demo image, as a user runs them.
# usage: image_e2e_test.sh FULCRUM_BIN DEMO_TARBALL
set -u
fulcrum=$1 demo=$2
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

out=$("$fulcrum" image import "$demo" --root "$root" 2>&1) || fail "import: $out"
echo "$out"
grep -q '^imported fulcrum.dev/busybox:demo (sha256:' <<<"$out" || fail "import output: $out"

out=$("$fulcrum" image ls --root "$root" 2>&1) || fail "ls: $out"
echo "$out"
grep -q '^REFERENCE' <<<"$out" || fail "ls header: $out"
grep -q '^fulcrum.dev/busybox:demo .* linux/' <<<"$out" || fail "ls lacks the demo image: $out"
ls "$root"/images/layers/*/bin/busybox >/dev/null || fail "layer not unpacked"

# Importing again is idempotent; a bad file is refused with the reason, and changes nothing.
"$fulcrum" image import "$demo" --root "$root" >/dev/null || fail "re-import"
head -c 3000 "$demo" >"$root/truncated.tar"
out=$("$fulcrum" image import "$root/truncated.tar" --root "$root" 2>&1) && fail "truncated import succeeded"
grep -q 'truncated' <<<"$out" || fail "truncated import message: $out"
out=$("$fulcrum" image rm nosuch:image --root "$root" 2>&1) && fail "rm of a missing image succeeded"
grep -q 'not found' <<<"$out" || fail "rm message: $out"

out=$("$fulcrum" image rm fulcrum.dev/busybox:demo --root "$root" 2>&1) || fail "rm: $out"
echo "$out"
out=$("$fulcrum" image ls --root "$root" 2>&1) || fail "ls after rm: $out"
grep -q 'busybox' <<<"$out" && fail "image still listed after rm: $out"
[ -z "$(ls -A "$root/images/layers")" ] || fail "layers left after rm"
[ -z "$(ls -A "$root/images/blobs/sha256")" ] || fail "blobs left after rm"
echo PASS
