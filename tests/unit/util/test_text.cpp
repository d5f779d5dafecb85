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
