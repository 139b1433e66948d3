#!/usr/bin/env bash
# One benchmark run: bindsd against PgBouncer and against direct database access.
#
#   bash bench/run.sh [--quick] [--out FILE] [--rounds N] [--duration S] [--warmup S]
#
# Installs what is missing (apt-get), builds bindsd and binds_loadgen in build-bench
# (RelWithDebInfo), starts throw-away PostgreSQL 15 and MariaDB (scripts/testdb.sh), PgBouncer
# (transaction pooling, 10 server connections) and bindsd (binds pg, my and lite, 10 connections
# each; and pgseen, the pg database with `reset: seen`, a second bindsd row at 16 and 200 clients),
# then runs every workload in interleaved rounds (the contenders' order rotates each round)
# and prints a markdown table of medians; --out FILE also writes it there, with the raw results
# (one JSON line per measurement) next to it as FILE.jsonl.
#
#   --quick        one round, ~1 s per measurement (the smoke mode)
#   --rounds N     rounds (default 3)
#   --duration S   measured seconds per run (default 3); --warmup S before it (default 0.5)
#   --idle-conns N idle clients for the memory test (default 10000)
#   --keep         keep the work directory (logs, configs) instead of removing it
#
# Debian 12, run as root from anywhere. Everything lives in a fresh /tmp/bench-run.XXXXXX; the
# servers it started are stopped on exit, error or CTRL-C.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD_DIR:-$REPO/build-bench}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

ROUNDS=3
DURATION=3
WARMUP=0.5
IDLE_CONNS=10000
STREAMS=1
OUT=""
KEEP=0
QUICK=0

die() {
  echo "run.sh: $*" >&2
  exit 1
}
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

while (($#)); do
  case $1 in
    --quick) QUICK=1 ;;
    --out) OUT=${2:?--out needs a file}; shift ;;
    --rounds) ROUNDS=${2:?}; shift ;;
    --duration) DURATION=${2:?}; shift ;;
    --warmup) WARMUP=${2:?}; shift ;;
    --idle-conns) IDLE_CONNS=${2:?}; shift ;;
    --keep) KEEP=1 ;;
    -h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (--help)" ;;
  esac
  shift
done
if ((QUICK)); then
  ROUNDS=1
  DURATION=1
  WARMUP=0.3
fi
[[ $EUID -eq 0 ]] || die "must run as root (packages, testdb.sh, PgBouncer as postgres)"
[[ -z $OUT ]] || OUT=$(realpath -m "$OUT")
T_START=$(date +%s)

# ------------------------------------------------------------------------------ packages, build

export DEBIAN_FRONTEND=noninteractive
want=(pgbouncer libmariadb-dev postgresql-15 mariadb-server)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt-get update
  # Installing a server package must not start a system-wide instance (policy-rc.d 101).
  tmp_policy=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    tmp_policy=1
  fi
  apt-get install -y --no-install-recommends "${missing[@]}"
  [[ -n $tmp_policy ]] && rm -f /usr/sbin/policy-rc.d
fi
bash "$REPO/scripts/install-deps.sh" --test >/dev/null

log "building bindsd and binds_loadgen in $BUILD"
mkdir -p "$BUILD"
cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$BUILD/bench-configure.log" 2>&1 ||
  { tail -n 30 "$BUILD/bench-configure.log" >&2; die "cmake configure failed"; }
cmake --build "$BUILD" -j2 --target binds_loadgen bindsd >"$BUILD/bench-build.log" 2>&1 ||
  { tail -n 30 "$BUILD/bench-build.log" >&2; die "build failed"; }
LOADGEN=$BUILD/bench/binds_loadgen
BINDSD=$BUILD/server/bindsd
BUILD_S=$(($(date +%s) - T_START))

# ------------------------------------------------------------------------------ work dir, cleanup

WORK=$(mktemp -d /tmp/bench-run.XXXXXX)
chmod 755 "$WORK"
DB=$WORK/db
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
BINDSD_PID=""
PGB_PID=""
DB_STARTED=0

