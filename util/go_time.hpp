// Times written as Go's time package writes them: Docker's JSON documents and
// CLI output carry Go's layouts, and clients parse them back.
#pragma once

#include <cstdint>
#include <string>

namespace strata {

enum class TimeZoneStyle {
    utc,   // "Z"
    local, // the local zone's offset ("+01:00"), "Z" when it is UTC
};

enum class TimeFraction {
    none,    // time.RFC3339: whole seconds
    trimmed, // time.RFC3339Nano: nanoseconds, trailing zeros dropped, no "." for none
    nine,    // "2006-01-02T15:04:05.000000000Z07:00": always nine digits
};

// unix_nanos: nanoseconds since the epoch (negative ones before it).
std::string format_go_time(std::int64_t unix_nanos, TimeZoneStyle zone, TimeFraction fraction);

// The wall clock, in nanoseconds since the epoch.
std::int64_t unix_nanos_now();

} // namespace strata
