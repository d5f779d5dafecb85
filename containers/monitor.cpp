#include "containers/monitor.hpp"

#include "containers/events.hpp"
#include "containers/json_log.hpp"
#include "containers/network.hpp"
#include "containers/signal.hpp"
#include "containers/spec.hpp"
#include "containers/volumes.hpp"
#include "formats/oci.hpp"
#include "layerfs/mount.hpp"
#include "layerfs/overlay.hpp"
#include "runner/cgroup.hpp"
#include "runner/runner.hpp"
#include "snapshot/lazy_index.hpp"
#include "snapshot/stack_order.hpp"
#include "snapshot/store.hpp"
#include "util/child.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace strata::containers {

namespace {

// "/proc/self/fd/N/monitor.sock": short whatever the store's path.
struct SocketPath {
    UniqueFd dir;
    sockaddr_un addr{};
    socklen_t len = 0;
};

SocketPath socket_path(const Store& store, const std::string& id) {
    SocketPath p;
    std::string dir = store.path(id);
    p.dir = UniqueFd(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!p.dir) {
        if (errno == ENOENT) {
            throw NoSuchContainer(id);
        }
        throw_errno("open", dir);
    }
    std::string path = "/proc/self/fd/" + std::to_string(p.dir.get()) + "/monitor.sock";
    p.addr.sun_family = AF_UNIX;
    std::memcpy(p.addr.sun_path, path.c_str(), path.size() + 1);
    p.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
    return p;
}

void write_line(int fd, const std::string& line) {
    std::string l = line + "\n";
    ::send(fd, l.data(), l.size(), MSG_NOSIGNAL);
}

std::string read_line(int fd) {
    std::string line;
    char c;
    while (true) {
        ssize_t n = ::read(fd, &c, 1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0 || c == '\n') {
            return line;
        }
        line += c;
    }
}

// The monitor's report to the CLI that started it: one line, then closed.
class Ready {
public:
    // Close-on-exec: no program the monitor starts (strata-lazy) keeps the
    // starting CLI's pipe open.
    explicit Ready(int fd) : m_fd(fd) {
        if (m_fd >= 0) {
            ::fcntl(m_fd, F_SETFD, FD_CLOEXEC);
        }
    }
    void line(const std::string& text) {
        if (m_fd >= 0) {
            std::string l = text + "\n";
            (void)!::write(m_fd, l.data(), l.size());
        }
    }
    void done(const std::string& text) {
        line(text);
        if (m_fd >= 0) {
            ::close(m_fd);
            m_fd = -1;
        }
    }

private:
    int m_fd;
};

struct Client {
    UniqueFd fd;
    std::string buf;
    bool attached = false;
};

// The monitor's I/O thread: log pipes -> json-file log and attached
// clients; the socket's requests; the tick hook.
class Io {
public:
    Io(const Store& store, std::string id, JsonLog& log, runner::Control& control,
       const MonitorHooks& hooks)
        : m_store(store), m_id(std::move(id)), m_log(log), m_control(control), m_hooks(hooks),
          m_wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
        if (!m_wake) {
            throw_errno("eventfd");
        }
    }

    void run_thread(int listen_fd, int out_fd, int err_fd, int stdin_fd) {
        m_listen = listen_fd;
        m_out = out_fd;
        m_err = err_fd;
        m_stdin = stdin_fd;
        m_thread = std::thread([this] { loop(); });
    }

    // The container runs as pid (0: not running); resize goes to c.
    void set_running(int pid, runner::Container* c) {
        std::lock_guard<std::mutex> g(m_mu);
        m_pid = pid;
        m_container = c;
    }

    bool wait_attached(std::chrono::seconds timeout) {
        std::unique_lock<std::mutex> g(m_mu);
        return m_cv.wait_for(g, timeout, [this] { return m_attached; });
    }
    // Sleeps up to d, or less when a stop is asked for; true when it was.
    bool sleep_unless_stopped(std::chrono::milliseconds d) {
        std::unique_lock<std::mutex> g(m_mu);
        return m_cv.wait_for(g, d, [this] { return m_stop_requested.load(); });
    }
    bool stop_requested() const { return m_stop_requested.load(); }
    void clear_stop() { m_stop_requested = false; }
    // Answers "network-connect JSON" and "network-disconnect JSON" (set before run_thread).
    using NetworkHandler =
        std::function<std::string(const std::string& verb, const std::string& arg)>;
    void set_network_handler(NetworkHandler h) { m_network = std::move(h); }

