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

    const std::string& file() const noexcept { return m_file; }
    int line() const noexcept { return m_line; }
    int column() const noexcept { return m_column; }
    const std::string& message() const noexcept { return m_message; }
    const std::string& text() const noexcept { return m_text; }

private:
    std::string m_file;
    int m_line;
    int m_column;
    std::string m_message;
    std::string m_text;
};

} // namespace strata::dockerfile
