// The hijacked attach stream (POST /containers/{id}/attach) and the TTY's
// resize (POST /containers/{id}/resize), through the
// container's monitor socket exactly as strata attach, start -a and run
// reach a container's streams (containers/monitor.hpp: "attach\n", then
// frames). An attach may come before the start (docker run and docker
// start -a attach first): it waits here until POST /start, which starts the
// container through a monitor that waits for its attaches (as strata run
// does) and hands them their connections, so no output is lost.
#include "cli/container_cli.hpp"
#include "cli/serve/routes.hpp"
#include "containers/monitor.hpp"
#include "containers/store.hpp"
#include "util/fs.hpp"

#include <cerrno>
#include <map>
#include <memory>
#include <mutex>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace strata::cli::serve {

namespace {

// An attach waiting for its container's start.
struct PendingAttach {
    Pipe wake = Pipe::create(); // a byte once delivered
    std::mutex mu;
    UniqueFd conn; // the monitor connection (attached); empty: the start failed
    bool delivered = false;

    void deliver(UniqueFd c) {
        {
            std::lock_guard<std::mutex> g(mu);
            conn = std::move(c);
            delivered = true;
        }
        char b = 1;
        (void)!::write(wake.write.get(), &b, 1);
    }
};

std::mutex g_pending_mu;
std::multimap<std::string, std::shared_ptr<PendingAttach>> g_pending; // by container ID

// Removes p from the waiting attaches; false when a start took it already.
bool unregister(const std::string& id, const std::shared_ptr<PendingAttach>& p) {
    auto [b, e] = g_pending.equal_range(id);
    for (auto it = b; it != e; ++it) {
        if (it->second == p) {
            g_pending.erase(it);
            return true;
        }
    }
    return false;
}

// A monitor connection that asked for the streams; empty when no monitor
// answers (the container ended).
UniqueFd attach_monitor(const containers::Store& cs, const std::string& id) {
    UniqueFd conn = containers::connect_monitor(cs, id);
    if (conn) {
        fs::write_all(conn.get(), "the container's monitor socket", std::string_view("attach\n"));
    }
    return conn;
}

struct Streams {
    bool in = false, out = false, err = false;
    // The end of the client's stdin closes the container's (docker run -i);
    // otherwise it ends the attach and the container's stdin stays open
    // (docker attach to a `run -d -i` container), as dockerd does.
    bool stdin_once = false;
    bool tty = false;        // raw bytes; else Docker's multiplexed frames
    std::string detach_keys; // in the client's stdin: the attach ends, the container runs on
};

// What the container wrote on `stream` (1 stdout, 2 stderr) to the client.
bool send_output(int client, const Streams& s, int stream, std::string_view data) {
    if ((stream == 1 && !s.out) || (stream == 2 && !s.err)) {
        return true;
    }
    return api::send_all(client, s.tty ? std::string(data) : api::mux_frame(stream, data));
}

// Copies between the client and the monitor until the container ends (the
// monitor's exit frame or its end) or the client leaves. stdin_data: what
// the client sent before; stdin_closed: its half-close came already.
void pump(int client, int monitor, const Streams& s, const std::string& stdin_data,
          bool stdin_closed) {
    DetachMatcher detach{s.detach_keys};
    try {
        if (s.in && !stdin_data.empty()) {
            std::string pass = detach.feed(stdin_data);
            if (!pass.empty()) {
                containers::write_frame(monitor, 0, pass);
            }
            if (detach.detached) {
                return;
            }
        }
        if (s.in && stdin_closed) {
            if (!s.stdin_once) {
                return;
            }
            containers::write_frame(monitor, 1, "");
        }
        bool client_open = !stdin_closed;
        for (;;) {
            pollfd fds[2] = {{monitor, POLLIN, 0},
                             {client, static_cast<short>(client_open ? POLLIN : 0), 0}};
            if (::poll(fds, 2, -1) < 0) {
                if (errno == EINTR) {
                    continue;
                }
                return;
            }
            if (fds[1].revents & POLLIN) {
                char buf[65536];
                ssize_t n = ::read(client, buf, sizeof buf);
                if (n < 0 && errno != EINTR) {
                    return; // reset: the client is gone
                }
                if (n > 0 && s.in) {
                    std::string pass =
                        detach.feed(std::string_view(buf, static_cast<std::size_t>(n)));
                    if (!pass.empty()) {
                        containers::write_frame(monitor, 0, pass);
                    }
                    if (detach.detached) {
                        return; // dockerd's detach: the attach ends, the container runs on
                    }
                } else if (n == 0) {
                    // The client's half-close: with StdinOnce the
                    // container's stdin ends (the output keeps coming);
                    // else the attach ends. Without stdin it means nothing.
                    client_open = false;
                    if (s.in && !s.stdin_once) {
                        return;
                    }
                    if (s.in) {
                        containers::write_frame(monitor, 1, "");
                    }
                }
            } else if (fds[1].revents & (POLLHUP | POLLERR)) {
                return; // closed both ways: nobody reads the output
            }
            if (fds[0].revents != 0) {
                unsigned char stream;
                std::string payload;
                if (!containers::read_frame(monitor, stream, payload) || stream == 3) {
                    return; // the container ended
                }
                if ((stream == 1 || stream == 2) && !send_output(client, s, stream, payload)) {
                    return;
                }
            }
        }
    } catch (const std::exception&) {
        // the monitor went away: the stream ends
    }
}

// Waits for the start to hand over the monitor connection, keeping what the
// client sends meanwhile (up to a limit: then it waits in the socket).
// Every 250 ms it looks for a container started or removed by others.
UniqueFd wait_for_start(const containers::Store& cs, const std::string& id,
                        const std::shared_ptr<PendingAttach>& p, int client, bool keep_stdin,
                        std::string& stdin_data, bool& stdin_closed) {
    constexpr std::size_t k_limit = 1 << 20;
    for (;;) {
        bool reading = !stdin_closed && stdin_data.size() < k_limit;
        pollfd fds[2] = {{p->wake.read.get(), POLLIN, 0},
                         {client, static_cast<short>(reading ? POLLIN : 0), 0}};
        int r = ::poll(fds, 2, 250);
        if (r < 0 && errno != EINTR) {
            std::lock_guard<std::mutex> g(g_pending_mu);
            unregister(id, p);
            return {};
        }
        if (fds[0].revents != 0) {
            std::lock_guard<std::mutex> g(p->mu);
            return std::move(p->conn);
        }
        bool gone = false;
        if (fds[1].revents & POLLIN) {
            char buf[65536];
            ssize_t n = ::read(client, buf, sizeof buf);
            if (n > 0 && keep_stdin) {
                stdin_data.append(buf, static_cast<std::size_t>(n));
            } else if (n == 0) {
                stdin_closed = true; // a half-close: the output is still wanted
            } else if (n < 0 && errno != EINTR) {
                gone = true;
            }
        } else if (fds[1].revents & (POLLERR | POLLHUP)) {
            gone = true; // closed both ways
        }
        if (gone) {
            std::lock_guard<std::mutex> g(g_pending_mu);
            if (unregister(id, p)) {
                return {}; // the client left before the start
            }
            // a start is handing the connection over: take it (the pump ends)
        }
        if (r == 0) {
            std::lock_guard<std::mutex> g(g_pending_mu);
            bool waiting = false;
            for (auto [b, e] = g_pending.equal_range(id); b != e; ++b) {
                waiting = waiting || b->second == p;
            }
            if (!waiting) {
                continue; // a start took it: the byte comes
            }
            bool exists = true, running = false;
            try {
                running = cs.load_state(id).running();
            } catch (const containers::NoSuchContainer&) {
                exists = false;
            }
            if (!exists || running) {
                // Removed, or started without this server (strata start).
                unregister(id, p);
                return running ? attach_monitor(cs, id) : UniqueFd{};
            }
        }
    }
}

// POST /containers/{id}/attach?stream=&stdin=&stdout=&stderr=&logs=
void attach(Context& ctx, api::Request& req, api::Exchange& ex) {
    containers::Store cs(ctx.store_root());
    std::string id = cs.resolve(req.param("id"));
    auto config = cs.load_config(id);
    const auto& c = config["Config"];
    Streams s;
    s.tty = c.value("Tty", false);
    // dockerd attaches stdin only to a container created with it open (-i).
    s.in = req.query_bool("stdin") && c.value("OpenStdin", false);
    s.stdin_once = c.value("StdinOnce", false);
    s.out = req.query_bool("stdout");
    s.err = req.query_bool("stderr");
    s.detach_keys = parse_detach_keys(req.maybe_query("detachKeys").value_or(""));
    bool stream = req.query_bool("stream");
    if (cs.load_state(id).status == "paused") {
        throw api::HttpError(409, "You cannot attach to a paused container, unpause it first");
    }
    // The attach is in place before the client hears 101: the docker CLI
    // sends POST /start as soon as it does, and that start must find this
    // attach waiting (or the first output would be gone before it looks).
    UniqueFd conn;
    std::shared_ptr<PendingAttach> p;
    bool ended = false; // running when looked at, ended before the connection
    if (stream) {
        std::lock_guard<std::mutex> g(g_pending_mu);
        if (cs.load_state(id).running()) {
            conn = attach_monitor(cs, id);
            ended = !conn;
        } else {
            p = std::make_shared<PendingAttach>();
            g_pending.emplace(id, p);
        }
    }
    api::Exchange::Hijacked h = ex.hijack();
    if (h.fd < 0) {
        if (p) { // the client is gone: a start that took it meanwhile drops it with p
            std::lock_guard<std::mutex> g(g_pending_mu);
            unregister(id, p);
        }
        return;
    }
    if (req.query_bool("logs")) { // what the log holds so far, then the stream
        bool ok = true;
        read_logs(cs, id, LogOptions{}, [&](const containers::LogEntry& e, const std::string& t) {
            ok = send_output(h.fd, s, e.stream == "stderr" ? 2 : 1, t);
            return ok;
        });
        if (!ok) {
            if (p) {
                std::lock_guard<std::mutex> g(g_pending_mu);
                unregister(id, p);
            }
            return;
        }
    }
    if (!stream || ended) {
        return;
    }
    std::string stdin_data = std::move(h.buffered);
    bool stdin_closed = false;
    if (p) {
        conn = wait_for_start(cs, id, p, h.fd, s.in, stdin_data, stdin_closed);
        if (!conn) {
            return;
        }
    }
    pump(h.fd, conn.get(), s, s.in ? stdin_data : std::string(), stdin_closed);
}

// POST /containers/{id}/resize?h=&w=: the TTY's size, as strata's attach
// sends it (a resize frame on an attach connection of its own).
void resize(Context& ctx, api::Request& req, api::Exchange& ex) {
    containers::Store cs(ctx.store_root());
    std::string id = cs.resolve(req.param("id"));
    auto rows = req.query_int("h", 0);
    auto cols = req.query_int("w", 0);
    if (rows < 0 || cols < 0 || rows > 65535 || cols > 65535) {
        throw api::HttpError(400, "invalid terminal size");
    }
    UniqueFd conn;
    if (cs.load_state(id).running()) {
        conn = attach_monitor(cs, id);
    }
    if (!conn) {
        throw api::HttpError(409, "Container " + id + " is not running");
    }
    containers::write_frame(conn.get(), 2, std::to_string(rows) + " " + std::to_string(cols));
    ex.respond_empty(200);
}

} // namespace

