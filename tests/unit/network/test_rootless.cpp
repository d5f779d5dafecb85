#include "network/rootless.hpp"

#include "util/child.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"

#include <arpa/inet.h>
#include <catch2/catch.hpp>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <thread>
#include <unistd.h>

using namespace strata;
using namespace strata::network;

namespace {

int failures = 0;
#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            std::fprintf(stderr, "FAILED line %d: %s: ", __LINE__, #cond);                         \
            std::fprintf(stderr, __VA_ARGS__);                                                     \
            std::fprintf(stderr, "\n");                                                            \
            ++failures;                                                                            \
        }                                                                                          \
    } while (0)

bool run_ok(const std::vector<std::string>& argv) {
    auto r = run_capture(argv, true);
    if (!r.status.success()) {
        std::fprintf(stderr, "%s: %s\n", argv[0].c_str(), r.out.c_str());
    }
    return r.status.success();
}

bool write_text(const char* path, const std::string& text) {
    UniqueFd fd(::open(path, O_WRONLY | O_CLOEXEC));
    return fd && ::write(fd.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size());
}

sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

// Connects to 127.0.0.1:port and returns what the peer sends before closing.
std::string fetch(std::uint16_t port) {
    UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    timeval tv{5, 0};
    ::setsockopt(s.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    auto a = loopback(port);
    if (::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        return "connect: " + std::string(std::strerror(errno));
    }
    std::string out;
    char buf[256];
    ssize_t n;
    while ((n = ::recv(s.get(), buf, sizeof buf, 0)) > 0) {
        out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
}

// As the unprivileged user: a user namespace of its own (the user is its
// root), a network namespace made inside it with a server on port 8080, the
// helper with 127.0.0.1:18080 -> 8080.
int as_user(std::optional<rootless::Backend> want, rootless::Backend backend) {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(65534, 65534, 65534) != 0 ||
        ::setresuid(65534, 65534, 65534) != 0) {
        std::perror("setresuid");
        return 2;
    }
    ::prctl(PR_SET_DUMPABLE, 1);
    if (::unshare(CLONE_NEWUSER) != 0 || !write_text("/proc/self/setgroups", "deny") ||
        !write_text("/proc/self/uid_map", "0 65534 1") ||
        !write_text("/proc/self/gid_map", "0 65534 1")) {
        std::perror("user namespace");
        return 2;
    }
    UniqueFd netns;
    UniqueFd listener;
    std::thread([&] {
        if (::unshare(CLONE_NEWNET) != 0) {
            return;
        }
        netns = UniqueFd(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
        listener = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_in any{};
        any.sin_family = AF_INET;
        any.sin_port = htons(8080);
        if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&any), sizeof any) != 0 ||
            ::listen(listener.get(), 8) != 0) {
            listener.reset();
        }
    }).join();
    if (!netns || !listener) {
        std::perror("container namespace");
        return 2;
    }
    std::thread server([&] {
        UniqueFd c(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (c) {
            const char msg[] = "hello from the container";
            ::send(c.get(), msg, sizeof msg - 1, MSG_NOSIGNAL);
        }
    });
    pid_t helper = -1;
    {
        rootless::Options o;
        o.backend = want;
        o.ports = {{"tcp", 8080, "127.0.0.1", 18080}};
        auto net = rootless::Network::start(netns.get(), o);
        helper = net.pid();
        EXPECT(net.info().backend == backend, "backend");
        EXPECT(net.info().nameserver ==
                   (backend == rootless::Backend::pasta ? "169.254.1.1" : "10.0.2.3"),
               "nameserver %s", net.info().nameserver.c_str());
        EXPECT(net.ports().size() == 1 && net.ports()[0].host_port == 18080, "ports");
        std::string got = fetch(18080);
        EXPECT(got == "hello from the container", "%s: got '%s'", rootless::backend_name(backend),
               got.c_str());

        // A taken host port: Docker's message, nothing started.
        UniqueFd taken(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        auto a = loopback(18081);
        ::bind(taken.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
        ::listen(taken.get(), 1);
        o.ports = {{"tcp", 8081, "127.0.0.1", 18081}};
        try {
            rootless::Network::start(netns.get(), o);
            EXPECT(false, "a taken port was accepted");
        } catch (const Error& e) {
            EXPECT(std::string(e.what()) ==
                       "Bind for 127.0.0.1:18081 failed: port is already allocated",
                   "%s", e.what());
        }
        o.ports = {{"tcp", 8081, "127.0.0.1", 18081, 18081}};
        try {
            rootless::Network::start(netns.get(), o);
            EXPECT(false, "a taken range was accepted");
        } catch (const Error& e) {
            EXPECT(std::string(e.what()) ==
                       "Bind for 127.0.0.1:18081 failed: port is already allocated",
                   "%s", e.what());
        }
        // A range whose first port is taken gets the next one; 0 gets any.
        o.ports = {{"tcp", 8080, "127.0.0.1", 18081, 18083}, {"udp", 53, "127.0.0.1", 0}};
        UniqueFd other; // a second namespace (one helper per namespace)
        std::thread([&] {
            if (::unshare(CLONE_NEWNET) == 0) {
                other = UniqueFd(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
            }
        }).join();
        try {
            auto second = rootless::Network::start(other.get(), o);
            EXPECT(second.ports().size() == 2 && second.ports()[0].host_port == 18082 &&
                       second.ports()[1].host_port != 0 && second.ports()[1].proto == "udp",
                   "ports picked: %u %u", second.ports()[0].host_port, second.ports()[1].host_port);
        } catch (const Error& e) {
            EXPECT(false, "range and free ports: %s", e.what());
        }
    }
    // create(): a namespace of its own, the resolv.conf for it.
    {
        rootless::Options o;
        o.backend = backend;
        o.ports = {{"tcp", 80, "127.0.0.1", 18090}};
        auto net = rootless::Network::create(o);
        EXPECT(net.netns_fd() >= 0, "no namespace");
        UniqueFd inside;
        std::thread([&] {
            if (::setns(net.netns_fd(), CLONE_NEWNET) != 0) {
                return;
            }
            inside = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
            sockaddr_in any{};
            any.sin_family = AF_INET;
            any.sin_port = htons(80);
            if (::bind(inside.get(), reinterpret_cast<sockaddr*>(&any), sizeof any) != 0 ||
                ::listen(inside.get(), 8) != 0) {
                inside.reset();
            }
        }).join();
        EXPECT(inside, "no listener in the created namespace");
        std::thread srv([&] {
            UniqueFd c(::accept4(inside.get(), nullptr, nullptr, SOCK_CLOEXEC));
            if (c) {
                ::send(c.get(), "created", 7, MSG_NOSIGNAL);
            }
        });
        std::string got = fetch(18090);
        ::shutdown(inside.get(), SHUT_RDWR);
        srv.join();
        EXPECT(got == "created", "create(): got '%s'", got.c_str());
        std::string rc = net.resolv_conf();
        EXPECT(rc.find("\nnameserver " + net.info().nameserver + "\n") != std::string::npos, "%s",
               rc.c_str());
        rc = net.resolv_conf({"10.1.2.3"}, {"example.com"});
        EXPECT(rc.find("\nnameserver 10.1.2.3\nsearch example.com\n") != std::string::npos, "%s",
               rc.c_str());
    }
    // The helper is gone and the port is free again.
    EXPECT(::kill(helper, 0) != 0 && errno == ESRCH, "helper %d still runs", helper);
    UniqueFd again(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int one = 1; // the forwarded connection may still be in TIME_WAIT
    ::setsockopt(again.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    auto a = loopback(18080);
    EXPECT(::bind(again.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0,
           "18080 still bound: %s", std::strerror(errno));
    ::shutdown(listener.get(), SHUT_RDWR);
    server.join();
    return failures == 0 ? 0 : 1;
}

// As root, in private mount and network namespaces: an interface with a
// default route (pasta copies the host's) and a /dev/net/tun the user may
// open (as Debian's udev makes it), then each helper as nobody.
int rootless_in_netns() {
    if (::unshare(CLONE_NEWNS | CLONE_NEWNET) != 0 ||
        ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
        std::perror("unshare");
        return 2;
    }
    if (!run_ok({"ip", "link", "set", "lo", "up"}) ||
        !run_ok({"ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1"}) ||
        !run_ok({"ip", "addr", "add", "192.0.2.1/24", "dev", "up0"}) ||
        !run_ok({"ip", "link", "set", "up0", "up"}) ||
        !run_ok({"ip", "link", "set", "up1", "up"}) ||
        !run_ok({"ip", "route", "add", "default", "via", "192.0.2.254"})) {
        return 2;
    }
    char dir[] = "/tmp/strata-tun-XXXXXX";
    if (!::mkdtemp(dir) || ::mount("tmpfs", dir, "tmpfs", 0, "mode=755") != 0) {
        std::perror("tmpfs");
        return 2;
    }
    std::string tun = std::string(dir) + "/tun";
    if (::mknod(tun.c_str(), S_IFCHR | 0666, makedev(10, 200)) != 0 ||
        ::chmod(tun.c_str(), 0666) != 0 ||
        ::mount(tun.c_str(), "/dev/net/tun", nullptr, MS_BIND, nullptr) != 0) {
        std::perror("/dev/net/tun");
        return 2;
    }
    ::umount2(dir, MNT_DETACH);
    ::rmdir(dir);
    int tested = 0;
    for (auto backend : {rootless::Backend::pasta, rootless::Backend::slirp4netns}) {
        if (!find_program(rootless::backend_name(backend))) {
            std::fprintf(stderr, "%s is not installed: not tested\n",
                         rootless::backend_name(backend));
            continue;
        }
        ++tested;
        Child c = Child::fork_fn([&] {
            try {
                return as_user(backend, backend);
            } catch (const std::exception& e) {
                std::fprintf(stderr, "%s: error: %s\n", rootless::backend_name(backend), e.what());
                return 3;
            }
        });
        auto st = c.wait();
        EXPECT(st.success(), "%s: %s", rootless::backend_name(backend), st.describe().c_str());
    }
    EXPECT(tested > 0, "neither pasta nor slirp4netns");
    // Without a host interface for pasta to copy, slirp4netns takes over.
    if (find_program("pasta") && find_program("slirp4netns")) {
        Child c = Child::fork_fn([&] {
            if (::unshare(CLONE_NEWNET) != 0 || !run_ok({"ip", "link", "set", "lo", "up"})) {
                return 2;
            }
            try {
                return as_user(std::nullopt, rootless::Backend::slirp4netns);
            } catch (const std::exception& e) {
                std::fprintf(stderr, "fallback: error: %s\n", e.what());
                return 3;
            }
        });
        auto st = c.wait();
        EXPECT(st.success(), "fallback to slirp4netns: %s", st.describe().c_str());
    }
    return failures == 0 ? 0 : 1;
}

} // namespace

TEST_CASE("rootless: pasta and slirp4netns connect a user's network namespace and forward "
          "127.0.0.1:18080 into it",
          "[rootlessnet]") {
    Child c = Child::fork_fn([] {
        try {
            return rootless_in_netns();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "error: %s\n", e.what());
            return 3;
        }
    });
    auto status = c.wait();
    INFO(status.describe());
    CHECK(status.success());
}

TEST_CASE("rootless: a bad port forward is refused before anything starts", "[rootless]") {
    rootless::Options o;
    o.ports = {{"sctp", 80, "", 8080}};
    CHECK_THROWS_WITH(rootless::Network::start(-1, o),
                      "rootless network: unsupported protocol sctp in 0.0.0.0:8080->80/sctp");
    o.ports = {{"tcp", 0, "", 8080}};
    CHECK_THROWS_WITH(rootless::Network::start(-1, o), Catch::Contains("has no container port"));
    o.ports = {{"tcp", 80, "300.1.1.1", 8080}};
    CHECK_THROWS_WITH(rootless::Network::start(-1, o),
                      Catch::Contains("invalid IPv4 address: 300.1.1.1"));
}
