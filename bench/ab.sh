#!/usr/bin/env bash
# Interleaved A/B of two bindsd builds (or one build under two environments) on SELECT 1: the quick
# way to tell whether a change to the data path pays, on a shared, noisy machine. Both daemons run
# at once with the same configuration (PostgreSQL and MariaDB binds of 10 connections each, from
# scripts/testdb.sh's environment; pgseen: the PostgreSQL one with `reset: seen`; lite: the bench's
# SQLite point select); the load generator alternates between them, round by round, and the
# medians of qps and of the daemon's CPU per query (utime+stime from /proc) are compared.
#
#   scripts/testdb.sh start /tmp/bt && . /tmp/bt/env
#   bench/ab.sh [--rounds N] [--conns N] [--depth N] [--bind pg|pgseen|my|lite] [--duration S] \
#     "A: [VAR=value ...] /path/to/bindsd" "B: [VAR=value ...] /path/to/bindsd"
# e.g. bench/ab.sh "/tmp/old/bindsd" "build-test/server/bindsd"
#      bench/ab.sh "build-test/server/bindsd" "LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2 build-test/server/bindsd"
set -euo pipefail
rounds=5 conns=16 depth=1 bind=pg duration=3
while [[ $# -gt 2 ]]; do
  case $1 in
    --rounds) rounds=$2 ;;
    --conns) conns=$2 ;;
    --depth) depth=$2 ;;
    --bind) bind=$2 ;;
    --duration) duration=$2 ;;
    *) echo "ab.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
[[ $# -eq 2 ]] || { sed -n 2,13p "$0" >&2; exit 2; }
: "${BINDS_TEST_PG_URL:?run scripts/testdb.sh start DIR and source DIR/env first}"
: "${BINDS_TEST_MYSQL_URL:?run scripts/testdb.sh start DIR and source DIR/env first}"
repo=$(cd "$(dirname "$0")/.." && pwd)
loadgen=${BENCH_LOADGEN:-$repo/build-test/bench/binds_loadgen}
[[ -x $loadgen ]] || { echo "ab.sh: no load generator at $loadgen (build binds_loadgen, or set BENCH_LOADGEN)" >&2; exit 2; }
work=$(mktemp -d /tmp/binds-ab-XXXXXX)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start() {  # start NAME "ENV... BINARY": prints the port
  local name=$1 cmd=$2 port
  port=$(free_port)
  mkdir -p "$work/$name"
  cat >"$work/$name/binds.yaml" <<Y
listen:
  tcp: 127.0.0.1:$port
default: pg
binds:
  pg:
    url: \${AB_PG_URL}
    pool: { max: 10, min: 10 }
  pgseen:
    url: \${AB_PG_URL}
    pool: { max: 10, min: 10 }
    reset: seen
  my:
    url: \${AB_MY_URL}
    pool: { max: 10, min: 10 }
  lite:
    url: sqlite:///$work/lite.db
    pool: { max: 10, min: 10 }
Y
  # shellcheck disable=SC2086 # the command is words: environment assignments, then the binary
  AB_PG_URL="$BINDS_TEST_PG_URL" AB_MY_URL=$BINDS_TEST_MYSQL_URL \
    env $cmd --config "$work/$name/binds.yaml" --log-level warn >"$work/$name/log" 2>&1 &
  pids+=($!)
  echo "$port $!"
}
# The bench's SQLite table (bench/run.sh), shared by both daemons: the workload only reads it.
/usr/bin/python3 "$repo/bench/lite_db.py" "$work/lite.db"
read -r port_a pid_a < <(start a "$1")
read -r port_b pid_b < <(start b "$2")
pids=("$pid_a" "$pid_b")
sleep 2
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tick_us=$((1000000 / $(getconf CLK_TCK)))
for ((r = 1; r <= rounds; r++)); do
  order="a b"; ((r % 2 == 0)) && order="b a"
  for x in $order; do
    if [[ $x == a ]]; then port=$port_a pid=$pid_a; else port=$port_b pid=$pid_b; fi
    c0=$(cpu_ticks "$pid")
    query=(); [[ $bind == lite ]] && query=(--query 'SELECT v FROM kv WHERE k = ?' --param 4242)  # as bench/run.sh
    out=$("$loadgen" --mode binds --addr "tcp:127.0.0.1:$port" --bind "$bind" --conns "$conns" --depth "$depth" \
      --duration "$duration" --warmup 0 "${query[@]}")
    c1=$(cpu_ticks "$pid")
    qps=$(grep -o '"qps":[0-9.]*' <<<"$out" | cut -d: -f2)
    n=$(grep -o '"queries":[0-9]*' <<<"$out" | cut -d: -f2)
    cpu=$(awk -v t=$(((c1 - c0) * tick_us)) -v n="$n" 'BEGIN { printf "%.1f", t / n }')
    echo "round $r $x qps $qps cpu_us_per_query $cpu" | tee -a "$work/results"
  done
done
awk -v A="$1" -v B="$2" '
  { q[$3] = q[$3] " " $5; c[$3] = c[$3] " " $7 }
  function median(s,   a, n, i, j, t) {
    n = split(s, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  END {
    qa = median(q["a"]); qb = median(q["b"]); ca = median(c["a"]); cb = median(c["b"])
    printf "A (%s): median %.0f qps, %.1f us CPU per query\n", A, qa, ca
    printf "B (%s): median %.0f qps, %.1f us CPU per query\n", B, qb, cb
    printf "B/A: throughput %.2fx, CPU per query %.2fx\n", qb / qa, cb / ca
  }' "$work/results"
