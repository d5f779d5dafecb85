#include "tests/unit/registry/servers.hpp"

#include "util/error.hpp"
#include "util/fs.hpp"

#include <arpa/inet.h>
#include <chrono>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace strata::test {

namespace {

std::string script_path() {
    return std::string(STRATA_SOURCE_DIR) + "/tests/unit/registry/fake_registry.py";
}

bool try_connect(int port) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) {
        return false;
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
}

} // namespace

int free_port() {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = 0;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        throw_errno("bind", "127.0.0.1:0");
    }
    socklen_t len = sizeof a;
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len);
    return ntohs(a.sin_port);
}

void wait_for_port(int port, const std::string& what) {
    for (int i = 0; i < 200; ++i) {
        if (try_connect(port)) {
            return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    throw Error(what + " did not start listening on 127.0.0.1:" + std::to_string(port));
}

FakeRegistry::FakeRegistry(const std::vector<std::string>& flags) : m_dir({}, "strata-fakereg-") {
    auto python = find_program("python3");
    if (!python) {
        throw Error("python3 is needed for the fake registry");
    }
    std::string port_file = m_dir.path() + "/port";
    SpawnOptions o;
    o.argv = {*python, script_path(), "--port-file", port_file, "--log", m_dir.path() + "/log"};
    o.argv.insert(o.argv.end(), flags.begin(), flags.end());
    m_child = Child::spawn(o);
    for (int i = 0; i < 200 && !fs::exists(port_file); ++i) {
        if (auto st = m_child.try_wait()) {
            throw Error("fake registry exited: " + st->describe());
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!fs::exists(port_file)) {
        throw Error("fake registry did not start");
    }
    int port = std::stoi(fs::read_file(port_file));
    m_host = "127.0.0.1:" + std::to_string(port);
    wait_for_port(port, "fake registry");
}

FakeRegistry::~FakeRegistry() {
    if (m_child) {
        m_child.terminate(std::chrono::milliseconds(2000));
    }
}

std::string FakeRegistry::requests() const {
    std::string log = m_dir.path() + "/log";
    return fs::exists(log) ? fs::read_file(log) : std::string();
}

int FakeRegistry::count(const std::string& needle) const {
    std::string all = requests();
    int n = 0;
    for (auto p = all.find(needle); p != std::string::npos; p = all.find(needle, p + 1)) {
        ++n;
    }
    return n;
}

bool DockerRegistry::available() { return find_program("docker-registry").has_value(); }

DockerRegistry::DockerRegistry(const std::string& user, const std::string& password)
    : m_dir({}, "strata-registry-") {
    auto prog = find_program("docker-registry");
    if (!prog) {
        throw Error("docker-registry is not installed (apt-get install docker-registry)");
    }
    m_storage = m_dir.path() + "/storage";
    fs::mkdirs(m_storage);
    std::string auth;
    if (!user.empty()) {
        auto htpasswd = find_program("htpasswd");
        if (!htpasswd) {
            throw Error("htpasswd is not installed (apt-get install apache2-utils)");
        }
        RunResult r = run_capture({*htpasswd, "-Bbn", user, password});
        if (!r.status.success()) {
            throw Error("htpasswd " + r.status.describe());
        }
        fs::write_file_atomic(m_dir.path() + "/htpasswd", r.out);
        auth =
            "auth:\n  htpasswd:\n    realm: strata-test\n    path: " + m_dir.path() + "/htpasswd\n";
    }
    // Bounded retries: another process may take the port between free_port()
    // and the registry's bind.
    for (int attempt = 0; attempt < 5; ++attempt) {
        int port = free_port();
        std::string config = "version: 0.1\n"
                             "log:\n  level: error\n  accesslog:\n    disabled: true\n"
                             "storage:\n  filesystem:\n    rootdirectory: " +
                             m_storage +
                             "\n"
                             "  delete:\n    enabled: true\n"
                             "http:\n  addr: 127.0.0.1:" +
                             std::to_string(port) + "\n" + auth;
        fs::write_file_atomic(m_dir.path() + "/config.yml", config);
        SpawnOptions o;
        o.argv = {*prog, "serve", m_dir.path() + "/config.yml"};
        // The registry logs every 404 at error level: keep that out of test output.
        UniqueFd log = fs::open(m_dir.path() + "/registry.log", O_WRONLY | O_CREAT | O_APPEND);
        o.stdout_fd = log.get();
        o.stderr_fd = log.get();
        m_child = Child::spawn(o);
        for (int i = 0; i < 200; ++i) {
            if (try_connect(port)) {
                m_host = "127.0.0.1:" + std::to_string(port);
                return;
            }
            if (m_child.try_wait()) {
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        if (m_child) {
            m_child.terminate(std::chrono::milliseconds(2000));
        }
        m_child = Child();
    }
    throw Error("docker-registry did not start on 127.0.0.1");
}

DockerRegistry::~DockerRegistry() {
    if (m_child) {
        m_child.terminate(std::chrono::milliseconds(3000));
    }
}

} // namespace strata::test
