// Errors are exceptions with one root, strata::Error. SysError carries the
// failed operation, the path it was applied to and errno.
//
// Context ("while doing what, on which file") is added on the way up by
// prefixing the message of the exception in flight and rethrowing that same
// object, so a SysError stays a SysError (op, path, errno kept), a UsageError
// a UsageError, and so on: catching by type works above a context frame.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace strata {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& what) : std::runtime_error(what), m_message(what) {}

    const char* what() const noexcept override { return m_message.c_str(); }

    // Puts "context: " in front of the message. Use it on a caught exception
    // before `throw;` (see with_context below), which keeps the exception's type.
    void add_context(std::string_view context);

private:
    std::string m_message;
};

// path as error messages show it: Go's strconv.Quote ("/a/b" with quotes,
// escapes for quotes, backslashes, control bytes and invalid UTF-8). Every
// message that names a file goes through it.
std::string quote_path(std::string_view path);

// A failed system call: `op "PATH": strerror(errno)` (`op: strerror(errno)`
// without a path).
class SysError : public Error {
public:
    SysError(std::string op, std::string path, int err);
    SysError(std::string op, int err) : SysError(std::move(op), std::string{}, err) {}

    const std::string& op() const noexcept { return m_op; }
    const std::string& path() const noexcept { return m_path; }
    int error_code() const noexcept { return m_err; }

private:
    std::string m_op;
    std::string m_path;
    int m_err;
};

// A user mistake in how strata was called (exit code 2 at the CLI).
class UsageError : public Error {
public:
    using Error::Error;
};

// Convenience: throw SysError with the current errno.
[[noreturn]] void throw_errno(std::string op, std::string path = {});

// Runs f and, if it throws strata::Error (or a subclass), rethrows the same
// exception with "context: " in front of its message.
template <typename F> decltype(auto) with_context(std::string_view context, F&& f) {
    try {
        return f();
    } catch (Error& e) {
        e.add_context(context);
        throw;
    }
}

} // namespace strata
