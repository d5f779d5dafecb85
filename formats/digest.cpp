#include "formats/digest.hpp"
#include "formats/json.hpp"

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
        throw BadDigest("invalid digest " + quote_untrusted(text) +
                        ": expected \"algorithm:encoded\"");
    }
    std::string_view alg = text.substr(0, colon);
    if (alg != "sha256") {
        throw BadDigest("invalid digest " + quote_untrusted(text) + ": unsupported algorithm " +
                        quote_untrusted(alg) + " (only sha256 is supported)");
    }
    throw BadDigest("invalid digest " + quote_untrusted(text) +
                    ": sha256 needs exactly 64 lowercase hex digits");
}

Digest Digest::of(std::string_view data) {
    Sha256 h;
    h.update(data);
    return from_hasher(h);
}

Digest Digest::from_hasher(Sha256& hasher) { return Digest("sha256:" + hasher.finish_hex()); }

} // namespace strata::formats
