// Errors are exceptions with one root, strata::Error. SysError carries the
// failed operation, the path it was applied to and errno.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace strata {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& what) : std::runtime_error(what) {}

    // Returns a copy of this error with "context: " in front of the message.
    // Used to add "where" (a file, a layer, a step) as an error travels up.
    [[nodiscard]] Error with_context(std::string_view context) const;
};

// A failed system call: "op PATH: strerror(errno)".
class SysError : public Error {
public:
    SysError(std::string op, std::string path, int err);
    SysError(std::string op, int err) : SysError(std::move(op), std::string{}, err) {}

    const std::string& op() const noexcept { return op_; }
    const std::string& path() const noexcept { return path_; }
    int error_code() const noexcept { return err_; }

private:
    std::string op_;
    std::string path_;
    int err_;
};

// A user mistake in how strata was called (exit code 2 at the CLI).
class UsageError : public Error {
public:
    using Error::Error;
};

// Convenience: throw SysError with the current errno.
[[noreturn]] void throw_errno(std::string op, std::string path = {});

// Runs f and, if it throws strata::Error, rethrows it with "context: " prefixed.
template <typename F> decltype(auto) with_context(std::string_view context, F&& f) {
    try {
        return f();
    } catch (const SysError& e) {
        throw Error(std::string(context) + ": " + e.what());
    } catch (const Error& e) {
        throw e.with_context(context);
    }
}

} // namespace strata
