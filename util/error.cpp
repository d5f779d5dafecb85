#include "util/error.hpp"

#include <cerrno>
#include <cstring>

namespace strata {

namespace {
std::string format_sys(const std::string& op, const std::string& path, int err) {
    std::string msg = op;
    if (!path.empty()) {
        msg += ' ';
        msg += path;
    }
    msg += ": ";
    msg += std::strerror(err);
    return msg;
}
} // namespace

Error Error::with_context(std::string_view context) const {
    return Error(std::string(context) + ": " + what());
}

SysError::SysError(std::string op, std::string path, int err)
    : Error(format_sys(op, path, err)), op_(std::move(op)), path_(std::move(path)), err_(err) {}

void throw_errno(std::string op, std::string path) {
    int err = errno;
    throw SysError(std::move(op), std::move(path), err);
}

} // namespace strata
