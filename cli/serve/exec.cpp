// exec through the API: POST /containers/{id}/exec (an exec instance,
// kept in this server's memory as dockerd keeps them), POST
// /exec/{id}/start (hijacked: the client's bytes to the process's stdin,
// its output in Docker's multiplexed framing) and GET /exec/{id}/json (the
// exit code the docker CLI exits with). The process is started as strata
// exec and health checks start theirs: runner::Exec with the container's
// spec (containers::exec_spec_for).
#include "runner/exec.hpp"
#include "cli/serve/routes.hpp"
#include "containers/events.hpp"
#include "containers/health.hpp"
#include "containers/monitor.hpp"
#include "containers/names.hpp"
#include "containers/spec.hpp"
#include "containers/store.hpp"
#include "util/fs.hpp"

#include <cerrno>
#include <fcntl.h>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <poll.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace strata::cli::serve {

std::string parse_detach_keys(const std::string& text) {
    if (text.empty()) {
        return "\x10\x11";
    }
    std::string out;
    std::size_t start = 0;
    for (;;) {
        std::size_t comma = text.find(',', start);
        std::string key =
            text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (key.size() == 1) {
            out += key;
        } else if (key.size() == 6 && key.starts_with("ctrl-")) {
            char c = key[5];
            if (c >= 'a' && c <= 'z') {
                out += static_cast<char>(c - 'a' + 1);
            } else if (c >= '@' && c <= '_') { // @ A..Z [ \ ] ^ _
                out += static_cast<char>(c - '@');
            } else {
                throw api::HttpError(400, "Unknown character: '" + key + "'");
            }
        } else {
            throw api::HttpError(400, "Unknown character: '" + key + "'");
        }
        if (comma == std::string::npos) {
            break;
        }
        start = comma + 1;
    }
    return out;
}

std::string DetachMatcher::feed(std::string_view data) {
    std::string out;
    for (char c : data) {
        if (detached) {
            break;
        }
        if (c == keys[matched]) {
            if (++matched == keys.size()) {
                detached = true;
            }
            continue;
        }
        out.append(keys, 0, matched);
        matched = 0;
        if (c == keys[0]) {
            matched = 1;
            continue;
        }
        out += c;
    }
    return out;
}

