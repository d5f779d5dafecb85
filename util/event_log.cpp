// The store's event journal (util/event_log.hpp).
#include "util/event_log.hpp"

#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/fs.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <optional>
#include <poll.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

namespace strata::events {

namespace {

constexpr off_t k_rotate_size = 1 << 20;
constexpr const char* k_file = "events.jsonl";

std::string journal_path(const std::string& store_root) {
    return store_root + "/" + k_file;
}

std::int64_t now_nano() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// "sha256:abc" / "busybox:latest" without the tag, as dockerd's stripTag.
std::string strip_tag(const std::string& ref) {
    std::size_t slash = ref.rfind('/');
    std::size_t colon = ref.rfind(':');
    if (colon != std::string::npos && (slash == std::string::npos || colon > slash) &&
        !ref.starts_with("sha256:")) {
        return ref.substr(0, colon);
    }
    return ref;
}

} // namespace

nlohmann::ordered_json Event::to_json() const {
    nlohmann::ordered_json j;
    // dockerd fills the deprecated fields for containers and images only.
    if (type == "container" || type == "image") {
        j["status"] = action;
        j["id"] = actor_id;
        if (type == "container") {
            auto it = attributes.find("image");
            if (it != attributes.end()) {
                j["from"] = it->second;
            }
        }
    }
    j["Type"] = type;
    j["Action"] = action;
    nlohmann::ordered_json attrs = nlohmann::ordered_json::object();
    for (const auto& [k, v] : attributes) {
        attrs[k] = v;
    }
    j["Actor"] = {{"ID", actor_id}, {"Attributes", attrs}};
    j["scope"] = "local";
    j["time"] = time_nano / 1000000000;
    j["timeNano"] = time_nano;
    return j;
}

Event Event::from_json(const nlohmann::json& j) {
    Event e;
    e.type = j.at("Type").get<std::string>();
    e.action = j.at("Action").get<std::string>();
    e.actor_id = j.at("Actor").at("ID").get<std::string>();
    const auto& actor = j.at("Actor");
    if (auto it = actor.find("Attributes"); it != actor.end() && it->is_object()) {
        for (auto a = it->begin(); a != it->end(); ++a) {
            e.attributes[a.key()] = a.value().get<std::string>();
        }
    }
    e.time_nano = j.at("timeNano").get<std::int64_t>();
    return e;
}

void record_event(const std::string& store_root, std::string type, std::string action,
                  std::string actor_id, std::map<std::string, std::string> attributes) {
    try {
        Event e{std::move(type), std::move(action), std::move(actor_id), std::move(attributes),
                now_nano()};
        // A label that is not UTF-8 as dockerd writes it: U+FFFD for each
        // bad byte (the event is not lost).
        std::string line =
            e.to_json().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
        std::string path = journal_path(store_root);
        UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600));
        if (!fd) {
            return;
        }
        // One write with O_APPEND: lines of concurrent writers never mix.
        [[maybe_unused]] ssize_t n = ::write(fd.get(), line.data(), line.size());
        struct stat st {};
        if (::fstat(fd.get(), &st) == 0 && st.st_size > k_rotate_size &&
            ::flock(fd.get(), LOCK_EX) == 0) {
            // The writer that takes the lock first rotates; the others find
            // the path's file is another one by then.
            struct stat now {};
            if (::stat(path.c_str(), &now) == 0 && now.st_ino == st.st_ino) {
                ::rename(path.c_str(), (path + ".1").c_str());
            }
            ::flock(fd.get(), LOCK_UN);
        }
    } catch (const std::exception&) {
        // dropped: see the header
    }
}

EventFilter::EventFilter(const std::vector<std::string>& filters) {
    // dockerd takes any key here and matches on the ones it knows.
    for (const auto& f : filters) {
        std::size_t eq = f.find('=');
        m_by_key[f.substr(0, eq)].push_back(eq == std::string::npos ? "" : f.substr(eq + 1));
    }
}