    // Everything the container wrote is logged before its exit is recorded,
    // as Docker waits for a container's streams before it reports the exit:
    // `wait` then `logs` sees every line. The writers are gone, so what is
    // left is in the pipes; the I/O thread reads it all and says so.
    void drain(std::chrono::milliseconds timeout) {
        std::unique_lock<std::mutex> g(m_mu);
        std::uint64_t want = ++m_drain_asked;
        std::uint64_t one = 1;
        (void)!::write(m_wake.get(), &one, sizeof one);
        m_cv.wait_for(g, timeout, [&] { return m_drain_done >= want; });
    }

    // The container is done for good: drain, tell attached clients, end.
    void finish(int exit_code) {
        m_exit_code = exit_code;
        m_done = true;
        std::uint64_t one = 1;
        (void)!::write(m_wake.get(), &one, sizeof one);
        if (m_thread.joinable()) {
            m_thread.join();
        }
    }

private:
    void broadcast(unsigned char stream, std::string_view data) {
        for (auto& c : m_clients) {
            if (c.attached && c.fd) {
                try {
                    write_frame(c.fd.get(), stream, data);
                } catch (const std::exception&) {
                    c.fd.reset();
                }
            }
        }
    }

    void pump(int fd, unsigned char stream, const char* name) {
        char buf[65536];
        while (true) {
            ssize_t n = ::read(fd, buf, sizeof buf);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                return;
            }
            std::string_view data(buf, static_cast<std::size_t>(n));
            m_log.write(name, data);
            broadcast(stream, data);
            if (static_cast<std::size_t>(n) < sizeof buf) {
                return;
            }
        }
    }

    void handle_request(Client& c, const std::string& line) {
        std::string verb = line.substr(0, line.find(' '));
        std::string arg =
            line.find(' ') == std::string::npos ? "" : line.substr(line.find(' ') + 1);
        if (verb == "attach") {
            c.attached = true;
            {
                std::lock_guard<std::mutex> g(m_mu);
                m_attached = true;
            }
            m_cv.notify_all();
            return;
        }
        if (verb == "kill" || verb == "stop") {
            int sig = 0;
            try {
                sig = parse_signal(arg);
            } catch (const std::exception& e) {
                write_line(c.fd.get(), std::string("error ") + e.what());
                c.fd.reset();
                return;
            }
            bool running;
            {
                std::lock_guard<std::mutex> g(m_mu);
                running = m_pid != 0;
                if (verb == "stop") {
                    m_stop_requested = true;
                }
            }
            m_cv.notify_all();
            if (running) {
                m_control.forward(sig);
                thaw_if_paused();
            }
            write_line(c.fd.get(), running || verb == "stop" ? "ok" : "error not running");
            c.fd.reset();
            return;
        }
        if ((verb == "network-connect" || verb == "network-disconnect") && m_network) {
            std::string answer = m_network(verb, arg);
            std::replace(answer.begin(), answer.end(), '\n', ' ');
            write_line(c.fd.get(), answer);
            c.fd.reset();
            return;
        }
        write_line(c.fd.get(), "error unknown request: " + line);
        c.fd.reset();
    }

    // A paused (frozen) container receives a signal only once thawed: it is
    // unpaused after the signal is sent, as Docker does, and recorded so.
    void thaw_if_paused() {
        try {
            runner::CgroupPaths cg = runner::cgroup_paths(m_id);
            if (cg.empty() || !runner::frozen(cg)) {
                return;
            }
            Lock l = m_store.lock(m_id);
            runner::thaw(cg);
            State s = m_store.load_state(m_id);
            if (s.status == "paused") {
                s.status = "running";
                m_store.save_state(m_id, s);
            }
        } catch (const std::exception& e) {
            STRATA_LOG_WARN("unpausing container {} for a signal: {}", m_id, e.what());
        }
    }

    void handle_frames(Client& c) {
        while (c.buf.size() >= 8) {
            std::size_t len = (std::size_t(static_cast<unsigned char>(c.buf[4])) << 24) |
                              (std::size_t(static_cast<unsigned char>(c.buf[5])) << 16) |
                              (std::size_t(static_cast<unsigned char>(c.buf[6])) << 8) |
                              std::size_t(static_cast<unsigned char>(c.buf[7]));
            if (c.buf.size() < 8 + len) {
                return;
            }
            unsigned char type = static_cast<unsigned char>(c.buf[0]);
            std::string payload = c.buf.substr(8, len);
            c.buf.erase(0, 8 + len);
            if (type == 0 && m_stdin >= 0) {
                try {
                    fs::write_all(m_stdin, payload);
                } catch (const std::exception&) {
                    ::close(m_stdin);
                    m_stdin = -1;
                }
            } else if (type == 1 && m_stdin >= 0) {
                ::close(m_stdin);
                m_stdin = -1;
            } else if (type == 2) {
                unsigned rows = 0, cols = 0;
                if (std::sscanf(payload.c_str(), "%u %u", &rows, &cols) == 2) {
                    std::lock_guard<std::mutex> g(m_mu);
                    if (m_container != nullptr) {
                        try {
                            m_container->resize(static_cast<unsigned short>(rows),
                                                static_cast<unsigned short>(cols));
                        } catch (const std::exception&) {
                            // no terminal: nothing to resize
                        }
                    }
                }
            }
        }
    }

    void read_client(Client& c) {
        char buf[8192];
        ssize_t n = ::read(c.fd.get(), buf, sizeof buf);
        if (n <= 0) {
            c.fd.reset();
            return;
        }
        c.buf.append(buf, static_cast<std::size_t>(n));
        if (!c.attached) {
            std::size_t nl = c.buf.find('\n');
            if (nl == std::string::npos) {
                if (c.buf.size() > 4096) {
                    c.fd.reset();
                }
                return;
            }
            std::string line = c.buf.substr(0, nl);
            c.buf.erase(0, nl + 1);
            handle_request(c, line);
            if (!c.fd || !c.attached) {
                return;
            }
        }
        handle_frames(c);
    }

    void loop() {
        auto next_tick = std::chrono::steady_clock::now() + m_hooks.tick_interval;
        while (true) {
            std::vector<pollfd> fds;
            fds.push_back({m_wake.get(), POLLIN, 0});
            fds.push_back({m_listen, POLLIN, 0});
            fds.push_back({m_out, POLLIN, 0});
            fds.push_back({m_err >= 0 ? m_err : -1, POLLIN, 0});
            for (auto& c : m_clients) {
                fds.push_back({c.fd.get(), POLLIN, 0});
            }
            int timeout = -1;
            if (m_hooks.on_tick && m_hooks.tick_interval.count() > 0) {
                auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    next_tick - std::chrono::steady_clock::now());
                timeout = static_cast<int>(std::max<std::int64_t>(0, left.count()));
            }
            int r = ::poll(fds.data(), fds.size(), timeout);
            if (r < 0 && errno != EINTR) {
                return;
            }
            if (m_hooks.on_tick && m_hooks.tick_interval.count() > 0 &&
                std::chrono::steady_clock::now() >= next_tick) {
                int pid;
                {
                    std::lock_guard<std::mutex> g(m_mu);
                    pid = m_pid;
                }
                if (pid != 0) {
                    try {
                        m_hooks.on_tick(m_store, m_id, pid);
                    } catch (const std::exception&) {
                        // a hook's failure is its own to record
                    }
                }
                next_tick = std::chrono::steady_clock::now() + m_hooks.tick_interval;
            }
            if (r <= 0) {
                continue;
            }
            if (fds[0].revents != 0) {
                std::uint64_t n;
                (void)!::read(m_wake.get(), &n, sizeof n);
            }
            if (fds[2].revents != 0) {
                pump(m_out, 1, "stdout");
            }
            if (m_err >= 0 && fds[3].revents != 0) {
                pump(m_err, 2, "stderr");
            }
            for (std::size_t i = 0; i < m_clients.size(); ++i) {
                if (m_clients[i].fd && fds[4 + i].revents != 0) {
                    read_client(m_clients[i]);
                }
            }
            m_clients.erase(std::remove_if(m_clients.begin(), m_clients.end(),
                                           [](const Client& c) { return !c.fd; }),
                            m_clients.end());
            if (fds[1].revents & POLLIN) {
                int fd = ::accept4(m_listen, nullptr, nullptr, SOCK_CLOEXEC);
                if (fd >= 0) {
                    m_clients.push_back(Client{UniqueFd(fd), {}, false});
                }
            }
            std::uint64_t asked;
            {
                std::lock_guard<std::mutex> g(m_mu);
                asked = m_drain_asked;
            }
            // The end drains too, for a container that never ran.
            if (asked != m_drained || m_done) {
                pump(m_out, 1, "stdout");
                if (m_err >= 0) {
                    pump(m_err, 2, "stderr");
                }
                m_log.flush();
                m_drained = asked;
                {
                    std::lock_guard<std::mutex> g(m_mu);
                    m_drain_done = asked;
                }
                m_cv.notify_all();
            }
            if (m_done) {
                broadcast(3, std::to_string(m_exit_code));
                m_clients.clear();
                return;
            }
        }
    }

    const Store& m_store;
    std::string m_id;
    JsonLog& m_log;
    runner::Control& m_control;
    const MonitorHooks& m_hooks;
    NetworkHandler m_network;
    UniqueFd m_wake;
    int m_listen = -1, m_out = -1, m_err = -1, m_stdin = -1;
    std::vector<Client> m_clients;
    std::thread m_thread;
    std::mutex m_mu;
    std::condition_variable m_cv;
    int m_pid = 0;
    runner::Container* m_container = nullptr;
    bool m_attached = false;
    std::uint64_t m_drain_asked = 0, m_drain_done = 0; // under m_mu
    std::uint64_t m_drained = 0;                       // the I/O thread's own
    std::atomic<bool> m_stop_requested{false};
    std::atomic<bool> m_done{false};
    std::atomic<int> m_exit_code{0};
};

