#include "builder/dockerfile/error.hpp"
#include "builder/dockerfile/parser.hpp"

#include <catch2/catch.hpp>

using namespace strata::dockerfile;

namespace {

// The error a parse throws, or a failed check when it does not throw.
DockerfileError parse_error(std::string_view src) {
    try {
        parse(src, "Dockerfile");
    } catch (const DockerfileError& e) {
        return e;
    }
    FAIL("parse did not fail");
    throw std::logic_error("unreachable");
}

} // namespace

TEST_CASE("a heredoc body is read after the instruction and kept out of the dump") {
    auto r = parse("FROM a\nRUN <<EOF\necho hi\n  indented\nEOF\nRUN b\n");
    REQUIRE(r.root.children.size() == 3);
    const Node& run = r.root.children[1];
    REQUIRE(run.heredocs.size() == 1);
    CHECK(run.heredocs[0].name == "EOF");
    CHECK(run.heredocs[0].content == "echo hi\n  indented\n");
    CHECK(run.heredocs[0].expand);
    CHECK_FALSE(run.heredocs[0].chomp);
    CHECK(run.start_line == 2);
    CHECK(run.end_line == 5);
    CHECK(dump(r.root) == "(from \"a\")\n(run \"<<EOF\")\n(run \"b\")");
}

TEST_CASE("quoted heredoc delimiters turn off expansion") {
    for (const char* form : {"<<'EOF'", "<<\"EOF\"", "<<EO\"F\""}) {
        auto r = parse(std::string("FROM a\nRUN ") + form + "\n$X\nEOF\n");
        const auto& h = r.root.children[1].heredocs;
        REQUIRE(h.size() == 1);
        CHECK(h[0].name == "EOF");
        CHECK_FALSE(h[0].expand);
        CHECK(h[0].content == "$X\n");
    }
    auto spaced = parse("FROM a\nRUN <<  EOF\nx\nEOF\n");
    REQUIRE(spaced.root.children[1].heredocs.size() == 1);
    CHECK(spaced.root.children[1].heredocs[0].name == "EOF");
    CHECK(spaced.root.children[1].heredocs[0].expand);
}

TEST_CASE("an escaped quote in a heredoc name is not quoting") {
    auto a = parse("FROM a\nRUN <<eo\\'f\nbody\neo'f\n");
    REQUIRE(a.root.children[1].heredocs.size() == 1);
    CHECK(a.root.children[1].heredocs[0].name == "eo'f");
    CHECK(a.root.children[1].heredocs[0].expand);
    auto b = parse("FROM a\nRUN <<'e'o\\'f\nbody\neo'f\n");
    REQUIRE(b.root.children[1].heredocs.size() == 1);
    CHECK(b.root.children[1].heredocs[0].name == "eo'f");
    CHECK_FALSE(b.root.children[1].heredocs[0].expand);
}

TEST_CASE("<<- heredocs match a tab-indented terminator and keep the body's tabs") {
    auto r = parse("FROM a\nRUN <<-EOT\n\techo x\n\tEOT\nRUN y\n");
    const auto& h = r.root.children[1].heredocs;
    REQUIRE(h.size() == 1);
    CHECK(h[0].chomp);
    CHECK(h[0].content == "\techo x\n");
    CHECK(r.root.children.size() == 3);
}

TEST_CASE("several heredocs on one line are read in order") {
    auto r = parse("FROM a\nCOPY <<X <<Y /dest\nY\nX\nX\nY\n");
    const auto& h = r.root.children[1].heredocs;
    REQUIRE(h.size() == 2);
    CHECK(h[0].name == "X");
    CHECK(h[0].content == "Y\n");
    CHECK(h[1].name == "Y");
    CHECK(h[1].content == "X\n");
    CHECK(r.root.children[1].end_line == 6);
}

TEST_CASE("heredocs apply to RUN, COPY and ADD in shell form only, and to ONBUILD triggers") {
    CHECK(parse("FROM a\nADD <<F /f\nx\nF\n").root.children[1].heredocs.size() == 1);
    // JSON form: "<<EOF" is an argument, nothing is consumed.
    auto json = parse("FROM a\nRUN [\"<<EOF\"]\nEOF\n");
    CHECK(json.root.children[1].heredocs.empty());
    CHECK(json.root.children.size() == 3);
    // Not an instruction that takes heredocs.
    auto user = parse("FROM a\nUSER <<X\nRUN b\n");
    CHECK(user.root.children[1].heredocs.empty());
    CHECK(user.root.children.size() == 3);
    auto on = parse("FROM a\nONBUILD RUN <<EOF\nhello\nEOF\n");
    REQUIRE(on.root.children[1].heredocs.size() == 1);
    CHECK(on.root.children[1].heredocs[0].content == "hello\n");
    // Not starts: quoted, <<< and a file descriptor form.
    CHECK(parse("FROM a\nRUN echo \"<<EOF\"\n").root.children[1].heredocs.empty());
    CHECK(parse("FROM a\nRUN cat <<<EOF\n").root.children[1].heredocs.empty());
    auto fd = parse("FROM a\nRUN cat 3<<EOF\nx\nEOF\n");
    REQUIRE(fd.root.children[1].heredocs.size() == 1);
    CHECK(fd.root.children[1].heredocs[0].fd == 3);
}

