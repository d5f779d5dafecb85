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

constexpr std::size_t kMaxPartial = 16 * 1024;

UniqueFd open_log(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
    if (!fd) {
        throw_errno("open", path);
    }
    return fd;
}

} // namespace

JsonLog::JsonLog(std::string path, LogOptions options)
    : path_(std::move(path)), options_(options), fd_(open_log(path_)) {
    size_ = static_cast<std::uint64_t>(fs::fstat(fd_.get()).st_size);
}

void JsonLog::write(const char* stream, std::string_view data) {
    std::string& partial = stream[3] == 'o' ? partial_out_ : partial_err_;
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
    while (partial.size() >= kMaxPartial) {
        emit(stream, std::string_view(partial).substr(0, kMaxPartial));
        partial.erase(0, kMaxPartial);
    }
}

void JsonLog::flush() {
    if (!partial_out_.empty()) {
        emit("stdout", partial_out_);
        partial_out_.clear();
    }
    if (!partial_err_.empty()) {
        emit("stderr", partial_err_);
        partial_err_.clear();
    }
}

void JsonLog::emit(const char* stream, std::string_view text) {
    // The text as Go's encoding/json writes it (<, >, & escaped; invalid
    // UTF-8 as U+FFFD, so the line stays JSON).
    std::string line = "{\"log\":" + formats::dump_go_style(std::string(text));
    line += ",\"stream\":\"";
    line += stream;
    line += "\",\"time\":\"" + now_rfc3339nano() + "\"}\n";
    if (options_.max_size > 0 && size_ > 0 && size_ + line.size() > options_.max_size) {
        rotate();
    }
    try {
        fs::write_all(fd_.get(), path_, line);
        size_ += line.size();
    } catch (const std::exception&) {
        // a full disk loses log lines, never the container
    }
}

void JsonLog::rotate() {
    fd_.reset();
    if (options_.max_file <= 1) {
        ::truncate(path_.c_str(), 0);
    } else {
        for (int i = options_.max_file - 1; i >= 1; --i) {
            std::string from = i == 1 ? path_ : path_ + "." + std::to_string(i - 1);
            std::string to = path_ + "." + std::to_string(i);
            ::rename(from.c_str(), to.c_str());
        }
    }
    fd_ = open_log(path_);
    size_ = 0;
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