Pipe make_pipe() {
    Pipe p;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        throw_errno("pipe2");
    }
    p.read = UniqueFd(fds[0]);
    p.write = UniqueFd(fds[1]);
    return p;
}

void set_nonblock(int fd) {
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

// The state as the monitor sees it (no liveness correction: it is the monitor).
void update_state(const Store& store, const std::string& id, const std::function<void(State&)>& f) {
    Lock l = store.lock(id);
    State s = store.load_state(id);
    f(s);
    store.save_state(id, s);
}

// Once the container runs, the monitor idles in a small loop: the pages of
// code and read-only data that setting it up touched (image store, JSON,
// overlay, runner) are given back (MADV_DONTNEED) so that they stop counting
// in its RSS; any it needs again are read back from the page cache. Only
// mappings with no private (copied-on-write) page are dropped, as
// /proc/self/smaps says (never RELRO or data), so nothing changes meaning.
void drop_startup_pages() {
    std::string smaps;
    try {
        smaps = fs::read_file("/proc/self/smaps");
    } catch (const std::exception&) {
        return;
    }
    std::size_t pos = 0;
    unsigned long start = 0, end = 0;
    bool candidate = false;
    while (pos < smaps.size()) {
        std::size_t nl = smaps.find('\n', pos);
        if (nl == std::string::npos) {
            nl = smaps.size();
        }
        std::string_view line(smaps.data() + pos, nl - pos);
        pos = nl + 1;
        char perms[5] = {};
        unsigned long a = 0, b = 0, inode = 0;
        if (std::sscanf(std::string(line).c_str(), "%lx-%lx %4s %*s %*s %lu", &a, &b, perms,
                        &inode) == 4 &&
            line.find(':') != std::string_view::npos && line.find("kB") == std::string_view::npos) {
            start = a;
            end = b;
            candidate = inode != 0 && perms[1] != 'w' && perms[0] == 'r';
            continue;
        }
        if (candidate && line.rfind("Anonymous:", 0) == 0) {
            unsigned long kb = 1;
            std::sscanf(std::string(line.substr(10)).c_str(), "%lu", &kb);
            if (kb == 0) {
                ::madvise(reinterpret_cast<void*>(start), end - start, MADV_DONTNEED);
            }
            candidate = false;
        }
    }
}

} // namespace

