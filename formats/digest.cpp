#include "formats/digest.hpp"

namespace strata::formats {

namespace {
bool is_lower_hex(std::string_view s) {
    for (char c : s) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}

// Printable excerpt of untrusted text for error messages.
std::string quote_for_error(std::string_view text) {
    std::string out = "\"";
    for (char c : text.substr(0, 100)) {
        unsigned char u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f || c == '"' || c == '\\') {
            static constexpr char hexd[] = "0123456789abcdef";
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
} // namespace

std::optional<Digest> Digest::try_parse(std::string_view text) noexcept {
    if (text.size() != 71 || text.substr(0, 7) != "sha256:" || !is_lower_hex(text.substr(7))) {
        return std::nullopt;
    }
    return Digest(std::string(text));
}

Digest Digest::parse(std::string_view text) {
    if (auto d = try_parse(text)) {
        return *d;
    }
    auto colon = text.find(':');
    if (colon == std::string_view::npos) {
        throw BadDigest("invalid digest " + quote_for_error(text) +
                        ": expected \"algorithm:encoded\"");
    }
    std::string_view alg = text.substr(0, colon);
    if (alg != "sha256") {
        throw BadDigest("invalid digest " + quote_for_error(text) + ": unsupported algorithm " +
                        quote_for_error(alg) + " (only sha256 is supported)");
    }
    throw BadDigest("invalid digest " + quote_for_error(text) +
                    ": sha256 needs exactly 64 lowercase hex digits");
}

Digest Digest::of(std::string_view data) {
    Sha256 h;
    h.update(data);
    return from_hasher(h);
}

Digest Digest::from_hasher(Sha256& hasher) { return Digest("sha256:" + hasher.finish_hex()); }

} // namespace strata::formats
