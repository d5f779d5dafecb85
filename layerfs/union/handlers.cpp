// The libfuse low-level callbacks. Each one is a thin adapter: a trace line,
// the Fs worker (an errno; no exception crosses into libfuse), the reply.

#include "layerfs/union/fs.hpp"

#include "util/log.hpp"

#include <cerrno>
#include <exception>

namespace strata::layerfs::unionfs {

namespace {

// Reads up to this size are answered from a buffer rather than by splice:
// splicing costs three syscalls (file to pipe, header, pipe to /dev/fuse)
// where a copy costs two, and copying a few pages is cheap.
constexpr std::size_t k_small_read = 32 * 1024;

Fs* fs_of(fuse_req_t req) {
    return static_cast<Fs*>(fuse_req_userdata(req));
}

template <typename F> int guarded(const char* op, F&& f) noexcept {
    try {
        return f();
    } catch (const StaleNode&) {
        return ENOENT;
    } catch (const std::exception& e) {
        STRATA_LOG_ERROR("union fs: {} failed: {}", op, e.what());
    } catch (...) {
        STRATA_LOG_ERROR("union fs: {} failed with an unknown exception", op);
    }
    return EIO;
}

void ll_init(void* userdata, fuse_conn_info* conn) {
    auto* fs = static_cast<Fs*>(userdata);
    auto want = [&](unsigned cap) {
        if ((conn->capable & cap) != 0) {
            conn->want |= cap;
        }
    };
    want(FUSE_CAP_READDIRPLUS);
    conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO; // always plus: one round trip per directory
    want(FUSE_CAP_SPLICE_WRITE);
    want(FUSE_CAP_SPLICE_MOVE);
    // Not FUSE_CAP_SPLICE_READ: splicing every request out of /dev/fuse costs
    // extra syscalls per request (and a pipe per thread) and only pays off
    // for large writes.
    conn->want &= ~FUSE_CAP_SPLICE_READ;
    want(FUSE_CAP_PARALLEL_DIROPS);
    want(FUSE_CAP_ATOMIC_O_TRUNC);
    if (!fs->writable()) {
        want(FUSE_CAP_CACHE_SYMLINKS);
        fs->set_no_open((conn->capable & FUSE_CAP_NO_OPEN_SUPPORT) != 0);
        fs->set_no_opendir((conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) != 0);
    }
    fs->set_initialized();
    STRATA_LOG_DEBUG("union fs: init, kernel protocol {}.{}, no_open={}", conn->proto_major,
                     conn->proto_minor, fs->no_open());
}

void reply_entry_or_err(fuse_req_t req, int err, const fuse_entry_param& e) {
    if (err != 0) {
        fuse_reply_err(req, err);
    } else {
        fuse_reply_entry(req, &e);
    }
}

void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
    STRATA_LOG_TRACE("lookup parent={} name={}", parent, name);
    fuse_entry_param e{};
    int err = guarded("lookup", [&] { return fs_of(req)->lookup(parent, name, e); });
    reply_entry_or_err(req, err, e);
}

void ll_forget(fuse_req_t req, fuse_ino_t ino, std::uint64_t nlookup) {
    STRATA_LOG_TRACE("forget ino={} n={}", ino, nlookup);
    guarded("forget", [&] {
        fs_of(req)->forget(ino, nlookup);
        return 0;
    });
    fuse_reply_none(req);
}

void ll_forget_multi(fuse_req_t req, std::size_t count, fuse_forget_data* forgets) {
    STRATA_LOG_TRACE("forget_multi count={}", count);
    guarded("forget_multi", [&] {
        for (std::size_t i = 0; i < count; ++i) {
            fs_of(req)->forget(forgets[i].ino, forgets[i].nlookup);
        }
        return 0;
    });
    fuse_reply_none(req);
}

void ll_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    STRATA_LOG_TRACE("getattr ino={}", ino);
    struct stat st {};
    int err = guarded("getattr", [&] { return fs_of(req)->getattr(ino, fi, st); });
    if (err != 0) {
        fuse_reply_err(req, err);
    } else {
        fuse_reply_attr(req, &st, fs_of(req)->timeout());
    }
}

