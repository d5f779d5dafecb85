#include "builder/dockerfile/error.hpp"
#include "builder/dockerfile/instructions.hpp"

#include <catch2/catch.hpp>

using namespace strata::dockerfile;

namespace {

// Parses "FROM a\n" + line and types the second instruction.
Instruction typed(const std::string& line) {
    ParseResult ast = parse("FROM a\n" + line + "\n", "Dockerfile");
    return to_instruction(ast.root.children.at(1), ast);
}

Instruction expanded(const std::string& line, const Env& env = Env{}) {
    Instruction ins = typed(line);
    expand(ins, env.lookup());
    return ins;
}

DockerfileError error_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const DockerfileError& e) {
        return e;
    }
    FAIL("no DockerfileError");
    throw std::logic_error("unreachable");
}

} // namespace

TEST_CASE("all 18 instructions are typed") {
    CHECK(std::get<FromInstr>(typed("FROM --platform=linux/arm64 img AS Build").data).stage_name ==
          "build");
    CHECK(std::get<RunInstr>(typed("RUN echo").data).cmd.shell_form);
    CHECK(std::get<CmdInstr>(typed("CMD [\"a\",\"b\"]").data).cmd.args ==
          std::vector<std::string>{"a", "b"});
    CHECK(std::get<LabelInstr>(typed("LABEL a=b").data).labels.size() == 1);
    CHECK(std::get<ExposeInstr>(typed("EXPOSE 80 443/udp").data).ports.size() == 2);
    CHECK(std::get<EnvInstr>(typed("ENV A=1 B=2").data).env.size() == 2);
    CHECK(std::get<CopyInstr>(typed("ADD a b").data).add);
    CHECK_FALSE(std::get<CopyInstr>(typed("COPY a b").data).add);
    CHECK(std::get<EntrypointInstr>(typed("ENTRYPOINT [\"x\"]").data).cmd.args.size() == 1);
    CHECK(std::get<VolumeInstr>(typed("VOLUME /a /b").data).paths.size() == 2);
    CHECK(std::get<UserInstr>(typed("USER app:app").data).user == "app:app");
    CHECK(std::get<WorkdirInstr>(typed("WORKDIR /w").data).path == "/w");
    auto arg = std::get<ArgInstr>(typed("ARG A B=2").data);
    REQUIRE(arg.args.size() == 2);
    CHECK_FALSE(arg.args[0].default_value);
    CHECK(arg.args[1].default_value == "2");
    CHECK(std::get<OnbuildInstr>(typed("ONBUILD RUN make  all").data).expression ==
          "RUN make  all");
    CHECK(std::get<StopsignalInstr>(typed("STOPSIGNAL SIGTERM").data).signal == "SIGTERM");
    CHECK(std::get<HealthcheckInstr>(typed("HEALTHCHECK NONE").data).test ==
          std::vector<std::string>{"NONE"});
    CHECK(std::get<ShellInstr>(typed("SHELL [\"/bin/bash\", \"-c\"]").data).shell.size() == 2);
    CHECK(std::get<MaintainerInstr>(typed("MAINTAINER me").data).name == "me");
}

TEST_CASE("an unknown instruction names its line and suggests the right one") {
    auto e = error_of([] { typed("RUNN echo"); });
    CHECK(e.line() == 2);
    CHECK(e.message() == "unknown instruction: RUNN (did you mean RUN?)");
    CHECK(std::string(e.what()).find("RUNN echo") != std::string::npos);
}

TEST_CASE("unknown flags, duplicates and bad values are errors naming the flag") {
    auto e = error_of([] { typed("COPY --form=x a b"); });
    CHECK(e.message() == "COPY: unknown flag: --form (did you mean --from?)");
    CHECK(e.column() == 6);
    CHECK(error_of([] { typed("COPY --from=a --from=b a b"); }).message() ==
          "COPY: duplicate flag specified: --from");
    CHECK(error_of([] { typed("COPY --link=maybe a b"); }).message() ==
          "COPY: expecting boolean value for flag --link, not: maybe");
    CHECK(error_of([] { typed("COPY --chown a b"); }).message() ==
          "COPY: missing a value on flag: --chown");
    CHECK_THROWS_AS(typed("ADD --from=x a b"), DockerfileError);              // COPY only
    CHECK_THROWS_AS(typed("COPY --checksum=sha256:00 a b"), DockerfileError); // ADD only
    CHECK_THROWS_AS(typed("RUN --network=bridge x"), DockerfileError);
    CHECK_THROWS_AS(typed("RUN --security=root x"), DockerfileError);
    CHECK_THROWS_AS(typed("CMD --foo x"), DockerfileError);
    CHECK_THROWS_AS(typed("FROM --plattform=x y"), DockerfileError);
}

