// RUN --mount=type=ssh's relay: a socket of the step's own, with the mount's
// mode, that forwards each connection to the host agent.
#include "builder/ssh_agent.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/tempdir.hpp"

#include <catch2/catch.hpp>
#include <cstring>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>

using namespace strata;
using namespace strata::builder;

namespace {

sockaddr_un addr(const std::string& p) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, p.c_str(), sizeof a.sun_path - 1);
    return a;
}

UniqueFd listen_on(const std::string& p) {
    UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un a = addr(p);
    REQUIRE(::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(s.get(), 4) == 0);
    return s;
}

std::string ask(const std::string& p, const std::string& msg) {
    UniqueFd c(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un a = addr(p);
    REQUIRE(::connect(c.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::write(c.get(), msg.data(), msg.size()) == static_cast<ssize_t>(msg.size()));
    char buf[256];
    ssize_t n = ::read(c.get(), buf, sizeof buf);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

} // namespace

TEST_CASE("the ssh agent relay forwards connections and has the mount's mode") {
    TempDir dir;
    std::string agent = dir.path() + "/agent.sock";
    UniqueFd server = listen_on(agent);
    std::thread fake_agent([&] {
        for (int i = 0; i < 2; ++i) {
            UniqueFd c(::accept4(server.get(), nullptr, nullptr, SOCK_CLOEXEC));
            char buf[64];
            ssize_t n = ::read(c.get(), buf, sizeof buf);
            std::string reply =
                "agent:" + std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
            (void)!::write(c.get(), reply.data(), reply.size());
        }
    });
    {
        AgentProxy proxy(dir.path() + "/step.sock", agent, 0640, ::getuid(), ::getgid());
        struct stat st;
        REQUIRE(::stat(proxy.path().c_str(), &st) == 0);
        CHECK(S_ISSOCK(st.st_mode));
        CHECK((st.st_mode & 07777) == 0640);
        CHECK(ask(proxy.path(), "one") == "agent:one");
        CHECK(ask(proxy.path(), "two") == "agent:two");
    }
    fake_agent.join();
    CHECK_FALSE(is_socket(dir.path() + "/step.sock")); // removed with the proxy
}

TEST_CASE("the ssh agent relay refuses a path that is not a socket") {
    TempDir dir;
    CHECK_THROWS_WITH(AgentProxy(dir.path() + "/s", dir.path(), 0600, 0, 0),
                      Catch::Contains("is not a unix socket"));
    CHECK_FALSE(is_socket(dir.path()));
}
