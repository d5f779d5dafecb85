#!/usr/bin/env python3
"""Evicts files from the page cache (posix_fadvise DONTNEED) without touching
anything else on the machine: layers-evict.py PATH... (files or trees)."""
import os
import sys

for top in sys.argv[1:]:
    paths = [top] if os.path.isfile(top) else (
        os.path.join(d, f) for d, _, fs in os.walk(top) for f in fs)
    for p in paths:
        try:
            fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
