#!/usr/bin/env bash
# Builds the three .debs (bindsd, python3-binds, libbinds-dev) from an existing build tree with one
# cpack run and checks what they would do to a system: lintian, their files, control fields,
# conffiles and maintainer scripts (run against stub commands); the Python package imported from its
# Debian layout; a program built against libbinds-dev with CMake and with pkg-config.
# usage: deb_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d)
bindsd_pid=
trap '[[ -z $bindsd_pid ]] || kill "$bindsd_pid" 2>/dev/null; rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

etc_existed=0
[[ -e /etc/binds ]] && etc_existed=1
for b in server/bindsd client/binds; do [[ -x $build/$b ]] || fail "$build/$b is not built"; done
sanitize=$(sed -n 's/^BINDS_SANITIZE:BOOL=//p' "$build/CMakeCache.txt")
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
# cpack first builds the "preinstall" target, i.e. all of the tree. A test must not build (other
# tests may be running those binaries), so make only pretends: the packages are what is built now.
MAKEFLAGS=-n cpack --config "$build/CPackConfig.cmake" -G DEB -B "$tmp/pkg" >"$tmp/cpack.log" 2>&1 ||
  { cat "$tmp/cpack.log"; fail "cpack failed"; }
# CPACK_SET_DESTDIR keeps the absolute destinations inside the staging tree.
[[ $etc_existed -eq 1 || ! -e /etc/binds ]] || fail "cpack wrote /etc/binds on the host"
# The same layout from a plain `cmake --install`, staged.
DESTDIR="$tmp/stage" cmake --install "$build" --prefix /usr >/dev/null
for f in usr/bin/bindsd usr/bin/binds etc/binds/binds.yaml lib/systemd/system/bindsd.service \
    usr/share/man/man8/bindsd.8.gz usr/share/man/man1/binds.1.gz usr/share/man/man5/binds.yaml.5.gz \
    usr/lib/python3/dist-packages/binds/__init__.py usr/include/binds/client/client.hpp \
    "usr/lib/$multiarch/pkgconfig/binds.pc" "usr/lib/$multiarch/cmake/binds/binds-config.cmake"; do
  [[ -f $tmp/stage/$f ]] || fail "cmake --install did not lay out /$f"
done
grep -qx 'prefix=/usr' "$tmp/stage/usr/lib/$multiarch/pkgconfig/binds.pc" || fail "binds.pc: prefix is not /usr"
echo "ok: cmake --install layout"

ls "$tmp/pkg"/*.deb >/dev/null 2>&1 || { cat "$tmp/cpack.log"; fail "cpack built no .deb"; }
version=$(head -1 "$src/deploy/debian/changelog" | sed -n 's/^binds (\([^)]*\)).*/\1/p')
[[ -n $version ]] || fail "no version in the first line of deploy/debian/changelog"
server=$tmp/pkg/bindsd_${version}_$arch.deb
python=$tmp/pkg/python3-binds_${version}_all.deb
dev=$tmp/pkg/libbinds-dev_${version}_$arch.deb
for d in "$server" "$python" "$dev"; do
  [[ -f $d ]] || fail "expected $(basename "$d") (version from deploy/debian/changelog), got: $(ls "$tmp/pkg")"
