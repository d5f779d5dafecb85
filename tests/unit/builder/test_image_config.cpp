// The config changes and history texts of metadata instructions, as BuildKit
// writes them.
#include "builder/dockerfile/instructions.hpp"
#include "builder/dockerfile/parser.hpp"
#include "builder/image_config.hpp"

#include <catch2/catch.hpp>

using namespace strata;
using namespace strata::builder;

namespace {

// Parses one instruction and expands it with no variables set.
dockerfile::Instruction ins(const std::string& line) {
    auto ast = dockerfile::parse(line + "\n");
    auto i = dockerfile::to_instruction(ast.root.children.at(0), ast);
    dockerfile::Env env;
    dockerfile::expand(i, env.lookup());
    return i;
}

std::string apply(formats::ImageConfig& cfg, const std::string& line, bool& cmd_set) {
    return apply_metadata(cfg, ins(line), cmd_set);
}

} // namespace

TEST_CASE("ENV sets variables in place and records BuildKit's history text") {
    formats::ImageConfig cfg = scratch_config();
    bool cmd_set = false;
    CHECK(apply(cfg, "ENV A=1 B=\"two words\"", cmd_set) == "ENV A=1 B=two words");
    CHECK(apply(cfg, "ENV PATH=/x", cmd_set) == "ENV PATH=/x");
    CHECK(cfg.config.env == std::vector<std::string>{"PATH=/x", "A=1", "B=two words"});
}

TEST_CASE("CMD and ENTRYPOINT use SHELL for the shell form; ENTRYPOINT clears an inherited CMD") {
    formats::ImageConfig cfg = scratch_config();
    cfg.config.cmd = std::vector<std::string>{"sh"}; // inherited from the base
    bool cmd_set = false;
    CHECK(apply(cfg, "ENTRYPOINT [\"/bin/echo\"]", cmd_set) == "ENTRYPOINT [\"/bin/echo\"]");
    CHECK_FALSE(cfg.config.cmd.has_value());
    CHECK(apply(cfg, "CMD echo \"hi\"", cmd_set) == "CMD [\"/bin/sh\" \"-c\" \"echo \\\"hi\\\"\"]");
    CHECK(apply(cfg, "ENTRYPOINT [\"/bin/cat\"]", cmd_set) == "ENTRYPOINT [\"/bin/cat\"]");
    REQUIRE(cfg.config.cmd.has_value()); // set in this stage: kept
    CHECK(*cfg.config.cmd == std::vector<std::string>{"/bin/sh", "-c", "echo \"hi\""});
    CHECK(apply(cfg, "SHELL [\"/bin/bash\", \"-ec\"]", cmd_set) == "SHELL [/bin/bash -ec]");
    apply(cfg, "CMD make", cmd_set);
    CHECK(*cfg.config.cmd == std::vector<std::string>{"/bin/bash", "-ec", "make"});
}

TEST_CASE("EXPOSE normalises ports and expands ranges") {
    formats::ImageConfig cfg = scratch_config();
    bool cmd_set = false;
    CHECK(apply(cfg, "EXPOSE 80 53/UDP 8000-8002", cmd_set) == "EXPOSE 80 53/UDP 8000-8002");
    CHECK(cfg.config.exposed_ports ==
          std::set<std::string>{"80/tcp", "53/udp", "8000/tcp", "8001/tcp", "8002/tcp"});
}

TEST_CASE("VOLUME, LABEL, USER, STOPSIGNAL, MAINTAINER, ONBUILD, ARG history texts") {
    formats::ImageConfig cfg = scratch_config();
    bool cmd_set = false;
    CHECK(apply(cfg, "VOLUME /a /b", cmd_set) == "VOLUME [/a /b]");
    CHECK(apply(cfg, "VOLUME [\"/c\"]", cmd_set) == "VOLUME [/c]");
    CHECK(cfg.config.volumes == std::set<std::string>{"/a", "/b", "/c"});
    CHECK(apply(cfg, "LABEL a=b \"c d\"=e", cmd_set) == "LABEL a=b c d=e");
    CHECK(cfg.config.labels.at("c d") == "e");
    CHECK(apply(cfg, "USER app:staff", cmd_set) == "USER app:staff");
    CHECK(cfg.config.user == "app:staff");
    CHECK(apply(cfg, "STOPSIGNAL SIGINT", cmd_set) == "STOPSIGNAL SIGINT");
    CHECK(apply(cfg, "MAINTAINER someone", cmd_set) == "MAINTAINER someone");
    CHECK(cfg.author == "someone");
    CHECK(apply(cfg, "ONBUILD RUN make", cmd_set) == "ONBUILD RUN make");
    CHECK(cfg.config.on_build == std::vector<std::string>{"RUN make"});
    CHECK(apply(cfg, "ARG A=1 B", cmd_set) == "ARG A=1 B");
}

TEST_CASE("WORKDIR resolves relative paths against the previous one") {
    formats::ImageConfig cfg = scratch_config();
    bool cmd_set = false;
    CHECK(apply(cfg, "WORKDIR /app", cmd_set) == "WORKDIR /app");
    CHECK(apply(cfg, "WORKDIR src/../lib", cmd_set) == "WORKDIR /app/lib");
    CHECK(cfg.config.working_dir == "/app/lib");
}