TEST_CASE("COPY and ADD take all their flags") {
    auto c = std::get<CopyInstr>(
        expanded("COPY --from=build --chown=1:2 --chmod=755 --link --exclude=*.o --exclude=x "
                 "--parents a b /d/")
            .data);
    CHECK(c.from == "build");
    CHECK(c.chown == "1:2");
    CHECK(c.chmod == "755");
    CHECK(c.link);
    CHECK(c.parents);
    CHECK(c.excludes == std::vector<std::string>{"*.o", "x"});
    CHECK(c.sources == std::vector<std::string>{"a", "b"});
    CHECK(c.dest == "/d/");
    const std::string sum = "sha256:" + std::string(64, 'a');
    auto a = std::get<CopyInstr>(
        expanded("ADD --checksum=" + sum + " --keep-git-dir=true --unpack=false http://x/y /y")
            .data);
    CHECK(a.checksum == sum);
    CHECK(a.keep_git_dir);
    CHECK(a.unpack == false);
    CHECK_THROWS_AS(expanded("ADD --checksum=md5:abc a b"), DockerfileError);
    CHECK_THROWS_AS(expanded("COPY --chmod=999 a b"), DockerfileError);
    CHECK_NOTHROW(expanded("COPY --chmod=u+x,g-w a b"));
    CHECK_THROWS_AS(expanded("COPY --chown=:grp a b"), DockerfileError);
    CHECK_THROWS_AS(typed("COPY onlyone"), DockerfileError);
}

TEST_CASE("COPY heredoc sources become inline files, expanded unless quoted") {
    ParseResult ast = parse("FROM a\nCOPY <<A <<'B' /d/\n$V\nA\n$V\nB\n");
    Instruction ins = to_instruction(ast.root.children[1], ast);
    Env env{{"V", "val"}};
    expand(ins, env.lookup());
    const auto& c = std::get<CopyInstr>(ins.data);
    CHECK(c.sources.empty());
    REQUIRE(c.contents.size() == 2);
    CHECK(c.contents[0].path == "A");
    CHECK(c.contents[0].data == "val\n");
    CHECK(c.contents[1].path == "B");
    CHECK(c.contents[1].data == "$V\n");
}

TEST_CASE("RUN mounts are parsed after expansion with BuildKit's defaults") {
    Env env{{"T", "/cache"}};
    auto r = std::get<RunInstr>(
        expanded("RUN --mount=type=cache,target=$T,sharing=locked,uid=1000 "
                 "--mount=type=bind,from=build,source=/out,target=/in,rw "
                 "--mount=type=secret,id=tok --mount=type=tmpfs,target=/t,size=64m "
                 "--mount=type=ssh make",
                 env)
            .data);
    REQUIRE(r.mounts.size() == 5);
    CHECK(r.mounts[0].type == Mount::Type::Cache);
    CHECK(r.mounts[0].target == "/cache");
    CHECK(r.mounts[0].id == "/cache");
    CHECK(r.mounts[0].sharing == Mount::Sharing::Locked);
    CHECK_FALSE(r.mounts[0].read_only);
    CHECK(r.mounts[0].uid == 1000u);
    CHECK(r.mounts[1].from == "build");
    CHECK_FALSE(r.mounts[1].read_only);
    CHECK(r.mounts[2].target == "/run/secrets/tok");
    CHECK(r.mounts[3].size == 64ull << 20);
    CHECK(r.mounts[4].id == "default");
    CHECK_THROWS_AS(expanded("RUN --mount=type=nfs,target=/x x"), DockerfileError);
    CHECK_THROWS_AS(expanded("RUN --mount=type=cache x"), DockerfileError);
    CHECK_THROWS_AS(expanded("RUN --mount=type=bind,target=/x,bogus=1 x"), DockerfileError);
    CHECK_THROWS_AS(expanded("RUN --mount=type=cache,target=/x,mode=9 x"), DockerfileError);
    auto e = error_of([] { expanded("RUN --mount=type=cache,target=/x,sharing=all x"); });
    CHECK(e.line() == 2);
    CHECK(e.message().find("sharing") != std::string::npos);
}

