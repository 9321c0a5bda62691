#!/bin/bash
# make install into a temporary DESTDIR, used as a new user would: a C program built against the
# installed tree with `pkg-config --cflags --libs herd` alone, linked shared and (--static) with
# libherd.a; the installed herd --version, man pages and bash completion; then make uninstall leaves
# no file behind. A second install checks that LIBDIR / BINDIR / MANDIR overrides are honoured.
. tests/lib.sh
command -v pkg-config >/dev/null || die "pkg-config is missing (scripts/setup.sh installs it)"
VERSION=$(cat VERSION)
MAJOR=${VERSION%%.*}
CC=${CC:-cc}
ROOT=$PWD
mk() { make -s --no-print-directory "$@"; }

# ---- install with PREFIX=/usr/local ------------------------------------------------------------
D=$TMP/dest
P=/usr/local
mk install DESTDIR="$D" PREFIX=$P >"$TMP/install.log" 2>&1 || { cat "$TMP/install.log"; die "make install failed"; }

for f in bin/herd include/herd.h lib/libherd.a lib/libherd.so.$VERSION lib/pkgconfig/herd.pc \
         share/bash-completion/completions/herd share/man/man1/herd.1 share/man/man3/libherd.3; do
    [ -f "$D$P/$f" ] || die "make install did not write $P/$f"
done
[ -x "$D$P/bin/herd" ] || die "$P/bin/herd is not executable"
[ "$(readlink "$D$P/lib/libherd.so.$MAJOR")" = "libherd.so.$VERSION" ] || die "lib/libherd.so.$MAJOR is not a link to libherd.so.$VERSION"
[ "$(readlink "$D$P/lib/libherd.so")" = "libherd.so.$VERSION" ] || die "lib/libherd.so is not a link to libherd.so.$VERSION"
soname=$(objdump -p "$D$P/lib/libherd.so.$VERSION" | awk '$1 == "SONAME" { print $2 }')
[ "$soname" = "libherd.so.$MAJOR" ] || die "the soname is '$soname', not libherd.so.$MAJOR"
cmp -s include/herd.h "$D$P/include/herd.h" || die "the installed herd.h differs from include/herd.h"
for c in $(tools/gen_help.sh commands); do
    [ -f "$D$P/share/man/man1/herd-$c.1" ] || die "no man page herd-$c.1 installed for the command $c"
done
echo "installed: $(cd "$D" && find . -type f | wc -l) files, $(cd "$D" && find . -type l | wc -l) links"