void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
    STRATA_LOG_TRACE("setattr ino={} to_set={:#x}", ino, to_set);
    struct stat st {};
    int err = guarded("setattr", [&] { return fs_of(req)->setattr(ino, *attr, to_set, fi, st); });
    if (err != 0) {
        fuse_reply_err(req, err);
    } else {
        fuse_reply_attr(req, &st, fs_of(req)->timeout());
    }
}

void ll_readlink(fuse_req_t req, fuse_ino_t ino) {
    STRATA_LOG_TRACE("readlink ino={}", ino);
    std::string target;
    int err = guarded("readlink", [&] { return fs_of(req)->readlink(ino, target); });
    if (err != 0) {
        fuse_reply_err(req, err);
    } else {
        fuse_reply_readlink(req, target.c_str());
    }
}

void ll_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    STRATA_LOG_TRACE("opendir ino={}", ino);
    int err = guarded("opendir", [&] { return fs_of(req)->opendir(ino, fi); });
    if (err != 0) {
        fuse_reply_err(req, err);
    } else if (fuse_reply_open(req, fi) == -ENOENT) {
        delete reinterpret_cast<DirHandle*>(fi->fh); // the opener was interrupted
    }
}

void do_readdir(fuse_req_t req, fuse_ino_t ino, std::size_t size, off_t off, fuse_file_info* fi,
                bool plus) {
    STRATA_LOG_TRACE("readdir{} ino={} off={} size={}", plus ? "plus" : "", ino, off, size);
    std::string buf;
    int err =
        guarded("readdir", [&] { return fs_of(req)->readdir(req, ino, size, off, fi, plus, buf); });
    if (err != 0) {
        fuse_reply_err(req, err);
    } else {
        fuse_reply_buf(req, buf.data(), buf.size());
    }
}

void ll_readdir(fuse_req_t req, fuse_ino_t ino, std::size_t size, off_t off, fuse_file_info* fi) {
    do_readdir(req, ino, size, off, fi, false);
}

void ll_readdirplus(fuse_req_t req, fuse_ino_t ino, std::size_t size, off_t off,
                    fuse_file_info* fi) {
    do_readdir(req, ino, size, off, fi, true);
}

void ll_releasedir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    STRATA_LOG_TRACE("releasedir ino={}", ino);
    if (fi->fh != 0) {
        delete reinterpret_cast<DirHandle*>(fi->fh);
    }
    fuse_reply_err(req, 0);
}

void ll_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    STRATA_LOG_TRACE("open ino={} flags={:#o}", ino, fi->flags);
    UniqueFd fd;
    int err = guarded("open", [&] { return fs_of(req)->open(ino, fi, fd); });
    if (err != 0) {
        fuse_reply_err(req, err);
    } else if (fuse_reply_open(req, fi) != -ENOENT) {
        (void)fd.release(); // the kernel's file holds it until release
    }
}

