#include "util/base64.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <climits>

namespace strata {

namespace {

bool in_alphabet(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

} // namespace

std::string base64_encode(std::string_view data) {
    std::string out;
    // EVP_EncodeBlock takes an int length: encode in slices of whole groups.
    constexpr std::size_t slice = 3 * (std::size_t{1} << 20);
    std::size_t off = 0;
    do {
        std::size_t n = std::min(slice, data.size() - off);
        std::size_t at = out.size();
        out.resize(at + 4 * ((n + 2) / 3) + 1); // + the NUL EVP_EncodeBlock writes
        int w = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data() + at),
                                reinterpret_cast<const unsigned char*>(data.data() + off),
                                static_cast<int>(n));
        out.resize(at + static_cast<std::size_t>(w));
        off += n;
    } while (off < data.size());
    return out;
}

std::optional<std::string> base64_decode(std::string_view text, Base64Rules rules) {
    std::string t;
    t.reserve(text.size() + 2);
    std::size_t pad = 0;
    for (char c : text) {
        if (rules.skip_newlines && (c == '\r' || c == '\n')) {
            continue;
        }
        if (c == '=') {
            ++pad;
        } else if (pad > 0 || !in_alphabet(c)) {
            return std::nullopt; // data after padding, or not in the alphabet
        }
        t += c;
    }
    if (pad > 2) {
        return std::nullopt;
    }
    if (t.size() % 4 != 0) {
        if (!rules.allow_unpadded || pad > 0 || t.size() % 4 == 1) {
            return std::nullopt;
        }
        pad = 4 - t.size() % 4;
        t.append(pad, '=');
    }
    if (t.empty()) {
        return std::string();
    }
    if (t.size() > static_cast<std::size_t>(INT_MAX)) {
        return std::nullopt;
    }
    std::string out(3 * (t.size() / 4), '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(t.data()),
                            static_cast<int>(t.size()));
    if (n < 0 || static_cast<std::size_t>(n) != out.size()) {
        return std::nullopt;
    }
    // EVP_DecodeBlock counts each '=' as a zero byte.
    out.resize(out.size() - pad);
    return out;
}

} // namespace strata
