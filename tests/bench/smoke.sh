#!/usr/bin/env bash
# bench.smoke: the benchmark harness works. Starts bindsd on a SQLite-only config (no database
# server needed) and runs binds_loadgen against it for about a second per case: request/response,
# pipelined, a streamed result and idle clients. With $BINDS_TEST_PG_URL (and
# $BINDS_TEST_MYSQL_URL) set it also runs the pq (and mysql) modes against those servers, and the
# binds mode through a PostgreSQL bind. Asserts only that queries complete and exit status is 0,
# never a timing.
#
#   smoke.sh BINDSD LOADGEN
set -euo pipefail

BINDSD=${1:?usage: smoke.sh BINDSD LOADGEN}
LOADGEN=${2:?usage: smoke.sh BINDSD LOADGEN}

TMP=$(mktemp -d /tmp/bench-smoke.XXXXXX)
BINDSD_PID=""
cleanup() {
  local rc=$?
  if [[ -n $BINDSD_PID ]] && kill -0 "$BINDSD_PID" 2>/dev/null; then
    kill -TERM "$BINDSD_PID" 2>/dev/null || true
    wait "$BINDSD_PID" 2>/dev/null || true
  fi
  if ((rc != 0)) && [[ -f $TMP/bindsd.log ]]; then
    echo "---- bindsd.log ----" >&2
    tail -n 30 "$TMP/bindsd.log" >&2
  fi
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

{
  echo "listen:"
  echo "  unix: $TMP/bindsd.sock"
  echo "default: lite"
  echo "binds:"
  echo "  lite:"
  echo "    url: sqlite:///lite.db"
  echo "    pool: { max: 4, min: 1 }"
  if [[ -n ${BINDS_TEST_PG_URL:-} ]]; then
    echo "  pg:"
    echo "    url: \${BINDS_TEST_PG_URL}"
    echo "    pool: { max: 4, min: 1 }"
  fi
} >"$TMP/binds.yaml"

"$BINDSD" --config "$TMP/binds.yaml" --log-level warn >"$TMP/bindsd.log" 2>&1 </dev/null &
BINDSD_PID=$!
for ((i = 0; i < 100; i++)); do
  [[ -S $TMP/bindsd.sock ]] && break
  kill -0 "$BINDSD_PID" 2>/dev/null || fail "bindsd exited at start-up"
  sleep 0.1
done
[[ -S $TMP/bindsd.sock ]] || fail "bindsd did not create its socket"
ADDR=unix:$TMP/bindsd.sock

# check NAME FIELD LOADGEN-ARGS...: runs the load generator; exit 0 and FIELD > 0 in its JSON.
check() {
  local name=$1 field=$2 out rc=0 n
  shift 2
  out=$("$LOADGEN" "$@" 2>"$TMP/loadgen.err") || rc=$?
  echo "$name: $out"
  if ((rc != 0)); then
    cat "$TMP/loadgen.err" >&2
    fail "$name: binds_loadgen exited $rc"
  fi
  n=$(sed -n "s/.*\"$field\":\([0-9]*\).*/\1/p" <<<"$out")
  [[ -n $n && $n -gt 0 ]] || fail "$name: \"$field\" is not > 0"
}

short=(--duration 1 --warmup 0.2)
check "binds request/response" queries --mode binds --addr "$ADDR" --conns 2 --depth 1 "${short[@]}"
check "binds pipelined" queries --mode binds --addr "$ADDR" --bind lite --conns 2 --depth 8 "${short[@]}"
check "binds parameter" queries --mode binds --addr "$ADDR" --conns 1 --query 'SELECT ? + 1' --param 41 "${short[@]}"
check "binds stream" rows_per_stream --mode binds --addr "$ADDR" --workload stream --count 2 \
  --query 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000) SELECT x, hex(x) FROM c'
check "binds idle" rss_holding_kb --mode binds --addr "$ADDR" --workload idle --conns 50 --settle 0.2 \
  --watch-pid "$BINDSD_PID"

# A failing query must not pass for a working harness.
if "$LOADGEN" --mode binds --addr "$ADDR" --query 'SELEC 1' --duration 0.2 --warmup 0 >/dev/null 2>&1; then
  fail "binds_loadgen exited 0 although every query failed"
fi

if [[ -n ${BINDS_TEST_PG_URL:-} ]]; then
  check "pq request/response" queries --mode pq --addr "$BINDS_TEST_PG_URL" --conns 2 "${short[@]}"
  check "pq pipeline" queries --mode pq --addr "$BINDS_TEST_PG_URL" --conns 2 --depth 8 "${short[@]}"
  # shellcheck disable=SC2016  # $1 is PostgreSQL's placeholder
  check "pq parameter" queries --mode pq --addr "$BINDS_TEST_PG_URL" --query 'SELECT $1::int + 1' --param 41 \
    "${short[@]}"
  check "binds via pg bind" queries --mode binds --addr "$ADDR" --bind pg --conns 2 --depth 4 "${short[@]}"
  check "pq stream" rows_per_stream --mode pq --addr "$BINDS_TEST_PG_URL" --workload stream \
    --query 'SELECT g, md5(g::text) FROM generate_series(1, 20000) g'
else
  echo "BINDS_TEST_PG_URL not set: pq mode skipped"
fi

if [[ -n ${BINDS_TEST_MYSQL_URL:-} ]]; then
  if "$LOADGEN" --help | grep -q "mysql mode: not built"; then
    echo "binds_loadgen built without MariaDB Connector/C: mysql mode skipped"
  else
    check "mysql request/response" queries --mode mysql --addr "$BINDS_TEST_MYSQL_URL" --conns 2 "${short[@]}"
  fi
fi
echo "bench.smoke: ok"
