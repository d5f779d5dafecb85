// Go text/template as docker's --format takes it. Expected outputs are what
// Go 1.24's text/template (docker 28's CLI) prints for the same template
// over the same JSON document.
#include "cli/template.hpp"
#include "util/error.hpp"

#include <catch2/catch.hpp>

using strata::cli::Template;
using strata::cli::TemplateValue;

namespace {

const TemplateValue& doc() {
    static const TemplateValue d = TemplateValue::parse(R"({
        "Id": "sha256:0123456789abcdef",
        "RepoTags": ["busybox:latest", "bb:1"],
        "Size": 4261550,
        "Ratio": 0.5,
        "Big": 1e6,
        "Empty": [],
        "Nothing": null,
        "Yes": true,
        "Config": {
            "Env": ["PATH=/usr/bin", "A=b c"],
            "Cmd": ["sh"],
            "Labels": {"z": "1", "a": "2"},
            "Entrypoint": null,
            "User": ""
        }
    })");
    return d;
}

std::string run(std::string_view t, const TemplateValue& data = doc()) {
    return Template::parse(t).execute(data);
}

} // namespace

TEST_CASE("fields, nested fields and dot print as Go prints them", "[template]") {
    CHECK(run("{{.Id}}") == "sha256:0123456789abcdef");
    CHECK(run("{{.Config.Env}}") == "[PATH=/usr/bin A=b c]");
    CHECK(run("{{.Config.Labels}}") == "map[a:2 z:1]");
    CHECK(run("{{.Size}}") == "4261550");
    CHECK(run("{{.Ratio}} {{.Big}}") == "0.5 1e+06");
    CHECK(run("{{.Empty}}") == "[]");
    CHECK(run("{{.Nothing}}") == "<no value>");
    CHECK(run("{{.Missing}}") == "<no value>");
    CHECK(run("{{.Missing.Deeper}}") == "<no value>");
    CHECK(run("{{.Yes}}") == "true");
    CHECK(run("{{.Config.Cmd}}") == "[sh]");
    CHECK(run("{{.}}", TemplateValue::parse(R"({"b":[1,null],"a":{}})")) ==
          "map[a:map[] b:[1 <nil>]]");
    CHECK(run("x{{/* a comment */}}y") == "xy");
}

TEST_CASE("json, index, len, join, split and the case functions", "[template]") {
    CHECK(run("{{json .Config.Cmd}}") == "[\"sh\"]");
    CHECK(run("{{json .Config.Labels}}") == "{\"z\":\"1\",\"a\":\"2\"}");
    CHECK(run("{{json .Nothing}}") == "null");
    CHECK(run("{{json .Config.User}}") == "\"\"");
    CHECK(run("{{json \"<&>\"}}") == "\"<&>\"");
    CHECK(run("{{index .RepoTags 1}}") == "bb:1");
    CHECK(run("{{index .Config.Labels \"a\"}}") == "2");
    CHECK(run("{{index .Config.Labels \"nope\"}}") == "<no value>");
    CHECK(run("{{len .RepoTags}} {{len .Id}}") == "2 23");
    CHECK(run("{{join .RepoTags \", \"}}") == "busybox:latest, bb:1");
    CHECK(run("{{split \"a:b:c\" \":\"}}") == "[a b c]");
    CHECK(run("{{index (split .Id \":\") 0}}") == "sha256");
    CHECK(run("{{upper \"abc\"}} {{lower \"ABC\"}} {{title \"hello wide-world\"}}") ==
          "ABC abc Hello Wide-World");
    CHECK(run("{{upper \"é\"}} {{lower \"ÀB\"}} {{len \"héllo\"}}") == "É àb 6");
    CHECK(run("{{printf \"%v %v %v\" 1e6 0.5 100000.0}}") == "1e+06 0.5 100000");
    CHECK(run("{{pad \"x\" 2 1}}|{{pad \"\" 2 1}}|") == "  x ||");
    CHECK(run("{{truncate .Id 6}}") == "sha256");
    CHECK(run("{{truncate \"ab\" 6}}") == "ab");
    CHECK(run("{{slice .Id 0 6}}") == "sha256");
}

