#include "formats/json.hpp"

#include <set>
#include <vector>

namespace strata::formats {

namespace {

// Tracks where the parser is, so that errors can name the path of a value.
struct Frame {
    bool is_array = false;
    long index = -1; // arrays: index of the current element
    std::string key; // objects: the current key
    std::set<std::string> keys;
};

std::string path_of(const std::vector<Frame>& frames, std::size_t count) {
    std::string out;
    for (std::size_t i = 0; i < count && i < frames.size(); ++i) {
        const Frame& f = frames[i];
        if (f.is_array) {
            if (f.index >= 0) {
                out += "[" + std::to_string(f.index) + "]";
            }
        } else if (!f.key.empty() || i + 1 < count) {
            if (!out.empty()) {
                out += '.';
            }
            out += f.key;
        }
    }
    return out;
}

} // namespace

std::string quote_untrusted(std::string_view text) {
    static constexpr char hexd[] = "0123456789abcdef";
    std::string out = "\"";
    for (char c : text.substr(0, 100)) {
        auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f || c == '"' || c == '\\') {
            out += "\\x";
            out += hexd[u >> 4];
            out += hexd[u & 15];
        } else {
            out += c;
        }
    }
    if (text.size() > 100) {
        out += "...";
    }
    out += '"';
    return out;
}

nlohmann::json parse_json_strict(std::string_view text, std::string_view what, std::size_t max_size,
                                 int max_depth) {
    std::string prefix = what.empty() ? std::string() : std::string(what) + ": ";
    if (text.size() > max_size) {
        throw FormatError(prefix + "document is " + std::to_string(text.size()) +
                          " bytes, more than the limit of " + std::to_string(max_size));
    }
    using json = nlohmann::json;
    std::vector<Frame> frames;
    // The callback runs inside nlohmann's parser (C++ all the way down, no C
    // frames), so throwing from it is safe and aborts the parse.
    auto callback = [&](int depth, json::parse_event_t event, json& parsed) -> bool {
        auto element_starts = [&] {
            if (!frames.empty() && frames.back().is_array) {
                ++frames.back().index;
            }
        };
        switch (event) {
        case json::parse_event_t::object_start:
        case json::parse_event_t::array_start:
            element_starts();
            if (depth >= max_depth) {
                std::string where = path_of(frames, frames.size());
                throw FormatError(prefix + (where.empty() ? "" : where + ": ") +
                                  "JSON nests deeper than " + std::to_string(max_depth) +
                                  " levels");
            }
            frames.push_back(Frame{event == json::parse_event_t::array_start, -1, {}, {}});
            break;
        case json::parse_event_t::key: {
            Frame& f = frames.back();
            std::string key = parsed.get<std::string>();
            if (!f.keys.insert(key).second) {
                std::string where = path_of(frames, frames.size() - 1);
                throw FormatError(prefix + (where.empty() ? "" : where + ": ") + "duplicate key " +
                                  quote_untrusted(key));
            }
            f.key = std::move(key);
            break;
        }
        case json::parse_event_t::object_end:
        case json::parse_event_t::array_end:
            frames.pop_back();
            break;
        case json::parse_event_t::value:
            element_starts();
            break;
        }
        return true;
    };
    try {
        return json::parse(text.begin(), text.end(), callback, true, false);
    } catch (const json::parse_error& e) {
        // e.what() is "[json.exception.parse_error.101] parse error at line 1, column 5: ..."
        std::string msg = e.what();
        auto pos = msg.find("] ");
        if (pos != std::string::npos) {
            msg = msg.substr(pos + 2);
        }
        throw FormatError(prefix + "invalid JSON: " + msg);
    } catch (const json::exception& e) {
        // e.g. out_of_range.406 "number overflow parsing '9e999'".
        std::string msg = e.what();
        auto pos = msg.find("] ");
        throw FormatError(
            prefix + "invalid JSON: " + (pos == std::string::npos ? msg : msg.substr(pos + 2)));
    }
}

void append_json_string(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    out += '"';
    // Runs of characters that need no escape are appended whole.
    std::size_t run = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        out.append(s.data() + run, i - run);
        run = i + 1;
        if (c == '"' || c == '\\') {
            out += '\\';
            out += s[i];
        } else if (const char* e = c == '\b'   ? "\\b"
                                   : c == '\f' ? "\\f"
                                   : c == '\n' ? "\\n"
                                   : c == '\r' ? "\\r"
                                   : c == '\t' ? "\\t"
                                               : nullptr) {
            out += e;
        } else {
            out += "\\u00";
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    out.append(s.data() + run, s.size() - run);
    out += '"';
}

std::string dump_go_style(const nlohmann::ordered_json& value) {
    // Invalid UTF-8 (from strings strata built, parsed input is checked)
    // becomes U+FFFD as in Go, rather than an exception.
    std::string raw = value.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    std::string out;
    out.reserve(raw.size());
    for (std::size_t i = 0; i < raw.size(); ++i) {
        char c = raw[i];
        // These bytes can only occur inside strings in the dump, so escaping
        // them byte-wise keeps the JSON valid and equal to Go's output.
        if (c == '<') {
            out += "\\u003c";
        } else if (c == '>') {
            out += "\\u003e";
        } else if (c == '&') {
            out += "\\u0026";
        } else if (c == '\xe2' && i + 2 < raw.size() && raw[i + 1] == '\x80' &&
                   (raw[i + 2] == '\xa8' || raw[i + 2] == '\xa9')) {
            out += raw[i + 2] == '\xa8' ? "\\u2028" : "\\u2029";
            i += 2;
        } else {
            out += c;
        }
    }
    return out;
}

} // namespace strata::formats