bool EventFilter::matches(const Event& e) const {
    // dockerd's filters.Args: a key not given matches everything.
    auto exact = [&](const std::string& key, const std::string& value) {
        auto it = m_by_key.find(key);
        if (it == m_by_key.end()) {
            return true;
        }
        for (const auto& v : it->second) {
            if (v == value) {
                return true;
            }
        }
        return false;
    };
    auto fuzzy = [&](const std::string& key, const std::string& value) {
        auto it = m_by_key.find(key);
        if (it == m_by_key.end()) {
            return true;
        }
        for (const auto& v : it->second) {
            if (value == v || value.starts_with(v)) {
                return true;
            }
        }
        return false;
    };
    auto attr = [&](const std::string& k) {
        auto it = e.attributes.find(k);
        return it == e.attributes.end() ? std::string() : it->second;
    };
    auto by_name = [&](const std::string& key) {
        return fuzzy(key, e.actor_id) || fuzzy(key, attr("name"));
    };
    // event: exec_create, exec_start and health_status carry their command
    // ("exec_start: sh -c ..."), so those match by prefix (moby #25798).
    bool event_ok = true;
    if (auto it = m_by_key.find("event"); it != m_by_key.end()) {
        bool prefixed = false;
        for (const auto& v : it->second) {
            prefixed = prefixed || v == "exec_create" || v == "exec_start" || v == "health_status";
        }
        event_ok = prefixed ? fuzzy("event", e.action) : exact("event", e.action);
    }
    std::string image_name = attr(e.type == "image" ? "name" : "image");
    bool image_ok = exact("image", e.actor_id) || exact("image", image_name) ||
                    exact("image", strip_tag(e.actor_id)) || exact("image", strip_tag(image_name));
    bool labels_ok = true;
    if (auto it = m_by_key.find("label"); it != m_by_key.end()) {
        for (const auto& want : it->second) { // all of them (MatchKVList)
            std::size_t eq = want.find('=');
            auto a = e.attributes.find(want.substr(0, eq));
            if (a == e.attributes.end() ||
                (eq != std::string::npos && a->second != want.substr(eq + 1))) {
                labels_ok = false;
            }
        }
    }
    return event_ok && exact("type", e.type) && exact("scope", "local") &&
           (e.type == "daemon" ? by_name("daemon") : !m_by_key.contains("daemon")) &&
           by_name("container") && by_name("network") && by_name("volume") && by_name("plugin") &&
           by_name("node") && by_name("service") && by_name("secret") && by_name("config") &&
           image_ok && labels_ok;
}

namespace {

// What follows the seconds of an RFC 3339 time whose date and time strptime
// read into tm: an optional fraction, then "Z" or "±hh:mm", or nothing when
// local time is allowed (then read as local time). Nanoseconds since the
// epoch; nullopt when the tail is none of those.
std::optional<std::int64_t> rfc3339_tail(std::tm& tm, const char* end, bool local_ok) {
    std::int64_t nanos = 0;
    if (*end == '.') {
        std::string f;
        for (++end; *end >= '0' && *end <= '9'; ++end) {
            f += *end;
        }
        f.resize(9, '0');
        nanos = std::stoll(f.substr(0, 9));
    }
    if (local_ok && *end == '\0') {
        return static_cast<std::int64_t>(::mktime(&tm)) * 1000000000LL + nanos;
    }
    long offset = 0;
    if ((*end == 'Z' || *end == 'z') && end[1] == '\0') {
        offset = 0;
    } else if ((*end == '+' || *end == '-') && std::strlen(end) == 6 && end[3] == ':') {
        offset = (std::atol(std::string(end + 1, 2).c_str()) * 60 +
                  std::atol(std::string(end + 4, 2).c_str())) *
                 60 * (*end == '+' ? 1 : -1);
    } else {
        return std::nullopt;
    }
    return (static_cast<std::int64_t>(::timegm(&tm)) - offset) * 1000000000LL + nanos;
}

} // namespace