int run_monitor(const std::string& store_root, const std::string& id, int ready_fd,
                bool attach_first, const MonitorHooks& hooks) {
    Ready ready(ready_fd);
    Store store(store_root);
    std::string dir = store.path(id);
    std::string lock_path = dir + "/monitor.lock";
    UniqueFd life(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!life || ::flock(life.get(), LOCK_EX | LOCK_NB) != 0) {
        ready.done("error 125 another monitor runs container " + id);
        return 1;
    }
    {
        // Informational (the flock is the truth): not synced.
        std::string pid_path = dir + "/monitor.pid";
        UniqueFd pf(::open(pid_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
        if (pf) {
            fs::write_all(pf.get(), std::to_string(::getpid()) + "\n");
        }
    }

    runner::RunSpec spec;
    NetworkConfig netcfg; // a bridge sandbox is made before each start
    std::string name;
    RestartPolicy policy;
    bool auto_remove = false;
    bool open_stdin = false;
    std::optional<JsonLog> log;
    UniqueFd listener;
    Pipe out, err, in;
    // Holds the image's snapshots (a lease gc honours) while the container runs.
    std::optional<snapshot::Store> images;
    // A lazy image's server (strata-lazy, the rootfs overlay's lower): the
    // monitor's child in the monitor's mount namespace, so it lives as long
    // as the rootfs (restarts included) and goes with the monitor.
    std::optional<layerfs::MountHandle> lazy_lower;
    try {
        auto config = store.load_config(id);
        spec = spec_from_json(config.at("StrataSpec"));
        netcfg = NetworkConfig::from_container(config);
        name = config.value("Name", std::string());
        if (!name.empty() && name.front() == '/') {
            name.erase(0, 1);
        }
        const auto& host = config.at("HostConfig");
        if (host.contains("RestartPolicy")) {
            policy.name = host["RestartPolicy"].value("Name", std::string("no"));
            policy.max_retries = host["RestartPolicy"].value("MaximumRetryCount", 0);
        }
        auto_remove = host.value("AutoRemove", false);
        open_stdin = config.at("Config").value("OpenStdin", false);
        LogOptions lo;
        if (host.contains("LogConfig") && host["LogConfig"].contains("Config")) {
            lo = log_options(host["LogConfig"]["Config"]);
        }
        log.emplace(store.log_path(id), lo);

        // Mounts of the monitor's own: they vanish with it.
        if (::unshare(CLONE_NEWNS) != 0) {
            throw_errno("unshare(CLONE_NEWNS)");
        }
        if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
            throw_errno("mount", "/ (make private)");
        }
        images.emplace(store_root);
        formats::Descriptor manifest =
            formats::parse_descriptor(config.at("StrataManifest").dump(), "StrataManifest");
        snapshot::Image img = images->load(manifest);
        // An image that is not unpacked is served from its compressed layers
        // (as `strata run` does): `--lazy` insists (an error saying why when it
        // cannot), `--no-lazy` unpacks, the default decides by size.
        const std::string lazy_flag = config.value("StrataLazy", std::string());
        const bool lazy =
            snapshot::choose_lazy(*images, img,
                                  lazy_flag == "on"    ? snapshot::LazyMode::on
                                  : lazy_flag == "off" ? snapshot::LazyMode::off
                                                       : snapshot::LazyMode::automatic);
        std::vector<std::string> lowers;
        if (lazy) {
            // suid,dev: setuid binaries and devices work as on the unpacked image.
            layerfs::MountSpec ls;
            ls.lazy = layerfs::LazyImage{images->root(), img.descriptor.digest.str(), true};
            ls.driver = layerfs::Driver::fuse;
            ls.foreground = true;
            ls.fsname = "strata-lazy";
            fs::mkdirs(dir + "/lazy", 0755);
            lazy_lower = layerfs::mount(ls, dir + "/lazy");
            lowers.push_back(lazy_lower->target());
        } else {
            lowers = snapshot::top_first(images->ensure_snapshots(img));
        }
        if (lowers.empty()) {
            fs::mkdirs(dir + "/empty", 0755);
            lowers.push_back(dir + "/empty");
        }
        layerfs::mount_overlay(layerfs::OverlaySpec{lowers, dir + "/upper", dir + "/work", false},
                               dir + "/rootfs");
        spec.rootfs = dir + "/rootfs";

        out = make_pipe();
        spec.stdout_fd = out.write.get();
        if (!spec.tty) {
            err = make_pipe();
            spec.stderr_fd = err.write.get();
        }
        if (open_stdin) {
            in = make_pipe();
            spec.stdin_fd = in.read.get();
        }
        set_nonblock(out.read.get());
        if (err.read) {
            set_nonblock(err.read.get());
        }

        SocketPath sp = socket_path(store, id);
        ::unlinkat(sp.dir.get(), "monitor.sock", 0);
        listener = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!listener ||
            ::bind(listener.get(), reinterpret_cast<sockaddr*>(&sp.addr), sp.len) != 0 ||
            ::listen(listener.get(), 64) != 0) {
            throw_errno("bind", dir + "/monitor.sock");
        }
    } catch (const std::exception& e) {
        std::string msg = e.what();
        update_state(store, id, [&](State& s) {
            s.status = "exited";
            s.exit_code = 125;
            s.error = msg;
            s.pid = 0;
            s.monitor_pid = 0;
            s.finished_at = now_rfc3339nano();
        });
        ready.done("error 125 " + msg);
        return 1;
    }

    // The sandbox of the current start, and netcfg, are shared with the I/O
    // thread's `network connect`/`disconnect` requests: a network joined
    // live is joined by this process (its endpoint's owner and lock holder,
    // so a crash leaves it stale for the next sweep as the others) and by
    // every later start of this monitor.
    std::mutex net_mu;
    std::optional<ContainerNetwork> net;
    runner::Control control;
    Io io(store, id, *log, control, hooks);
    io.set_network_handler([&](const std::string& verb, const std::string& arg) -> std::string {
        std::lock_guard<std::mutex> g(net_mu);
        try {
            auto req = nlohmann::json::parse(arg);
            std::string network = req.at("Network").get<std::string>();
            network::Sandbox* sb = net && net->sandbox ? &*net->sandbox : nullptr;
            if (verb == "network-connect") {
                network::EndpointRequest er;
                er.network = network;
                er.ipv4 = req.value("IPv4Address", std::string());
                er.aliases = req.value("Aliases", std::vector<std::string>());
                if (sb != nullptr) {
                    sb->connect(er);
                }
                netcfg.connect(er);
            } else {
                if (sb != nullptr) {
                    sb->disconnect(network);
                }
                try {
                    netcfg.disconnect(store_root, id, network);
                } catch (const Error&) {
                    if (sb == nullptr) {
                        throw; // not running: the configuration is the truth
                    }
                }
            }
            if (sb != nullptr) {
                fs::write_file_atomic(network_settings_path(store, id),
                                      sb->settings().dump(2) + "\n", 0600);
            }
            return "ok";
        } catch (const std::exception& e) {
            return std::string("error ") + e.what();
        }
    });
    io.run_thread(listener.get(), out.read.get(), err.read ? err.read.get() : -1,
                  in.write ? in.write.release() : -1);
    if (attach_first) {
        ready.line("listening");
        io.wait_attached(std::chrono::seconds(30));
    }
    bool first = true;
    int last_code = 0;
    auto delay = std::chrono::milliseconds(100);
    while (true) {
        std::optional<runner::Container> c;
        runner::RunSpec run_spec = spec;
        try {
            {
                std::lock_guard<std::mutex> g(net_mu);
                net.emplace(ContainerNetwork::attach(store_root, id, name, netcfg, run_spec));
                if (auto settings = net->settings()) {
                    fs::write_file_atomic(network_settings_path(store, id),
                                          settings->dump(2) + "\n", 0600);
                }
            }
            c.emplace(runner::Container::start(run_spec));
        } catch (const std::exception& e) {
            {
                std::lock_guard<std::mutex> g(net_mu);
                net.reset();
            }
            ::unlink(network_settings_path(store, id).c_str());
            int code = 125;
            if (auto* se = dynamic_cast<const runner::StartError*>(&e)) {
                code = se->exit_code();
            }
            std::string msg = e.what();
            update_state(store, id, [&](State& s) {
                s.status = "exited";
                s.exit_code = code;
                s.error = msg;
                s.pid = 0;
                s.finished_at = now_rfc3339nano();
            });
            last_code = code;
            if (first) {
                ready.done("error " + std::to_string(code) + " " + msg);
            }
            break;
        }
        auto started = std::chrono::steady_clock::now();
        update_state(store, id, [&](State& s) {
            s.status = "running";
            s.pid = c->pid();
            s.started_at = now_rfc3339nano();
            s.monitor_pid = ::getpid();
            s.exit_code = 0;
            s.error.clear();
            s.oom_killed = false;
            s.dead = false;
        });
        io.set_running(c->pid(), &*c);
        record_container_event(store, id, "start");
        if (first) {
            ready.done("ok");
            first = false;
            drop_startup_pages();
        }
        int code;
        try {
            code = c->wait(&control).shell_code();
        } catch (const runner::Cancelled&) {
            code = 137;
        }
        io.set_running(0, nullptr);
        io.drain(std::chrono::seconds(2));
        bool oom = c->oom_killed(); // the memory cgroup counted a kill (Docker's OOMKilled)
        c.reset();
        {
            std::lock_guard<std::mutex> g(net_mu);
            net.reset(); // veths, addresses, an unused bridge
            ::unlink(network_settings_path(store, id).c_str());
        }
        last_code = code;
        if (oom) {
            record_container_event(store, id, "oom");
        }
        record_container_event(store, id, "die", {{"exitCode", std::to_string(code)}});
        bool restart = false;
        bool manual = io.stop_requested();
        update_state(store, id, [&](State& s) {
            s.status = "exited";
            s.pid = 0;
            s.exit_code = code;
            s.finished_at = now_rfc3339nano();
            s.oom_killed = oom;
            if (hooks.on_exit) {
                hooks.on_exit(store, id, s);
            }
            manual = manual || s.manually_stopped;
            if (!manual) {
                if (policy.name == "always" || policy.name == "unless-stopped") {
                    restart = true;
                } else if (policy.name == "on-failure" && code != 0) {
                    restart = policy.max_retries == 0 || s.restart_count < policy.max_retries;
                }
            }
            if (restart) {
                s.status = "restarting";
                s.restart_count += 1;
            }
        });
        if (!restart) {
            break;
        }
        // Docker's back-off: 100 ms doubling, reset after 10 s of running.
        if (std::chrono::steady_clock::now() - started > std::chrono::seconds(10)) {
            delay = std::chrono::milliseconds(100);
        }
        if (io.sleep_unless_stopped(delay)) {
            update_state(store, id, [&](State& s) { s.status = "exited"; });
            break;
        }
        delay = std::min<std::chrono::milliseconds>(delay * 2, std::chrono::minutes(1));
    }
    io.finish(last_code);
    ::umount2((dir + "/rootfs").c_str(), MNT_DETACH);
    // The lazy server goes now: --rm removes the container's directory,
    // which its mount (<id>/lazy, in this namespace) would keep busy.
    lazy_lower.reset();
    update_state(store, id, [&](State& s) { s.monitor_pid = 0; });
    if (auto_remove) {
        try {
            nlohmann::ordered_json config = store.load_config(id);
            store.remove(id);
            // Docker's --rm: the container's anonymous volumes go with it.
            snapshot::Store images(store.store_root());
            remove_anonymous_volumes(images, config);
        } catch (const std::exception&) {
            // removed by someone else meanwhile
        }
    }
    return 0;
}