void ll_read(fuse_req_t req, fuse_ino_t ino, std::size_t size, off_t off, fuse_file_info* fi) {
    STRATA_LOG_TRACE("read ino={} off={} size={}", ino, off, size);
    int fd = -1;
    UniqueFd owned; // an fd opened for this read only
    int err = guarded("read", [&] { return fs_of(req)->read_fd(ino, fi, fd, owned); });
    if (err != 0) {
        fuse_reply_err(req, err);
        return;
    }
    if (size <= k_small_read) {
        // Small reads (most files of an image): one pread and one write to
        // /dev/fuse cost fewer syscalls than splicing through a pipe.
        thread_local std::vector<char> small(k_small_read);
        ssize_t n;
        do {
            n = ::pread(fd, small.data(), size, off);
        } while (n < 0 && errno == EINTR);
        int err = errno;
        owned.reset();
        if (n < 0) {
            fuse_reply_err(req, err);
        } else {
            fuse_reply_buf(req, small.data(), static_cast<std::size_t>(n));
        }
        return;
    }
    // The data goes from the layer's file to the kernel without a copy
    // through our memory when splice is available.
    fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
    buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
    buf.buf[0].fd = fd;
    buf.buf[0].pos = off;
    fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

void ll_write_buf(fuse_req_t req, fuse_ino_t ino, fuse_bufvec* in, off_t off, fuse_file_info* fi) {
    STRATA_LOG_TRACE("write ino={} off={} size={}", ino, off, fuse_buf_size(in));
    fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
    out.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
    out.buf[0].fd = static_cast<int>(fi->fh);
    out.buf[0].pos = off;
    ssize_t r = fuse_buf_copy(&out, in, static_cast<fuse_buf_copy_flags>(0));
    if (r < 0) {
        fuse_reply_err(req, static_cast<int>(-r));
    } else {
        fuse_reply_write(req, static_cast<std::size_t>(r));
    }
}

void ll_release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    STRATA_LOG_TRACE("release ino={}", ino);
    if (!fs_of(req)->no_open()) {                    // with no_open, fh is not ours
        UniqueFd released(static_cast<int>(fi->fh)); // closed here
    }
    fuse_reply_err(req, 0);
}

void ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) {
    STRATA_LOG_TRACE("fsync ino={}", ino);
    if (fs_of(req)->no_open()) {
        fuse_reply_err(req, 0); // read-only: nothing to flush
        return;
    }
    int fd = static_cast<int>(fi->fh);
    int r = datasync != 0 ? ::fdatasync(fd) : ::fsync(fd);
    fuse_reply_err(req, r < 0 ? errno : 0);
}

void ll_statfs(fuse_req_t req, fuse_ino_t ino) {
    STRATA_LOG_TRACE("statfs ino={}", ino);
    struct statvfs st {};
    int err = guarded("statfs", [&] { return fs_of(req)->statfs(st); });
    if (err != 0) {
        fuse_reply_err(req, err);
    } else {
        fuse_reply_statfs(req, &st);
    }
}

void ll_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, std::size_t size) {
    STRATA_LOG_TRACE("getxattr ino={} name={}", ino, name);
    std::string value;
    std::size_t needed = 0;
    int err =
        guarded("getxattr", [&] { return fs_of(req)->getxattr(ino, name, size, value, needed); });
    if (err != 0) {
        fuse_reply_err(req, err);
    } else if (size == 0) {
        fuse_reply_xattr(req, needed);
    } else {
        fuse_reply_buf(req, value.data(), value.size());
    }
}

void ll_listxattr(fuse_req_t req, fuse_ino_t ino, std::size_t size) {
    STRATA_LOG_TRACE("listxattr ino={}", ino);
    std::string value;
    std::size_t needed = 0;
    int err = guarded("listxattr", [&] { return fs_of(req)->listxattr(ino, size, value, needed); });
    if (err != 0) {
        fuse_reply_err(req, err);
    } else if (size == 0) {
        fuse_reply_xattr(req, needed);
    } else {
        fuse_reply_buf(req, value.data(), value.size());
    }
}

void ll_setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value,
                 std::size_t size, int flags) {
    STRATA_LOG_TRACE("setxattr ino={} name={}", ino, name);
    fuse_reply_err(req, guarded("setxattr", [&] {
                       return fs_of(req)->setxattr(ino, name, value, size, flags);
                   }));
}

void ll_removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
    STRATA_LOG_TRACE("removexattr ino={} name={}", ino, name);
    fuse_reply_err(req, guarded("removexattr", [&] { return fs_of(req)->removexattr(ino, name); }));
}

void ll_mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
    STRATA_LOG_TRACE("mknod parent={} name={} mode={:#o}", parent, name, mode);
    fuse_entry_param e{};
    UniqueFd unused; // only create opens a file
    int err = guarded("mknod", [&] {
        return fs_of(req)->make(parent, name, mode, rdev, nullptr, fuse_req_ctx(req), nullptr,
                                unused, e);
    });
    reply_entry_or_err(req, err, e);
}

