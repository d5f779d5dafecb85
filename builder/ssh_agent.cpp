#include "builder/ssh_agent.hpp"

#include "util/error.hpp"
#include "util/log.hpp"

#include <cerrno>
#include <cstring>
#include <mutex>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace strata::builder {

namespace {

sockaddr_un unix_address(const std::string& path) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.size() >= sizeof a.sun_path) {
        throw Error("socket path too long (" + std::to_string(path.size()) + " bytes): " + path);
    }
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    return a;
}

// Writes all of data; false when the peer is gone.
bool send_all(int fd, const char* data, std::size_t n) {
    while (n > 0) {
        ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return false;
        }
        data += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

} // namespace

bool is_socket(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

struct AgentProxy::Impl {
    std::string path;
    std::string agent;
    UniqueFd listener;
    Pipe stop;
    std::thread acceptor;
    std::mutex mu;
    std::vector<std::thread> relays;

    // One client connection <-> one agent connection, until either side
    // closes or the proxy stops.
    void relay(UniqueFd client) {
        UniqueFd up(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!up) {
            return;
        }
        sockaddr_un a;
        try {
            a = unix_address(agent);
        } catch (const Error&) {
            return;
        }
        if (::connect(up.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
            STRATA_LOG_WARN("ssh agent {}: connect: {}", agent, std::strerror(errno));
            return;
        }
        char buf[16384];
        while (true) {
            pollfd p[3] = {
                {client.get(), POLLIN, 0}, {up.get(), POLLIN, 0}, {stop.read.get(), POLLIN, 0}};
            if (::poll(p, 3, -1) < 0) {
                if (errno == EINTR) {
                    continue;
                }
                return;
            }
            if (p[2].revents != 0) {
                return;
            }
            for (int i = 0; i < 2; ++i) {
                if (p[i].revents == 0) {
                    continue;
                }
                int from = i == 0 ? client.get() : up.get();
                int to = i == 0 ? up.get() : client.get();
                ssize_t n = ::recv(from, buf, sizeof buf, 0);
                if (n < 0 && errno == EINTR) {
                    continue;
                }
                if (n <= 0 || !send_all(to, buf, static_cast<std::size_t>(n))) {
                    return;
                }
            }
        }
    }

    void accept_loop() {
        while (true) {
            pollfd p[2] = {{listener.get(), POLLIN, 0}, {stop.read.get(), POLLIN, 0}};
            if (::poll(p, 2, -1) < 0) {
                if (errno == EINTR) {
                    continue;
                }
                return;
            }
            if (p[1].revents != 0) {
                return;
            }
            UniqueFd c(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
            if (!c) {
                continue;
            }
            std::lock_guard<std::mutex> l(mu);
            int fd = c.get();
            try {
                relays.emplace_back([this, fd] { relay(UniqueFd(fd)); });
                (void)c.release(); // the relay thread owns it now
            } catch (const std::system_error&) {
                // no thread: the connection is closed (c still owns it)
            }
        }
    }
};

AgentProxy::AgentProxy(const std::string& listen_path, const std::string& agent_path, mode_t mode,
                       uid_t uid, gid_t gid)
    : m_impl(std::make_unique<Impl>()) {
    m_impl->path = listen_path;
    m_impl->agent = agent_path;
    if (!is_socket(agent_path)) {
        throw Error("ssh agent " + agent_path + " is not a unix socket");
    }
    m_impl->listener = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!m_impl->listener) {
        throw_errno("socket", listen_path);
    }
    sockaddr_un a = unix_address(listen_path);
    if (::bind(m_impl->listener.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        throw_errno("bind", listen_path);
    }
    if (::chmod(listen_path.c_str(), mode) != 0) {
        throw_errno("chmod", listen_path);
    }
    if (::chown(listen_path.c_str(), uid, gid) != 0) {
        throw_errno("chown", listen_path);
    }
    if (::listen(m_impl->listener.get(), 16) != 0) {
        throw_errno("listen", listen_path);
    }
    m_impl->stop = Pipe::create();
    m_impl->acceptor = std::thread([impl = m_impl.get()] { impl->accept_loop(); });
}

AgentProxy::~AgentProxy() {
    m_impl->stop.write.reset(); // every poll sees POLLHUP on the read end
    if (m_impl->acceptor.joinable()) {
        m_impl->acceptor.join();
    }
    for (auto& t : m_impl->relays) {
        if (t.joinable()) {
            t.join();
        }
    }
    ::unlink(m_impl->path.c_str());
}

const std::string& AgentProxy::path() const noexcept {
    return m_impl->path;
}

} // namespace strata::builder
