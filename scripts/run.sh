#!/usr/bin/env bash
# Installs what bindsd needs, builds it, and starts it on the default binds.yaml (SQLite binds under
# ./data, Unix socket ./run/bindsd.sock, TCP 127.0.0.1:7878).
#   scripts/run.sh              start in the background (log: run/bindsd.log, pid: run/bindsd.pid)
#   scripts/run.sh --foreground stay attached; Ctrl-C stops it
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --runtime
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBINDS_BUILD_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" --target bindsd binds_cli
mkdir -p run data
./build/server/bindsd --check-config binds.yaml
if [[ ${1:-} == --foreground ]]; then
  exec ./build/server/bindsd --config binds.yaml
fi
if [[ -f run/bindsd.pid ]] && kill -0 "$(cat run/bindsd.pid)" 2>/dev/null; then
  echo "bindsd is already running (pid $(cat run/bindsd.pid)); stop it with: kill $(cat run/bindsd.pid)"
  exit 0
fi
nohup ./build/server/bindsd --config binds.yaml >>run/bindsd.log 2>&1 &
echo $! >run/bindsd.pid
for _ in $(seq 50); do
  if ./build/client/binds --socket run/bindsd.sock ping >/dev/null 2>&1; then
    echo "bindsd is running (pid $(cat run/bindsd.pid), log run/bindsd.log)."
    echo "Try:  ./build/client/binds list"
    echo "Stop: kill \$(cat run/bindsd.pid)"
    exit 0
  fi
  sleep 0.1
done
echo "bindsd did not come up; last log lines:" >&2
tail -n 20 run/bindsd.log >&2
exit 1
