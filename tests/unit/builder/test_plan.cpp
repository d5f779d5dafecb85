#include "builder/dockerfile/error.hpp"
#include "builder/dockerfile/plan.hpp"

#include <catch2/catch.hpp>

using namespace strata::dockerfile;

namespace {

BuildPlan plan_of(const std::string& src, PlanOptions o = {}) {
    return plan(parse(src, "Dockerfile"), o);
}

const Instruction& find(const Stage& s, const std::string& kw, int nth = 0) {
    for (const auto& i : s.expanded) {
        if (i.keyword == kw && nth-- == 0) {
            return i;
        }
    }
    FAIL("instruction not found: " << kw);
    throw std::logic_error("unreachable");
}

} // namespace

TEST_CASE("global ARGs are visible in FROM but need redeclaring inside a stage") {
    auto p = plan_of("ARG IMG=alpine\nARG TAG=3\nFROM ${IMG}:${TAG} AS a\n"
                     "RUN true\nLABEL before=\"$TAG\"\nARG TAG\nLABEL after=$TAG\n");
    REQUIRE(p.stages.size() == 1);
    CHECK(std::get<FromInstr>(p.stages[0].from.data).image == "alpine:3");
    CHECK(std::get<LabelInstr>(find(p.stages[0], "LABEL", 0).data).labels[0].value == "");
    CHECK(std::get<LabelInstr>(find(p.stages[0], "LABEL", 1).data).labels[0].value == "3");
}

TEST_CASE("build args override defaults; ENV wins over ARG") {
    PlanOptions o;
    o.build_args = {{"V", "cli"}, {"W", "w"}, {"UNUSED", "1"}, {"HTTP_PROXY", "p"}};
    auto p = plan_of("FROM a\nARG V=def\nARG W\nENV W=env\nLABEL v=$V w=$W\n", o);
    auto labels = std::get<LabelInstr>(find(p.stages[0], "LABEL").data).labels;
    CHECK(labels[0].value == "cli");
    CHECK(labels[1].value == "env");
    CHECK(p.unused_build_args == std::vector<std::string>{"UNUSED"});
}

TEST_CASE("ARG defaults expand with earlier values and build args are not expanded") {
    PlanOptions o;
    o.build_args = {{"B", "$A-raw"}};
    auto p = plan_of("FROM a\nARG A=1\nARG B\nARG C=${A}2\nENV X=$B Y=$C\n", o);
    auto env = std::get<EnvInstr>(find(p.stages[0], "ENV").data).env;
    CHECK(env[0].value == "$A-raw");
    CHECK(env[1].value == "12");
}

TEST_CASE("automatic platform args exist in the global scope") {
    PlanOptions o;
    o.target_platform = "linux/arm64/v8";
    auto p = plan_of("FROM --platform=$BUILDPLATFORM a\nARG TARGETARCH\nARG TARGETVARIANT\n"
                     "ENV A=$TARGETARCH V=$TARGETVARIANT\n",
                     o);
    CHECK(std::get<FromInstr>(p.stages[0].from.data).platform == host_platform());
    auto env = std::get<EnvInstr>(find(p.stages[0], "ENV").data).env;
    CHECK(env[0].value == "arm64");
    CHECK(env[1].value == "v8");
}

TEST_CASE("a global platform ARG without a value keeps the automatic value in a stage") {
    // BuildKit: a global ARG with no value (and no --build-arg) changes
    // nothing, so the stage's redeclaration sees the automatic value.
    PlanOptions o;
    o.target_platform = "linux/arm64/v8";
    o.build_platform = "linux/amd64";
    auto p = plan_of("ARG TARGETARCH\nARG TARGETOS\nARG TARGETPLATFORM\nARG TARGETVARIANT\n"
                     "ARG BUILDARCH\nARG BUILDOS\nARG BUILDPLATFORM\nARG BUILDVARIANT\n"
                     "FROM a\nARG TARGETARCH\nARG TARGETOS\nARG TARGETPLATFORM\nARG TARGETVARIANT\n"
                     "ARG BUILDARCH\nARG BUILDOS\nARG BUILDPLATFORM\nARG BUILDVARIANT\n"
                     "ENV TA=$TARGETARCH TO=$TARGETOS TP=$TARGETPLATFORM TV=$TARGETVARIANT "
                     "BA=$BUILDARCH BO=$BUILDOS BP=$BUILDPLATFORM BV=$BUILDVARIANT\n",
                     o);
    auto env = std::get<EnvInstr>(find(p.stages[0], "ENV").data).env;
    REQUIRE(env.size() == 8);
    CHECK(env[0].value == "arm64");
    CHECK(env[1].value == "linux");
    CHECK(env[2].value == "linux/arm64/v8");
    CHECK(env[3].value == "v8");
    CHECK(env[4].value == "amd64");
    CHECK(env[5].value == "linux");
    CHECK(env[6].value == "linux/amd64");
    CHECK(env[7].value == "");
}

