#include "runner/docker_init.hpp"

#include "runner/runner.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <cerrno>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U // Linux 6.3: executable even under vm.memfd_noexec=1
#endif

namespace strata::runner {

UniqueFd sealed_docker_init() {
    UniqueFd src(::open(k_docker_init_path, O_RDONLY | O_CLOEXEC));
    if (!src) {
        if (errno == ENOENT) {
            throw StartError(std::string("--init needs docker-init: ") + k_docker_init_path +
                                 " is missing (apt-get install tini)",
                             125);
        }
        throw_errno("open", k_docker_init_path);
    }
    struct stat st;
    if (::fstat(src.get(), &st) != 0) {
        throw_errno("fstat", k_docker_init_path);
    }
    if (!S_ISREG(st.st_mode)) {
        throw StartError(std::string("--init: ") + k_docker_init_path + " is not a regular file",
                         125);
    }
    int fd = ::memfd_create("docker-init", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
    if (fd < 0 && errno == EINVAL) {
        fd = ::memfd_create("docker-init", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    }
    if (fd < 0) {
        throw_errno("memfd_create", "docker-init");
    }
    UniqueFd mem(fd);
    off_t off = 0;
    while (off < st.st_size) {
        ssize_t n = ::sendfile(mem.get(), src.get(), &off, static_cast<size_t>(st.st_size - off));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw_errno("sendfile", k_docker_init_path);
        }
        if (n == 0) {
            throw SysError("sendfile (file shrank)", k_docker_init_path, EIO);
        }
    }
    if (::fcntl(mem.get(), F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) !=
        0) {
        throw_errno("fcntl F_ADD_SEALS", "memfd:docker-init");
    }
    return mem;
}

} // namespace strata::runner
