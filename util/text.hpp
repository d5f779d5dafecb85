// Text helpers that reproduce the exact Unicode rules of Go's standard library
// (unicode.IsSpace/IsLetter/IsDigit, strconv.IsPrint, strconv.Quote): the
// Dockerfile frontend's AST dump and word splitting match BuildKit byte for
// byte with them, the CLI's templates print %q as Go does, and error messages
// quote paths with go_quote (util/error.hpp's quote_path).
//
//   auto r = text::decode(s, i);       // one code point (invalid byte: valid=false, len=1)
//   text::go_quote("a\"b") == "\"a\\\"b\""
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace strata::text {

struct Rune {
    char32_t cp = 0; // U+FFFD for an invalid byte
    int len = 1;     // bytes consumed (1 for an invalid byte)
    bool valid = true;
};

Rune decode_multibyte(std::string_view s, std::size_t pos);

// Decodes the code point at s[pos] (pos < s.size()).
inline Rune decode(std::string_view s, std::size_t pos) {
    const auto b = static_cast<unsigned char>(s[pos]);
    if (b < 0x80) {
        return {b, 1, true};
    }
    return decode_multibyte(s, pos);
}
void append_utf8(std::string& out, char32_t cp);

bool is_space(char32_t cp);  // Go unicode.IsSpace
bool is_letter(char32_t cp); // Go unicode.IsLetter
bool is_digit(char32_t cp);  // Go unicode.IsDigit (Nd)
bool is_print(char32_t cp);  // Go strconv.IsPrint

// Go strconv.Quote.
std::string go_quote(std::string_view s);

// Unicode whitespace trimming (Go strings.TrimSpace / TrimLeftFunc(IsSpace)).
std::string_view trim_space(std::string_view s);
std::string_view trim_left_space(std::string_view s);
std::string_view trim_right_space(std::string_view s);

// Offset of the first byte that is NUL or not part of valid UTF-8 (overlong forms and
// surrogates are invalid), or npos.
std::size_t find_invalid_utf8_or_nul(std::string_view s);

// s with each byte that is not part of valid UTF-8 replaced by U+FFFD (as Go's
// encoding/json writes such a string): for JSON documents that must not fail
// on a hostile file name.
std::string to_valid_utf8(std::string_view s);

} // namespace strata::text