TEST_CASE("an empty heredoc body and a CRLF body are kept as written") {
    auto r = parse("FROM a\r\nRUN <<EOF\r\nline\r\nEOF\r\nRUN <<E2\nE2\n");
    const auto& h = r.root.children[1].heredocs;
    REQUIRE(h.size() == 1);
    CHECK(h[0].content == "line\r\n");
    REQUIRE(r.root.children[2].heredocs.size() == 1);
    CHECK(r.root.children[2].heredocs[0].content.empty());
}

TEST_CASE("an unterminated heredoc names its instruction's line") {
    auto e = parse_error("FROM a\n\nRUN <<EOF\necho\n");
    CHECK(e.line() == 3);
    CHECK(e.column() == 1);
    CHECK(e.message().find("unterminated heredoc") != std::string::npos);
    CHECK(e.text() == "RUN <<EOF");
}

TEST_CASE("parser directives are read only at the top") {
    auto r = parse("# syntax=docker/dockerfile:1\n#  Escape = `\nFROM a\nRUN a `\n  b\n");
    REQUIRE(r.directives.size() == 2);
    CHECK(r.directives[0].name == "syntax");
    CHECK(r.directives[1].name == "escape");
    CHECK(r.escape == '`');
    CHECK(dump(r.root) == "(from \"a\")\n(run \"a   b\")");
    // After a comment, "# escape=" is a comment.
    auto late = parse("# hello\n# escape=`\nFROM a\n");
    CHECK(late.escape == '\\');
    CHECK(late.directives.empty());
    // check= is a directive too.
    CHECK(parse("# check=skip=all\nFROM a\n").directives.at(0).value == "skip=all");
}

TEST_CASE("bad or repeated directives are errors on their line") {
    auto bad = parse_error("# escape=x\nFROM a\n");
    CHECK(bad.line() == 1);
    CHECK(bad.message().find("invalid escape token") != std::string::npos);
    auto twice = parse_error("# escape=\\\n# escape=`\nFROM a\n");
    CHECK(twice.line() == 2);
    CHECK(twice.message().find("only one escape parser directive") != std::string::npos);
}

TEST_CASE("bytes that are not UTF-8 pass as in BuildKit; a NUL byte is rejected with line and column") {
    // A Latin-1 comment and RUN argument (BuildKit reads a Dockerfile as
    // bytes): the RUN's text is kept byte for byte.
    auto r = parse("FROM a\n# Gr\xF6\xDF" "e\nRUN echo caf\xE9 \xC3\x28 \xC0\xAF \xED\xA0\x80\n");
    CHECK(dump(r.root) ==
          "(from \"a\")\n(run \"echo caf\xE9 \xC3\x28 \xC0\xAF \xED\xA0\x80\")");
    auto nul = parse_error(std::string("FROM a\nRUN a\0b\n", 15));
    CHECK(nul.line() == 2);
    CHECK(nul.column() == 6);
    CHECK(nul.message().find("NUL") != std::string::npos);
    // A BOM at the start is dropped.
    CHECK(dump(parse("\xEF\xBB\xBF"
                     "FROM a\n")
                   .root) == "(from \"a\")");
}

TEST_CASE("a physical line over 65535 bytes is an error") {
    std::string ok = "FROM a\nRUN " + std::string(65535 - 4, 'x') + "\n";
    CHECK_NOTHROW(parse(ok));
    std::string bad = "FROM a\nRUN " + std::string(65535 - 3, 'x') + "\n";
    auto e = parse_error(bad);
    CHECK(e.line() == 2);
    CHECK(e.message() == "dockerfile line greater than max allowed size of 65535");
}

