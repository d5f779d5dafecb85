// COPY/ADD --chmod: octal and symbolic modes (chmod(1) semantics, as
// BuildKit 0.13 / Dockerfile 1.10 apply them to each source's own mode).
#include "builder/chmod.hpp"
#include "util/error.hpp"

#include <catch2/catch.hpp>

using namespace strata;
using namespace strata::builder;

namespace {
mode_t file(const std::string& spec, mode_t m) {
    return ChmodSpec::parse(spec).apply(m, false);
}
mode_t dir(const std::string& spec, mode_t m) {
    return ChmodSpec::parse(spec).apply(m, true);
}
} // namespace

TEST_CASE("chmod: octal replaces the mode") {
    CHECK(file("0755", 0600) == 0755);
    CHECK(file("644", 0777) == 0644);
    CHECK(dir("4755", 0700) == 04755);
    CHECK_FALSE(ChmodSpec::parse("0755").symbolic());
}

TEST_CASE("chmod: symbolic modes apply to the source's mode as chmod(1)") {
    CHECK(file("u+x", 0644) == 0744);
    CHECK(file("u+x,g-w", 0664) == 0744);
    CHECK(file("g-w,o-rwx", 0777) == 0750);
    CHECK(file("+x", 0644) == 0755);
    CHECK(file("a+x", 0600) == 0711);
    CHECK(file("go=", 0755) == 0700);
    CHECK(file("u=rw,go=r", 0777) == 0644);
    CHECK(file("ug+s", 0755) == 06755);
    CHECK(dir("+t", 0777) == 01777);
    CHECK(file("u-x+w", 0500) == 0600);   // several operations in one clause
    CHECK(file("a-w,u+w", 0666) == 0644); // clauses in order
    // X: directories, and files some class may already execute.
    CHECK(file("a=rX", 0644) == 0444);
    CHECK(file("a=rX", 0744) == 0555);
    CHECK(dir("a=rX", 0700) == 0555);
    CHECK(file("go+X", 0600) == 0600);
    CHECK(file("go+X", 0700) == 0711);
    CHECK(dir("go+rX", 0700) == 0755);
    CHECK(ChmodSpec::parse("u+x").symbolic());
}

TEST_CASE("chmod: refuses what is neither octal nor symbolic, naming it") {
    for (const char* bad : {"", "u+q", "x", "0999", "07777777", "u+x,", "u", "+x;rm"}) {
        CAPTURE(bad);
        try {
            ChmodSpec::parse(bad);
            FAIL("accepted");
        } catch (const Error& e) {
            CHECK(std::string(e.what()).find(std::string("--chmod=") + bad) != std::string::npos);
        }
    }
}
