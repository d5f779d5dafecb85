// DockerfileError: a mistake in a Dockerfile (or .dockerignore) that a user can fix.
// It names the file, the 1-based line and column, and carries the offending text:
//
//   try { ... } catch (const dockerfile::DockerfileError& e) {
//       e.file(); e.line(); e.column(); e.message(); e.text();
//       e.what();  // "Dockerfile:3:1: unknown instruction: FOO\n     3 | FOO bar"
//   }
#pragma once

#include "util/error.hpp"

#include <string>

namespace strata::dockerfile {

class DockerfileError : public Error {
public:
    DockerfileError(std::string file, int line, int column, std::string message, std::string text);

    const std::string& file() const noexcept { return file_; }
    int line() const noexcept { return line_; }
    int column() const noexcept { return column_; }
    const std::string& message() const noexcept { return message_; }
    const std::string& text() const noexcept { return text_; }

private:
    std::string file_;
    int line_;
    int column_;
    std::string message_;
    std::string text_;
};

} // namespace strata::dockerfile