done
debs=("$tmp/pkg"/*.deb)
[[ ${#debs[@]} -eq 3 ]] || fail "expected three packages, got: ${debs[*]}"
echo "ok: built $(cd "$tmp/pkg" && echo *.deb)"

# Lintian: no errors. Its warnings and notes are listed (deploy/README.md says which remain, why).
lintian --fail-on error --tag-display-limit 0 "$server" "$python" "$dev" >"$tmp/lintian" 2>&1 ||
  { cat "$tmp/lintian"; fail "lintian reports errors (E:) or failed"; }
sed 's/^/  lintian: /' "$tmp/lintian"
! grep -q '^E:' "$tmp/lintian" || fail "lintian errors above"
echo "ok: lintian: no errors ($(grep -c '^W:' "$tmp/lintian" || true) warnings)"

# The maintainer named once in packaging.cmake must match the changelog and the copyright file.
maintainer=$(dpkg-deb -f "$server" Maintainer)
[[ $maintainer =~ ^[^\<]+\ \<[^@\>]+@[^@\>]+\>$ ]] || fail "Maintainer is not 'name <email>': $maintainer"
grep -qxF -- " -- $maintainer  $(sed -n 's/^ -- [^>]*>  //p' "$src/deploy/debian/changelog" | head -1)" \
  "$src/deploy/debian/changelog" || fail "changelog trailer is not by $maintainer"
grep -qxF "Upstream-Contact: $maintainer" "$src/deploy/debian/copyright" || fail "copyright: Upstream-Contact is not $maintainer"
for d in "$server" "$python" "$dev"; do
  pkg=$(dpkg-deb -f "$d" Package)
  [[ $(dpkg-deb -f "$d" Maintainer) == "$maintainer" ]] || fail "$pkg: Maintainer $(dpkg-deb -f "$d" Maintainer)"
  [[ $(dpkg-deb -f "$d" Version) == "$version" ]] || fail "$pkg: Version $(dpkg-deb -f "$d" Version), changelog $version"
  # Policy 3.4.1: the synopsis and every line of the extended description fit in 80 columns.
  dpkg-deb -f "$d" Description | awk -v p="$pkg" 'length > 80 { print p ": description line over 80 columns: " $0; bad = 1 } END { exit bad }' ||
    fail "$pkg: long description lines"
  dpkg-deb -x "$d" "$tmp/root-$pkg"
  cmp "$tmp/root-$pkg/usr/share/doc/$pkg/copyright" "$src/deploy/debian/copyright" || fail "$pkg: copyright differs"
  gzip -dc "$tmp/root-$pkg/usr/share/doc/$pkg/changelog.Debian.gz" | cmp - "$src/deploy/debian/changelog" ||
    fail "$pkg: changelog.Debian.gz differs from deploy/debian/changelog"
done
echo "ok: Maintainer ($maintainer), Version $version, descriptions, copyright and changelog in each"

# --- bindsd
deb=$server root=$tmp/root-bindsd
dpkg-deb -c "$deb" | awk '{print $NF}' | sed 's#^\./#/#' >"$tmp/files"
for f in /usr/bin/bindsd /usr/bin/binds /etc/binds/binds.yaml /lib/systemd/system/bindsd.service \
    /usr/share/doc/bindsd/README.Debian /usr/share/man/man8/bindsd.8.gz /usr/share/man/man1/binds.1.gz \
    /usr/share/man/man5/binds.yaml.5.gz; do
  grep -qxF "$f" "$tmp/files" || { cat "$tmp/files"; fail "missing $f"; }
done
# Directories end in /; every file must sit directly in one of these places.
if grep -v '/$' "$tmp/files" |
    grep -vE '^/(usr/bin|usr/share/doc/bindsd|usr/share/man/man[158]|etc/binds|lib/systemd/system)/[^/]+$'; then
  fail "unexpected files in bindsd (above)"
fi
dpkg-deb -c "$deb" | grep -E ' \./usr/bin/bindsd$' | grep -q '^-rwxr-xr-x root/root' ||
  fail "/usr/bin/bindsd is not an executable owned by root"
for page in man8/bindsd.8 man1/binds.1 man5/binds.yaml.5; do
  gzip -dc "$root/usr/share/man/$page.gz" | cmp - "$src/deploy/man/${page#*/}" || fail "$page.gz differs from deploy/man/"
done
echo "ok: bindsd files"

info=$(dpkg-deb -I "$deb")
field() { dpkg-deb -f "$deb" "$1"; }
[[ $(field Package) == bindsd ]] || fail "Package is $(field Package)"
[[ $(field Architecture) == "$arch" ]] || fail "Architecture $(field Architecture)"
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

cmp "$root/lib/systemd/system/bindsd.service" "$src/deploy/bindsd.service" || fail "unit differs from deploy/"
cmp "$root/etc/binds/binds.yaml" "$src/deploy/binds.yaml" || fail "config differs from deploy/"
"$root/usr/bin/bindsd" --check-config "$root/etc/binds/binds.yaml" ||
  fail "the packaged binds.yaml does not validate"
grep -qx '  unix: /run/binds/bindsd.sock' "$root/etc/binds/binds.yaml" || fail "socket not under /run/binds"
grep -q 'sqlite:////var/lib/binds/' "$root/etc/binds/binds.yaml" || fail "SQLite not under /var/lib/binds"
echo "ok: conffiles, scripts, packaged config validates"

# Maintainer scripts against stubs that log their arguments: what they would run on a host
# without systemd running (a chroot or an image build), where /run/systemd/system is absent.
mkdir -p "$tmp/stubs"
for c in adduser addgroup deb-systemd-helper deb-systemd-invoke systemctl py3compile py3clean; do
  printf '#!/bin/sh\necho "%s $*" >>"%s"\n' "$c" "$tmp/calls" >"$tmp/stubs/$c"
  chmod +x "$tmp/stubs/$c"
