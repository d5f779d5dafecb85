#!/usr/bin/env bash
# export, import, unpack, layer apply/create, and hostile tarballs.
. "$(dirname "$0")/lib.sh"
need python3

strata bootstrap busybox >/dev/null || fail "bootstrap"
strata export busybox -o "$WORK/rootfs.tar" || fail "export"
tar -tf "$WORK/rootfs.tar" | grep -qx 'bin/busybox' || fail "export holds bin/busybox"
strata import "$WORK/rootfs.tar" -t reimported:1 >/dev/null || fail "import"
strata unpack reimported:1 "$WORK/a" || fail "unpack reimported"
strata unpack busybox "$WORK/b" || fail "unpack busybox"
[ -x "$WORK/a/bin/busybox" ] || fail "unpacked rootfs has bin/busybox"
[ "$(tree_dump "$WORK/a")" = "$(tree_dump "$WORK/b")" ] || fail "export -> import keeps every file"
[ "$(stat -c %i "$WORK/a/bin/busybox")" = "$(stat -c %i "$WORK/a/bin/sh")" ] || fail "applets are hard links"

# Hostile tarballs are refused, naming the entry, with nothing named or written outside.
python3 - "$WORK" <<'PY'
import io, sys, tarfile
work = sys.argv[1]
def mk(name, entries):
    with tarfile.open(f"{work}/{name}", "w") as t:
        for e in entries:
            t.addfile(*e)
def f(name, data=b"x"):
    i = tarfile.TarInfo(name); i.size = len(data); return (i, io.BytesIO(data))
def l(name, target, hard=False):
    i = tarfile.TarInfo(name); i.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE; i.linkname = target; return (i,)
mk("dotdot.tar", [f("../escape.txt")])
mk("abs-link.tar", [l("etc", "/tmp/strata-e2e-outside"), f("etc/owned")])
mk("hardlink.tar", [l("pw", "/etc/passwd", hard=True)])
mk("whiteout.tar", [f("a/.wh..")])
PY
before=$(cat "$STRATA_ROOT/index.json")
expect_fail '../escape.txt' strata import "$WORK/dotdot.tar" -t bad:1
assert_eq "$(cat "$STRATA_ROOT/index.json")" "$before" "a refused import leaves index.json alone"
mkdir -p "$WORK/target"
expect_fail '../escape.txt' strata layer apply "$WORK/dotdot.tar" "$WORK/target"
[ ! -e "$WORK/escape.txt" ] || fail "nothing may be written outside the target"
rm -rf /tmp/strata-e2e-outside
strata layer apply "$WORK/abs-link.tar" "$WORK/target" 2>"$WORK/err" && fail "absolute symlink then write must fail"
assert_contains "$(cat "$WORK/err")" "etc/owned" "names the entry"
[ ! -e /tmp/strata-e2e-outside/owned ] || fail "write through an absolute symlink escaped the target"
expect_fail 'pw' strata layer apply "$WORK/hardlink.tar" "$WORK/target"
expect_fail '.wh..' strata layer apply "$WORK/whiteout.tar" "$WORK/target"

# layer create / apply round trip of a directory.
strata layer create "$WORK/b" -o "$WORK/layer.tar.zst" >/dev/null || fail "layer create"
mkdir -p "$WORK/c"
strata layer apply "$WORK/layer.tar.zst" "$WORK/c" || fail "layer apply"
[ "$(tree_dump "$WORK/b")" = "$(tree_dump "$WORK/c")" ] || fail "layer create -> apply keeps every file"
echo ok