std::int64_t parse_event_time(const std::string& text) {
    // Seconds[.fraction], what the docker CLI sends.
    std::size_t dot = text.find('.');
    std::string secs = text.substr(0, dot);
    std::string frac = dot == std::string::npos ? "" : text.substr(dot + 1);
    bool digits = !secs.empty() && secs.size() <= 12 &&
                  secs.find_first_not_of("0123456789") == std::string::npos && frac.size() <= 9 &&
                  frac.find_first_not_of("0123456789") == std::string::npos;
    if (digits) {
        frac.resize(9, '0');
        return std::stoll(secs) * 1000000000LL + std::stoll(frac);
    }
    // RFC 3339: 2006-01-02T15:04:05[.frac](Z|±hh:mm).
    std::tm tm{};
    if (const char* end = ::strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) {
        if (auto t = rfc3339_tail(tm, end, false)) {
            return *t;
        }
    }
    throw UsageError("invalid timestamp \"" + text + "\" (seconds since the epoch, or RFC 3339)");
}

namespace {

// Go's time.ParseDuration: [-+]?(\d*\.?\d+(ns|us|µs|ms|s|m|h))+ ; nullopt when
// the text is not one.
std::optional<std::int64_t> parse_go_duration(std::string_view s) {
    if (s.empty() || s == "0") {
        return s == "0" ? std::optional<std::int64_t>(0) : std::nullopt;
    }
    bool neg = false;
    if (s.front() == '-' || s.front() == '+') {
        neg = s.front() == '-';
        s.remove_prefix(1);
    }
    long double total = 0;
    bool any = false;
    while (!s.empty()) {
        std::size_t i = 0;
        while (i < s.size() && ((s[i] >= '0' && s[i] <= '9') || s[i] == '.')) {
            ++i;
        }
        if (i == 0) {
            return std::nullopt;
        }
        std::string num(s.substr(0, i));
        if (std::count(num.begin(), num.end(), '.') > 1 || num == ".") {
            return std::nullopt;
        }
        s.remove_prefix(i);
        std::size_t u = 0;
        while (u < s.size() && !((s[u] >= '0' && s[u] <= '9') || s[u] == '.')) {
            ++u;
        }
        std::string unit(s.substr(0, u));
        s.remove_prefix(u);
        long double scale = 0;
        if (unit == "ns") {
            scale = 1;
        } else if (unit == "us" || unit == "\u00b5s" || unit == "\u03bcs") {
            scale = 1e3;
        } else if (unit == "ms") {
            scale = 1e6;
        } else if (unit == "s") {
            scale = 1e9;
        } else if (unit == "m") {
            scale = 60e9;
        } else if (unit == "h") {
            scale = 3600e9;
        } else {
            return std::nullopt;
        }
        total += std::stold(num) * scale;
        any = true;
    }
    if (!any) {
        return std::nullopt;
    }
    return static_cast<std::int64_t>(neg ? -total : total);
}

} // namespace

std::int64_t parse_time_argument(const std::string& text, std::int64_t now_nano) {
    if (auto d = parse_go_duration(text); d && text != "0") {
        // GetTimestamp: whole seconds before now.
        return ((now_nano - *d) / 1000000000) * 1000000000;
    }
    if (text.find_first_not_of("0123456789.") == std::string::npos) {
        return parse_event_time(text);
    }
    bool zoned = text.find_first_of("zZ+") != std::string::npos ||
                 std::count(text.begin(), text.end(), '-') == 3;
    std::tm tm{};
    tm.tm_isdst = -1;
    const char* end = nullptr;
    for (const char* f : {"%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H", "%Y-%m-%d"}) {
        tm = std::tm{};
        tm.tm_isdst = -1;
        end = ::strptime(text.c_str(), f, &tm);
        if (end != nullptr) {
            break;
        }
    }
    if (end != nullptr) {
        if (auto t = rfc3339_tail(tm, end, !zoned)) {
            return *t;
        }
    }
    throw UsageError("failed to parse value as time or duration: \"" + text + "\"");
}

