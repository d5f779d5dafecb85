#include "util/error.hpp"

#include "util/text.hpp"

#include <cerrno>
#include <cstring>

namespace strata {

namespace {
std::string format_sys(const std::string& op, const std::string& path, int err) {
    std::string msg = op;
    if (!path.empty()) {
        msg += ' ';
        msg += quote_path(path);
    }
    msg += ": ";
    msg += std::strerror(err);
    return msg;
}
} // namespace

void Error::add_context(std::string_view context) {
    std::string msg;
    msg.reserve(context.size() + 2 + m_message.size());
    msg.append(context);
    msg += ": ";
    msg += m_message;
    m_message = std::move(msg);
}

std::string quote_path(std::string_view path) {
    return text::go_quote(path);
}

SysError::SysError(std::string op, std::string path, int err)
    : Error(format_sys(op, path, err)), m_op(std::move(op)), m_path(std::move(path)), m_err(err) {}

void throw_errno(std::string op, std::string path) {
    int err = errno;
    throw SysError(std::move(op), std::move(path), err);
}

} // namespace strata
