#!/usr/bin/env bash
# deploy/package_version.cmake against broken changelogs and pyproject files: each is refused with
# a message naming the file and what is wrong; the repository's own files pass.
# usage: package_version_test.sh SOURCE_DIR PROJECT_VERSION
set -euo pipefail
src=$1 version=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
check() {  # CHANGELOG PYPROJECT
  cmake -DPROJECT_VERSION="$version" -DCHANGELOG="$1" -DPYPROJECT="$2" -P "$src/deploy/package_version.cmake" 2>&1
}
good_changelog=$src/deploy/debian/changelog good_pyproject=$src/client/python/pyproject.toml

out=$(check "$good_changelog" "$good_pyproject") || fail "the repository's files are refused: $out"
[[ $out =~ ^revision\ [0-9A-Za-z.+~]+$ ]] || fail "unexpected output: $out"
echo "ok: deploy/debian/changelog and pyproject.toml agree with $version ($out)"

refused() {  # NAME EXPECTED-TEXT CHANGELOG PYPROJECT
  local out
  if out=$(check "$3" "$4"); then fail "$1: accepted ($out)"; fi
  grep -qF -- "$2" <<<"$out" || fail "$1: expected \"$2\" in: $out"
  echo "ok: $1 refused: $(grep -m1 -F -- "$2" <<<"$out" | sed 's/^ *//')"
}
cl() { printf '%b' "$1" >"$tmp/changelog.$2"; echo "$tmp/changelog.$2"; }
py() { printf '%b' "$1" >"$tmp/pyproject.$2"; echo "$tmp/pyproject.$2"; }

refused "missing changelog" "cannot be read" "$tmp/nope" "$good_pyproject"
refused "changelog is a directory" "cannot be read" "$tmp" "$good_pyproject"
refused "empty changelog" "the first line must be" "$(cl '' empty)" "$good_pyproject"
refused "changelog of garbage" "the first line must be" "$(cl '\x00\xff\xfe garbage\n(((' garbage)" "$good_pyproject"
refused "changelog of random bytes" "the first line must be" \
  "$(head -c 4096 /dev/urandom >"$tmp/changelog.random"; echo "$tmp/changelog.random")" "$good_pyproject"
refused "native version" "non-native" "$(cl "binds ($version) unstable; urgency=medium\n" native)" "$good_pyproject"
refused "other source name" "the first line must be" "$(cl "bindsd ($version-1) unstable; urgency=medium\n" name)" "$good_pyproject"
refused "older entry on top" "add an entry" "$(cl "binds (0.0.9-1) unstable; urgency=medium\n" old)" "$good_pyproject"
refused "missing pyproject" "cannot be read" "$good_changelog" "$tmp/nope"
refused "pyproject without a version" "found 0" "$good_changelog" "$(py '[project]\nname = "binds"\n' none)"
refused "pyproject with two versions" "found 2" "$good_changelog" "$(py 'version = "1"\nversion = "2"\n' two)"
refused "pyproject of another version" "must agree" "$good_changelog" "$(py 'version = "9.9.9"\n' other)"
