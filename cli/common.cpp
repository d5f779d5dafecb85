#include "cli/common.hpp"

#include "cli/template.hpp"
#include "runner/idmap.hpp"
#include "util/error.hpp"
#include "util/event_log.hpp"
#include "util/go_time.hpp"
#include "util/log.hpp"

#include <algorithm>
#include <cerrno>
#include <clocale>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <cwchar>
#include <iostream>
#include <locale.h>
#include <unistd.h>
#include <wchar.h>

namespace strata::cli {

bool confirmed(std::string_view warning, std::string_view between) {
    std::cout << "WARNING! " << warning << between << "Are you sure you want to continue? [y/N] "
              << std::flush;
    std::string answer;
    std::getline(std::cin, answer);
    return answer == "y" || answer == "Y";
}

std::int64_t until_seconds(const std::string& value) {
    return events::parse_time_argument(value, unix_nanos_now()) / 1000000000LL;
}

void print_pruned(std::string_view title, const std::vector<std::string>& lines) {
    if (lines.empty()) {
        return;
    }
    std::cout << title << ":\n";
    for (const auto& l : lines) {
        std::cout << l << "\n";
    }
    std::cout << "\n";
}

int each_reporting_errors(const std::vector<std::string>& names,
                          const std::function<void(const std::string&)>& fn) {
    int failures = 0;
    for (const auto& name : names) {
        try {
            fn(name);
        } catch (const Error& e) {
            std::cerr << "strata: error: " << e.what() << "\n";
            ++failures;
        }
    }
    return failures;
}

snapshot::Store open_store(const Context& ctx) {
    return snapshot::Store(ctx.store_root());
}

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

std::string human_size(std::uint64_t bytes, int precision) {
    // go-units HumanSizeWithPrecision: decimal units, "%.<precision>g".
    static constexpr const char* units[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"};
    double v = static_cast<double>(bytes);
    int u = 0;
    while (v >= 1000.0 && u < 8) {
        v /= 1000.0;
        ++u;
    }
    char buf[48];
    std::snprintf(buf, sizeof buf, "%.*g%s", precision, v, units[u]);
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

std::string human_duration(std::int64_t seconds) {
    // go-units HumanDuration (what docker prints before " ago").
    auto n = [](std::int64_t v, const char* unit) { return std::to_string(v) + " " + unit; };
    if (seconds < 1)
        return "Less than a second";
    if (seconds == 1)
        return "1 second";
    if (seconds < 60)
        return n(seconds, "seconds");
    std::int64_t minutes = seconds / 60;
    if (minutes == 1)
        return "About a minute";
    if (minutes < 60)
        return n(minutes, "minutes");
    std::int64_t hours = (seconds + 1800) / 3600; // d.Round(time.Hour)
    if (hours == 1)
        return "About an hour";
    if (hours < 48)
        return n(hours, "hours");
    if (hours < 24 * 7 * 2)
        return n(hours / 24, "days");
    if (hours < 24 * 30 * 2)
        return n(hours / 24 / 7, "weeks");
    if (hours < 24 * 365 * 2)
        return n(hours / 24 / 30, "months");
    return n(seconds / 3600 / 24 / 365, "years");
}

std::optional<std::int64_t> parse_time(std::string_view rfc3339) {
    return parse_rfc3339(rfc3339);
}

std::string human_age(std::string_view text) {
    auto t = parse_rfc3339(text);
    if (!t) {
        return "N/A";
    }
    return human_duration(static_cast<std::int64_t>(std::time(nullptr)) - *t) + " ago";
}

std::string go_time_string(std::int64_t seconds) {
    // Go's time.Time.String() in the local zone: "2006-01-02 15:04:05 -0700 MST".
    std::time_t t = static_cast<std::time_t>(seconds);
    struct tm tm {};
    ::localtime_r(&t, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %z %Z", &tm);
    return buf;
}

std::string rfc3339_local(std::int64_t seconds) {
    return format_go_time(seconds * 1000000000, TimeZoneStyle::local, TimeFraction::none);
}

std::string rfc3339(std::int64_t seconds) {
    return format_go_time(seconds * 1000000000, TimeZoneStyle::utc, TimeFraction::none);
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

namespace {
// Decodes one UTF-8 sequence at s[i]; returns its length (1 for a stray byte).
std::size_t utf8_next(std::string_view s, std::size_t i, std::uint32_t& cp) {
    auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80           ? 1
                    : (c >> 5) == 0x6  ? 2
                    : (c >> 4) == 0xE  ? 3
                    : (c >> 3) == 0x1E ? 4
                                       : 0;
    if (n == 0 || i + n > s.size()) {
        cp = 0xFFFD;
        return 1;
    }
    cp = n == 1 ? c : c & (0x7F >> n);
    for (std::size_t k = 1; k < n; ++k) {
        auto b = static_cast<unsigned char>(s[i + k]);
        if ((b & 0xC0) != 0x80) {
            cp = 0xFFFD;
            return 1;
        }
        cp = (cp << 6) | (b & 0x3F);
    }
    return n;
}

int char_width(std::uint32_t cp) {
    static locale_t loc = ::newlocale(LC_CTYPE_MASK, "C.UTF-8", nullptr);
    if (cp < 0x80) {
        return cp >= 0x20 && cp != 0x7f ? 1 : 0;
    }
    if (loc == nullptr) {
        return 1;
    }
    locale_t old = ::uselocale(loc); // wcwidth reads this thread's LC_CTYPE
    int w = ::wcwidth(static_cast<wchar_t>(cp));
    ::uselocale(old);
    return w < 0 ? 1 : w;
}
} // namespace

std::size_t display_width(std::string_view s) {
    std::size_t w = 0;
    for (std::size_t i = 0; i < s.size();) {
        std::uint32_t cp = 0;
        i += utf8_next(s, i, cp);
        w += static_cast<std::size_t>(char_width(cp));
    }
    return w;
}

std::string clip_to_width(std::string_view s, std::size_t width) {
    std::size_t w = 0;
    std::size_t i = 0;
    while (i < s.size()) {
        std::uint32_t cp = 0;
        std::size_t n = utf8_next(s, i, cp);
        std::size_t cw = static_cast<std::size_t>(char_width(cp));
        if (w + cw > width) {
            break;
        }
        w += cw;
        i += n;
    }
    return std::string(s.substr(0, i));
}

std::string ellipsis(std::string_view s, std::size_t max_width) {
    // docker's formatter.Ellipsis: cut to max-1 columns and add "…".
    if (display_width(s) <= max_width) {
        return std::string(s);
    }
    if (max_width == 0) {
        return "";
    }
    return clip_to_width(s, max_width - 1) + "\u2026";
}

std::string terminal_text(std::string_view s) {
    // What a line of a program's output shows once a terminal is done with
    // it, reduced to printable text: the part after the last carriage
    // return, escape sequences (CSI, OSC, two-byte) removed, tabs as one
    // space, other control characters dropped.
    while (!s.empty() && s.back() == '\r') {
        s.remove_suffix(1); // CRLF line ends
    }
    if (std::size_t cr = s.rfind('\r'); cr != std::string_view::npos) {
        s = s.substr(cr + 1); // a progress bar's last state
    }
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c == 0x1b) {
            if (i + 1 < s.size() && s[i + 1] == '[') { // CSI: parameters, then a final byte
                i += 2;
                while (i < s.size() && !(s[i] >= 0x40 && s[i] <= 0x7e)) {
                    ++i;
                }
            } else if (i + 1 < s.size() &&
                       (s[i + 1] == ']' || s[i + 1] == 'P' || s[i + 1] == '_')) {
                // OSC / DCS / APC: up to BEL or ESC backslash
                i += 2;
                while (i < s.size() && s[i] != '\a' &&
                       !(s[i] == 0x1b && i + 1 < s.size() && s[i + 1] == '\\')) {
                    ++i;
                }
                if (i < s.size() && s[i] == 0x1b) {
                    ++i;
                }
            } else {
                ++i; // ESC x
            }
            continue;
        }
        if (c == '\t') {
            out += ' ';
        } else if (c >= 0x20 && c != 0x7f) {
            out += static_cast<char>(c);
        }
    }
    return out;
}

TableFormat docker_history_format() {
    TableFormat t;
    t.default_table =
        "table {{.ID}}\\t{{.CreatedSince}}\\t{{.CreatedBy}}\\t{{.Size}}\\t{{.Comment}}";
    t.headers = {{"Comment", "COMMENT"},
                 {"CreatedAt", "CREATED AT"},
                 {"CreatedBy", "CREATED BY"},
                 {"CreatedSince", "CREATED"},
                 {"ID", "IMAGE"},
                 {"Layer", "LAYER"},
                 {"Size", "SIZE"}};
    return t;
}

TemplateValue docker_history_row(const std::string& id, bool no_trunc, const std::string& created,
                                 const std::string& created_by, std::uint64_t size,
                                 const std::string& comment, const std::string& layer) {
    TemplateValue v = TemplateValue::object();
    std::optional<std::int64_t> t = parse_time(created);
    std::string by = created_by;
    std::replace(by.begin(), by.end(), '\t', ' ');
    v["Comment"] = comment;
    v["CreatedAt"] = t ? rfc3339_local(*t) : "N/A";
    v["CreatedBy"] = no_trunc ? by : ellipsis(by, 45);
    v["CreatedSince"] =
        t ? human_duration(static_cast<std::int64_t>(std::time(nullptr)) - *t) + " ago" : "N/A";
    v["ID"] = id.empty() ? "<missing>" : no_trunc ? id : id.substr(id.find(':') + 1, 12);
    v["Layer"] = layer;
    v["Size"] = human_size(size);
    return v;
}

std::vector<std::string> did_you_mean(const std::string& word,
                                      const std::vector<std::string>& candidates) {
    // cobra's rule: Levenshtein distance at most 2, or a prefix of a command.
    auto distance = [](const std::string& a, const std::string& b) {
        std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
        for (std::size_t j = 0; j <= b.size(); ++j)
            prev[j] = j;
        for (std::size_t i = 1; i <= a.size(); ++i) {
            cur[0] = i;
            for (std::size_t j = 1; j <= b.size(); ++j) {
                std::size_t sub =
                    prev[j - 1] + (std::tolower(static_cast<unsigned char>(a[i - 1])) ==
                                           std::tolower(static_cast<unsigned char>(b[j - 1]))
                                       ? 0
                                       : 1);
                cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
            }
            std::swap(prev, cur);
        }
        return prev[b.size()];
    };
    std::vector<std::pair<std::size_t, std::string>> scored;
    for (const auto& c : candidates) {
        std::size_t d = distance(word, c);
        bool prefix = word.size() >= 2 && c.rfind(word, 0) == 0;
        // A swap of two neighbouring letters ("biuld") counts as one edit.
        bool swapped = false;
        if (word.size() == c.size()) {
            std::vector<std::size_t> diff;
            for (std::size_t i = 0; i < c.size(); ++i) {
                if (word[i] != c[i])
                    diff.push_back(i);
            }
            swapped = diff.size() == 2 && diff[1] == diff[0] + 1 && word[diff[0]] == c[diff[1]] &&
                      word[diff[1]] == c[diff[0]];
        }
        if (d <= 2 || prefix || swapped) {
            scored.emplace_back(swapped ? 1 : prefix ? 0 : d, c);
        }
    }
    std::stable_sort(scored.begin(), scored.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<std::string> out;
    for (auto& [_, c] : scored) {
        out.push_back(std::move(c));
    }
    return out;
}

void print_table(const std::vector<std::vector<std::string>>& rows) {
    std::string text;
    for (const auto& r : rows) {
        for (std::size_t i = 0; i < r.size(); ++i) {
            text += r[i];
            text += i + 1 < r.size() ? '\t' : '\n';
        }
    }
    std::cout << tabwrite(text);
}

} // namespace strata::cli
