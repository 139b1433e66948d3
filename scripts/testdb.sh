#!/usr/bin/env bash
# Throw-away PostgreSQL 15 and MariaDB servers for the driver and integration tests.
#
#   testdb.sh start DIR        create DIR, init and start both servers on free 127.0.0.1 ports,
#                              write DIR/env (source it to get BINDS_TEST_PG_URL/BINDS_TEST_MYSQL_URL)
#   testdb.sh stop DIR         stop both (fast shutdown)
#   testdb.sh stop-pg|start-pg|stop-mysql|start-mysql|kill-mysql DIR
#                              restart one server on the same port and data, or kill -9 MariaDB,
#                              for tests of broken or vanished backends
#   testdb.sh crash-pg DIR     pg_ctl stop -m immediate (an abrupt stop, no clean shutdown)
#   testdb.sh freeze-pg|thaw-pg|freeze-mysql|thaw-mysql DIR
#                              SIGSTOP / SIGCONT every server process: a backend that hangs
#
# PostgreSQL serves TLS (ssl=on, a certificate for 127.0.0.1 signed by a throw-away root in DIR/pg,
# exported as BINDS_TEST_PG_TLS_ROOT) as Debian's own cluster does, so clients that prefer TLS get
# it; TESTDB_PG_SSL=off at start leaves it plain (benchmarks compare against plain PgBouncer).
# MariaDB runs with performance_schema on, so tests can read the connection attributes a client
# sent; TESTDB_MYSQL_PERFORMANCE_SCHEMA=off at start leaves it off, as Debian's own server has it
# (benchmarks, which should not pay its bookkeeping).
#
# Everything lives under DIR; nothing touches the system instances or their config files
# (--no-defaults, private sockets), so several copies can run side by side.
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
DB_USER=binds
DB_PASSWORD=binds-secret
DB_NAME=bindstest
WAIT_SECONDS=${TESTDB_WAIT_SECONDS:-30}

die() {
  echo "testdb.sh: $*" >&2
  exit 1
}

usage() {
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

log_tail() {
  local f=$1
  if [[ -f $f ]]; then
    echo "---- last lines of $f ----" >&2
    tail -n 40 "$f" >&2
    echo "----" >&2
  fi
}

load_ports() {
  [[ -f $DIR/ports ]] || die "$DIR/ports missing: run 'testdb.sh start $DIR' first"
  # shellcheck disable=SC1091
  . "$DIR/ports"
}

# ---------------------------------------------------------------- PostgreSQL

pg_psql() {
  runuser -u postgres -- "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$DIR/pg" -p "$PG_PORT" \
    -U postgres -d postgres "$@"
}

start_pg() {
  local out
  # pg_ctl -w polls the server itself; -t bounds the wait.
  if ! out=$(runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$DIR/pg/data" -l "$DIR/pg/server.log" \
      -w -t "$WAIT_SECONDS" \
      -o "-k $DIR/pg -p $PG_PORT -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off $(pg_ssl_options)" \
      start 2>&1); then
    echo "$out" >&2
    log_tail "$DIR/pg/server.log"
    die "PostgreSQL did not start on port $PG_PORT"
  fi
  local i
  for ((i = 0; i < WAIT_SECONDS * 10; i++)); do
    if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; then
      return 0
    fi
    sleep 0.1
  done
  log_tail "$DIR/pg/server.log"
  die "PostgreSQL does not accept TCP connections on port $PG_PORT"
}

stop_pg() {
  [[ -f $DIR/pg/data/postmaster.pid ]] || return 0
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$DIR/pg/data" -m fast -w -t "$WAIT_SECONDS" stop \
    >/dev/null || die "PostgreSQL did not stop"
}

crash_pg() {
  [[ -f $DIR/pg/data/postmaster.pid ]] || return 0
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$DIR/pg/data" -m immediate -w -t "$WAIT_SECONDS" stop \
    >/dev/null || die "PostgreSQL did not stop"
}

# Every process of one server: the postmaster and its children, or mariadbd.
server_pids() {
  case $1 in
    pg)
      local pm
      pm=$(head -n 1 "$DIR/pg/data/postmaster.pid") || die "PostgreSQL is not running"
      echo "$pm" $(pgrep -P "$pm")
      ;;
    mysql) mysql_pid || die "MariaDB is not running" ;;
  esac
}

signal_server() {
  local sig=$1 which=$2
  # shellcheck disable=SC2046
  kill "-$sig" $(server_pids "$which")
}

