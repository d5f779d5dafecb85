// Standard base64 (RFC 4648 section 4, alphabet A-Z a-z 0-9 + /, '=' padding),
// the one implementation in strata: OpenSSL's EVP_EncodeBlock and
// EVP_DecodeBlock behind a strict check of the input. EVP_DecodeBlock alone
// skips leading and trailing whitespace, decodes "A===" to a zero byte and
// counts padding as data; base64_decode refuses all of that.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace strata {

std::string base64_encode(std::string_view data);

struct Base64Rules {
    // Skip CR and LF anywhere, as Go's encoding/base64 decoders do (OCI
    // descriptor data). No other whitespace is ever accepted.
    bool skip_newlines = false;
    // Accept input whose '=' padding was left off (a final group of two or
    // three characters).
    bool allow_unpadded = false;
};

// The decoded bytes, or nullopt when the input is not base64 under `rules`:
// a character outside the alphabet, padding other than one or two '=' that
// end the input, a length that is not a whole number of groups (a group of
// one character is never valid).
std::optional<std::string> base64_decode(std::string_view text, Base64Rules rules = {});

} // namespace strata
