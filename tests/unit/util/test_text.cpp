#include "util/text.hpp"

#include <catch2/catch.hpp>

using namespace strata;

TEST_CASE("go_quote quotes as Go's strconv.Quote") {
    CHECK(text::go_quote("") == "\"\"");
    CHECK(text::go_quote("/var/lib/strata") == "\"/var/lib/strata\"");
    CHECK(text::go_quote("a\"b\\c") == "\"a\\\"b\\\\c\"");
    CHECK(text::go_quote("\a\b\f\n\r\t\v") == "\"\\a\\b\\f\\n\\r\\t\\v\"");
    CHECK(text::go_quote(std::string_view("\x01\x7f\0", 3)) == "\"\\x01\\x7f\\x00\"");
    // Printable non-ASCII stays as it is; invalid UTF-8 bytes become \x..
    CHECK(text::go_quote("h\xc3\xa9llo \xe4\xb8\x96") == "\"h\xc3\xa9llo \xe4\xb8\x96\"");
    CHECK(text::go_quote("a\xff"
                         "b\xc3") == "\"a\\xffb\\xc3\"");
    // Non-printable code points: \u below U+10000, \U above.
    CHECK(text::go_quote("\xc2\x85") == "\"\\u0085\"");             // U+0085 NEL
    CHECK(text::go_quote("\xe2\x80\xa8") == "\"\\u2028\"");         // U+2028 LINE SEPARATOR
    CHECK(text::go_quote("\xf3\xa0\x80\x81") == "\"\\U000e0001\""); // U+E0001 LANGUAGE TAG
    // U+00A0 is printable for Go only through IsGraphic, not IsPrint.
    CHECK(text::go_quote("\xc2\xa0") == "\"\\u00a0\"");
}

// Go (and so BuildKit) follows Unicode 15.0; these code points were assigned
// in 15.0 (util/unicode_tables.inc comes from Debian's unicode-data 15.0).
TEST_CASE("letters, digits and printable runes are Unicode 15.0's, as Go's") {
    CHECK(text::is_letter(0x1E030)); // MODIFIER LETTER CYRILLIC SMALL A (Lm)
    CHECK(text::is_letter(0x31350)); // first of CJK Unified Ideographs Extension H (Lo)
    CHECK(text::is_letter(0x323AF)); // its last
    CHECK_FALSE(text::is_letter(0x323B0));
    CHECK(text::is_digit(0x11F50)); // KAWI DIGIT ZERO (Nd)
    CHECK(text::is_digit(0x1E4F9)); // NAG MUNDARI DIGIT NINE (Nd)
    CHECK_FALSE(text::is_letter(0x11F50));
    CHECK(text::is_print(0x1F6DC));       // WIRELESS (So)
    CHECK(text::is_print(0x11F41));       // KAWI SIGN KILLER (Mc)
    CHECK_FALSE(text::is_print(0xE0001)); // LANGUAGE TAG (Cf)
    CHECK_FALSE(text::is_print(0x1FAFF)); // unassigned in 15.0
}

TEST_CASE("to_valid_utf8 replaces each byte that is not UTF-8, as Go's encoding/json") {
    CHECK(text::to_valid_utf8("ok\xc3\xa9") == "ok\xc3\xa9");
    CHECK(text::to_valid_utf8("bad\xffname") == "bad\xef\xbf\xbdname");
    // A truncated sequence and an overlong form: one U+FFFD per byte.
    CHECK(text::to_valid_utf8("a\xe2\x82") == "a\xef\xbf\xbd\xef\xbf\xbd");
    CHECK(text::to_valid_utf8("\xc0\xaf") == "\xef\xbf\xbd\xef\xbf\xbd");
    CHECK(text::to_valid_utf8(std::string_view("\0x", 2)) == std::string("\0x", 2));
    CHECK(text::to_valid_utf8("") == "");
}