stop_pid() {  # stop_pid PID NAME: TERM, then KILL after 10 s
  local pid=$1 name=$2 i
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  log "$name (pid $pid) ignored SIGTERM; killing it"
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pid "$BINDSD_PID" bindsd
  stop_pid "$PGB_PID" pgbouncer
  if ((DB_STARTED)); then bash "$REPO/scripts/testdb.sh" stop "$DB" >/dev/null 2>&1 || log "testdb.sh stop failed"; fi
  if ((KEEP)) || ((rc != 0 && rc != 130)); then  # keep logs of a failed run, not of CTRL-C
    log "work directory kept: $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# 10,000 idle clients need as many descriptors in bindsd and in the load generator.
hard=$(ulimit -Hn)
[[ $hard == unlimited ]] && hard=65536
ulimit -n $((hard < 65536 ? hard : 65536))
if ((IDLE_CONNS + 200 > $(ulimit -n))); then
  IDLE_CONNS=$(($(ulimit -n) - 200))
  log "fd limit $(ulimit -n): idle test reduced to $IDLE_CONNS clients"
fi

free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_tcp() {  # wait_tcp PORT NAME PID
  local i
  for ((i = 0; i < 100; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    kill -0 "$3" 2>/dev/null || die "$2 exited at start-up (see $WORK)"
    sleep 0.1
  done
  die "$2 does not listen on port $1"
}

# ------------------------------------------------------------------------------ servers

log "starting PostgreSQL and MariaDB in $DB"
DB_STARTED=1
TESTDB_PG_SSL=off TESTDB_MYSQL_PERFORMANCE_SCHEMA=off bash "$REPO/scripts/testdb.sh" start "$DB" >/dev/null
# shellcheck disable=SC1091
. "$DB/env"
# 200 direct clients need more than PostgreSQL's default 100 connections.
runuser -u postgres -- "$PG_BIN/psql" -X -q -h "$DB/pg" -p "$BINDS_TEST_PG_PORT" -U postgres -d postgres \
  -c "ALTER SYSTEM SET max_connections = 300" >/dev/null
bash "$REPO/scripts/testdb.sh" stop-pg "$DB" >/dev/null
bash "$REPO/scripts/testdb.sh" start-pg "$DB" >/dev/null

PG_URL=$BINDS_TEST_PG_URL
MY_URL=$BINDS_TEST_MYSQL_URL

log "starting PgBouncer"
PGB_PORT=$(free_port)
mkdir -p "$WORK/pgbouncer"
echo '"binds" "binds-secret"' >"$WORK/pgbouncer/userlist.txt"
cat >"$WORK/pgbouncer/pgbouncer.ini" <<EOF
[databases]
bindstest = host=127.0.0.1 port=$BINDS_TEST_PG_PORT dbname=bindstest

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir = $WORK/pgbouncer
auth_type = scram-sha-256
auth_file = $WORK/pgbouncer/userlist.txt
pool_mode = transaction
default_pool_size = 10
min_pool_size = 10
max_client_conn = 1000
log_connections = 0
log_disconnections = 0
EOF
chown -R postgres: "$WORK/pgbouncer"
chmod 600 "$WORK/pgbouncer/userlist.txt"
# PgBouncer refuses to run as root; setpriv execs it directly, so $! is PgBouncer itself.
setpriv --reuid=postgres --regid=postgres --init-groups /usr/sbin/pgbouncer "$WORK/pgbouncer/pgbouncer.ini" \
  >"$WORK/pgbouncer/pgbouncer.log" 2>&1 </dev/null &
PGB_PID=$!
wait_tcp "$PGB_PORT" pgbouncer "$PGB_PID"
PGB_URL=postgresql://binds:binds-secret@127.0.0.1:$PGB_PORT/bindstest

log "starting bindsd"
BINDS_PORT=$(free_port)
mkdir -p "$WORK/bindsd"
/usr/bin/python3 "$REPO/bench/lite_db.py" "$WORK/bindsd/lite.db"
cat >"$WORK/bindsd/binds.yaml" <<EOF
listen:
  tcp: 127.0.0.1:$BINDS_PORT
  unix: $WORK/bindsd/bindsd.sock
default: pg
binds:
  pg:
    url: \${BENCH_PG_URL}
    pool: { max: 10, min: 10 }
  pgseen:  # the same database, reset only after changes bindsd sees (PgBouncer resets nothing)
    url: \${BENCH_PG_URL}
    pool: { max: 10, min: 10 }
    reset: seen
  my:
    url: \${BENCH_MY_URL}
    pool: { max: 10, min: 10 }
  lite:
    url: sqlite:///lite.db
    pool: { max: 10, min: 10 }
limits:
  max_clients: 20000
EOF
BENCH_PG_URL=$PG_URL BENCH_MY_URL=$MY_URL "$BINDSD" --config "$WORK/bindsd/binds.yaml" --log-level warn \
  >"$WORK/bindsd/bindsd.log" 2>&1 </dev/null &
BINDSD_PID=$!
wait_tcp "$BINDS_PORT" bindsd "$BINDSD_PID"
BINDS_TCP=tcp:127.0.0.1:$BINDS_PORT
BINDS_UNIX=unix:$WORK/bindsd/bindsd.sock
sleep 1  # let the pools open their minimum connections

# ------------------------------------------------------------------------------ measuring

CLK_TCK=$(getconf CLK_TCK)
proc_usage() {  # utime + stime (clock ticks) and minor page faults of a process so far
  local stat
  stat=$(<"/proc/$1/stat")
  stat=${stat##*) }  # drop "pid (comm) ", comm may hold spaces
  # shellcheck disable=SC2086
  set -- $stat
  echo "$((${12} + ${13})) $8"
}

machine_usage() {  # busy and total clock ticks of the whole machine so far (all CPUs, /proc/stat)
  local _cpu user nice system idle iowait irq softirq steal _rest
  read -r _cpu user nice system idle iowait irq softirq steal _rest </proc/stat
  echo "$((user + nice + system + irq + softirq + steal)) $((user + nice + system + idle + iowait + irq + softirq + steal))"
}

STREAM_SQL='SELECT g, md5(g::text) FROM generate_series(1,1000000) g'
ROUND=0

# run WORKLOAD CONTENDER LOADGEN-ARGS...: one measurement, appended to $RESULTS as a JSON line
# tagged with round, workload and contender (and the proxy's CPU ticks where one is in the path).
run() {
  local workload=$1 contender=$2 pid="" t0=0 t1=0 f0=0 f1=0 out rc=0 extra=""
  shift 2
  case $contender in
    pgbouncer) pid=$PGB_PID ;;
    bindsd | bindsd-seen) pid=$BINDSD_PID ;;
  esac
  [[ $workload == stream && $contender == bindsd ]] && echo 5 >"/proc/$BINDSD_PID/clear_refs"  # reset VmHWM
  local m0 m1 mt0 mt1
  [[ -n $pid ]] && read -r t0 f0 < <(proc_usage "$pid")
  read -r m0 mt0 < <(machine_usage)
  out=$(timeout 300 "$LOADGEN" --label "$workload/$contender" "$@" 2>>"$WORK/loadgen.err") || rc=$?
  read -r m1 mt1 < <(machine_usage)
  [[ -n $pid ]] && read -r t1 f1 < <(proc_usage "$pid")
  # Every process's CPU (load generator, database servers, proxy, kernel): on a machine the
  # contenders share, what a query costs in all decides how many fit.
  extra+=",\"machine_cpu_us\":$(((m1 - m0) * 1000000 / CLK_TCK)),\"machine_busy\":$(((m1 - m0) * 1000 / (mt1 - mt0 > 0 ? mt1 - mt0 : 1)))"
  [[ -n $pid ]] && extra+=",\"proxy_cpu_us\":$(((t1 - t0) * 1000000 / CLK_TCK)),\"proxy_minflt\":$((f1 - f0))"
  if [[ $workload == stream && $contender == bindsd ]]; then
    extra+=",\"proxy_hwm_kb\":$(awk '/^VmHWM:/ {print $2}' "/proc/$BINDSD_PID/status")"
  fi
  [[ $out == \{* ]] || out="{\"failed\":true"
  out=${out%\}}
  echo "{\"round\":$ROUND,\"case\":\"$workload\",\"contender\":\"$contender\",\"rc\":$rc,${out#\{}$extra}" >>"$RESULTS"
  if ((rc != 0)); then log "  $workload/$contender: loadgen exit $rc (see $WORK/loadgen.err)"; fi
}

# The contenders of one workload, in the order of this round (rotated so none always goes first).
rotate() {
  local n=$# k i
  local -a items=("$@")
  k=$((ROUND % n))
  for ((i = 0; i < n; i++)); do echo "${items[(i + k) % n]}"; done
}

q() {  # q WORKLOAD CONTENDER CONNS DEPTH: SELECT 1 through one contender
  local w=$1 c=$2 n=$3 d=$4
  local common=(--conns "$n" --depth "$d" --duration "$DURATION" --warmup "$WARMUP")
  case $c in
    direct) run "$w" direct --mode pq --addr "$PG_URL" "${common[@]}" ;;
    pgbouncer) run "$w" pgbouncer --mode pq --addr "$PGB_URL" "${common[@]}" ;;
    bindsd) run "$w" bindsd --mode binds --addr "$BINDS_TCP" --bind pg "${common[@]}" ;;
    bindsd-seen) run "$w" bindsd-seen --mode binds --addr "$BINDS_TCP" --bind pgseen "${common[@]}" ;;
  esac
}

