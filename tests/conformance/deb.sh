#!/bin/bash
# make deb: the package declares a dependency for every shared library herd and libherd.so need,
# installs with dpkg -i (herd --version from PATH, pkg-config finds herd, a program links libherd.so),
# and dpkg -r removes every file it installed.
#
# Where: as root in CI (CI=true), or with HERD_TEST_DEB=system, into the system itself (/usr/bin/herd,
# ...), refusing to when a herd is already there, and removing the package on any exit. Elsewhere as
# root (a shared development machine) into a scratch root with `dpkg --root`, whose status database
# holds this machine's records of the dependencies, so dpkg still checks that they are satisfied.
# Not root and not CI: skipped.
. tests/lib.sh
command -v dpkg-deb >/dev/null && command -v dpkg >/dev/null || skip "no dpkg: not a Debian system"
if [ "$(id -u)" -ne 0 ]; then
    [ "${CI:-}" = true ] && die "CI must run the tests as root to install the package"
    skip "dpkg -i needs root (run as root, or in CI)"
fi
MODE=sandbox
[ "${CI:-}" = true ] || [ "${HERD_TEST_DEB:-}" = system ] && MODE=system

VERSION=$(cat VERSION)
ARCH=$(dpkg --print-architecture)
DEB=build/deb/herd_${VERSION}_$ARCH.deb
make -s --no-print-directory deb >"$TMP/deb.log" 2>&1 || { tail -n 30 "$TMP/deb.log"; die "make deb failed"; }
[ -f "$DEB" ] || die "make deb did not write $DEB"
dpkg-deb --info "$DEB" >/dev/null || die "$DEB is not a valid package"
[ "$(dpkg-deb -f "$DEB" Package)" = herd ] && [ "$(dpkg-deb -f "$DEB" Version)" = "$VERSION" ] ||
    die "$DEB is not herd $VERSION"
DEPENDS=$(dpkg-deb -f "$DEB" Depends)
echo "Depends: $DEPENDS"
deps=$(tr ',' '\n' <<<"$DEPENDS" | awk '{ print $1 }')

# every library the binaries need (NEEDED) belongs to a declared package
dpkg-deb -x "$DEB" "$TMP/x"
for bin in "$TMP"/x/usr/bin/herd "$TMP"/x/usr/lib/*/libherd.so.$VERSION; do
    for lib in $(objdump -p "$bin" | awk '$1 == "NEEDED" { print $2 }'); do
        path=$(ldconfig -p | awk -v l="$lib" '$1 == l { print $NF; exit }')
        [ -n "$path" ] || die "$(basename "$bin") needs $lib, which ldconfig does not know"
        pkg=""
        for p in "$path" "$(readlink -f "$path")" "${path#/usr}" "/usr$path"; do
            pkg=$(dpkg -S "$p" 2>/dev/null | head -n 1 | cut -d: -f1) && [ -n "$pkg" ] && break
        done
        [ -n "$pkg" ] || die "no installed package owns $path ($lib)"
        grep -qx "$pkg" <<<"$deps" || die "$(basename "$bin") needs $lib from package $pkg, which Depends does not name"
    done
done
echo "every NEEDED library comes from a package in Depends"

# the package's files (not directories), as paths
dpkg-deb -c "$DEB" | awk '$1 !~ /^d/ { p = $6; sub(/^\./, "", p); print p }' >"$TMP/files"
grep -qx /usr/bin/herd "$TMP/files" || die "the package has no /usr/bin/herd"

if [ $MODE = system ]; then
    R=""
    dpkg-query -W -f='${Status}' herd 2>/dev/null | grep -q installed &&
        die "a package herd is installed already; not replacing it"
    clash=$(while read -r f; do [ -e "$f" ] || [ -L "$f" ] && echo "$f"; done <"$TMP/files")
    [ -z "$clash" ] || die "files of the package exist already (dpkg would overwrite them): $clash"
    trap 'dpkg -r herd >/dev/null 2>&1; rm -rf "$TMP"' EXIT
    DPKG=(dpkg)
else
    R=$TMP/root
    mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/var/lib/dpkg/triggers"
    for d in $deps; do   # this machine's record of each dependency (its files are not needed)
        dpkg-query -s "$d" >>"$R/var/lib/dpkg/status" 2>/dev/null || die "the dependency $d is not installed here"
        echo >>"$R/var/lib/dpkg/status"
        touch "$R/var/lib/dpkg/info/$d.list" "$R/var/lib/dpkg/info/$d:$ARCH.list"
    done
    DPKG=(dpkg --root="$R" --log=/dev/null)
fi
echo "installing into ${R:-the system} ($MODE)"
"${DPKG[@]}" -i "$DEB" >"$TMP/dpkg-i.log" 2>&1 || { cat "$TMP/dpkg-i.log"; die "dpkg -i $DEB failed"; }
"${DPKG[@]}" -s herd | grep -qx 'Status: install ok installed' || die "dpkg does not list herd as installed"
missing=$(while read -r f; do [ -e "$R$f" ] || [ -L "$R$f" ] || echo "$f"; done <"$TMP/files")
# dpkg's path-exclude (minimal images drop /usr/share/man, /usr/share/doc) may leave some out
[ -z "$(grep -v '^/usr/share/' <<<"$missing")" ] || die "dpkg -i did not install: $missing"

out=$(PATH=$R/usr/bin:$PATH herd --version) || die "herd --version from PATH failed"
[ "$(PATH=$R/usr/bin:$PATH command -v herd)" = "$R/usr/bin/herd" ] || die "PATH does not find the package's herd"
[ "$out" = "$(build/herd --version)" ] || die "the installed herd --version says '$out', build/herd '$(build/herd --version)'"
echo "herd --version from PATH: $out"

if [ $MODE = system ]; then
    # as a user of the package would: pkg-config's default path, the dynamic linker's cache
    [ "$(pkg-config --modversion herd)" = "$VERSION" ] || die "pkg-config does not find herd $VERSION"
    ldconfig -p | grep -q "libherd.so.${VERSION%%.*} " || die "ldconfig's cache has no libherd.so.${VERSION%%.*}"
    cc -std=c11 -o "$TMP/hello" tests/data/install/hello.c $(pkg-config --cflags --libs herd) ||
        die "cannot build against the package with pkg-config --cflags --libs herd"
    "$TMP/hello" | grep -qx "version $VERSION" || die "hello against the package's libherd.so failed"
    [ -z "$missing" ] && { man -w herd-serve >/dev/null 2>&1 || die "man does not find herd-serve"; }
fi

"${DPKG[@]}" -r herd >"$TMP/dpkg-r.log" 2>&1 || { cat "$TMP/dpkg-r.log"; die "dpkg -r herd failed"; }
left=$(while read -r f; do [ -e "$R$f" ] || [ -L "$R$f" ] && echo "$f"; done <"$TMP/files")
[ -z "$left" ] || die "dpkg -r left files of the package: $left"
"${DPKG[@]}" -s herd 2>/dev/null | grep -q 'Status: install ok installed' && die "dpkg still lists herd as installed"
echo "dpkg -r removed all $(wc -l <"$TMP/files") files"
