#include "cli/common.hpp"

#include "runner/idmap.hpp"
#include "util/error.hpp"
#include "util/log.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <unistd.h>

namespace strata::cli {

snapshot::Store open_store(const Context& ctx) { return snapshot::Store(ctx.store_root()); }

void enter_store_user_namespace(Context& ctx) {
    if (::geteuid() == 0) {
        return;
    }
    runner::RootlessIdMap m = runner::rootless_id_map();
    if (!m.full()) {
        return; // every file in the store is the user's own
    }
    ctx.root = ctx.store_root();
    try {
        runner::enter_user_namespace(m);
    } catch (const Error& e) {
        STRATA_LOG_DEBUG("store: staying outside a user namespace: {}", e.what());
    }
}

std::string human_size(std::uint64_t bytes) {
    static constexpr const char* units[] = {"B", "kB", "MB", "GB", "TB"};
    double v = static_cast<double>(bytes);
    int u = 0;
    while (v >= 1000.0 && u < 4) {
        v /= 1000.0;
        ++u;
    }
    char buf[32];
    if (u == 0) {
        std::snprintf(buf, sizeof buf, "%lluB", static_cast<unsigned long long>(bytes));
    } else {
        std::snprintf(buf, sizeof buf, v < 10 ? "%.3g%s" : "%.3g%s", v, units[u]);
    }
    return buf;
}

namespace {
std::optional<std::int64_t> parse_rfc3339(std::string_view s) {
    if (s.size() < 19) {
        return std::nullopt;
    }
    struct tm tm {};
    std::string head(s.substr(0, 19));
    if (::strptime(head.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr) {
        return std::nullopt;
    }
    std::int64_t t = ::timegm(&tm);
    // Offset: Z or +hh:mm / -hh:mm after optional fraction.
    std::size_t i = 19;
    if (i < s.size() && s[i] == '.') {
        while (i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1]))) {
            ++i;
        }
        ++i;
    }
    if (i + 5 < s.size() + 0 && (s[i] == '+' || s[i] == '-')) {
        int hh = std::atoi(std::string(s.substr(i + 1, 2)).c_str());
        int mm = std::atoi(std::string(s.substr(i + 4, 2)).c_str());
        std::int64_t off = (hh * 60 + mm) * 60;
        t += s[i] == '+' ? -off : off;
    }
    return t;
}
} // namespace

std::string human_age(std::string_view text) {
    auto t = parse_rfc3339(text);
    if (!t) {
        return "N/A";
    }
    std::int64_t d = static_cast<std::int64_t>(std::time(nullptr)) - *t;
    if (d < 0) {
        d = 0;
    }
    auto plural = [](std::int64_t n, const char* unit) {
        return std::to_string(n) + " " + unit + (n == 1 ? "" : "s") + " ago";
    };
    if (d < 60) return d <= 1 ? "About a second ago" : plural(d, "second");
    if (d < 3600) return d / 60 == 1 ? "About a minute ago" : plural(d / 60, "minute");
    if (d < 86400) return d / 3600 == 1 ? "About an hour ago" : plural(d / 3600, "hour");
    if (d < 86400 * 14) return plural(d / 86400, "day");
    if (d < 86400 * 60) return plural(d / (86400 * 7), "week");
    if (d < 86400 * 365 * 2) return plural(d / (86400 * 30), "month");
    return plural(d / (86400 * 365), "year");
}

std::string rfc3339(std::int64_t seconds) {
    std::time_t t = static_cast<std::time_t>(seconds);
    struct tm tm {};
    ::gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::optional<std::int64_t> source_date_epoch() {
    const char* env = std::getenv("SOURCE_DATE_EPOCH");
    if (env == nullptr || *env == '\0') {
        return std::nullopt;
    }
    char* end = nullptr;
    errno = 0;
    long long v = std::strtoll(env, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0) {
        throw UsageError(std::string("SOURCE_DATE_EPOCH is not a number of seconds: \"") + env +
                         "\"");
    }
    return v;
}

std::string now_rfc3339() {
    std::optional<std::int64_t> sde = source_date_epoch();
    return rfc3339(sde ? *sde : static_cast<std::int64_t>(std::time(nullptr)));
}

formats::Descriptor layer_descriptor(const formats::LayerDigests& digests, formats::Compression c) {
    formats::Descriptor layer;
    layer.media_type = formats::oci_layer_media_type(c);
    layer.digest = digests.blob_digest;
    layer.size = static_cast<std::int64_t>(digests.blob_size);
    return layer;
}

formats::ImageConfig host_image_config(const std::string& created) {
    formats::ImageConfig config;
    formats::Platform host = formats::host_platform();
    config.created = created;
    config.architecture = host.architecture;
    config.os = host.os;
    config.variant = host.variant;
    return config;
}

void print_table(const std::vector<std::vector<std::string>>& rows) {
    std::vector<std::size_t> width;
    for (const auto& r : rows) {
        if (width.size() < r.size()) {
            width.resize(r.size(), 0);
        }
        for (std::size_t i = 0; i < r.size(); ++i) {
            width[i] = std::max(width[i], r[i].size());
        }
    }
    for (const auto& r : rows) {
        std::string line;
        for (std::size_t i = 0; i < r.size(); ++i) {
            line += r[i];
            if (i + 1 < r.size()) {
                line.append(width[i] - r[i].size() + 3, ' ');
            }
        }
        std::cout << line << '\n';
    }
}

} // namespace strata::cli