namespace {

using nlohmann::json;
using nlohmann::ordered_json;

struct ExecInstance {
    std::string id;
    std::string container;
    std::vector<std::string> argv;
    std::vector<std::string> env;
    std::string user, workdir;
    bool privileged = false;
    bool in = false, out = false, err = false;
    bool tty = false;
    std::string detach_keys; // the bytes that detach (dockerd's default ctrl-p ctrl-q)
    std::string detach_keys_text;
    // under g_mu:
    runner::Exec* proc = nullptr; // while it runs with a TTY: for resize
    std::optional<std::pair<unsigned short, unsigned short>> size; // asked before the start
    bool started = false, running = false;
    std::optional<int> exit_code;
    int pid = 0;
};

std::mutex g_mu;
std::map<std::string, std::shared_ptr<ExecInstance>> g_execs;

// Forgets the exec instances of removed containers (dockerd deletes them
// with the container). Under g_mu.
void prune(const containers::Store& cs) {
    for (auto it = g_execs.begin(); it != g_execs.end();) {
        bool gone = false;
        if (!it->second->running) {
            try {
                cs.load_state(it->second->container);
            } catch (const containers::NoSuchContainer&) {
                gone = true;
            }
        }
        it = gone ? g_execs.erase(it) : std::next(it);
    }
}

std::shared_ptr<ExecInstance> find_exec(const containers::Store& cs, const std::string& id) {
    std::lock_guard<std::mutex> g(g_mu);
    prune(cs);
    auto it = g_execs.find(id);
    if (it == g_execs.end()) {
        throw api::HttpError(404, "No such exec instance: " + id);
    }
    return it->second;
}

std::vector<std::string> strings(const json& body, const char* key) {
    std::vector<std::string> out;
    if (!body.contains(key) || body[key].is_null()) {
        return out;
    }
    if (!body[key].is_array()) {
        throw api::HttpError(400, std::string(key) + ": expected a list of strings");
    }
    for (const auto& v : body[key]) {
        if (!v.is_string()) {
            throw api::HttpError(400, std::string(key) + ": expected a list of strings");
        }
        out.push_back(v.get<std::string>());
    }
    return out;
}

json parse_body(api::Exchange& ex) {
    std::string text = ex.read_body(1 << 20);
    if (text.empty()) {
        return json::object();
    }
    try {
        json j = json::parse(text);
        if (j.is_object()) {
            return j;
        }
    } catch (const json::exception&) {
    }
    throw api::HttpError(400, "invalid JSON in the request body");
}

// The running container, or dockerd's 409.
containers::State running_state(const containers::Store& cs, const std::string& id) {
    containers::State s = cs.load_state(id);
    if (s.status == "paused") {
        throw api::HttpError(409,
                             "Container " + id + " is paused, unpause the container before exec");
    }
    if (!s.running() || s.pid <= 0) {
        throw api::HttpError(409, "Container " + id + " is not running");
    }
    return s;
}

// POST /containers/{id}/exec
// dockerd's exec event actions carry the command: "exec_start: sh -c true".
std::string command_line(const std::vector<std::string>& argv) {
    std::string out;
    for (const auto& a : argv) {
        out += (out.empty() ? "" : " ") + a;
    }
    return out;
}

void create(Context& ctx, api::Request& req, api::Exchange& ex) {
    containers::Store cs(ctx.store_root());
    std::string cid = cs.resolve(req.param("id"));
    json body = parse_body(ex);
    running_state(cs, cid);
    auto e = std::make_shared<ExecInstance>();
    e->tty = body.value("Tty", false);
    e->detach_keys_text = body.value("DetachKeys", std::string());
    e->detach_keys = parse_detach_keys(e->detach_keys_text);
    e->id = containers::new_id();
    e->container = cid;
    e->argv = strings(body, "Cmd");
    if (e->argv.empty()) {
        throw api::HttpError(400, "No exec command specified");
    }
    e->env = strings(body, "Env");
    e->user = body.value("User", std::string());
    e->workdir = body.value("WorkingDir", std::string());
    e->privileged = body.value("Privileged", false);
    e->in = body.value("AttachStdin", false);
    e->out = body.value("AttachStdout", false);
    e->err = body.value("AttachStderr", false);
    {
        std::lock_guard<std::mutex> g(g_mu);
        prune(cs);
        g_execs[e->id] = e;
    }
    containers::record_container_event(cs, cid, "exec_create: " + command_line(e->argv),
                                       {{"execID", e->id}});
    ex.respond_json(201, ordered_json{{"Id", e->id}});
}

// Copies the client's bytes to the process's stdin and its output to the
// client until the output ends; false when the client left.
bool pump(int client, std::string pending_in, UniqueFd& in, UniqueFd& out, UniqueFd& err) {
    bool client_open = true;
    auto feed = [&](std::string_view data) {
        if (in && !data.empty()) {
            try {
                fs::write_all(in.get(), "the exec's stdin", data);
            } catch (const std::exception&) {
                in.reset(); // the process closed its stdin
            }
        }
    };
    feed(pending_in);
    while (out || err) {
        pollfd fds[3] = {{client, static_cast<short>(client_open ? POLLIN : 0), 0},
                         {out ? out.get() : -1, POLLIN, 0},
                         {err ? err.get() : -1, POLLIN, 0}};
        if (::poll(fds, 3, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            return false;
        }
        char buf[65536];
        if (fds[0].revents & POLLIN) {
            ssize_t n = ::read(client, buf, sizeof buf);
            if (n > 0) {
                feed(std::string_view(buf, static_cast<std::size_t>(n)));
            } else if (n == 0) {
                client_open = false; // half-close: stdin ends
                in.reset();
            } else if (errno != EINTR) {
                return false;
            }
        } else if (fds[0].revents & (POLLHUP | POLLERR)) {
            return false;
        }
        for (int i = 1; i <= 2; ++i) {
            UniqueFd& fd = i == 1 ? out : err;
            if (!fd || fds[i].revents == 0) {
                continue;
            }
            ssize_t n = ::read(fd.get(), buf, sizeof buf);
            if (n > 0) {
                if (!api::send_all(
                        client,
                        api::mux_frame(i, std::string_view(buf, static_cast<std::size_t>(n))))) {
                    return false;
                }
            } else if (n == 0 || errno != EINTR) {
                fd.reset();
            }
        }
    }
    return true;
}

// exec -t: the process on a pty (runner::Exec copies between it and the
// client's socket, raw bytes both ways, as dockerd with a TTY). The
// client's bytes come through a pipe fed by a thread that watches for the
// detach keys: they end the connection and leave the process running
// (dockerd's detach), the handler then waiting for its end. Returns the
// exit code.
int run_with_tty(const std::shared_ptr<ExecInstance>& e, runner::ExecSpec spec,
                 api::Exchange::Hijacked& h) {
    Pipe in = Pipe::create();
    spec.tty = true;
    spec.stdin_fd = e->in ? in.read.get() : -1;
    spec.stdout_fd = h.fd;
    spec.stderr_fd = h.fd;
    std::optional<runner::Exec> proc;
    try {
        proc.emplace(runner::Exec::start(spec));
    } catch (const runner::StartError& x) {
        api::send_all(h.fd, std::string(x.what()) + "\r\n");
        return x.exit_code();
    }
    // in.read stays open: runner::Exec copies from it to the pty.
    {
        std::lock_guard<std::mutex> g(g_mu);
        e->running = true;
        e->pid = proc->pid();
        e->proc = &*proc;
        if (e->size) {
            proc->resize(e->size->first, e->size->second);
        }
    }
    // The client's bytes to the process, but the detach keys. A prefix of
    // them is held back until the next byte shows whether it is one.
    int client = h.fd;
    int to_proc = in.write.get();
    std::string keys = e->detach_keys;
    std::thread feeder([client, to_proc, keys, pending = std::move(h.buffered)]() mutable {
        DetachMatcher m{keys};
        auto feed = [&](const char* p, std::size_t n) {
            std::string out = m.feed(std::string_view(p, n));
            try {
                fs::write_all(to_proc, "the exec's terminal", out);
            } catch (const std::exception&) {
                return false;
            }
            if (m.detached) {
                ::shutdown(client, SHUT_RDWR); // detached: the connection ends
                return false;
            }
            return true;
        };
        if (!pending.empty() && !feed(pending.data(), pending.size())) {
            return;
        }
        char buf[4096];
        for (;;) {
            ssize_t n = ::read(client, buf, sizeof buf);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0 || !feed(buf, static_cast<std::size_t>(n))) {
                return;
            }
        }
    });
    // The exit code is set before the connection ends: the client asks
    // for it (GET /exec/{id}/json) as soon as its stream ends.
    auto stop_feeder = [&](std::optional<int> code) {
        {
            std::lock_guard<std::mutex> g(g_mu);
            e->proc = nullptr;
            if (code) {
                e->running = false;
                e->exit_code = *code;
            }
        }
        ::shutdown(client, SHUT_RDWR); // the feeder's read ends
        feeder.join();
    };
    std::optional<ExitStatus> st;
    try {
        st.emplace(proc->wait());
    } catch (...) {
        stop_feeder(std::nullopt);
        throw;
    }
    stop_feeder(st->shell_code());
    return st->shell_code();
}

// POST /exec/{id}/resize?h=&w=: the pty's size (remembered until the
// process has one).
void resize(Context& ctx, api::Request& req, api::Exchange& ex) {
    containers::Store cs(ctx.store_root());
    auto e = find_exec(cs, req.param("id"));
    auto h = req.query_int("h", 0);
    auto w = req.query_int("w", 0);
    if (h < 0 || w < 0 || h > 65535 || w > 65535) {
        throw api::HttpError(400, "invalid terminal size");
    }
    std::lock_guard<std::mutex> g(g_mu);
    if (!e->tty) {
        throw api::HttpError(409, "Error: Exec " + e->id + " has no TTY"); // a 409 as dockerd's
    }
    e->size = std::make_pair(static_cast<unsigned short>(h), static_cast<unsigned short>(w));
    if (e->proc != nullptr) {
        e->proc->resize(e->size->first, e->size->second);
    }
    ex.respond_empty(200);
}

// POST /exec/{id}/start {"Detach": false, "Tty": false}
void start(Context& ctx, api::Request& req, api::Exchange& ex) {
    containers::Store cs(ctx.store_root());
    auto e = find_exec(cs, req.param("id"));
    json body = parse_body(ex);
    bool detach = body.value("Detach", false);
    bool tty = e->tty || body.value("Tty", false);
    {
        std::lock_guard<std::mutex> g(g_mu);
        if (e->started) {
            throw api::HttpError(409, "Error: Exec command " + e->id + " is already running");
        }
        e->started = true;
    }
    containers::State s = running_state(cs, e->container);
    auto config = cs.load_config(e->container);
    runner::ExecSpec spec =
        containers::exec_spec_for(containers::spec_from_json(config.at("StrataSpec")), s.pid);
    spec.argv = e->argv;
    spec.env.insert(spec.env.end(), e->env.begin(), e->env.end()); // later entries win
    if (!e->user.empty()) {
        spec.user = e->user;
    }
    if (!e->workdir.empty()) {
        spec.cwd = e->workdir;
    }
    spec.privileged = e->privileged;
    spec.detach = detach;
    containers::record_container_event(cs, e->container, "exec_start: " + command_line(e->argv),
                                       {{"execID", e->id}});
    auto finish = [&](int code) {
        {
            std::lock_guard<std::mutex> g(g_mu);
            e->running = false;
            e->exit_code = code;
        }
        if (!detach) { // a detached process's end is not seen here
            containers::record_container_event(
                cs, e->container, "exec_die",
                {{"execID", e->id}, {"exitCode", std::to_string(code)}});
        }
    };
    if (detach) {
        runner::exec(spec);
        finish(0);
        ex.respond_empty(200);
        return;
    }
    api::Exchange::Hijacked h = ex.hijack();
    if (h.fd < 0) {
        finish(-1);
        return;
    }
    if (tty) {
        finish(run_with_tty(e, spec, h));
        return;
    }
    Pipe in = Pipe::create(), out = Pipe::create(), err = Pipe::create();
    spec.stdin_fd = e->in ? in.read.get() : -1;
    UniqueFd devnull(::open("/dev/null", O_WRONLY | O_CLOEXEC));
    spec.stdout_fd = e->out ? out.write.get() : devnull.get();
    spec.stderr_fd = e->err ? err.write.get() : devnull.get();
    std::optional<runner::Exec> proc;
    try {
        proc.emplace(runner::Exec::start(spec));
    } catch (const runner::StartError& x) {
        // dockerd writes the error into the stream; the exit code is 126/127.
        finish(x.exit_code());
        api::send_all(h.fd, api::mux_frame(1, std::string(x.what()) + "\r\n"));
        return;
    }
    {
        std::lock_guard<std::mutex> g(g_mu);
        e->running = true;
        e->pid = proc->pid();
    }
    // Only the process holds the other ends now: EOF comes with its end.
    in.read.reset();
    out.write.reset();
    err.write.reset();
    if (!e->in) {
        in.write.reset();
    }
    if (!e->out) {
        out.read.reset();
    }
    if (!e->err) {
        err.read.reset();
    }
    // Gone client: the process is killed with proc (runner::Exec's end).
    if (!pump(h.fd, std::move(h.buffered), in.write, out.read, err.read)) {
        proc.reset();
        finish(-1);
        return;
    }
    ExitStatus st = proc->wait();
    finish(st.shell_code());
}

// GET /exec/{id}/json
void inspect(Context& ctx, api::Request& req, api::Exchange& ex) {
    containers::Store cs(ctx.store_root());
    auto e = find_exec(cs, req.param("id"));
    std::lock_guard<std::mutex> g(g_mu);
    ordered_json args = ordered_json::array();
    for (std::size_t i = 1; i < e->argv.size(); ++i) {
        args.push_back(e->argv[i]);
    }
    ex.respond_json(200, ordered_json{{"ID", e->id},
                                      {"Running", e->running},
                                      {"ExitCode", e->exit_code ? ordered_json(*e->exit_code)
                                                                : ordered_json(nullptr)},
                                      {"ProcessConfig",
                                       {{"tty", e->tty},
                                        {"entrypoint", e->argv.front()},
                                        {"arguments", args},
                                        {"privileged", e->privileged},
                                        {"user", e->user}}},
                                      {"OpenStdin", e->in},
                                      {"OpenStderr", e->err},
                                      {"OpenStdout", e->out},
                                      {"CanRemove", false},
                                      {"ContainerID", e->container},
                                      {"DetachKeys", e->detach_keys_text},
                                      {"Pid", e->pid}});
}

} // namespace

void add_exec_routes(api::Router& router, Context& ctx) {
    auto bind = [&ctx](ContextHandler f) { return with_context(ctx, f); };
    router.add("POST", "/containers/{id}/exec", bind(create));
    router.add("POST", "/exec/{id}/start", bind(start));
    router.add("GET", "/exec/{id}/json", bind(inspect));
    router.add("POST", "/exec/{id}/resize", bind(resize));
}

} // namespace strata::cli::serve
