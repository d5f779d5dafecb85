#!/usr/bin/env python3
"""A line per entry of a tree: path, type, mode, owner, size, mtime, link
count class, link target, content hash and xattrs (lazy.sh compares a lazy
mount with the kernel overlay mount of the same image with it)."""
import hashlib, os, stat, sys

root = sys.argv[1]
inodes = {}
out = []
for d, dirs, files in os.walk(root):
    dirs.sort()
    for name in sorted(dirs + files):
        p = os.path.join(d, name)
        rel = os.path.relpath(p, root)
        st = os.lstat(p)
        kind = stat.S_IFMT(st.st_mode)
        link = os.readlink(p) if stat.S_ISLNK(st.st_mode) else "-"
        h = "-"
        if stat.S_ISREG(st.st_mode):
            with open(p, "rb") as f:
                h = hashlib.sha256(f.read()).hexdigest()[:16]
            # Hard links: the first path of the inode names the group.
            inodes.setdefault(st.st_ino, rel)
            group = inodes[st.st_ino] + "/" + str(st.st_nlink)
        else:
            group = "-"
        try:
            xs = sorted(os.listxattr(p, follow_symlinks=False))
            xv = ",".join(x + "=" + os.getxattr(p, x, follow_symlinks=False).hex() for x in xs)
        except OSError as e:
            xv = "error:" + e.strerror
        dev = "%d,%d" % (os.major(st.st_rdev), os.minor(st.st_rdev)) if kind in (stat.S_IFCHR, stat.S_IFBLK) else "-"
        out.append(" ".join([rel, oct(st.st_mode), "%d:%d" % (st.st_uid, st.st_gid),
                             str(st.st_size) if not stat.S_ISDIR(st.st_mode) else "-",
                             "%d.%09d" % (st.st_mtime_ns // 10**9, st.st_mtime_ns % 10**9),
                             link, h, group, dev, xv]))
print("\n".join(out))
