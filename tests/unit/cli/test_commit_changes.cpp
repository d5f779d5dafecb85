// docker commit --change through the builder's Dockerfile parser.
#include "cli/commit_changes.hpp"

#include "util/error.hpp"

#include <catch2/catch.hpp>

using namespace strata;

namespace {

formats::ImageConfig container_config() {
    formats::ImageConfig c;
    c.config.env = {"PATH=/usr/bin:/bin", "HOME=/root"};
    c.config.cmd = std::vector<std::string>{"sh"};
    c.config.working_dir = "/srv";
    return c;
}

std::string error_of(const std::vector<std::string>& changes) {
    formats::ImageConfig c = container_config();
    try {
        cli::apply_commit_changes(c, changes);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

} // namespace

TEST_CASE("commit --change applies Dockerfile instructions to the config") {
    formats::ImageConfig c = container_config();
    cli::apply_commit_changes(c, {"CMD [\"/bin/echo\", \"hi\"]", "ENV A=1 B=${HOME}/x",
                                  "EXPOSE 80 53/udp", "LABEL k=v", "USER nobody",
                                  "WORKDIR app", "VOLUME /data", "ONBUILD RUN make",
                                  "STOPSIGNAL SIGINT"});
    CHECK(c.config.cmd == std::vector<std::string>{"/bin/echo", "hi"});
    CHECK(c.config.env == std::vector<std::string>{"PATH=/usr/bin:/bin", "HOME=/root", "A=1",
                                                   "B=/root/x"});
    CHECK(c.config.exposed_ports == std::set<std::string>{"53/udp", "80/tcp"});
    CHECK(c.config.labels.at("k") == "v");
    CHECK(c.config.user == "nobody");
    CHECK(c.config.working_dir == "/srv/app");
    CHECK(c.config.volumes == std::set<std::string>{"/data"});
    CHECK(c.config.on_build == std::vector<std::string>{"RUN make"});
    CHECK(c.config.stop_signal == "SIGINT");
}

TEST_CASE("commit --change: shell form, ENTRYPOINT clears the container's Cmd") {
    formats::ImageConfig c = container_config();
    cli::apply_commit_changes(c, {"ENTRYPOINT top -b"});
    CHECK(c.config.entrypoint == std::vector<std::string>{"/bin/sh", "-c", "top -b"});
    CHECK_FALSE(c.config.cmd.has_value());
    formats::ImageConfig d = container_config();
    cli::apply_commit_changes(d, {"CMD echo hi", "ENTRYPOINT [\"/e\"]"});
    CHECK(d.config.cmd == std::vector<std::string>{"/bin/sh", "-c", "echo hi"});
    CHECK(d.config.entrypoint == std::vector<std::string>{"/e"});
}

TEST_CASE("commit --change refuses other instructions with Docker's message") {
    CHECK(error_of({"RUN echo hi"}) == "run is not a valid change command");
    CHECK(error_of({"CMD x", "FROM busybox"}) == "from is not a valid change command");
    CHECK(error_of({"COPY a b"}) == "copy is not a valid change command");
    CHECK(error_of({}).empty());
}
