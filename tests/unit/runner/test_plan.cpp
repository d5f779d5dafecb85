#include "runner/plan.hpp"
#include "runner/runner.hpp"

#include <catch2/catch.hpp>
#include <linux/capability.h>

using namespace strata;
using namespace strata::runner;

TEST_CASE("the default capability set is Docker's") {
    // Docker's CapBnd/CapEff for a root process: 00000000a80425fb.
    CHECK(default_capabilities() == 0xa80425fbULL);
    CHECK(capability_name(CAP_NET_RAW) == "CAP_NET_RAW");
    CHECK(capability_name(CAP_AUDIT_WRITE) == "CAP_AUDIT_WRITE");
    CHECK(capability_name(77) == "CAP_77");
}

TEST_CASE("the environment gets Docker's PATH, HOSTNAME and the user's HOME") {
    RunSpec spec;
    ExecUser user;
    user.home = "/home/u";
    auto env = detail::container_env(spec, user, "box");
    CHECK(env == std::vector<std::string>{std::string("PATH=") + k_default_path, "HOSTNAME=box",
                                          "HOME=/home/u"});
    spec.env = {"PATH=/x", "A=1", "A=2", "HOME=/h"};
    spec.tty = true;
    env = detail::container_env(spec, user, "box");
    CHECK(env ==
          std::vector<std::string>{"HOSTNAME=box", "TERM=xterm", "PATH=/x", "A=2", "HOME=/h"});
    spec.env = {"=oops"};
    CHECK_THROWS_AS(detail::container_env(spec, user, "box"), UsageError);
}

TEST_CASE("commands are looked up in the container's PATH") {
    CHECK(detail::exec_candidates("/bin/sh", {}) == std::vector<std::string>{"/bin/sh"});
    CHECK(detail::exec_candidates("./run", {}) == std::vector<std::string>{"./run"});
    CHECK(detail::exec_candidates("ls", {"PATH=/a::/b"}) ==
          std::vector<std::string>{"/a/ls", "./ls", "/b/ls"});
    CHECK(detail::exec_candidates("ls", {}).front() == "/usr/local/sbin/ls");
}

TEST_CASE("the generated hosts file maps localhost, the hostname and extra hosts") {
    auto hosts = detail::hosts_file("box", {{"db", "10.0.0.2"}}, Network::none);
    CHECK(hosts.find("127.0.0.1\tlocalhost\n") != std::string::npos);
    CHECK(hosts.find("127.0.0.1\tbox\n") != std::string::npos);
    CHECK(hosts.find("10.0.0.2\tdb\n") != std::string::npos);
    // On a bridge the hostname is the container's own address (Docker's).
    auto bridged = detail::hosts_file("box", {}, Network::join, "172.17.0.2");
    CHECK(bridged.find("172.17.0.2\tbox\n") != std::string::npos);
    CHECK(bridged.find("127.0.0.1\tbox\n") == std::string::npos);
}

TEST_CASE("resolv.conf for a private network drops loopback nameservers") {
    auto conf = detail::resolv_conf(Network::none);
    CHECK(conf.find("nameserver 127.") == std::string::npos);
    CHECK(conf.find("nameserver") != std::string::npos);
}

TEST_CASE("a bad spec is refused before anything starts") {
    RunSpec spec;
    CHECK_THROWS_WITH(Container::start(spec), "no root directory given");
    spec.rootfs = "/";
    CHECK_THROWS_WITH(Container::start(spec), "no command given");
    spec.argv = {"true"};
    spec.cwd = "relative";
    CHECK_THROWS_WITH(Container::start(spec),
                      "working directory \"relative\" is not an absolute path");
    spec.cwd = "/";
    spec.rootfs = "/nonexistent/rootfs";
    CHECK_THROWS_AS(Container::start(spec), SysError);
}

TEST_CASE("Control events can be sent without a running container") {
    Control c;
    c.cancel();
    c.window_changed();
    c.forward(15);
    unsigned char buf[8];
    CHECK(::read(c.fd(), buf, sizeof buf) == 3);
}

#include "runner/terminal.hpp"

#include <csignal>

TEST_CASE("SignalRouting turns SIGTERM into a cancel and SIGWINCH into a resize") {
    Control c;
    {
        SignalRouting routing(c);
        CHECK_THROWS_AS(SignalRouting(c), Error);
        ::raise(SIGWINCH);
        ::raise(SIGTERM);
        CHECK(SignalRouting::last_signal() == SIGTERM);
    }
    unsigned char buf[8];
    REQUIRE(::read(c.fd(), buf, sizeof buf) == 2);
    CHECK(buf[0] == 1); // window changed
    CHECK(buf[1] == 0); // cancel
    // Handlers are restored: a second routing can be installed.
    SignalRouting again(c);
}

TEST_CASE("RawTerminal leaves a non-terminal alone") {
    Pipe p = Pipe::create();
    RawTerminal t(p.read.get());
    CHECK_FALSE(t.active());
}