std::string find_monitor_program() {
    char exe[4096];
    ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        std::string dir = fs::dirname(std::string(exe, static_cast<std::size_t>(n)));
        for (const auto& c : {fs::join(dir, "strata-monitor"),
                              fs::join(fs::dirname(dir), "containers/strata-monitor")}) {
            if (::access(c.c_str(), X_OK) == 0) {
                return c;
            }
        }
    }
    if (auto p = find_program("strata-monitor")) {
        return *p;
    }
    throw Error("cannot find the strata-monitor program (looked beside \"/proc/self/exe\" and in "
                "PATH)");
}

StartHandle begin_start(const Store& store, const std::string& id, bool attach_first) {
    {
        State s = store.load_state(id);
        if (!s.running()) {
            wait_monitor_exit(store, id); // one that is finishing
        }
        Lock l = store.lock(id);
        if (s.running() || store.monitor_alive(id)) {
            return {};
        }
        s.manually_stopped = false;
        store.save_state(id, s);
    }
    std::string prog = find_monitor_program();
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) {
        throw_errno("pipe2");
    }
    UniqueFd rd(p[0]), wr(p[1]);
    std::vector<std::string> args = {prog,         "--root", store.store_root(), "--id", id,
                                     "--ready-fd", "3"};
    if (attach_first) {
        args.push_back("--attach-first");
    }
    std::vector<char*> argv;
    for (auto& a : args) {
        argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) {
        throw_errno("fork");
    }
    if (pid == 0) {
        ::setsid();
        pid_t g = ::fork();
        if (g != 0) {
            ::_exit(g < 0 ? 1 : 0);
        }
        if (wr.get() == 3) {
            ::fcntl(3, F_SETFD, 0);
        } else {
            ::dup2(wr.get(), 3);
        }
        int null = ::open("/dev/null", O_RDWR);
        ::dup2(null, 0);
        ::dup2(null, 1);
        ::dup2(null, 2);
        ::signal(SIGPIPE, SIG_DFL);
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    wr.reset();
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    StartHandle h{std::move(rd)};
    if (attach_first) {
        std::string line = read_line(h.ready.get());
        if (line != "listening") {
            if (line.rfind("error ", 0) == 0) {
                std::string rest = line.substr(6);
                throw runner::StartError(rest.substr(rest.find(' ') + 1), std::atoi(rest.c_str()));
            }
            throw Error("the monitor of container " + id + " ended before listening");
        }
    }
    return h;
}

