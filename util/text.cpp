#include "util/text.hpp"

#include <algorithm>
#include <cstdint>

namespace strata::text {

namespace {

struct CodeRange {
    char32_t lo;
    char32_t hi;
};

#include "util/unicode_tables.inc"

template <std::size_t N> bool in_table(const CodeRange (&table)[N], char32_t cp) {
    const CodeRange* end = table + N;
    const CodeRange* it =
        std::upper_bound(table, end, cp, [](char32_t v, const CodeRange& r) { return v < r.lo; });
    if (it == table) {
        return false;
    }
    --it;
    return cp >= it->lo && cp <= it->hi;
}

constexpr char k_hex[] = "0123456789abcdef";

} // namespace

Rune decode_multibyte(std::string_view s, std::size_t pos) {
    const auto b0 = static_cast<unsigned char>(s[pos]);
    int need = 0;
    char32_t cp = 0;
    char32_t min = 0;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        need = 1;
        cp = b0 & 0x1F;
        min = 0x80;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        need = 2;
        cp = b0 & 0x0F;
        min = 0x800;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        need = 3;
        cp = b0 & 0x07;
        min = 0x10000;
    } else {
        return {0xFFFD, 1, false};
    }
    if (pos + static_cast<std::size_t>(need) >= s.size()) {
        return {0xFFFD, 1, false};
    }
    for (int i = 1; i <= need; ++i) {
        const auto b = static_cast<unsigned char>(s[pos + i]);
        if ((b & 0xC0) != 0x80) {
            return {0xFFFD, 1, false};
        }
        cp = (cp << 6) | (b & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return {0xFFFD, 1, false};
    }
    return {cp, need + 1, true};
}

void append_utf8(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

bool is_space(char32_t cp) {
    if (cp > ' ' && cp < 0x80) {
        return false;
    }
    switch (cp) {
    case '\t':
    case '\n':
    case '\v':
    case '\f':
    case '\r':
    case ' ':
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
        return true;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

bool is_letter(char32_t cp) {
    if (cp < 0x80) {
        return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
    }
    return in_table(kLetterRanges, cp);
}

bool is_digit(char32_t cp) {
    if (cp < 0x80) {
        return cp >= '0' && cp <= '9';
    }
    return in_table(kDigitRanges, cp);
}

bool is_print(char32_t cp) {
    if (cp < 0x80) {
        return cp >= 0x20 && cp < 0x7F;
    }
    return in_table(kPrintRanges, cp);
}

std::string go_quote(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 2);
    out.push_back('"');
    std::size_t i = 0;
    while (i < s.size()) {
        const Rune r = decode(s, i);
        if (!r.valid) {
            const auto b = static_cast<unsigned char>(s[i]);
            out += "\\x";
            out.push_back(k_hex[b >> 4]);
            out.push_back(k_hex[b & 0xF]);
            ++i;
            continue;
        }
        const char32_t c = r.cp;
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(static_cast<char>(c));
        } else if (is_print(c)) {
            out.append(s.substr(i, r.len));
        } else {
            switch (c) {
            case '\a':
                out += "\\a";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\f':
                out += "\\f";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\v':
                out += "\\v";
                break;
            default:
                if (c < 0x20 || c == 0x7F) {
                    out += "\\x";
                    out.push_back(k_hex[c >> 4]);
                    out.push_back(k_hex[c & 0xF]);
                } else if (c < 0x10000) {
                    out += "\\u";
                    for (int shift = 12; shift >= 0; shift -= 4) {
                        out.push_back(k_hex[(c >> shift) & 0xF]);
                    }
                } else {
                    out += "\\U";
                    for (int shift = 28; shift >= 0; shift -= 4) {
                        out.push_back(k_hex[(c >> shift) & 0xF]);
                    }
                }
            }
        }
        i += r.len;
    }
    out.push_back('"');
    return out;
}

std::string_view trim_left_space(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const Rune r = decode(s, i);
        if (!r.valid || !is_space(r.cp)) {
            break;
        }
        i += r.len;
    }
    return s.substr(i);
}

std::string_view trim_right_space(std::string_view s) {
    std::size_t end = s.size();
    while (end > 0) {
        // Find the start of the last code point.
        std::size_t start = end - 1;
        while (start > 0 && end - start < 4 &&
               (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) {
            --start;
        }
        const Rune r = decode(s, start);
        if (!r.valid || start + r.len != end || !is_space(r.cp)) {
            break;
        }
        end = start;
    }
    return s.substr(0, end);
}

std::string_view trim_space(std::string_view s) {
    return trim_right_space(trim_left_space(s));
}

std::size_t find_invalid_utf8_or_nul(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto b = static_cast<unsigned char>(s[i]);
        if (b == 0) {
            return i;
        }
        if (b < 0x80) {
            ++i;
            continue;
        }
        const Rune r = decode(s, i);
        if (!r.valid) {
            return i;
        }
        i += r.len;
    }
    return std::string_view::npos;
}

std::string to_valid_utf8(std::string_view s) {
    if (std::all_of(s.begin(), s.end(), [](char c) { return (c & 0x80) == 0; })) {
        return std::string(s); // ASCII (most names)
    }
    std::string out;
    out.reserve(s.size());
    std::size_t i = 0;
    while (i < s.size()) {
        const Rune r = decode(s, i);
        if (r.valid) {
            out.append(s.substr(i, static_cast<std::size_t>(r.len)));
        } else {
            append_utf8(out, 0xFFFD);
        }
        i += static_cast<std::size_t>(r.len);
    }
    return out;
}

} // namespace strata::text