namespace {

// Reads a journal file's complete lines from `offset`, keeping an
// unfinished last line for the next read.
class JournalReader {
public:
    // false from the sink: stop.
    bool read_new(const std::function<bool(const Event&)>& sink) {
        if (!m_fd) {
            return true;
        }
        char buf[65536];
        ssize_t n;
        while ((n = ::pread(m_fd.get(), buf, sizeof buf, m_offset)) > 0) {
            m_offset += n;
            m_partial.append(buf, static_cast<std::size_t>(n));
        }
        std::size_t start = 0;
        std::size_t nl;
        while ((nl = m_partial.find('\n', start)) != std::string::npos) {
            std::string_view line(m_partial.data() + start, nl - start);
            start = nl + 1;
            Event e;
            try {
                e = Event::from_json(nlohmann::json::parse(line));
            } catch (const std::exception&) {
                continue; // a line cut by a crash
            }
            if (!sink(e)) {
                m_partial.erase(0, start);
                return false;
            }
        }
        m_partial.erase(0, start);
        return true;
    }
    void open(const std::string& path, bool at_end) {
        m_fd = UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
        m_partial.clear();
        m_offset = 0;
        m_ino = 0;
        if (m_fd) {
            struct stat st {};
            ::fstat(m_fd.get(), &st);
            m_ino = st.st_ino;
            if (at_end) {
                m_offset = st.st_size;
            }
        }
    }
    ino_t ino() const { return m_ino; }
    bool is_open() const { return static_cast<bool>(m_fd); }

private:
    UniqueFd m_fd;
    off_t m_offset = 0;
    ino_t m_ino = 0;
    std::string m_partial;
};

} // namespace

void read_events(const std::string& store_root, const EventQuery& query,
                 const std::function<bool(const Event&)>& sink, const std::function<bool()>& stop) {
    std::string path = journal_path(store_root);
    bool past_until = false;
    auto give = [&](const Event& e) {
        if (query.until > 0 && e.time_nano > query.until) {
            past_until = true;
            return false;
        }
        if (query.since >= 0 && e.time_nano < query.since) {
            return true;
        }
        return !query.filter.matches(e) || sink(e);
    };
    // Watch the directory before reading, so nothing written in between is
    // missed (the file may not exist yet, and is replaced when rotated).
    UniqueFd watch(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
    if (watch) {
        ::inotify_add_watch(watch.get(), store_root.c_str(),
                            IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM);
    }
    JournalReader current;
    if (query.since >= 0) {
        JournalReader old;
        old.open(path + ".1", false);
        current.open(path, false);
        if (old.is_open() && old.ino() != current.ino() && !old.read_new(give)) {
            return;
        }
        if (!current.read_new(give)) {
            return;
        }
    } else {
        current.open(path, true);
    }
    auto until_passed = [&] {
        if (query.until <= 0) {
            return false;
        }
        return now_nano() > query.until;
    };
    while (!past_until && !until_passed() && !stop()) {
        pollfd p{watch.get(), POLLIN, 0};
        int timeout = 250;
        if (query.until > 0) {
            std::int64_t left_ms = (query.until - now_nano()) / 1000000 + 1;
            timeout = static_cast<int>(
                std::min<std::int64_t>(timeout, std::max<std::int64_t>(left_ms, 1)));
        }
        if (watch) {
            ::poll(&p, 1, timeout);
            char drain[4096];
            while (::read(watch.get(), drain, sizeof drain) > 0) {
            }
        } else {
            ::usleep(static_cast<useconds_t>(timeout) * 1000);
        }
        // A rotation: the rest of the old file first, then the new one.
        struct stat st {};
        bool replaced = ::stat(path.c_str(), &st) == 0 && st.st_ino != current.ino();
        if (!current.read_new(give)) {
            return;
        }
        if (replaced) {
            current.open(path, false);
            if (!current.read_new(give)) {
                return;
            }
        }
    }
}

} // namespace strata::events