done
# No binds user yet; deb-systemd-helper was-enabled is true on a first install (stub exits 0).
printf '#!/bin/sh\nexit 2\n' >"$tmp/stubs/getent" && chmod +x "$tmp/stubs/getent"
ctl=$tmp/control
run() { : >"$tmp/calls"; PATH="$tmp/stubs:$PATH" sh "$ctl/$1" "${@:2}" || fail "$1 $* failed"; }
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

# The packaged daemon, serving an in-memory SQLite bind, for the packaged clients below.
mkdir "$tmp/live"
printf 'listen:\n  unix: %s\nbinds:\n  main: "sqlite://"\n' "$tmp/live/bindsd.sock" >"$tmp/live/binds.yaml"
"$tmp/root-bindsd/usr/bin/bindsd" --config "$tmp/live/binds.yaml" >"$tmp/live/log" 2>&1 &
bindsd_pid=$!
for _ in $(seq 100); do [[ -S $tmp/live/bindsd.sock ]] && break; sleep 0.1; done
[[ -S $tmp/live/bindsd.sock ]] || { cat "$tmp/live/log"; fail "the packaged bindsd did not start"; }

# --- python3-binds
deb=$python root=$tmp/root-python3-binds
site=$root/usr/lib/python3/dist-packages
[[ $(dpkg-deb -f "$deb" Architecture) == all ]] || fail "python3-binds: Architecture $(dpkg-deb -f "$deb" Architecture)"
dpkg-deb -c "$deb" | awk '{print $NF}' | sed 's#^\./#/#' | grep -v '/$' >"$tmp/files"
if grep -vE "^/(usr/lib/python3/dist-packages/(binds|binds-${version%-*}\.egg-info)|usr/share/doc/python3-binds)/[^/]+$" "$tmp/files"; then
  fail "unexpected files in python3-binds (above)"
fi
(cd "$src/client/python/binds" && ls -- *.py) >"$tmp/py-src"
(cd "$site/binds" && ls) >"$tmp/py-pkg"
diff "$tmp/py-src" "$tmp/py-pkg" || fail "python3-binds: binds/ differs from client/python/binds/*.py"
# Byte-compiling at install and cleaning up at removal, as dh_python3's scripts do.
dpkg-deb -e "$deb" "$tmp/control-py"
ctl=$tmp/control-py
for s in postinst prerm; do
  [[ -x $ctl/$s ]] || fail "python3-binds: $s is missing or not executable"
  shellcheck -s sh "$ctl/$s" || fail "python3-binds: $s: shellcheck"
done
run postinst configure
have "py3compile -p python3-binds"
run prerm remove
have "py3clean -p python3-binds"
# Every runtime requirement of the egg-info (msgpack>=1.0) is a python3-NAME in Depends.
depends=$(dpkg-deb -f "$deb" Depends)
grep -qE '(^|, )python3(:any)? ' <<<"$depends" || fail "python3-binds: Depends lacks python3: $depends"
sed '/^\[/,$d' "$site"/binds-*.egg-info/requires.txt | sed 's/[<>=!~ ].*//' | grep . >"$tmp/py-requires" ||
  fail "python3-binds: requires.txt lists no requirement"
while read -r req; do
  grep -qE "(^|, )python3-${req,,}( |,|$)" <<<"$depends" || fail "python3-binds: Depends lacks python3-${req,,}: $depends"
done <"$tmp/py-requires"
# Imported from the package's tree, not from the source or another install: version, entry points
# (SQLAlchemy finds the dialects through them), a clear error for an address nobody listens on,
# and a query through the packaged bindsd.
PYTHONPATH=$site /usr/bin/python3 -s - "$site" "${version%-*}" "$tmp/nowhere.sock" "$tmp/live/bindsd.sock" <<'PY' ||
import importlib.metadata as md
import sys
site, version, sock, live = sys.argv[1:5]
import binds
assert binds.__file__.startswith(site + "/"), binds.__file__
dist = md.distribution("binds")
assert dist.version == version, (dist.version, version)
eps = {e.name: e for e in md.entry_points(group="sqlalchemy.dialects") if e.value.startswith("binds.")}
assert sorted(eps) == ["mysql.binds", "postgresql.binds", "sqlite.binds"], sorted(eps)
from sqlalchemy.dialects import registry
for name in eps:
    cls = registry.load(name)
    assert cls.__module__ == "binds.dialects", cls
try:
    binds.connect(unix_socket=sock)
    raise SystemExit("connected to " + sock)
except binds.Error as e:
    assert sock in str(e), str(e)
    print("  python3-binds: " + str(e))
conn = binds.connect(unix_socket=live)
cur = conn.cursor()
cur.execute("SELECT 40 + 2")
assert cur.fetchone()[0] == 42
conn.close()
PY
  fail "python3-binds does not work from its Debian layout"
