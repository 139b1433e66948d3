#!/usr/bin/env bash
# Builds the .deb from an existing build tree with cpack and checks what it would do to a system:
# its files, control fields, conffiles and maintainer scripts (run against stub commands).
# usage: deb_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

etc_existed=0
[[ -e /etc/binds ]] && etc_existed=1
for b in server/bindsd client/binds; do [[ -x $build/$b ]] || fail "$build/$b is not built"; done
# cpack first builds the "preinstall" target, i.e. all of the tree. A test must not build (other
# tests may be running those binaries), so make only pretends: the package is what is built now.
MAKEFLAGS=-n cpack --config "$build/CPackConfig.cmake" -G DEB -B "$tmp/pkg" >"$tmp/cpack.log" 2>&1 ||
  { cat "$tmp/cpack.log"; fail "cpack failed"; }
# CPACK_SET_DESTDIR keeps the absolute destinations inside the staging tree.
[[ $etc_existed -eq 1 || ! -e /etc/binds ]] || fail "cpack wrote /etc/binds on the host"
# The same layout from a plain `cmake --install`, staged.
DESTDIR="$tmp/stage" cmake --install "$build" --prefix /usr >/dev/null
for f in usr/bin/bindsd usr/bin/binds etc/binds/binds.yaml lib/systemd/system/bindsd.service; do
  [[ -f $tmp/stage/$f ]] || fail "cmake --install did not lay out /$f"
done
echo "ok: cmake --install layout"

debs=("$tmp"/pkg/bindsd_*.deb)
[[ ${#debs[@]} -eq 1 && -f ${debs[0]} ]] || fail "expected one bindsd_*.deb, got: ${debs[*]}"
deb=${debs[0]}
echo "ok: built $(basename "$deb")"

dpkg-deb -c "$deb" | awk '{print $NF}' | sed 's#^\./#/#' >"$tmp/files"
for f in /usr/bin/bindsd /usr/bin/binds /etc/binds/binds.yaml /lib/systemd/system/bindsd.service \
    /usr/share/doc/bindsd/README.Debian; do
  grep -qxF "$f" "$tmp/files" || { cat "$tmp/files"; fail "missing $f"; }
done
# Directories end in /; every file must sit directly in one of the four places.
if grep -v '/$' "$tmp/files" | grep -vE '^/(usr/bin|usr/share/doc/bindsd|etc/binds|lib/systemd/system)/[^/]+$'; then
  fail "unexpected files in the package (above)"
fi
dpkg-deb -c "$deb" | grep -E ' \./usr/bin/bindsd$' | grep -q '^-rwxr-xr-x root/root' ||
  fail "/usr/bin/bindsd is not an executable owned by root"
echo "ok: files"

info=$(dpkg-deb -I "$deb")
field() { dpkg-deb -f "$deb" "$1"; }
[[ $(field Package) == bindsd ]] || fail "Package is $(field Package)"
[[ -n $(field Maintainer) ]] || fail "no Maintainer"
[[ $(field Architecture) == "$(dpkg --print-architecture)" ]] || fail "Architecture $(field Architecture)"
depends=$(field Depends)
# libspdlog1.10 provides libspdlog1.10-fmt9, which is what dpkg-shlibdeps names.
for d in adduser libmariadb3 'libssl3' libsqlite3-0 libyaml-cpp0.7 'libspdlog1\.10(-fmt9)?' libfmt9 libc6 'libstdc\+\+6'; do
  grep -qE "(^|, )$d( |,|$)" <<<"$depends" || fail "Depends lacks $d: $depends"
done
for s in postinst prerm postrm conffiles; do
  grep -qE "^ +[0-9]+ bytes, +[0-9]+ lines +\*? *$s" <<<"$info" || { echo "$info"; fail "no $s in control"; }
done
echo "ok: control (Depends: $depends)"

dpkg-deb -e "$deb" "$tmp/control"
[[ $(cat "$tmp/control/conffiles") == /etc/binds/binds.yaml ]] ||
  fail "conffiles: $(cat "$tmp/control/conffiles")"
for s in postinst prerm postrm; do
  [[ -x $tmp/control/$s ]] || fail "$s is not executable"
  sh -n "$tmp/control/$s" || fail "$s: syntax error"
  if command -v shellcheck >/dev/null; then shellcheck -s sh "$tmp/control/$s" || fail "$s: shellcheck"; fi
done

dpkg-deb -x "$deb" "$tmp/root"
cmp "$tmp/root/lib/systemd/system/bindsd.service" "$src/deploy/bindsd.service" || fail "unit differs from deploy/"
cmp "$tmp/root/etc/binds/binds.yaml" "$src/deploy/binds.yaml" || fail "config differs from deploy/"
"$tmp/root/usr/bin/bindsd" --check-config "$tmp/root/etc/binds/binds.yaml" ||
  fail "the packaged binds.yaml does not validate"
grep -qx '  unix: /run/binds/bindsd.sock' "$tmp/root/etc/binds/binds.yaml" || fail "socket not under /run/binds"
grep -q 'sqlite:////var/lib/binds/' "$tmp/root/etc/binds/binds.yaml" || fail "SQLite not under /var/lib/binds"
echo "ok: conffiles, scripts, packaged config validates"

# Maintainer scripts against stubs that log their arguments: what they would run on a host
# without systemd running (a chroot or an image build), where /run/systemd/system is absent.
mkdir -p "$tmp/stubs"
for c in adduser addgroup deb-systemd-helper deb-systemd-invoke systemctl; do
  printf '#!/bin/sh\necho "%s $*" >>"%s"\n' "$c" "$tmp/calls" >"$tmp/stubs/$c"
  chmod +x "$tmp/stubs/$c"
done
# No binds user yet; deb-systemd-helper was-enabled is true on a first install (stub exits 0).
printf '#!/bin/sh\nexit 2\n' >"$tmp/stubs/getent" && chmod +x "$tmp/stubs/getent"
run() { : >"$tmp/calls"; PATH="$tmp/stubs:$PATH" sh "$tmp/control/$1" "${@:2}" || fail "$1 $* failed"; }
have() { grep -qxF -- "$1" "$tmp/calls" || { cat "$tmp/calls"; fail "expected call: $1"; }; }
lacks() { ! grep -q -- "$1" "$tmp/calls" || { cat "$tmp/calls"; fail "unexpected call: $1"; }; }
systemd_running=0
[[ -d /run/systemd/system ]] && systemd_running=1

run postinst configure
have "adduser --system --group --home /var/lib/binds --no-create-home --gecos binds database broker --quiet binds"
have "deb-systemd-helper enable bindsd.service"
[[ $systemd_running -eq 1 ]] || lacks systemctl
run postinst configure 0.1.0
have "deb-systemd-helper enable bindsd.service"
run prerm remove
[[ $systemd_running -eq 1 ]] || lacks deb-systemd-invoke
run postrm remove
have "deb-systemd-helper mask bindsd.service"
run postrm purge
have "deb-systemd-helper purge bindsd.service"
echo "ok: maintainer scripts (systemd running: $systemd_running)"