one_round() {
  local c common=(--duration "$DURATION" --warmup "$WARMUP")
  for c in $(rotate direct pgbouncer bindsd); do q pg1 "$c" 1 1; done
  for c in $(rotate direct pgbouncer bindsd bindsd-seen); do q pg16 "$c" 16 1; done
  for c in $(rotate direct pgbouncer bindsd bindsd-seen); do q pg200 "$c" 200 1; done
  for c in $(rotate direct pgbouncer bindsd); do q pipe10x32 "$c" 10 32; done
  for c in $(rotate direct bindsd); do q pipe1x64 "$c" 1 64; done
  for c in $(rotate direct bindsd); do
    case $c in
      direct) run my16 direct --mode mysql --addr "$MY_URL" --conns 16 "${common[@]}" ;;
      bindsd) run my16 bindsd --mode binds --addr "$BINDS_TCP" --bind my --conns 16 "${common[@]}" ;;
    esac
  done
  run lite16 bindsd --mode binds --addr "$BINDS_TCP" --bind lite --conns 16 \
    --query 'SELECT v FROM kv WHERE k = ?' --param 4242 "${common[@]}"
  for c in $(rotate direct bindsd); do
    case $c in
      direct) run stream direct --mode pq --addr "$PG_URL" --workload stream --query "$STREAM_SQL" --count "$STREAMS" ;;
      bindsd) run stream bindsd --mode binds --addr "$BINDS_TCP" --bind pg --workload stream --query "$STREAM_SQL" --count "$STREAMS" ;;
    esac
  done
}

