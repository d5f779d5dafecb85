#!/usr/bin/env python3
"""Writes a docker-archive (classic form, gzip layers) of N files in three
layers, with known amounts of waste, for bench/inspect.sh:

  layer 1: N files of 100..1,500 bytes in directories of 1,000
  layer 2: every 10th file rewritten, every 20th (offset 1) deleted
  layer 3: every 20th (offset 2) chmod'ed to 0755 (same bytes), N/100 new files

  inspect_mkimage.py N OUT.tar [NAME]
"""
import gzip
import hashlib
import io
import json
import os
import random
import sys
import tarfile


def content(i, gen, size):
    # Half random, half text: compresses about 2:1, like real layers.
    rnd = random.Random(i * 31 + gen).randbytes(size // 2)
    line = f"file {i} generation {gen}\n".encode()
    return rnd + (line * (size // len(line) + 1))[:size - len(rnd)]


def size_of(i):
    return 100 + (i * 7919) % 1400


def path_of(i):
    return f"data/d{i // 1000:04d}/f{i:07d}.txt"


def add_file(tar, path, data, mode=0o644):
    info = tarfile.TarInfo(path)
    info.size = len(data)
    info.mode = mode
    info.mtime = 1700000000
    tar.addfile(info, io.BytesIO(data))


def add_dir(tar, path):
    info = tarfile.TarInfo(path)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = 1700000000
    tar.addfile(info)


def layer(build):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        build(tar)
    data = raw.getvalue()
    return hashlib.sha256(data).hexdigest(), gzip.compress(data, compresslevel=1, mtime=0)


def main():
    n = int(sys.argv[1])
    out = sys.argv[2]
    name = sys.argv[3] if len(sys.argv) > 3 else f"bench:{n}"

    def l1(tar):
        add_dir(tar, "data")
        for i in range(n):
            if i % 1000 == 0:
                add_dir(tar, f"data/d{i // 1000:04d}")
            add_file(tar, path_of(i), content(i, 1, size_of(i)))

    def l2(tar):
        for i in range(n):
            if i % 10 == 0:
                add_file(tar, path_of(i), content(i, 2, size_of(i) + 10))
            elif i % 20 == 1:
                d, f = os.path.split(path_of(i))
                add_file(tar, f"{d}/.wh.{f}", b"")

    def l3(tar):
        for i in range(n):
            if i % 20 == 2:
                add_file(tar, path_of(i), content(i, 1, size_of(i)), 0o755)
        add_dir(tar, "new")
        for i in range(n // 100):
            add_file(tar, f"new/n{i:06d}", content(i, 3, 500))

    layers = [layer(l1), layer(l2), layer(l3)]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + d for d, _ in layers]},
        "history": [
            {"created": "2024-01-01T00:00:00Z", "created_by": f"COPY data/ /data/ # {n} files"},
            {"created": "2024-01-01T00:00:00Z", "created_by": "RUN rewrite 10%, delete 5%"},
            {"created": "2024-01-01T00:00:00Z", "created_by": "RUN chmod 5%, add 1%"},
        ],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_hex = hashlib.sha256(config_bytes).hexdigest()
    manifest = [{"Config": f"{config_hex}.json", "RepoTags": [name],
                 "Layers": [f"{d}/layer.tar" for d, _ in layers]}]
    with tarfile.open(out, "w") as tar:
        add_file(tar, f"{config_hex}.json", config_bytes)
        for d, blob in layers:
            add_dir(tar, d)
            add_file(tar, f"{d}/layer.tar", blob)
        add_file(tar, "manifest.json", json.dumps(manifest).encode())


if __name__ == "__main__":
    main()
