#!/usr/bin/env bash
# Installs what bindsd needs to build and run (--runtime) or to build and run the whole
# test suite (--test: adds PostgreSQL 15, MariaDB 10.11, Python test deps).
# Debian 12 only; run as root. Idempotent.
set -euo pipefail
mode=${1:---runtime}
export DEBIAN_FRONTEND=noninteractive

build_pkgs=(
  build-essential cmake pkg-config git
  libboost1.74-dev libboost-system1.74-dev
  libpq-dev libssl-dev libmariadb-dev libsqlite3-dev
  libspdlog-dev libfmt-dev libyaml-cpp-dev libmsgpack-cxx-dev
  libsystemd-dev libmimalloc-dev libedit-dev
  python3-setuptools  # python3-binds' .egg-info (deploy/packaging.cmake)
)
test_pkgs=(
  libgtest-dev libgmock-dev libbenchmark-dev
  postgresql-15 postgresql-client-15 mariadb-server mariadb-client
  python3-msgpack python3-pytest python3-sqlalchemy python3-flask-sqlalchemy
  python3-psycopg2 python3-pymysql
  python3-venv python3-pip sqlite3 procps systemd openssl tmux
  lintian  # tests/deploy/deb_test.sh
  man-db groff-base  # tests/deploy/man_test.py renders the man pages (lintian pulls them in; named, not assumed)
  # promtool (lints /metrics in tests) comes with the prometheus package; tmux drives `binds top`.
  prometheus
)

pkgs=("${build_pkgs[@]}")
case "$mode" in
  --runtime) ;;
  --test) pkgs+=("${test_pkgs[@]}") ;;
  *) echo "usage: $0 [--runtime|--test]" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  apt-get update
  # Installing a database server package must not start a system-wide instance: tests start
  # their own on loopback. policy-rc.d 101 tells invoke-rc.d to skip starting services.
  tmp_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    tmp_policy=1
  fi
  apt-get install -y --no-install-recommends "${missing[@]}"
  [ -n "$tmp_policy" ] && rm -f /usr/sbin/policy-rc.d
fi
echo "install-deps: all packages present (${mode#--})"