echo "ok: python3-binds (Depends: $depends)"

# --- libbinds-dev
deb=$dev root=$tmp/root-libbinds-dev
[[ $(dpkg-deb -f "$deb" Architecture) == "$arch" ]] || fail "libbinds-dev: Architecture $(dpkg-deb -f "$deb" Architecture)"
depends=$(dpkg-deb -f "$deb" Depends)
grep -qE '(^|, )libboost(1\.[0-9]+)?-dev' <<<"$depends" || fail "libbinds-dev: Depends lacks Boost headers: $depends"
dpkg-deb -c "$deb" | awk '{print $NF}' | sed 's#^\./#/#' | grep -v '/$' >"$tmp/files"
if grep -vE "^/usr/(include/binds/(client|protocol)|lib/$multiarch(|/cmake/binds|/pkgconfig)|share/doc/libbinds-dev)/[^/]+$" "$tmp/files"; then
  fail "unexpected files in libbinds-dev (above)"
fi
flags=(-std=c++20)
# An instrumented library needs an instrumented program (the ASan build tree packages one).
[[ $sanitize == ON ]] && flags+=("-fsanitize=address,undefined")
inc=$root/usr/include/binds
# Each header compiles on its own: the package ships every header the API needs. client.hpp is
# the consumer's first include below, which checks it (with Boost.Asio, the slow one) on the way.
while read -r h; do
  echo "#include <${h#./}>" | g++ "${flags[@]}" -fsyntax-only -I"$inc" -x c++ - || fail "libbinds-dev: $h does not compile alone"
done < <(cd "$inc" && find . -name '*.hpp' ! -path ./client/client.hpp)
mkdir -p "$tmp/consumer"
cat >"$tmp/consumer/consumer.cpp" <<'CPP'
#include <client/client.hpp>

#include <iostream>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  try {
    auto client = binds::client::Client::connect(argv[1], "libbinds-dev-test");
    const auto result = client.query("SELECT 40 + 2");
    std::cout << "answer: " << std::get<std::int64_t>(result.rows.at(0).at(0)) << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cout << "error: " << e.what() << "\n";
    return 1;
  }
}
CPP
cat >"$tmp/consumer/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.25)
project(consumer CXX)
set(CMAKE_CXX_STANDARD 20)
find_package(binds 0.1 CONFIG REQUIRED)
add_executable(consumer consumer.cpp)
target_link_libraries(consumer PRIVATE binds::client)
CMAKE
if ! { cmake -S "$tmp/consumer" -B "$tmp/consumer/build" -DCMAKE_PREFIX_PATH="$root/usr" \
    -DCMAKE_CXX_FLAGS="${flags[*]:1}" -DCMAKE_EXE_LINKER_FLAGS="${flags[*]:1}" >"$tmp/consumer.log" 2>&1 &&
    cmake --build "$tmp/consumer/build" >>"$tmp/consumer.log" 2>&1; }; then
  cat "$tmp/consumer.log"
  fail "libbinds-dev: a CMake consumer (find_package(binds)) does not build"
fi
grep -qx "binds_DIR:PATH=$root/usr/lib/$multiarch/cmake/binds" "$tmp/consumer/build/CMakeCache.txt" ||
  fail "libbinds-dev: find_package found another binds: $(grep '^binds_DIR' "$tmp/consumer/build/CMakeCache.txt")"
pc() { PKG_CONFIG_SYSROOT_DIR=$root PKG_CONFIG_LIBDIR=$root/usr/lib/$multiarch/pkgconfig pkg-config "$@" binds; }
[[ $(pc --modversion) == "${version%-*}" ]] || fail "binds.pc: version $(pc --modversion)"
# shellcheck disable=SC2046 # word splitting of pkg-config's flags is intended
g++ "${flags[@]}" "$tmp/consumer/consumer.cpp" -o "$tmp/consumer/consumer-pc" $(pc --cflags --libs) ||
  fail "libbinds-dev: a pkg-config consumer does not build"
for exe in "$tmp/consumer/build/consumer" "$tmp/consumer/consumer-pc"; do
  out=$("$exe" "$tmp/nowhere.sock") && fail "$exe: exit 0 without a daemon ($out)"
  [[ $out == "error: cannot connect to bindsd at unix:$tmp/nowhere.sock: "* ]] || fail "$exe: $out"
  [[ $("$exe" "$tmp/live/bindsd.sock") == "answer: 42" ]] || fail "$exe: no answer from the packaged bindsd"
done
echo "ok: libbinds-dev: headers compile alone; CMake and pkg-config consumers build, report a missing daemon ($out) and query the packaged one"