pg_ssl_options() {
  if [[ ${PG_SSL:-off} == on ]]; then
    echo "-c ssl=on -c ssl_cert_file=$DIR/pg/server.crt -c ssl_key_file=$DIR/pg/server.key"
  fi
}

# A root certificate and a server certificate it signed, for 127.0.0.1 only (verify-full against
# "localhost" must fail).
make_pg_certificates() {
  local d=$DIR/pg
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=binds test root" \
    -keyout "$d/root.key" -out "$d/root.crt" >/dev/null 2>&1 || die "openssl: root certificate"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$d/server.key" -out "$d/server.csr" >/dev/null 2>&1 || die "openssl: server key"
  printf 'subjectAltName=IP:127.0.0.1\n' >"$d/server.ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/root.crt" -CAkey "$d/root.key" -CAcreateserial \
    -days 30 -extfile "$d/server.ext" -out "$d/server.crt" >/dev/null 2>&1 || die "openssl: server certificate"
  chown postgres: "$d/server.key" "$d/server.crt"
  chmod 600 "$d/server.key"
}

init_pg() {
  mkdir -p "$DIR/pg"
  # initdb refuses to run as root, and the server must own its data directory.
  chown -R postgres: "$DIR/pg"
  if ! runuser -u postgres -- "$PG_BIN/initdb" -D "$DIR/pg/data" -U postgres -E UTF8 --no-locale \
      --auth-local=trust --auth-host=scram-sha-256 -N >"$DIR/pg/initdb.log" 2>&1; then
    log_tail "$DIR/pg/initdb.log"
    die "initdb failed"
  fi
  if [[ ${PG_SSL:-off} == on ]]; then make_pg_certificates; fi
  start_pg
  pg_psql -c "CREATE ROLE $DB_USER LOGIN SUPERUSER PASSWORD '$DB_PASSWORD'" \
    -c "CREATE DATABASE $DB_NAME OWNER $DB_USER" >/dev/null
}

# ---------------------------------------------------------------- MariaDB

mysql_root() {
  mariadb --no-defaults --protocol=socket --socket="$DIR/mysql/mysqld.sock" -uroot "$@"
}

mysql_pid() {
  [[ -f $DIR/mysql/mysqld.pid ]] && cat "$DIR/mysql/mysqld.pid"
}

start_mysql() {
  if pid=$(mysql_pid) && kill -0 "$pid" 2>/dev/null; then
    die "MariaDB already running (pid $pid)"
  fi
  rm -f "$DIR/mysql/mysqld.pid"
  # setsid: the server must not die with the shell (or CI step) that started it.
  setsid mariadbd --no-defaults --datadir="$DIR/mysql/data" --socket="$DIR/mysql/mysqld.sock" \
    --port="$MYSQL_PORT" --bind-address=127.0.0.1 --user=root --pid-file="$DIR/mysql/mysqld.pid" \
    --log-error="$DIR/mysql/server.log" --skip-name-resolve --innodb-flush-log-at-trx-commit=2 \
    --innodb-buffer-pool-size=64M --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
    --performance-schema="${MYSQL_PFS:-off}" </dev/null >/dev/null 2>&1 &
  local launcher=$!
  local i
  for ((i = 0; i < WAIT_SECONDS * 10; i++)); do
    # Ping over TCP: that is what the tests use, and it proves the port is bound.
    if mariadb-admin --no-defaults --protocol=tcp -h 127.0.0.1 -P "$MYSQL_PORT" -uroot \
        --connect-timeout=1 ping >/dev/null 2>&1; then
      return 0
    fi
    if ! kill -0 "$launcher" 2>/dev/null; then
      break  # the server exited: no point waiting
    fi
    sleep 0.1
  done
  log_tail "$DIR/mysql/server.log"
  die "MariaDB did not start on port $MYSQL_PORT"
}