TEST_CASE("HEALTHCHECK is kept in the config with Go's %q history text") {
    formats::ImageConfig cfg = scratch_config();
    bool cmd_set = false;
    std::string h =
        apply(cfg, "HEALTHCHECK --interval=1m30s --timeout=3s --retries=3 CMD curl -f x", cmd_set);
    CHECK(h ==
          "HEALTHCHECK &{[\"CMD-SHELL\" \"curl -f x\"] \"1m30s\" \"3s\" \"0s\" \"0s\" '\\x03'}");
    REQUIRE(cfg.config.healthcheck.has_value());
    CHECK(cfg.config.healthcheck->interval == 90'000'000'000LL);
    CHECK(cfg.config.healthcheck->retries == 3);
}

TEST_CASE("Go's Duration.String") {
    CHECK(go_duration(0) == "0s");
    CHECK(go_duration(1'500'000'000) == "1.5s");
    CHECK(go_duration(3'600'000'000'000LL) == "1h0m0s");
    CHECK(go_duration(500'000'000) == "500ms");
    CHECK(go_duration(1'500) == "1.5µs");
    CHECK(go_duration(42) == "42ns");
}

TEST_CASE("RUN's argv and history text with the ARGs in scope") {
    formats::ImageConfig cfg = scratch_config();
    auto run = std::get<dockerfile::RunInstr>(ins("RUN echo $A").data);
    auto argv = run_argv(cfg, run);
    CHECK(argv == std::vector<std::string>{"/bin/sh", "-c", "echo $A"});
    CHECK(run_history(argv, {{"A", "1"}, {"B", "x y"}}) == "RUN |2 A=1 B=x y /bin/sh -c echo $A");
    CHECK(run_history(argv, {}) == "RUN /bin/sh -c echo $A");
    auto exec = std::get<dockerfile::RunInstr>(ins("RUN [\"ls\", \"-l\"]").data);
    CHECK(run_argv(cfg, exec) == std::vector<std::string>{"ls", "-l"});
}

TEST_CASE("The scratch config has the host platform, PATH and WorkingDir /") {
    formats::ImageConfig cfg = scratch_config();
    CHECK(cfg.os == "linux");
    CHECK_FALSE(cfg.architecture.empty());
    CHECK(cfg.config.env == std::vector<std::string>{k_default_path_env});
    CHECK(cfg.config.working_dir == "/");
    CHECK(get_env(cfg.config.env, "PATH").value() ==
          "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    CHECK_FALSE(get_env(cfg.config.env, "PAT").has_value());
}

TEST_CASE("a run takes Entrypoint, Cmd, Env, WorkingDir and User from the image config") {
    formats::ImageConfig cfg = scratch_config();
    cfg.config.entrypoint = std::vector<std::string>{"/bin/tini", "--"};
    cfg.config.cmd = std::vector<std::string>{"sh", "-c", "echo hi"};
    cfg.config.env = {"PATH=/bin", "A=1"};
    cfg.config.working_dir = "/srv";
    cfg.config.user = "daemon";
    runner::RunSpec spec = image_run_spec(cfg, {});
    CHECK(spec.argv == std::vector<std::string>{"/bin/tini", "--", "sh", "-c", "echo hi"});
    CHECK(spec.env == std::vector<std::string>{"PATH=/bin", "A=1"});
    CHECK(spec.cwd == "/srv");
    CHECK(spec.user == "daemon");
    CHECK(spec.rootfs.empty());

    SECTION("a command replaces Cmd and keeps Entrypoint") {
        RunOverrides o;
        o.command = {"ls", "-l"};
        CHECK(image_run_spec(cfg, o).argv ==
              std::vector<std::string>{"/bin/tini", "--", "ls", "-l"});
    }
    SECTION("--entrypoint replaces Entrypoint and drops Cmd") {
        RunOverrides o;
        o.entrypoint = "/bin/echo";
        CHECK(image_run_spec(cfg, o).argv == std::vector<std::string>{"/bin/echo"});
        o.command = {"a", "b"};
        CHECK(image_run_spec(cfg, o).argv == std::vector<std::string>{"/bin/echo", "a", "b"});
    }
    SECTION("--entrypoint \"\" leaves only the command") {
        RunOverrides o;
        o.entrypoint = "";
        o.command = {"true"};
        CHECK(image_run_spec(cfg, o).argv == std::vector<std::string>{"true"});
        o.command.clear();
        CHECK_THROWS_AS(image_run_spec(cfg, o), UsageError);
    }
    SECTION("-w and -u replace WorkingDir and User") {
        RunOverrides o;
        o.workdir = "/tmp";
        o.user = "1000:1000";
        runner::RunSpec s = image_run_spec(cfg, o);
        CHECK(s.cwd == "/tmp");
        CHECK(s.user == "1000:1000");
    }
}

TEST_CASE("a run without WorkingDir starts in / and one without a command is refused") {
    formats::ImageConfig cfg;
    cfg.config.cmd = std::vector<std::string>{"/bin/sh"};
    runner::RunSpec spec = image_run_spec(cfg, {});
    CHECK(spec.cwd == "/");
    CHECK(spec.user.empty());
    CHECK(spec.env.empty());
    cfg.config.cmd.reset();
    CHECK_THROWS_WITH(image_run_spec(cfg, {}),
                      "no command specified: the image has no Entrypoint or Cmd");
}

TEST_CASE("override_env replaces variables in place, appends new ones and removes bare names") {
    std::vector<std::string> env = {"PATH=/bin", "A=1", "B=2", "A=dup", "C"};
    override_env(env, {"A=x=y", "D=4", "PATH=/usr/bin", "B", "C=3", "E="});
    CHECK(env == std::vector<std::string>{"PATH=/usr/bin", "A=x=y", "A=dup", "C=3", "D=4", "E="});
}
