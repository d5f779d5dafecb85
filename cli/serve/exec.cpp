// exec through the API: POST /containers/{id}/exec (an exec instance,
// kept in this server's memory as dockerd keeps them), POST
// /exec/{id}/start (hijacked: the client's bytes to the process's stdin,
// its output in Docker's multiplexed framing) and GET /exec/{id}/json (the
// exit code the docker CLI exits with). The process is started as strata
// exec and health checks start theirs: runner::Exec with the container's
// spec (containers::exec_spec_for).
#include "runner/exec.hpp"
#include "cli/serve/routes.hpp"
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
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace strata::cli::serve {

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
    // under g_mu:
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
void create(Context& ctx, api::Request& req, api::Exchange& ex) {
    containers::Store cs(ctx.store_root());
    std::string cid = cs.resolve(req.param("id"));
    json body = parse_body(ex);
    running_state(cs, cid);
    if (body.value("Tty", false)) {
        throw api::HttpError(400, "exec with a TTY (-t) is not handled by strata serve yet");
    }
    auto e = std::make_shared<ExecInstance>();
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

// POST /exec/{id}/start {"Detach": false, "Tty": false}
void start(Context& ctx, api::Request& req, api::Exchange& ex) {
    containers::Store cs(ctx.store_root());
    auto e = find_exec(cs, req.param("id"));
    json body = parse_body(ex);
    if (body.value("Tty", false)) {
        throw api::HttpError(400, "exec with a TTY (-t) is not handled by strata serve yet");
    }
    bool detach = body.value("Detach", false);
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
    auto finish = [&](int code) {
        std::lock_guard<std::mutex> g(g_mu);
        e->running = false;
        e->exit_code = code;
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
                                       {{"tty", false},
                                        {"entrypoint", e->argv.front()},
                                        {"arguments", args},
                                        {"privileged", e->privileged},
                                        {"user", e->user}}},
                                      {"OpenStdin", e->in},
                                      {"OpenStderr", e->err},
                                      {"OpenStdout", e->out},
                                      {"CanRemove", false},
                                      {"ContainerID", e->container},
                                      {"DetachKeys", ""},
                                      {"Pid", e->pid}});
}

} // namespace

void add_exec_routes(api::Router& router, Context& ctx) {
    auto bind = [&ctx](void (*f)(Context&, api::Request&, api::Exchange&)) {
        return [&ctx, f](api::Request& req, api::Exchange& ex) { f(ctx, req, ex); };
    };
    router.add("POST", "/containers/{id}/exec", bind(create));
    router.add("POST", "/exec/{id}/start", bind(start));
    router.add("GET", "/exec/{id}/json", bind(inspect));
}

} // namespace strata::cli::serve
