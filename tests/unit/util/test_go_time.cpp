// Go's time layouts (util/go_time.hpp), as Docker's JSON and CLI print them.
#include "util/go_time.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <ctime>
#include <string>

using namespace strata;

namespace {

// Runs f with TZ set to zone, then restores the process's zone.
template <typename F> void with_tz(const char* zone, F&& f) {
    const char* old = std::getenv("TZ");
    std::string saved = old ? old : "";
    ::setenv("TZ", zone, 1);
    ::tzset();
    f();
    if (old) {
        ::setenv("TZ", saved.c_str(), 1);
    } else {
        ::unsetenv("TZ");
    }
    ::tzset();
}

} // namespace

TEST_CASE("Go's RFC 3339 layouts in UTC", "[util][time]") {
    const std::int64_t t = 1700000000LL * 1000000000 + 120000000; // .12 s
    CHECK(format_go_time(t, TimeZoneStyle::utc, TimeFraction::none) == "2023-11-14T22:13:20Z");
    CHECK(format_go_time(t, TimeZoneStyle::utc, TimeFraction::trimmed) ==
          "2023-11-14T22:13:20.12Z");
    CHECK(format_go_time(t, TimeZoneStyle::utc, TimeFraction::nine) ==
          "2023-11-14T22:13:20.120000000Z");
    // RFC3339Nano drops the dot with the zeros; the fixed layout keeps them.
    const std::int64_t whole = 1700000000LL * 1000000000;
    CHECK(format_go_time(whole, TimeZoneStyle::utc, TimeFraction::trimmed) ==
          "2023-11-14T22:13:20Z");
    CHECK(format_go_time(whole, TimeZoneStyle::utc, TimeFraction::nine) ==
          "2023-11-14T22:13:20.000000000Z");
    CHECK(format_go_time(whole + 1, TimeZoneStyle::utc, TimeFraction::trimmed) ==
          "2023-11-14T22:13:20.000000001Z");
    // Before the epoch the fraction still counts up from the second below.
    CHECK(format_go_time(-500000000, TimeZoneStyle::utc, TimeFraction::trimmed) ==
          "1969-12-31T23:59:59.5Z");
}

TEST_CASE("Go's RFC 3339 layouts in the local zone", "[util][time]") {
    const std::int64_t t = 1700000000LL * 1000000000 + 5;
    with_tz("UTC0", [&] {
        CHECK(format_go_time(t, TimeZoneStyle::local, TimeFraction::none) ==
              "2023-11-14T22:13:20Z");
    });
    with_tz("CET-1", [&] {
        CHECK(format_go_time(t, TimeZoneStyle::local, TimeFraction::nine) ==
              "2023-11-14T23:13:20.000000005+01:00");
    });
    with_tz("<-0330>3:30", [&] {
        CHECK(format_go_time(t, TimeZoneStyle::local, TimeFraction::none) ==
              "2023-11-14T18:43:20-03:30");
    });
}

TEST_CASE("the clock is read in nanoseconds", "[util][time]") {
    std::int64_t a = unix_nanos_now();
    CHECK(a > 1700000000LL * 1000000000);
    CHECK(unix_nanos_now() >= a);
}
