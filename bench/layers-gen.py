#!/usr/bin/env python3
"""Deterministic tree generator for bench/layers.sh (from the team's peers/gen-context.py).

  gen-context.py DIR [--small N] [--big N] [--big-mb MB] [--seed S]

Writes DIR/small/dNN/sNN/fNNN.txt (N small text-ish files, 64..4096 bytes,
nested 20 x 10 x (N/200)) and DIR/big/blobN.bin (--big files of --big-mb MiB of
seeded random bytes, i.e. incompressible). Every byte and every mtime depend only
on the seed, so two runs give byte-identical trees. Existing trees are replaced.
"""
import argparse
import os
import random
import shutil

EPOCH = 1704067200  # 2024-01-01T00:00:00Z, used for every mtime

WORDS = ("layer overlay whiteout digest manifest blob config rootfs snapshot "
         "mount union lower upper merged opaque chroot namespace builder cache "
         "tarball gzip zstd index platform").split()


def small_payload(rng, size):
    out = []
    n = 0
    while n < size:
        w = rng.choice(WORDS)
        if rng.random() < 0.15:
            w = "%08x" % rng.getrandbits(32)
        out.append(w)
        n += len(w) + 1
    return (" ".join(out))[:size].encode() + b"\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--small", type=int, default=20000)
    ap.add_argument("--big", type=int, default=5)
    ap.add_argument("--big-mb", type=int, default=50)
    ap.add_argument("--seed", type=int, default=20240101)
    a = ap.parse_args()

    root = os.path.abspath(a.dir)
    if os.path.exists(root):
        shutil.rmtree(root)
    rng = random.Random(a.seed)
    per_leaf = max(1, a.small // 200)
    made = 0
    dirs = []
    for d in range(20):
        for s in range(10):
            leaf = os.path.join(root, "small", "d%02d" % d, "s%02d" % s)
            os.makedirs(leaf)
            dirs.append(leaf)
            for f in range(per_leaf):
                if made >= a.small:
                    break
                size = rng.randint(64, 4096)
                p = os.path.join(leaf, "f%03d.txt" % f)
                with open(p, "wb") as fh:
                    fh.write(small_payload(rng, size))
                os.utime(p, (EPOCH, EPOCH))
                made += 1
    big = os.path.join(root, "big")
    os.makedirs(big)
    brng = random.Random(a.seed + 1)
    chunk = 1 << 20
    for i in range(a.big):
        p = os.path.join(big, "blob%d.bin" % i)
        with open(p, "wb") as fh:
            for _ in range(a.big_mb):
                fh.write(brng.randbytes(chunk))
        os.utime(p, (EPOCH, EPOCH))
    # directory mtimes last, deepest first
    for dp, dn, fn in os.walk(root, topdown=False):
        os.utime(dp, (EPOCH, EPOCH))
    print("wrote %d small files, %d x %d MiB big files under %s" % (made, a.big, a.big_mb, root))


if __name__ == "__main__":
    main()