log "measuring: $ROUNDS round(s), ${WARMUP}s warm-up + ${DURATION}s per run"
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
  log "round $ROUND/$ROUNDS"
  one_round
done
log "idle clients: $IDLE_CONNS"
run idle bindsd --mode binds --addr "$BINDS_UNIX" --workload idle --conns "$IDLE_CONNS" --watch-pid "$BINDSD_PID"

# ------------------------------------------------------------------------------ report

TOTAL_S=$(($(date +%s) - T_START))
REPORT=$WORK/report.md
# What was measured: HEAD, flagged when the sources outside bench/ differ from it. BENCH_COMMIT
# names the sources when they are not a git checkout (e.g. a `git archive` export).
if [[ -n ${BENCH_COMMIT:-} ]]; then
  COMMIT=$BENCH_COMMIT
elif COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null); then
  if [[ -n $(git -C "$REPO" status --porcelain --untracked-files=no -- . ':!bench' ':!tests/bench' 2>/dev/null) ]]; then
    COMMIT+=" + uncommitted changes"
  fi
else
  COMMIT=unknown
fi
/usr/bin/python3 "$REPO/bench/report.py" "$RESULTS" --rounds "$ROUNDS" --duration "$DURATION" \
  --warmup "$WARMUP" --total-s "$TOTAL_S" --build-s "$BUILD_S" --cores "$(nproc)" \
  --commit "$COMMIT" >"$REPORT"
cat "$REPORT"
if [[ -n $OUT ]]; then
  cp "$REPORT" "$OUT"
  cp "$RESULTS" "$OUT.jsonl"
  log "wrote $OUT and $OUT.jsonl"
fi
log "done in $(($(date +%s) - T_START)) s"
