#include "util/log.hpp"

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>
#include <utility>

namespace strata::log {

namespace {
std::atomic<Level> g_level{Level::warn};
std::mutex g_mutex;

void stderr_sink(Level level, std::string_view message) {
    static constexpr const char* names[] = {"error", "warning", "info", "debug", "trace"};
    std::string line = "strata: ";
    line += names[static_cast<int>(level)];
    line += ": ";
    line += message;
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stderr);
}

Sink& sink_ref() {
    static Sink sink = stderr_sink;
    return sink;
}
} // namespace

Level level() noexcept { return g_level.load(std::memory_order_relaxed); }
void set_level(Level l) noexcept { g_level.store(l, std::memory_order_relaxed); }

Sink set_sink(Sink sink) {
    std::lock_guard lock(g_mutex);
    return std::exchange(sink_ref(), sink ? std::move(sink) : Sink(stderr_sink));
}

void write(Level level, std::string_view message) {
    std::lock_guard lock(g_mutex);
    sink_ref()(level, message);
}

} // namespace strata::log
