#include "builder/dockerfile/error.hpp"

#include <fmt/format.h>

namespace strata::dockerfile {

namespace {

std::string format_error(const std::string& file, int line, int column, const std::string& message,
                         const std::string& text) {
    std::string out =
        fmt::format("{}:{}:{}: {}", file.empty() ? "Dockerfile" : file, line, column, message);
    if (!text.empty()) {
        // Show at most one physical line of the offending text, bounded in size.
        std::string shown = text.substr(0, text.find('\n'));
        if (shown.size() > 200) {
            shown = shown.substr(0, 200) + "...";
        }
        out += fmt::format("\n{:>6} | {}", line, shown);
        // A caret under the column, counting code points (tabs kept as tabs).
        if (column >= 1 && static_cast<std::size_t>(column) <= shown.size() + 1) {
            std::string pad;
            for (std::size_t i = 0; i + 1 < static_cast<std::size_t>(column); ++i) {
                const auto c = static_cast<unsigned char>(shown[i]);
                if (c == '\t') {
                    pad += '\t';
                } else if ((c & 0xC0) != 0x80) {
                    pad += ' ';
                }
            }
            out += fmt::format("\n{:>6} | {}^", "", pad);
        }
    }
    return out;
}

} // namespace

DockerfileError::DockerfileError(std::string file, int line, int column, std::string message,
                                 std::string text)
    : Error(format_error(file, line, column, message, text)), m_file(std::move(file)), m_line(line),
      m_column(column), m_message(std::move(message)), m_text(std::move(text)) {}

} // namespace strata::dockerfile