TEST_CASE("ONBUILD nests the trigger as a child with its own flags") {
    auto r = parse("FROM a\nONBUILD COPY --from=x a b\nonbuild run [\"echo\", \"t\"]\n");
    const Node& on = r.root.children[1];
    REQUIRE(on.next.size() == 1);
    REQUIRE(on.next[0].children.size() == 1);
    CHECK(on.next[0].children[0].flags == std::vector<std::string>{"--from=x"});
    CHECK(dump(r.root) == "(from \"a\")\n(onbuild (copy [\"--from=x\"] \"a\" \"b\"))\n(onbuild "
                          "(run \"echo\" \"t\"))");
}

TEST_CASE("old and new ENV and LABEL forms") {
    auto r = parse("FROM a\nENV A b c\nENV B=\"x y\" C=z\nLABEL \"k\"=v\nLABEL k v w\n");
    CHECK(dump(r.root) ==
          "(from \"a\")\n(env \"A\" \"b c\" \"\")\n(env \"B\" \"\\\"x y\\\"\" \"=\" "
          "\"C\" \"z\" \"=\")\n(label \"\\\"k\\\"\" \"v\" \"=\")\n(label \"k\" \"v "
          "w\" \"\")");
    CHECK_THROWS_AS(parse("FROM a\nENV X=1 Y\n"), DockerfileError);
    CHECK_THROWS_AS(parse("FROM a\nLABEL onlykey\n"), DockerfileError);
}

TEST_CASE("malformed JSON falls back to shell form but a non-string array does not") {
    auto r = parse("FROM a\nCMD [\"a\", 'b']\nRUN [\"unterminated\"\n");
    CHECK(dump(r.root) ==
          "(from \"a\")\n(cmd \"[\\\"a\\\", 'b']\")\n(run \"[\\\"unterminated\\\"\")");
    CHECK_FALSE(r.root.children[1].json);
    auto e = parse_error("FROM a\nCMD [\"a\", 1]\n");
    CHECK(e.line() == 2);
    auto ok = parse("FROM a\nCMD [\"a\", \"b\\u0041\"]\n");
    CHECK(ok.root.children[1].json);
    CHECK(ok.root.children[1].args() == std::vector<std::string>{"a", "bA"});
}

TEST_CASE("flags are split off every instruction, quotes removed") {
    auto r = parse("FROM a\nRUN --mount=type=cache,target=\"/a b\" --network=none echo\n"
                   "COPY --chown=1:1 -- --weird /d\n");
    CHECK(r.root.children[1].flags ==
          std::vector<std::string>{"--mount=type=cache,target=/a b", "--network=none"});
    CHECK(r.root.children[1].args() == std::vector<std::string>{"echo"});
    CHECK(r.root.children[2].flags == std::vector<std::string>{"--chown=1:1"});
    CHECK(r.root.children[2].args() == std::vector<std::string>{"--weird", "/d"});
}

TEST_CASE("line ranges count continuation, comment and blank lines inside an instruction") {
    auto r = parse("\n# c\nFROM a\nRUN a \\\n# inner\n\n  b\n\n\nCMD x\n\n");
    REQUIRE(r.root.children.size() == 3);
    CHECK(r.root.children[0].start_line == 3);
    CHECK(r.root.children[1].start_line == 4);
    CHECK(r.root.children[1].end_line == 7);
    CHECK(r.root.children[2].start_line == 10);
    CHECK(r.root.children[2].end_line == 10);
    CHECK(r.root.start_line == 3);
    CHECK(r.root.end_line == 10);
    CHECK(r.warnings.size() == 1); // the empty continuation line
    CHECK(r.root.children[1].column == 1);
    CHECK(parse("FROM a\n   RUN b\n").root.children[1].column == 4);
}

TEST_CASE("unknown instructions parse (they fail when typed)") {
    CHECK(dump(parse("FROM a\nFOO bar\n").root) == "(from \"a\")\n(foo \"\")");
}

TEST_CASE("a file without instructions is an error") {
    CHECK_THROWS_AS(parse(""), DockerfileError);
    CHECK_THROWS_AS(parse("# only\n\n   \n"), DockerfileError);
}

TEST_CASE("non-ASCII flag values stay intact") {
    // "\xC3\xA0" is U+00E0: its second byte is 0xA0, which BuildKit's byte scan treats as
    // a space; strata keeps the value whole.
    auto r = parse("FROM a\nCOPY --chown=us\xC3\xA9r:\xC3\xA0 a b\n");
    CHECK(r.root.children[1].flags == std::vector<std::string>{"--chown=us\xC3\xA9r:\xC3\xA0"});
    CHECK(r.root.children[1].args() == std::vector<std::string>{"a", "b"});
}