wait_gone() {
  local pid=$1 i
  for ((i = 0; i < WAIT_SECONDS * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  return 1
}

stop_mysql() {
  local pid
  pid=$(mysql_pid) || return 0
  if kill -TERM "$pid" 2>/dev/null; then
    wait_gone "$pid" || { log_tail "$DIR/mysql/server.log"; die "MariaDB (pid $pid) did not stop"; }
  fi
  rm -f "$DIR/mysql/mysqld.pid"
}

kill_mysql() {
  local pid
  pid=$(mysql_pid) || die "MariaDB is not running (no pid file)"
  kill -KILL "$pid" 2>/dev/null || true
  wait_gone "$pid" || die "MariaDB (pid $pid) survived kill -9"
  rm -f "$DIR/mysql/mysqld.pid" "$DIR/mysql/mysqld.sock"
}

init_mysql() {
  mkdir -p "$DIR/mysql"
  if ! mariadb-install-db --no-defaults --datadir="$DIR/mysql/data" --user=root \
      --auth-root-authentication-method=normal --skip-test-db >"$DIR/mysql/install.log" 2>&1; then
    log_tail "$DIR/mysql/install.log"
    die "mariadb-install-db failed"
  fi
  start_mysql
  mysql_root <<SQL
CREATE DATABASE $DB_NAME CHARACTER SET utf8mb4;
CREATE USER '$DB_USER'@'%' IDENTIFIED BY '$DB_PASSWORD';
CREATE USER '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'%' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'localhost' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
}

# ---------------------------------------------------------------- main

[[ $# -eq 2 ]] || usage
CMD=$1
DIR=$2
[[ $EUID -eq 0 ]] || die "must run as root (runuser is used to run PostgreSQL as 'postgres')"

case $CMD in
  start)
    [[ -e $DIR/ports ]] && die "$DIR already holds test databases; 'stop' them and remove $DIR first"
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    # The postgres user must reach DIR/pg, whatever umask created DIR.
    chmod 755 "$DIR"
    PG_PORT=$(free_port)
    MYSQL_PORT=$(free_port)
    while [[ $MYSQL_PORT == "$PG_PORT" ]]; do MYSQL_PORT=$(free_port); done
    PG_SSL=${TESTDB_PG_SSL:-on}
    [[ $PG_SSL == on || $PG_SSL == off ]] || die "TESTDB_PG_SSL must be on or off"
    MYSQL_PFS=${TESTDB_MYSQL_PERFORMANCE_SCHEMA:-on}
    [[ $MYSQL_PFS == on || $MYSQL_PFS == off ]] || die "TESTDB_MYSQL_PERFORMANCE_SCHEMA must be on or off"
    printf 'PG_PORT=%s\nMYSQL_PORT=%s\nPG_SSL=%s\nMYSQL_PFS=%s\n' "$PG_PORT" "$MYSQL_PORT" "$PG_SSL" "$MYSQL_PFS" \
      >"$DIR/ports"
    init_pg
    if ! (init_mysql); then
      stop_pg
      exit 1
    fi
    cat >"$DIR/env" <<EOF
export BINDS_TEST_DIR=$DIR
export BINDS_TEST_PG_PORT=$PG_PORT
export BINDS_TEST_MYSQL_PORT=$MYSQL_PORT
export BINDS_TEST_PG_URL=postgresql://$DB_USER:$DB_PASSWORD@127.0.0.1:$PG_PORT/$DB_NAME
export BINDS_TEST_MYSQL_URL=mysql://$DB_USER:$DB_PASSWORD@127.0.0.1:$MYSQL_PORT/$DB_NAME
EOF
    if [[ $PG_SSL == on ]]; then
      cat >>"$DIR/env" <<EOF
export BINDS_TEST_PG_TLS_URL=postgresql://$DB_USER:$DB_PASSWORD@127.0.0.1:$PG_PORT/$DB_NAME
export BINDS_TEST_PG_TLS_ROOT=$DIR/pg/root.crt
EOF
    fi
    cat "$DIR/env"
    ;;
  stop)
    DIR=$(cd "$DIR" && pwd) || die "no such directory"
    load_ports
    rc=0
    (stop_mysql) || rc=1
    (stop_pg) || rc=1
    exit $rc
    ;;
  start-pg | stop-pg | crash-pg | start-mysql | stop-mysql | kill-mysql | freeze-pg | thaw-pg | freeze-mysql | thaw-mysql)
    DIR=$(cd "$DIR" && pwd) || die "no such directory"
    load_ports
    case $CMD in
      start-pg) start_pg ;;
      stop-pg) stop_pg ;;
      start-mysql) start_mysql ;;
      stop-mysql) stop_mysql ;;
      kill-mysql) kill_mysql ;;
      crash-pg) crash_pg ;;
      freeze-pg) signal_server STOP pg ;;
      thaw-pg) signal_server CONT pg ;;
      freeze-mysql) signal_server STOP mysql ;;
      thaw-mysql) signal_server CONT mysql ;;
    esac
    ;;
  *) usage ;;
esac
