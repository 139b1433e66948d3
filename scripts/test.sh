#!/usr/bin/env bash
# Installs everything the tests need (PostgreSQL 15 and MariaDB 10.11 included), builds, starts
# throw-away database servers on free loopback ports, and runs the whole suite twice: a normal
# build (and its fault tests once more against a PostgreSQL without TLS), then an AddressSanitizer
# + UndefinedBehaviorSanitizer build; then a ThreadSanitizer pass of the pool, backend and engine
# tests (scripts/tsan.sh). Exits non-zero on any failure.
#   scripts/test.sh            everything
#   scripts/test.sh --quick    the normal build only (no sanitizer passes)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
quick=0
[[ ${1:-} == --quick ]] && quick=1

bash scripts/install-deps.sh --test
jobs=$(nproc)

dbdir=$(mktemp -d /tmp/binds-testdb-XXXXXX)
rmdir "$dbdir"
plaindir=$dbdir-plain  # PostgreSQL without TLS, for a second pass of the fault tests
cleanup() {
  local d
  for d in "$dbdir" "$plaindir"; do
    [[ -d $d ]] || continue
    bash "$root/scripts/testdb.sh" stop "$d" >/dev/null 2>&1 || true
    rm -rf "$d"
  done
}
trap cleanup EXIT
bash scripts/testdb.sh start "$dbdir" >/dev/null
# shellcheck disable=SC1091
. "$dbdir/env"

failed=0
# The Python driver (client/python, package `binds`) is installed into a venv that sees Debian's
# python3-msgpack/-sqlalchemy/-flask-sqlalchemy/-pytest, exactly as README.md tells users to.
pyvenv="$root/build-test/py-venv"
if ! { /usr/bin/python3 -m venv --system-site-packages "$pyvenv" &&
  "$pyvenv/bin/pip" install -q --no-build-isolation --no-index --force-reinstall --no-deps \
    "$root/client/python"; }; then
  echo "installing the Python driver (client/python) failed" >&2
  failed=1
fi
run_suite() {
  local dir=$1
  echo "== C++ tests ($dir)"
  (cd "$dir" && ctest --output-on-failure --timeout 600) || failed=1
  echo "== Python tests against $dir/server/bindsd (spec client, binds driver and dialects)"
  BINDSD="$root/$dir/server/bindsd" "$pyvenv/bin/python" -m pytest -q -p no:cacheprovider tests/integration tests/client/python \
    || failed=1
}

# build-test, not build: scripts/run.sh owns build/ (configured without tests).
cmake -S . -B build-test -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-test -j"$jobs"
run_suite build-test
# The test server speaks TLS, so every PostgreSQL connection above read through the TLS stream,
# and the clients used the Unix socket. Plain TCP reads go another way (binds/socket_wakeups.hpp),
# where a lost end of stream once hung statements on a crashed server: the fault tests run once
# more against servers without TLS, with their clients on TCP (other timings: the soak's cancels
# found one that hit a reset).
echo "== C++ fault tests (build-test), PostgreSQL without TLS, clients over TCP"
TESTDB_PG_SSL=off bash scripts/testdb.sh start "$plaindir" >/dev/null
(
  # shellcheck disable=SC1091
  . "$plaindir/env"
  export BINDS_TEST_CLIENTS=tcp
  cd build-test && ctest --output-on-failure --timeout 600 \
    -R 'BackendFaults|AllDeaths|Faults\.|Soak|Disconnect|Backpressure|FailedTransaction|Starvation|SessionState'
) || failed=1
bash scripts/testdb.sh stop "$plaindir" >/dev/null
rm -rf "$plaindir"

if [[ $quick == 0 ]]; then
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DBINDS_SANITIZE=ON >/dev/null
  cmake --build build-asan -j"$jobs"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  # bindsd runs one I/O thread by default; the sanitizer pass runs the C++ integration tests with
  # two, so sessions on strands across threads stay covered too.
  BINDS_TEST_BINDSD_ARGS="--threads 2" run_suite build-asan
fi

if [[ $quick == 0 ]]; then
  unset ASAN_OPTIONS UBSAN_OPTIONS
  bash scripts/tsan.sh || failed=1
fi

if [[ $failed != 0 ]]; then
  echo "TESTS FAILED" >&2
  exit 1
fi
echo "all tests passed"