TEST_CASE("HEALTHCHECK options are validated") {
    auto h = std::get<HealthcheckInstr>(
        typed("HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=2s "
              "--start-interval=1s --retries=3 CMD curl x")
            .data);
    CHECK(h.interval_ns == 90'000'000'000);
    CHECK(h.timeout_ns == 500'000'000);
    CHECK(h.start_period_ns == 2'000'000'000);
    CHECK(h.start_interval_ns == 1'000'000'000);
    CHECK(h.retries == 3);
    CHECK(h.test == std::vector<std::string>{"CMD-SHELL", "curl x"});
    CHECK(std::get<HealthcheckInstr>(typed("HEALTHCHECK CMD [\"a\", \"b\"]").data).test ==
          std::vector<std::string>{"CMD", "a", "b"});
    CHECK_THROWS_AS(typed("HEALTHCHECK --interval=10 CMD x"), DockerfileError);
    CHECK_THROWS_AS(typed("HEALTHCHECK --interval=10us CMD x"), DockerfileError);
    CHECK_THROWS_AS(typed("HEALTHCHECK --retries=-1 CMD x"), DockerfileError);
    CHECK_THROWS_AS(typed("HEALTHCHECK --retries=x CMD x"), DockerfileError);
    CHECK_THROWS_AS(typed("HEALTHCHECK --bogus=1 CMD x"), DockerfileError);
    CHECK_THROWS_AS(typed("HEALTHCHECK NONE x"), DockerfileError);
    CHECK_THROWS_AS(typed("HEALTHCHECK CMD"), DockerfileError);
    CHECK_THROWS_AS(typed("HEALTHCHECK PING x"), DockerfileError);
}

TEST_CASE("Go durations parse like time.ParseDuration") {
    CHECK(parse_go_duration("0") == 0);
    CHECK(parse_go_duration("1.5h") == 5'400'000'000'000);
    CHECK(parse_go_duration("300ms") == 300'000'000);
    CHECK(parse_go_duration("-1s") == -1'000'000'000);
    CHECK(parse_go_duration("2h45m") == 9'900'000'000'000);
    CHECK_THROWS(parse_go_duration("5"));
    CHECK_THROWS(parse_go_duration("5x"));
    CHECK_THROWS(parse_go_duration(""));
}

TEST_CASE("values that need expansion are validated afterwards") {
    Env env{{"P", "8080"}, {"PORTS", "80 443/udp"}, {"SIG", "KILL"}};
    CHECK(std::get<ExposeInstr>(expanded("EXPOSE $P $PORTS", env).data).ports ==
          std::vector<std::string>{"8080", "80", "443/udp"});
    CHECK_THROWS_AS(expanded("EXPOSE 99999"), DockerfileError);
    CHECK_THROWS_AS(expanded("EXPOSE 80/icmp"), DockerfileError);
    CHECK(std::get<StopsignalInstr>(expanded("STOPSIGNAL $SIG", env).data).signal == "KILL");
    CHECK_THROWS_AS(expanded("STOPSIGNAL SIGNOPE"), DockerfileError);
    CHECK_THROWS_AS(expanded("USER $UNSET"), DockerfileError);
    auto e = error_of([] { expanded("WORKDIR ${X:?need X}"); });
    CHECK(e.message().find("need X") != std::string::npos);
    CHECK(e.column() == 9);
}

TEST_CASE("ONBUILD rejects chaining, FROM and MAINTAINER triggers") {
    CHECK_THROWS_AS(typed("ONBUILD ONBUILD RUN x"), DockerfileError);
    CHECK_THROWS_AS(typed("ONBUILD FROM x"), DockerfileError);
    CHECK_THROWS_AS(typed("ONBUILD MAINTAINER x"), DockerfileError);
    CHECK_THROWS_AS(typed("ONBUILD COPY --bogus a b"), DockerfileError);
    CHECK_THROWS_AS(typed("ONBUILD"), DockerfileError);
}

TEST_CASE("SHELL requires JSON and argument counts are checked") {
    CHECK_THROWS_AS(typed("SHELL /bin/sh -c"), DockerfileError);
    CHECK_THROWS_AS(typed("USER"), DockerfileError);
    CHECK_THROWS_AS(typed("WORKDIR"), DockerfileError);
    CHECK_THROWS_AS(typed("EXPOSE"), DockerfileError);
    CHECK_THROWS_AS(typed("ENV"), DockerfileError);
    CHECK_THROWS_AS(typed("FROM a b"), DockerfileError);
    CHECK_THROWS_AS(typed("FROM a AT b"), DockerfileError);
    CHECK_THROWS_AS(typed("FROM a AS 1abc"), DockerfileError);
    CHECK_THROWS_AS(typed("VOLUME [\"\"]"), DockerfileError);
    CHECK_THROWS_AS(typed("RUN"), DockerfileError);
}

TEST_CASE("describe renders instructions as they will run") {
    Env env{{"V", "1"}};
    CHECK(describe(expanded("COPY --from=b x /y/", env)) == "COPY --from=b [\"x\"] /y/");
    CHECK(describe(expanded("ENV A=$V", env)) == "ENV A=\"1\"");
    CHECK(describe(expanded("RUN echo $V", env)) == "RUN echo $V");
}

TEST_CASE("ONBUILD triggers from a base image's config are typed at the FROM") {
    Location from{"Dockerfile", 7, 7, 1, "FROM base"};
    Instruction ins = parse_trigger("COPY --chown=1:1 . /app", from);
    CHECK(ins.keyword == "COPY");
    CHECK(std::get<CopyInstr>(ins.data).chown == "1:1");
    CHECK(ins.loc.line == 7);
    auto e = error_of([&] { parse_trigger("COPY --bogus . /app", from); });
    CHECK(e.line() == 7);
    CHECK(e.message().find("unknown flag: --bogus") != std::string::npos);
    CHECK_THROWS_AS(parse_trigger("FROM x", from), DockerfileError);
    CHECK_THROWS_AS(parse_trigger("", from), DockerfileError);
}