void start_container_attached(Context& ctx, const std::string& id) {
    containers::Store cs(ctx.store_root());
    std::vector<std::shared_ptr<PendingAttach>> waiting;
    {
        std::lock_guard<std::mutex> g(g_pending_mu);
        auto [b, e] = g_pending.equal_range(id);
        for (auto it = b; it != e; ++it) {
            waiting.push_back(it->second);
        }
        g_pending.erase(b, e);
    }
    if (waiting.empty()) {
        start_container(ctx, id, false, false);
        return;
    }
    // What start_container does with attach: a monitor that starts the
    // container once attached, the attach connections, then the start.
    struct Release { // attaches not handed a connection end (the start failed)
        std::vector<std::shared_ptr<PendingAttach>>& w;
        ~Release() {
            for (auto& p : w) {
                if (!p->delivered) {
                    p->deliver(UniqueFd{});
                }
            }
        }
    } release{waiting};
    containers::StartHandle handle = containers::begin_start(cs, id, true);
    for (auto& p : waiting) {
        p->deliver(attach_monitor(cs, id));
    }
    containers::finish_start(handle);
}

void add_attach_routes(api::Router& router, Context& ctx) {
    router.add("POST", "/containers/{id}/attach",
               [&ctx](api::Request& req, api::Exchange& ex) { attach(ctx, req, ex); });
    router.add("POST", "/containers/{id}/resize",
               [&ctx](api::Request& req, api::Exchange& ex) { resize(ctx, req, ex); });
}

} // namespace strata::cli::serve
