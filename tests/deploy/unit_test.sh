#!/usr/bin/env bash
# systemd-analyze verify on deploy/bindsd.service, and proof that the check can fail.
# usage: unit_test.sh UNIT BINDSD
# verify insists that ExecStart's binary exists, so a copy points at the built bindsd. verify exits 0
# on keys it merely ignores (typos, bad values), so any diagnostic output also counts as failure.
set -euo pipefail
unit=$1 bindsd=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# Verifies $1 (a unit body) as bindsd.service; prints diagnostics, returns non-zero on any.
verify() {
  mkdir -p "$tmp/u" && printf '%s\n' "$1" >"$tmp/u/bindsd.service"
  local out rc=0
  out=$(cd "$tmp/u" && SYSTEMD_LOG_COLOR=0 systemd-analyze verify ./bindsd.service 2>&1) || rc=$?
  [[ -n $out ]] && printf '%s\n' "$out"
  [[ $rc -eq 0 && -z $out ]]
}

body=$(sed "s#/usr/bin/bindsd#$bindsd#g" "$unit")
verify "$body" || fail "systemd-analyze verify rejected $unit"
echo "ok: verify clean"

# shellcheck disable=SC2016  # $MAINPID is literal unit text
# What the package and the daemon rely on, so a later edit cannot drop it silently.
for line in 'Type=notify' 'ExecStart=/usr/bin/bindsd --config /etc/binds/binds.yaml' \
    'ExecReload=/bin/kill -HUP $MAINPID' 'User=binds' 'Group=binds' 'RuntimeDirectory=binds' \
    'StateDirectory=binds' 'ConfigurationDirectory=binds' 'WatchdogSec=30s' 'Restart=on-failure' \
    'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' \
    'PrivateDevices=yes' 'ProtectKernelTunables=yes' 'ProtectKernelModules=yes' \
    'ProtectKernelLogs=yes' 'ProtectControlGroups=yes' \
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' 'RestrictNamespaces=yes' \
    'LockPersonality=yes' 'MemoryDenyWriteExecute=yes' 'RestrictRealtime=yes' \
    'SystemCallArchitectures=native' 'CapabilityBoundingSet=' 'LimitNOFILE=65536' \
    'WantedBy=multi-user.target'; do
  grep -qxF -- "$line" "$unit" || fail "$unit lacks: $line"
done
grep -q '^TimeoutStopSec=' "$unit" || fail "$unit lacks TimeoutStopSec="
echo "ok: required settings present"

# The hardening as systemd scores it (an unhardened service is 9.6 "UNSAFE"). --threshold is on the
# internal 0-100 scale: 30 means an exposure level above 3.0 fails.
(cd "$tmp/u" && systemd-analyze security --offline=yes --threshold=30 ./bindsd.service >"$tmp/sec" 2>&1) ||
  { tail -n 5 "$tmp/sec"; fail "exposure level above 3"; }
echo "ok: $(grep -o 'Overall exposure level.*' "$tmp/sec")"

# shellcheck disable=SC2001
# Broken copies must be caught: a misspelt key, a bad value, a missing binary, a bad section.
broken=(
  "$(sed 's/^WatchdogSec=/WatchdgSec=/' <<<"$body")"
  "$(sed 's/^Type=notify/Type=notifyy/' <<<"$body")"
  "$(sed "s#$bindsd#/nonexistent/bindsd#" <<<"$body")"
  "$(sed 's/^\[Service\]/[Servise]/' <<<"$body")"
)
for b in "${broken[@]}"; do
  if verify "$b" >/dev/null; then
    diff <(printf '%s\n' "$body") <(printf '%s\n' "$b") || true
    fail "a broken unit passed verify"
  fi
done
echo "ok: ${#broken[@]} broken units rejected"