TEST_CASE("range, if, else, with, variables and break", "[template]") {
    CHECK(run("{{range .RepoTags}}[{{.}}]{{end}}") == "[busybox:latest][bb:1]");
    CHECK(run("{{range $i, $t := .RepoTags}}{{$i}}={{$t}} {{end}}") == "0=busybox:latest 1=bb:1 ");
    CHECK(run("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}") == "a=2;z=1;");
    CHECK(run("{{range .Empty}}x{{else}}none{{end}}") == "none");
    CHECK(run("{{range .Nothing}}x{{else}}none{{end}}") == "none");
    CHECK(run("{{range .RepoTags}}{{if eq . \"bb:1\"}}{{break}}{{end}}{{.}} {{end}}") ==
          "busybox:latest ");
    CHECK(run("{{range .RepoTags}}{{if eq . \"busybox:latest\"}}{{continue}}{{end}}{{.}}{{end}}") ==
          "bb:1");
    CHECK(run("{{if .Config.User}}user{{else if .Yes}}yes{{else}}no{{end}}") == "yes");
    CHECK(run("{{if not .Empty}}empty{{end}}") == "empty");
    CHECK(run("{{with .Config}}{{.Cmd}}{{end}}") == "[sh]");
    CHECK(run("{{with .Nothing}}x{{else}}nil{{end}}") == "nil");
    CHECK(run("{{$x := .Size}}{{$x}}") == "4261550");
    CHECK(run("{{$x := 1}}{{if .Yes}}{{$x = 2}}{{end}}{{$x}}") == "2");
    CHECK(run("{{range .RepoTags}}{{$.Id}}{{end}}") ==
          "sha256:0123456789abcdefsha256:0123456789abcdef");
    CHECK(run("{{and .Yes .Size}} {{or .Empty \"dflt\"}}") == "4261550 dflt");
    CHECK(run("{{if and .Yes (gt .Size 1000)}}big{{end}}") == "big");
    CHECK(run("{{if lt 1 2.5}}lt{{end}}{{if ne \"a\" \"b\"}}ne{{end}}{{if eq 3 1 2 3}}eq{{end}}") ==
          "ltneeq");
}

TEST_CASE("pipelines, printf, print, println and trim markers", "[template]") {
    CHECK(run("{{.Id | printf \"%.6s\"}}") == "sha256");
    CHECK(run("{{printf \"%s has %d tags\" .Id (len .RepoTags)}}") ==
          "sha256:0123456789abcdef has 2 tags");
    CHECK(run("{{printf \"%-8s|%5d|%05d|%x|%q|%v|%t\" \"ab\" 42 42 255 \"q\" .Config.Cmd true}}") ==
          "ab      |   42|00042|ff|\"q\"|[sh]|true");
    CHECK(run("{{printf \"%.2f %e %g\" .Ratio .Ratio .Ratio}}") == "0.50 5.000000e-01 0.5");
    // %q escapes what Go's strconv.IsPrint refuses, keeps printable UTF-8.
    CHECK(run("{{printf \"%q\" \"\\u2028\\u00e9\"}}") == "\"\\u2028\u00e9\"");
    CHECK(run("{{printf \"%d\" .Id}}") == "%!d(string=sha256:0123456789abcdef)");
    CHECK(run("{{printf \"%s %s\" \"a\"}}") == "a %!s(MISSING)");
    CHECK(run("{{print 1 2 \"a\" 3}}") == "1 2a3");
    CHECK(run("{{println .Size \"x\"}}") == "4261550 x\n");
    CHECK(run("{{.Config.Cmd | json}}") == "[\"sh\"]");
    CHECK(run("{{.Id | upper | lower}}") == "sha256:0123456789abcdef");
    CHECK(run("a  {{- .Size -}}  b") == "a4261550b");
    CHECK(run("{{`raw\\n`}}") == "raw\\n");
    CHECK(run("{{\"a\\tb\"}}") == "a\tb");
    CHECK(run("{{(index .RepoTags 0) | len}}") == "14");
    CHECK(run("{{(.Config).Cmd}}") == "[sh]");
}

TEST_CASE("template errors read as Go's and docker's", "[template]") {
    CHECK_THROWS_WITH(Template::parse("{{.Id"), Catch::Contains("template parsing error") &&
                                                    Catch::Contains("unclosed action"));
    CHECK_THROWS_WITH(Template::parse("{{nosuch .Id}}"),
                      Catch::Contains("function \"nosuch\" not defined"));
    CHECK_THROWS_WITH(Template::parse("{{if .Id}}x"), Catch::Contains("unexpected EOF"));
    CHECK_THROWS_WITH(Template::parse("{{end}}"), Catch::Contains("unexpected {{end}}"));
    CHECK_THROWS_AS(Template::parse("{{.Id"), strata::UsageError);
    CHECK_THROWS_WITH(run("{{index .RepoTags 5}}"), Catch::Contains("index out of range: 5"));
    CHECK_THROWS_WITH(run("{{.Id.Foo}}"),
                      Catch::Contains("can't evaluate field Foo in type string"));
    CHECK_THROWS_WITH(Template::parse("{{.Nope}}", true).execute(doc()),
                      Catch::Contains("executing \"\" at <.Nope>: can't evaluate field Nope"));
    CHECK_THROWS_WITH(run("{{join .Id \",\"}}"), Catch::Contains("error calling join"));
}