void finish_start(StartHandle& h) {
    if (!h.ready) {
        return;
    }
    std::string line = read_line(h.ready.get());
    h.ready.reset();
    if (line == "ok") {
        return;
    }
    if (line.rfind("error ", 0) == 0) {
        std::string rest = line.substr(6);
        int code = std::atoi(rest.c_str());
        throw runner::StartError(rest.substr(rest.find(' ') + 1), code == 0 ? 125 : code);
    }
    throw Error("the container's monitor ended before starting it");
}

UniqueFd connect_monitor(const Store& store, const std::string& id) {
    SocketPath sp = socket_path(store, id);
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) {
        throw_errno("socket");
    }
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sp.addr), sp.len) != 0) {
        return {};
    }
    return fd;
}

std::optional<std::string> monitor_request(const Store& store, const std::string& id,
                                           const std::string& line) {
    UniqueFd fd;
    try {
        fd = connect_monitor(store, id);
    } catch (const NoSuchContainer&) {
        return std::nullopt; // removed meanwhile
    }
    if (!fd) {
        return std::nullopt;
    }
    write_line(fd.get(), line);
    std::string answer = read_line(fd.get());
    if (answer.empty()) {
        return std::nullopt;
    }
    return answer;
}

void write_frame(int fd, unsigned char stream, std::string_view payload) {
    unsigned char h[8] = {stream,
                          0,
                          0,
                          0,
                          static_cast<unsigned char>(payload.size() >> 24),
                          static_cast<unsigned char>(payload.size() >> 16),
                          static_cast<unsigned char>(payload.size() >> 8),
                          static_cast<unsigned char>(payload.size())};
    std::string frame(reinterpret_cast<char*>(h), 8);
    frame.append(payload);
    std::size_t off = 0;
    while (off < frame.size()) {
        ssize_t n = ::send(fd, frame.data() + off, frame.size() - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            throw_errno("send", "attach stream");
        }
        off += static_cast<std::size_t>(n);
    }
}

