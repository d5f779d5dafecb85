// Docker's json-file log: one JSON object per line,
// {"log":"text\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"},
// a line per newline of the output (partial lines are cut at 16 KiB, as
// Docker's), rotated at max-size into NAME.1 .. NAME.(max-file - 1).
#pragma once

#include "containers/spec.hpp"
#include "util/fd.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::containers {

class JsonLog {
public:
    JsonLog(std::string path, LogOptions options);
    // Output of stream ("stdout" or "stderr").
    void write(const char* stream, std::string_view data);
    // Writes what is left of partial lines.
    void flush();

private:
    void emit(const char* stream, std::string_view text);
    void rotate();

    std::string m_path;
    LogOptions m_options;
    UniqueFd m_fd;
    std::uint64_t m_size = 0;
    std::string m_partial_out, m_partial_err;
};

struct LogEntry {
    std::string stream; // stdout or stderr
    std::string text;   // with its newline
    std::string time;   // RFC 3339 nano
};

// One line of a json-file log; nullopt for a line that is not one.
std::optional<LogEntry> parse_log_line(std::string_view line);
// The log's files, oldest first (NAME.N ... NAME.1, NAME), those that exist.
std::vector<std::string> log_files(const std::string& path);

} // namespace strata::containers
