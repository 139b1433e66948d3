#!/usr/bin/env bash
# ThreadSanitizer pass: builds the pool, engine and backend tests and bindsd with -fsanitize=thread
# (build-tsan), runs them, then the engine's integration tests (pipelining,
# lost transactions, starvation, cancels, the soak) against the instrumented daemon. Exits non-zero
# on a failed test or on any ThreadSanitizer report. scripts/test.sh runs it after the ASan pass;
# alone it needs the test databases' environment (scripts/testdb.sh start DIR && . DIR/env) and
# a normal build in build-test (for the integration test binary).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
jobs=$(nproc)
[[ -n ${BINDS_TEST_PG_URL:-} ]] || { echo "tsan.sh: source a testdb.sh env file first" >&2; exit 2; }
[[ -x build-test/tests/binds_integration_tests ]] || { echo "tsan.sh: build build-test first" >&2; exit 2; }

cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBINDS_TSAN=ON >/dev/null
cmake --build build-tsan -j"$jobs" --target binds_pool_tests binds_engine_tests binds_backend_tests bindsd

log=$(mktemp /tmp/binds-tsan-XXXXXX.log)
failed=0
# halt_on_error=0: every report is collected, and counted below.
export TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1"
echo "== TSan: pool, engine and backend tests"
build-tsan/tests/binds_pool_tests >>"$log" 2>&1 || failed=1
build-tsan/tests/binds_engine_tests >>"$log" 2>&1 || failed=1
build-tsan/tests/binds_backend_tests >>"$log" 2>&1 || failed=1
echo "== TSan: engine integration tests against the instrumented bindsd"
# Memory-figure tests are left out: TSan's shadow memory makes RSS meaningless.
BINDS_TEST_BINDSD="$root/build-tsan/server/bindsd" BINDS_SOAK_SECONDS=10 \
  build-test/tests/binds_integration_tests \
  --gtest_filter='Pipeline.*:*LostTransaction*:*FailedTransaction*:AllBackends/PerBackend.*:Soak.*:Holes.*:Starvation.*:Disconnect*:-Starvation.PingFloods*:Starvation.HugeRows*:Starvation.IdleClients*:Starvation.BusyClients*:Starvation.ABusyDaemon*' \
  >>"$log" 2>&1 || failed=1
reports=$(grep -c "WARNING: ThreadSanitizer" "$log" || true)
if [[ $reports != 0 ]]; then
  echo "ThreadSanitizer reported $reports problem(s):" >&2
  grep -A30 "WARNING: ThreadSanitizer" "$log" | head -120 >&2
  failed=1
fi
if [[ $failed != 0 ]]; then
  echo "TSan pass FAILED (log: $log)" >&2
  grep -E "^\[  FAILED" "$log" >&2 || true
  exit 1
fi
rm -f "$log"
echo "TSan pass clean"
