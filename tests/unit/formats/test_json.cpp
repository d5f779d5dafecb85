#include "formats/json.hpp"

#include <catch2/catch.hpp>

using namespace strata::formats;

namespace {
std::string error_of(std::string_view text, std::size_t max = k_max_document_size,
                     int depth = k_max_json_depth) {
    try {
        parse_json_strict(text, "doc.json", max, depth);
    } catch (const FormatError& e) {
        return e.what();
    }
    return "(no error)";
}
} // namespace

TEST_CASE("strict JSON parses ordinary documents", "[json]") {
    auto j = parse_json_strict(R"({"a":[1,{"b":"c"}],"d":null})", "x");
    CHECK(j["a"][1]["b"] == "c");
    CHECK(j["d"].is_null());
}

TEST_CASE("strict JSON rejects duplicate keys naming the path", "[json]") {
    CHECK(error_of(R"({"a":1,"a":2})") == "doc.json: duplicate key \"a\"");
    CHECK(error_of(R"({"layers":[{"x":1},{"digest":"a","digest":"b"}]})") ==
          "doc.json: layers[1]: duplicate key \"digest\"");
    CHECK(error_of(R"({"config":{"Labels":{"k":"1","k":"2"}}})") ==
          "doc.json: config.Labels: duplicate key \"k\"");
    // The same key in sibling objects is fine.
    CHECK(error_of(R"([{"a":1},{"a":2}])") == "(no error)");
}

TEST_CASE("strict JSON limits nesting depth", "[json]") {
    std::string deep(65, '[');
    deep += std::string(65, ']');
    CHECK(error_of(deep).find("JSON nests deeper than 64 levels") != std::string::npos);
    std::string ok(64, '[');
    ok += std::string(64, ']');
    CHECK(error_of(ok) == "(no error)");
    // Hostile depth far beyond the limit fails fast without recursion.
    std::string huge(1000000, '[');
    CHECK(error_of(huge).find("nests deeper") != std::string::npos);
}

TEST_CASE("strict JSON limits document size", "[json]") {
    std::string big = "\"" + std::string(100, 'x') + "\"";
    CHECK(error_of(big, 50) == "doc.json: document is 102 bytes, more than the limit of 50");
}

TEST_CASE("strict JSON reports syntax errors with position", "[json]") {
    std::string e = error_of("{\"a\":");
    CHECK(e.rfind("doc.json: invalid JSON: ", 0) == 0);
    CHECK(e.find("line 1") != std::string::npos);
    CHECK(error_of("invalid JSON").rfind("doc.json: invalid JSON", 0) == 0);
    // Numbers beyond double: nlohmann throws out_of_range, not parse_error.
    CHECK(error_of("[9e999]") == "doc.json: invalid JSON: number overflow parsing '9e999'");
    // Invalid UTF-8 inside a string.
    CHECK(error_of("\"\xff\"").rfind("doc.json: invalid JSON", 0) == 0);
}

TEST_CASE("Go-style dump escapes HTML characters and line separators", "[json]") {
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    j["z"] = "a<b>&c\xe2\x80\xa8";
    j["a"] = "é";
    CHECK(dump_go_style(j) == "{\"z\":\"a\\u003cb\\u003e\\u0026c\\u2028\",\"a\":\"é\"}");
    nlohmann::ordered_json bad = "x\xffy";
    CHECK(dump_go_style(bad) == "\"x\xef\xbf\xbdy\"");
}
