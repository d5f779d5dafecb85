// Docker's formatting: go-units' sizes and durations, Go's tabwriter with
// docker's settings, and the formatter's table/json/raw modes.
#include "cli/common.hpp"
#include "cli/template.hpp"

#include <catch2/catch.hpp>

using namespace strata::cli;

TEST_CASE("human_duration is go-units HumanDuration", "[format]") {
    CHECK(human_duration(0) == "Less than a second");
    CHECK(human_duration(-5) == "Less than a second");
    CHECK(human_duration(1) == "1 second");
    CHECK(human_duration(59) == "59 seconds");
    CHECK(human_duration(60) == "About a minute");
    CHECK(human_duration(119) == "About a minute");
    CHECK(human_duration(120) == "2 minutes");
    CHECK(human_duration(59 * 60 + 59) == "59 minutes");
    CHECK(human_duration(3600) == "About an hour");
    CHECK(human_duration(5399) == "About an hour");
    CHECK(human_duration(5400) == "2 hours");
    CHECK(human_duration(24 * 3600) == "24 hours");
    CHECK(human_duration(47 * 3600) == "47 hours");
    CHECK(human_duration(48 * 3600) == "2 days");
    CHECK(human_duration(13 * 86400) == "13 days");
    CHECK(human_duration(14 * 86400) == "2 weeks");
    CHECK(human_duration(59 * 86400) == "8 weeks");
    CHECK(human_duration(60 * 86400) == "2 months");
    CHECK(human_duration(729 * 86400) == "24 months");
    CHECK(human_duration(730 * 86400) == "2 years");
}

TEST_CASE("human_size is go-units HumanSizeWithPrecision(size, 3)", "[format]") {
    CHECK(human_size(0) == "0B");
    CHECK(human_size(999) == "999B");
    CHECK(human_size(1000) == "1kB");
    CHECK(human_size(1234) == "1.23kB");
    CHECK(human_size(4261550) == "4.26MB");
    CHECK(human_size(12345678) == "12.3MB");
    CHECK(human_size(999999) == "1e+03kB");
    CHECK(human_size(1500000000) == "1.5GB");
}

TEST_CASE("tabwrite is Go's tabwriter with docker's settings", "[format]") {
    // Min width 10, padding 3, the last cell unpadded.
    CHECK(tabwrite("A\tB\tC\nlonger-value\tx\ty\n") == "A              B         C\n"
                                                       "longer-value   x         y\n");
    // Widths count characters, not bytes.
    CHECK(tabwrite("é\tx\nab\ty\n") == "é         x\nab        y\n");
    // A line without a tab ends the column block.
    CHECK(tabwrite("aaaaaaaaaaaaa\tb\nplain\nc\td\n") == "aaaaaaaaaaaaa   b\nplain\nc         d\n");
    // Column blocks: a line with fewer cells closes the inner column.
    CHECK(tabwrite("a\tb\tc\nd\te\nf\tgggggggggggg\th\n") == "a         b         c\n"
                                                             "d         e\n"
                                                             "f         gggggggggggg   h\n");
    CHECK(tabwrite("a\tb\tc\nd\te\n") == "a         b         c\nd         e\n");
    CHECK(tabwrite("no newline\tx") == "no newline   x");
}

TEST_CASE("format_rows renders docker's table, json and raw formats", "[format]") {
    TableFormat tf{"table {{.Repository}}\\t{{.Tag}}\\t{{.Size}}",
                   {{"Repository", "REPOSITORY"}, {"Tag", "TAG"}, {"Size", "SIZE"}}};
    std::vector<TemplateValue> rows{
        {{"Repository", "busybox"}, {"Tag", "latest"}, {"Size", "4.26MB"}},
        {{"Repository", "a/very/long/repository"}, {"Tag", "1"}, {"Size", "1kB"}}};
    CHECK(format_rows("", tf, rows) == "REPOSITORY               TAG       SIZE\n"
                                       "busybox                  latest    4.26MB\n"
                                       "a/very/long/repository   1         1kB\n");
    CHECK(format_rows("table", tf, rows) == format_rows("", tf, rows));
    CHECK(format_rows("table {{.Tag}}\\t{{.Repository}}", tf, rows) ==
          "TAG       REPOSITORY\n"
          "latest    busybox\n"
          "1         a/very/long/repository\n");
    CHECK(format_rows("{{.Repository}}:{{.Tag}}", tf, rows) ==
          "busybox:latest\na/very/long/repository:1\n");
    CHECK(format_rows("json", tf, {rows[0]}) ==
          "{\"Repository\":\"busybox\",\"Tag\":\"latest\",\"Size\":\"4.26MB\"}\n");
    // An unknown field is an error, as in docker's typed contexts.
    CHECK_THROWS_WITH(format_rows("{{.Nope}}", tf, rows),
                      Catch::Contains("can't evaluate field Nope"));
    // A table with no rows still has its header.
    CHECK(format_rows("table {{.Tag}}", tf, {}) == "TAG\n");
}
