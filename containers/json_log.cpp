#include "containers/json_log.hpp"

#include "containers/store.hpp"
#include "formats/json.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <cstdio>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <unistd.h>

namespace strata::containers {

namespace {

constexpr std::size_t k_max_partial = 16 * 1024;

UniqueFd open_log(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
    if (!fd) {
        throw_errno("open", path);
    }
    return fd;
}

} // namespace

JsonLog::JsonLog(std::string path, LogOptions options)
    : m_path(std::move(path)), m_options(options), m_fd(open_log(m_path)) {
    m_size = static_cast<std::uint64_t>(fs::fstat(m_fd.get()).st_size);
}

void JsonLog::write(const char* stream, std::string_view data) {
    std::string& partial = stream[3] == 'o' ? m_partial_out : m_partial_err;
    partial.append(data);
    std::size_t start = 0;
    while (true) {
        std::size_t nl = partial.find('\n', start);
        if (nl == std::string::npos) {
            break;
        }
        emit(stream, std::string_view(partial).substr(start, nl + 1 - start));
        start = nl + 1;
    }
    partial.erase(0, start);
    while (partial.size() >= k_max_partial) {
        emit(stream, std::string_view(partial).substr(0, k_max_partial));
        partial.erase(0, k_max_partial);
    }
}

void JsonLog::flush() {
    if (!m_partial_out.empty()) {
        emit("stdout", m_partial_out);
        m_partial_out.clear();
    }
    if (!m_partial_err.empty()) {
        emit("stderr", m_partial_err);
        m_partial_err.clear();
    }
}

void JsonLog::emit(const char* stream, std::string_view text) {
    // The text as Go's encoding/json writes it (<, >, & escaped; invalid
    // UTF-8 as U+FFFD, so the line stays JSON).
    std::string line = "{\"log\":" + formats::dump_go_style(std::string(text));
    line += ",\"stream\":\"";
    line += stream;
    line += "\",\"time\":\"" + now_rfc3339nano() + "\"}\n";
    if (m_options.max_size > 0 && m_size > 0 && m_size + line.size() > m_options.max_size) {
        rotate();
    }
    try {
        fs::write_all(m_fd.get(), m_path, line);
        m_size += line.size();
    } catch (const std::exception&) {
        // a full disk loses log lines, never the container
    }
}

void JsonLog::rotate() {
    m_fd.reset();
    if (m_options.max_file <= 1) {
        ::truncate(m_path.c_str(), 0);
    } else {
        for (int i = m_options.max_file - 1; i >= 1; --i) {
            std::string from = i == 1 ? m_path : m_path + "." + std::to_string(i - 1);
            std::string to = m_path + "." + std::to_string(i);
            ::rename(from.c_str(), to.c_str());
        }
    }
    m_fd = open_log(m_path);
    m_size = 0;
}

std::optional<LogEntry> parse_log_line(std::string_view line) {
    try {
        auto j = nlohmann::json::parse(line);
        return LogEntry{j.value("stream", std::string("stdout")), j.value("log", std::string()),
                        j.value("time", std::string())};
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

std::vector<std::string> log_files(const std::string& path) {
    std::vector<std::string> files;
    for (int i = 64; i >= 1; --i) {
        std::string p = path + "." + std::to_string(i);
        if (fs::exists(p)) {
            files.push_back(p);
        }
    }
    if (fs::exists(path)) {
        files.push_back(path);
    }
    return files;
}

} // namespace strata::containers