# ---- the installed program ---------------------------------------------------------------------
want=$(build/herd --version)
got=$("$D$P/bin/herd" --version) || die "the installed herd --version failed"
[ "$got" = "$want" ] || die "installed herd --version says '$got', build/herd '$want'"
case $got in "herd $VERSION"|"herd $VERSION (git "*")") ;; *) die "herd --version says '$got', not herd $VERSION [(git ...)]" ;; esac
echo "herd --version: $got"
MANPATH=$D$P/share/man man -w herd-run >/dev/null 2>&1 || die "man does not find herd-run in the installed share/man"
MANPATH=$D$P/share/man man -w 3 libherd >/dev/null 2>&1 || die "man does not find libherd(3) in the installed share/man"
comp=$(bash -c '. "$1"; COMP_WORDS=(herd qua); COMP_CWORD=1; _herd; echo "${COMPREPLY[*]}";
                COMP_WORDS=(herd run --json-s); COMP_CWORD=2; _herd; echo "${COMPREPLY[*]}"' _ \
       "$D$P/share/bash-completion/completions/herd")
[ "$comp" = $'quantize\n--json-schema' ] || die "bash completion of 'herd qua' / 'herd run --json-s' gave: $comp"

# ---- a program built with pkg-config alone -----------------------------------------------------
export PKG_CONFIG_PATH=$D$P/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$D
[ "$(pkg-config --modversion herd)" = "$VERSION" ] || die "pkg-config --modversion herd is not $VERSION"
cflags=$(pkg-config --cflags herd) && libs=$(pkg-config --libs herd) && slibs=$(pkg-config --static --libs herd) ||
    die "pkg-config cannot read herd.pc"
echo "pkg-config: --cflags '$cflags' --libs '$libs' --static --libs '$slibs'"
[[ " $cflags " == *" -I$D$P/include "* ]] || die "pkg-config --cflags herd does not point into the install: $cflags"
cp tests/data/install/hello.c "$TMP/"   # built outside the source tree: no -Iinclude to fall back on
cd "$TMP" || die "cd $TMP"

# shared: the installed libherd.so.MAJOR, found through the rpath
$CC -std=c11 -Wall -Wextra -Werror -pedantic -o hello_shared hello.c $cflags $libs -Wl,-rpath,"$D$P/lib" ||
    die "cannot build against the installed tree with pkg-config --cflags --libs herd"
ldd ./hello_shared | grep -q "libherd.so.$MAJOR => $D$P/lib/libherd.so.$MAJOR" ||
    die "hello_shared does not load the installed libherd.so.$MAJOR: $(ldd ./hello_shared | grep herd)"
# static: pkg-config --static's flags, with -lherd taken from libherd.a
$CC -std=c11 -Wall -Wextra -Werror -pedantic -o hello_static hello.c $cflags \
    ${slibs/-lherd/-Wl,-Bstatic -lherd -Wl,-Bdynamic} ||
    die "cannot link libherd.a with pkg-config --static --libs herd (is Libs.private complete?)"
! ldd ./hello_static | grep -q libherd || die "hello_static still needs a shared libherd"

vocab=""
for v in "$VOCAB_BPE" "$STORIES"; do [ -f "$v" ] && { vocab=$v; break; }; done
for kind in shared static; do
    if [ -n "$vocab" ]; then
        out=$(./hello_$kind "$vocab" "Hello, world! herd") || die "hello_$kind failed: $out"
    else
        out=$(./hello_$kind) || die "hello_$kind failed: $out"
    fi
    echo "hello_$kind: $out"
    grep -qx "version $VERSION" <<<"$out" || die "hello_$kind: herd_version() is not $VERSION"
    git=${want#"herd $VERSION"}; git=${git# (git }; git=${git%)}
    grep -qx "git $git" <<<"$out" || die "hello_$kind: herd_version_git() is not '$git' (herd --version: $want)"
    grep -q "^load $(printf '%d' -1) .*/nonexistent/herd-install-test.gguf" <<<"$out" ||
        die "hello_$kind: a missing file did not fail with HERD_E_IO and an error naming it"
    if [ -n "$vocab" ]; then
        ids=$("$D$P/bin/herd" tokenize -m "$vocab" -p "Hello, world! herd") || die "installed herd tokenize failed"
        [ "$(tail -n 1 <<<"$out")" = "$ids" ] || die "hello_$kind tokenized to $(tail -n 1 <<<"$out"), herd tokenize to $ids"
    fi
done
if [ -n "$vocab" ]; then
    "$D$P/bin/herd" info "$vocab" | grep -qx "herd: *${got#herd }" || die "herd info does not print the version '${got#herd }'"
fi
[ -n "$vocab" ] || echo "(no vocabulary GGUF at hand: tokenizing not checked)"
cd "$ROOT" || die "cd back"

# ---- make uninstall removes every file ----------------------------------------------------------
mk uninstall DESTDIR="$D" PREFIX=$P >/dev/null || die "make uninstall failed"
left=$(cd "$D" && find . ! -type d)
[ -z "$left" ] || die "make uninstall left files behind: $left"

# ---- overridden directories --------------------------------------------------------------------
D2=$TMP/dest2
vars=(PREFIX=/opt/herd BINDIR=/opt/herd/sbin LIBDIR=/opt/herd/lib64 MANDIR=/opt/herd/man INCLUDEDIR=/opt/herd/inc)
mk install DESTDIR="$D2" "${vars[@]}" >/dev/null 2>&1 || die "make install with overrides failed"
for f in sbin/herd inc/herd.h lib64/libherd.so.$VERSION lib64/libherd.a lib64/pkgconfig/herd.pc man/man1/herd.1 \
         man/man3/libherd.3 share/bash-completion/completions/herd; do
    [ -f "$D2/opt/herd/$f" ] || die "make install ${vars[*]} did not write /opt/herd/$f"
done
PKG_CONFIG_PATH=$D2/opt/herd/lib64/pkgconfig PKG_CONFIG_SYSROOT_DIR=$D2 pkg-config --libs --cflags herd |
    grep -q -- "-I$D2/opt/herd/inc -L$D2/opt/herd/lib64 -lherd" || die "herd.pc does not follow LIBDIR / INCLUDEDIR"
mk uninstall DESTDIR="$D2" "${vars[@]}" >/dev/null || die "make uninstall with overrides failed"
left=$(cd "$D2" && find . ! -type d)
[ -z "$left" ] || die "make uninstall ${vars[*]} left files behind: $left"
echo "install / uninstall: ok"