bool read_frame(int fd, unsigned char& stream, std::string& payload) {
    unsigned char h[8];
    if (fs::read_full(fd, h, 8) != 8) {
        return false;
    }
    stream = h[0];
    std::size_t len = (std::size_t(h[4]) << 24) | (std::size_t(h[5]) << 16) |
                      (std::size_t(h[6]) << 8) | std::size_t(h[7]);
    payload.resize(len);
    return len == 0 || fs::read_full(fd, payload.data(), len) == len;
}

void wait_monitor_exit(const Store& store, const std::string& id) {
    for (int i = 0; i < 3000 && store.monitor_alive(id); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

State wait_not_running(const Store& store, const std::string& id) {
    State last;
    while (true) {
        State s;
        try {
            s = store.load_state(id);
        } catch (const NoSuchContainer&) {
            // removed meanwhile (run --rm -d): it ended with its last state
            last.status = "exited";
            last.pid = 0;
            return last;
        }
        last = s;
        if (!s.running() && !(s.status == "created" && store.monitor_alive(id))) {
            return s;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

namespace {
// Whether the container still runs; a container removed meanwhile (an
// auto-removed one) does not.
bool wait_running_once(const Store& store, const std::string& id) {
    try {
        return store.load_state(id).running();
    } catch (const NoSuchContainer&) {
        return false;
    }
}
} // namespace

void stop(const Store& store, const std::string& id, int timeout, int sig) {
    State s = store.load_state(id);
    if (!s.running()) {
        return;
    }
    auto config = store.load_config(id);
    const auto& cc = config.at("Config");
    if (sig == 0) {
        std::string name = cc.value("StopSignal", std::string());
        sig = name.empty() ? SIGTERM : parse_signal(name);
    }
    if (timeout < 0) {
        timeout = cc.value("StopTimeout", 10);
    }
    try {
        Lock l = store.lock(id);
        State cur = store.load_state(id);
        cur.manually_stopped = true;
        store.save_state(id, cur);
    } catch (const NoSuchContainer&) {
        return; // it ended and removed itself meanwhile
    }
    // dockerd's events: kill (the signal), die (the monitor's), stop.
    record_container_event(store, id, "kill", {{"signal", std::to_string(sig)}});
    monitor_request(store, id, "stop " + std::to_string(sig));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout);
    while (std::chrono::steady_clock::now() < deadline) {
        if (!wait_running_once(store, id)) {
            wait_monitor_exit(store, id);
            record_container_event(store, id, "stop");
            return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    record_container_event(store, id, "kill", {{"signal", std::to_string(SIGKILL)}});
    monitor_request(store, id, "stop 9");
    wait_not_running(store, id);
    wait_monitor_exit(store, id);
    record_container_event(store, id, "stop");
}

void kill(const Store& store, const std::string& id, int sig) {
    State s = store.load_state(id);
    if (!s.running()) {
        throw Error("Cannot kill container: " + id + ": Container " + id + " is not running");
    }
    auto config = store.load_config(id);
    std::string stop_name = config.at("Config").value("StopSignal", std::string());
    int stop_sig = stop_name.empty() ? SIGTERM : parse_signal(stop_name);
    // Docker: a kill with the stop signal or SIGKILL is a stop asked for.
    bool manual = sig == SIGKILL || sig == stop_sig;
    if (manual) {
        Lock l = store.lock(id);
        State cur = store.load_state(id);
        cur.manually_stopped = true;
        store.save_state(id, cur);
    }
    record_container_event(store, id, "kill", {{"signal", std::to_string(sig)}});
    auto answer = monitor_request(store, id, (manual ? "stop " : "kill ") + std::to_string(sig));
    if (!answer || *answer != "ok") {
        throw Error("Cannot kill container: " + id + ": Container " + id + " is not running");
    }
}

} // namespace strata::containers