void ll_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
    STRATA_LOG_TRACE("mkdir parent={} name={} mode={:#o}", parent, name, mode);
    fuse_entry_param e{};
    UniqueFd unused; // only create opens a file
    int err = guarded("mkdir", [&] {
        return fs_of(req)->make(parent, name, S_IFDIR | (mode & 07777), 0, nullptr,
                                fuse_req_ctx(req), nullptr, unused, e);
    });
    reply_entry_or_err(req, err, e);
}

void ll_symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
    STRATA_LOG_TRACE("symlink parent={} name={} target={}", parent, name, link);
    fuse_entry_param e{};
    UniqueFd unused; // only create opens a file
    int err = guarded("symlink", [&] {
        return fs_of(req)->make(parent, name, S_IFLNK | 0777, 0, link, fuse_req_ctx(req), nullptr,
                                unused, e);
    });
    reply_entry_or_err(req, err, e);
}

void ll_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
               fuse_file_info* fi) {
    STRATA_LOG_TRACE("create parent={} name={} mode={:#o}", parent, name, mode);
    fuse_entry_param e{};
    UniqueFd fd;
    int err = guarded("create", [&] {
        return fs_of(req)->make(parent, name, S_IFREG | (mode & 07777), 0, nullptr,
                                fuse_req_ctx(req), fi, fd, e);
    });
    if (err != 0) {
        fuse_reply_err(req, err);
    } else if (fuse_reply_create(req, &e, fi) != -ENOENT) {
        (void)fd.release(); // the kernel's file holds it until release
    }
}

void ll_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
    STRATA_LOG_TRACE("link ino={} newparent={} newname={}", ino, newparent, newname);
    fuse_entry_param e{};
    int err = guarded("link", [&] { return fs_of(req)->link(ino, newparent, newname, e); });
    reply_entry_or_err(req, err, e);
}

void ll_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
    STRATA_LOG_TRACE("unlink parent={} name={}", parent, name);
    fuse_reply_err(req, guarded("unlink", [&] { return fs_of(req)->unlink(parent, name, false); }));
}

void ll_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
    STRATA_LOG_TRACE("rmdir parent={} name={}", parent, name);
    fuse_reply_err(req, guarded("rmdir", [&] { return fs_of(req)->unlink(parent, name, true); }));
}

void ll_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
               const char* newname, unsigned int flags) {
    STRATA_LOG_TRACE("rename parent={} name={} newparent={} newname={} flags={}", parent, name,
                     newparent, newname, flags);
    fuse_reply_err(req, guarded("rename", [&] {
                       return fs_of(req)->rename(parent, name, newparent, newname, flags);
                   }));
}

} // namespace

fuse_lowlevel_ops make_ops() {
    fuse_lowlevel_ops ops{};
    ops.init = ll_init;
    ops.lookup = ll_lookup;
    ops.forget = ll_forget;
    ops.forget_multi = ll_forget_multi;
    ops.getattr = ll_getattr;
    ops.setattr = ll_setattr;
    ops.readlink = ll_readlink;
    ops.opendir = ll_opendir;
    ops.readdir = ll_readdir;
    ops.readdirplus = ll_readdirplus;
    ops.releasedir = ll_releasedir;
    ops.open = ll_open;
    ops.read = ll_read;
    ops.write_buf = ll_write_buf;
    ops.release = ll_release;
    ops.fsync = ll_fsync;
    ops.statfs = ll_statfs;
    ops.getxattr = ll_getxattr;
    ops.listxattr = ll_listxattr;
    ops.setxattr = ll_setxattr;
    ops.removexattr = ll_removexattr;
    ops.mknod = ll_mknod;
    ops.mkdir = ll_mkdir;
    ops.symlink = ll_symlink;
    ops.create = ll_create;
    ops.link = ll_link;
    ops.unlink = ll_unlink;
    ops.rmdir = ll_rmdir;
    ops.rename = ll_rename;
    return ops;
}

} // namespace strata::layerfs::unionfs
