#include "util/go_time.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace strata {

std::string format_go_time(std::int64_t unix_nanos, TimeZoneStyle zone, TimeFraction fraction) {
    std::int64_t secs = unix_nanos / 1000000000;
    std::int64_t frac = unix_nanos % 1000000000;
    if (frac < 0) {
        frac += 1000000000;
        --secs;
    }
    std::time_t t = static_cast<std::time_t>(secs);
    std::tm tm{};
    if (zone == TimeZoneStyle::local) {
        ::localtime_r(&t, &tm);
    } else {
        ::gmtime_r(&t, &tm);
    }
    char buf[64];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    std::string out = buf;
    if (fraction != TimeFraction::none) {
        char digits[16];
        std::snprintf(digits, sizeof digits, "%09lld", static_cast<long long>(frac));
        std::string f = digits;
        if (fraction == TimeFraction::trimmed) {
            while (!f.empty() && f.back() == '0') {
                f.pop_back();
            }
        }
        if (!f.empty()) {
            out += '.' + f;
        }
    }
    long off = zone == TimeZoneStyle::local ? tm.tm_gmtoff : 0;
    if (off == 0) {
        return out + 'Z';
    }
    char z[40];
    std::snprintf(z, sizeof z, "%c%02ld:%02ld", off < 0 ? '-' : '+', std::labs(off) / 3600,
                  (std::labs(off) % 3600) / 60);
    return out + z;
}

std::int64_t unix_nanos_now() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

} // namespace strata