TEST_CASE("a global ARG without a value keeps an earlier global value; a build arg still wins") {
    PlanOptions o;
    o.build_args = {{"B", "cli"}};
    auto p =
        plan_of("ARG A=1\nARG A\nARG B=def\nARG B\nFROM x:$A\nARG A\nARG B\nENV A=$A B=$B\n", o);
    CHECK(std::get<FromInstr>(p.stages[0].from.data).image == "x:1");
    auto env = std::get<EnvInstr>(find(p.stages[0], "ENV").data).env;
    CHECK(env[0].value == "1");
    CHECK(env[1].value == "cli");
}

TEST_CASE("the stage graph follows FROM, COPY --from and RUN --mount from=") {
    auto p = plan_of("FROM a AS base\nENV E=1\n"
                     "FROM alpine AS tools\n"
                     "FROM base AS build\nRUN --mount=from=tools,target=/t make\n"
                     "FROM scratch AS side\nCOPY --from=0 / /\n"
                     "FROM scratch\nCOPY --from=build /out /\nCOPY --from=busybox:1 /bin/sh /sh\n");
    REQUIRE(p.stages.size() == 5);
    CHECK(p.target == 4);
    CHECK(p.stages[2].base_stage == 0u);
    CHECK(p.stages[2].final_env.get("E") == std::string_view("1"));
    CHECK(p.stages[0].needed);
    CHECK(p.stages[1].needed);
    CHECK(p.stages[2].needed);
    CHECK_FALSE(p.stages[3].needed);
    CHECK(p.stages[4].needed);
    CHECK(p.order == std::vector<std::size_t>{0, 1, 2, 4});
    CHECK(p.stages[4].external_images == std::vector<std::string>{"busybox:1"});
}

TEST_CASE("a --target selects a stage and drops what it does not need") {
    PlanOptions o;
    o.target = "Tools";
    auto p = plan_of("FROM a AS base\nFROM b AS tools\nFROM base\n", o);
    CHECK(p.target == 1);
    CHECK(p.order == std::vector<std::size_t>{1});
    CHECK_FALSE(p.stages[0].needed);
    o.target = "missing";
    CHECK_THROWS_AS(plan_of("FROM a AS base\n", o), strata::Error);
}

TEST_CASE("dependency cycles are rejected at the instruction that closes them") {
    try {
        plan_of("FROM a AS one\nCOPY --from=two /x /x\nFROM b AS two\nCOPY --from=one /y /y\n");
        FAIL("no error");
    } catch (const DockerfileError& e) {
        CHECK(e.message().find("circular dependency detected on stage") != std::string::npos);
        CHECK((e.line() == 2 || e.line() == 4));
    }
    CHECK_THROWS_AS(plan_of("FROM a AS self\nCOPY --from=self /x /x\n"), DockerfileError);
    CHECK_THROWS_AS(plan_of("FROM a\nCOPY --from=0 /x /x\n"), DockerfileError);
}

TEST_CASE("stage references are checked") {
    CHECK_THROWS_AS(plan_of("FROM a\nCOPY --from=3 /x /x\n"), DockerfileError);
    CHECK_THROWS_AS(plan_of("FROM a AS x\nFROM b AS X\n"), DockerfileError);
    // A later stage name in FROM is an image, not a stage.
    auto p = plan_of("FROM later AS first\nFROM alpine AS later\n");
    CHECK_FALSE(p.stages[0].base_stage);
}

TEST_CASE("only ARG may come before the first FROM") {
    try {
        plan_of("ARG A\nRUN x\nFROM a\n");
        FAIL("no error");
    } catch (const DockerfileError& e) {
        CHECK(e.line() == 2);
        CHECK(e.message().find("RUN before the first FROM") != std::string::npos);
    }
    CHECK_THROWS_AS(plan_of("ARG A=1\n"), DockerfileError);
}

TEST_CASE("ONBUILD triggers of a base stage run first in the child stage") {
    auto p = plan_of("FROM a AS base\nONBUILD ENV T=1\nFROM base\nRUN echo\nLABEL t=$T\n");
    REQUIRE(p.stages[1].triggers.size() == 1);
    CHECK(p.stages[1].expanded.front().keyword == "ENV");
    CHECK(std::get<LabelInstr>(find(p.stages[1], "LABEL").data).labels[0].value == "1");
}

TEST_CASE("StageScope replays ARG and ENV for the executor") {
    Env global{{"G", "g"}};
    std::map<std::string, std::string> args{{"B", "b"}};
    StageScope scope(Env{{"PATH", "/bin"}}, &args, &global);
    ParseResult ast = parse("FROM x\nARG G\nARG B\nARG N\nENV PATH=$PATH:/x\n");
    for (std::size_t i = 1; i < ast.root.children.size(); ++i) {
        Instruction ins = to_instruction(ast.root.children[i], ast);
        expand(ins, scope.lookup());
        scope.apply(ins);
    }
    CHECK(scope.args().get("G") == std::string_view("g"));
    CHECK(scope.args().get("B") == std::string_view("b"));
    CHECK_FALSE(scope.args().get("N"));
    CHECK(scope.env().get("PATH") == std::string_view("/bin:/x"));
    CHECK(scope.consumed() == std::set<std::string>{"B"});
}
