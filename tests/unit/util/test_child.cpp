#include "util/child.hpp"
#include "util/error.hpp"

#include <catch2/catch.hpp>
#include <csignal>

using namespace strata;

TEST_CASE("run_capture returns the output and the exit status") {
    auto r = run_capture({"sh", "-c", "echo hello; exit 3"});
    CHECK(r.out == "hello\n");
    CHECK(r.status.exited());
    CHECK(r.status.code() == 3);
    CHECK(r.status.describe() == "exited with status 3");
}

TEST_CASE("a death by signal is reported as such") {
    auto r = run_capture({"sh", "-c", "kill -KILL $$"});
    CHECK(r.status.signaled());
    CHECK(r.status.signal() == SIGKILL);
    CHECK(r.status.describe() == "killed by signal 9 (SIGKILL)");
    CHECK(r.status.shell_code() == 137);
}

TEST_CASE("spawning a missing program throws naming it") {
    try {
        Child::spawn(SpawnOptions{.argv = {"/nonexistent/program"}});
        FAIL("spawn succeeded");
    } catch (const SysError& e) {
        CHECK(e.error_code() == ENOENT);
        CHECK(std::string(e.what()).find("/nonexistent/program") != std::string::npos);
    }
}

TEST_CASE("stdin data reaches the child") {
    auto r = run_capture({"cat"}, false, "piped text");
    CHECK(r.out == "piped text");
}

TEST_CASE("destroying a running Child kills and reaps it") {
    pid_t pid;
    {
        Child c = Child::spawn(SpawnOptions{.argv = {"sleep", "60"}});
        pid = c.pid();
        REQUIRE(::kill(pid, 0) == 0);
    }
    CHECK(::kill(pid, 0) == -1);
}
