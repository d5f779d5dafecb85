// One logger for every library: level-checked macros that format with fmt
// only when the level is enabled, and a replaceable sink (human stderr by
// default). Libraries log; only cli/ prints user-facing output.
#pragma once

#include <fmt/format.h>

#include <functional>
#include <string_view>

namespace strata::log {

enum class Level { error = 0, warn = 1, info = 2, debug = 3, trace = 4 };

Level level() noexcept;
void set_level(Level level) noexcept;
inline bool enabled(Level l) noexcept { return static_cast<int>(l) <= static_cast<int>(level()); }

using Sink = std::function<void(Level, std::string_view)>;
// Replaces the sink; returns the previous one.
Sink set_sink(Sink sink);
void write(Level level, std::string_view message);

} // namespace strata::log

#define STRATA_LOG(lvl, ...)                                                                       \
    do {                                                                                           \
        if (::strata::log::enabled(lvl)) {                                                         \
            ::strata::log::write(lvl, ::fmt::format(__VA_ARGS__));                                 \
        }                                                                                          \
    } while (0)
#define STRATA_LOG_ERROR(...) STRATA_LOG(::strata::log::Level::error, __VA_ARGS__)
#define STRATA_LOG_WARN(...) STRATA_LOG(::strata::log::Level::warn, __VA_ARGS__)
#define STRATA_LOG_INFO(...) STRATA_LOG(::strata::log::Level::info, __VA_ARGS__)
#define STRATA_LOG_DEBUG(...) STRATA_LOG(::strata::log::Level::debug, __VA_ARGS__)
#define STRATA_LOG_TRACE(...) STRATA_LOG(::strata::log::Level::trace, __VA_ARGS__)
