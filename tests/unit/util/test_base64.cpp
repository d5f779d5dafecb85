// util/base64: OpenSSL's codec behind a strict check of the input.
#include "util/base64.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace strata;

TEST_CASE("base64 round-trips every length and every byte value") {
    std::string all;
    for (int i = 0; i < 256; ++i) {
        all += static_cast<char>(i);
    }
    for (std::size_t n = 0; n <= all.size(); n += (n < 10 ? 1 : 37)) {
        std::string data = all.substr(0, n);
        std::string text = base64_encode(data);
        INFO(n);
        CHECK(text.size() == 4 * ((n + 2) / 3));
        CHECK(base64_decode(text) == data);
    }
    CHECK(base64_encode("") == "");
    CHECK(base64_encode("alice:s3cret") == "YWxpY2U6czNjcmV0");
    CHECK(base64_encode("a") == "YQ==");
    CHECK(base64_encode("\xfb\xff") == "+/8=");
    CHECK(base64_decode("") == std::string());
    CHECK(base64_decode("YQ==") == "a");
    CHECK(base64_decode("YWI=") == "ab");
    CHECK(base64_decode("+/8=") == "\xfb\xff");
}

TEST_CASE("base64 refuses bad padding, bad characters, whitespace and truncated input") {
    for (const char* bad : {
             "YQ",       // unpadded
             "YQ=",      // half padded
             "Y===",     // three '=': no whole byte
             "====",     // padding only
             "YQ==YQ==", // data after padding
             "Y=Q=",     // '=' inside a group
             "YWJj=",    // padding after a whole group
             "YWJjZ",    // one character of a group
             "YW!j",     // outside the alphabet
             "YW-j",     // URL-safe alphabet
             "YW_j",     // URL-safe alphabet
             " YWJj",    // leading space (EVP_DecodeBlock alone skips it)
             "YWJj ",    // trailing space
             "YW\nJj",   // a newline the caller's format does not allow
             "YW\tJj",   // a tab
         }) {
        INFO(bad);
        CHECK_FALSE(base64_decode(bad).has_value());
    }
    CHECK_FALSE(base64_decode(std::string("YW\0j", 4)).has_value());
}

TEST_CASE("base64 rules: CR and LF where the format allows them, padding left off on request") {
    Base64Rules lines{.skip_newlines = true};
    CHECK(base64_decode("YWJj\r\nZGVm\n", lines) == "abcdef");
    CHECK(base64_decode("YQ=\n=", lines) == "a");
    CHECK_FALSE(base64_decode("YWJj ZGVm", lines).has_value());
    CHECK_FALSE(base64_decode("YWJj\tZGVm", lines).has_value());

    Base64Rules unpadded{.allow_unpadded = true};
    CHECK(base64_decode("YQ", unpadded) == "a");
    CHECK(base64_decode("YWI", unpadded) == "ab");
    CHECK(base64_decode("YWI=", unpadded) == "ab");
    CHECK_FALSE(base64_decode("YWJjZ", unpadded).has_value()); // one character: truncated
    CHECK_FALSE(base64_decode("YQ=", unpadded).has_value());
    CHECK_FALSE(base64_decode("Y", unpadded).has_value());
}
