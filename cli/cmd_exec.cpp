// `strata exec` and `strata top`: a running container's processes, with
// Docker's flags, output and messages. exec joins the container through its
// PID 1 (runner/exec.hpp); top filters the host's ps (containers/top.hpp).
#include "cli/commands.hpp"
#include "cli/run_flags.hpp"
#include "containers/events.hpp"
#include "containers/health.hpp"
#include "containers/names.hpp"
#include "containers/spec.hpp"
#include "containers/store.hpp"
#include "containers/top.hpp"
#include "runner/exec.hpp"
#include "runner/terminal.hpp"
#include "util/error.hpp"

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <unistd.h>

namespace strata::cli {

namespace {

// What the daemon would answer with, printed as Docker's CLI does (exit 1).
class DaemonError : public Error {
public:
    using Error::Error;
};

struct Target {
    std::string id;
    containers::State state;
    nlohmann::ordered_json config;
};

// The running container named by text, or Docker's message for one that
// is not.
Target running_container(const Context& ctx, const std::string& text, const char* what) {
    containers::Store cs(ctx.store_root());
    Target t;
    try {
        t.id = cs.resolve(text);
    } catch (const containers::NoSuchContainer& e) {
        throw DaemonError(e.what());
    }
    t.state = cs.load_state(t.id);
    if (t.state.status == "paused") {
        throw DaemonError("Container " + t.id + " is paused, unpause the container before " + what);
    }
    if (t.state.status == "restarting") {
        throw DaemonError("Container " + t.id +
                          " is restarting, wait until the container is running");
    }
    if (t.state.status != "running" || t.state.pid <= 0) {
        throw DaemonError("Container " + t.id + " is not running");
    }
    t.config = cs.load_config(t.id);
    return t;
}

// "-e K=V" sets K; "-e K" takes K from strata's environment (dropped when unset).
void set_env(std::vector<std::string>& env, const std::string& item) {
    std::string key = item.substr(0, item.find('='));
    if (key.empty()) {
        throw UsageError("invalid environment variable: " + item);
    }
    std::string value = item;
    if (item.find('=') == std::string::npos) {
        const char* v = std::getenv(key.c_str());
        if (v == nullptr) {
            return;
        }
        value = key + "=" + v;
    }
    env.push_back(value); // later entries win (runner::ExecSpec)
}

struct ExecOptions {
    bool detach = false;
    bool interactive = false;
    bool tty = false;
    std::string user;
    std::string workdir;
    std::vector<std::string> env;
    std::vector<std::string> env_files;
    bool privileged = false;
};

void exec(Context& ctx, const ExecOptions& o, const std::string& container,
          const std::vector<std::string>& command) {
    Target t = running_container(ctx, container, "exec");
    runner::RunSpec run = containers::spec_from_json(t.config.at("StrataSpec"));
    runner::ExecSpec spec = containers::exec_spec_for(run, t.state.pid);
    spec.argv = command;
    if (!o.user.empty()) {
        spec.user = o.user;
    }
    if (!o.workdir.empty()) {
        spec.cwd = o.workdir;
    }
    // Docker: the env files first, in order, then -e.
    auto lookup = [](const std::string& k) -> std::optional<std::string> {
        const char* v = std::getenv(k.c_str());
        return v == nullptr ? std::nullopt : std::optional<std::string>(v);
    };
    for (const auto& file : o.env_files) {
        for (const auto& e : parse_env_file(file, lookup)) {
            set_env(spec.env, e);
        }
    }
    for (const auto& e : o.env) {
        set_env(spec.env, e);
    }
    spec.privileged = o.privileged;
    spec.detach = o.detach;
    spec.tty = o.tty && !o.detach;
    if (!o.detach) {
        spec.stdin_fd = o.interactive ? 0 : -1;
        spec.stdout_fd = 1;
        spec.stderr_fd = 2;
    }
    runner::Control control;
    std::optional<runner::SignalRouting> signals;
    std::optional<runner::RawTerminal> raw;
    if (!o.detach) {
        signals.emplace(control);
        if (spec.tty && o.interactive) {
            raw.emplace(0);
        }
    }
    // dockerd's events for an exec, as strata serve records them.
    std::string exec_id = containers::new_id();
    std::string cmdline;
    for (const auto& a : command) {
        cmdline += (cmdline.empty() ? "" : " ") + a;
    }
    containers::Store events_cs(ctx.store_root());
    containers::record_container_event(events_cs, t.id, "exec_create: " + cmdline,
                                       {{"execID", exec_id}});
    containers::record_container_event(events_cs, t.id, "exec_start: " + cmdline,
                                       {{"execID", exec_id}});
    struct DieEvent {
        containers::Store& cs;
        const std::string& id;
        const std::string& exec_id;
        const Context& ctx;
        bool detach;
        ~DieEvent() {
            if (!detach) {
                containers::record_container_event(
                    cs, id, "exec_die",
                    {{"execID", exec_id}, {"exitCode", std::to_string(ctx.exit_code)}});
            }
        }
    } die{events_cs, t.id, exec_id, ctx, o.detach};
    try {
        ExitStatus st = runner::exec(spec, &control);
        ctx.exit_code = o.detach ? 0 : st.shell_code();
    } catch (const runner::StartError& e) {
        raw.reset();
        std::cerr << "strata: error: " << e.what() << "\n";
        ctx.exit_code = e.exit_code();
    } catch (const runner::Cancelled&) {
        raw.reset();
        int sig = runner::SignalRouting::last_signal();
        ctx.exit_code = 128 + (sig != 0 ? sig : SIGKILL);
    }
}

void top(Context& ctx, const std::string& container, const std::vector<std::string>& ps_args) {
    Target t = running_container(ctx, container, "top");
    std::string args;
    for (const auto& a : ps_args) {
        args += (args.empty() ? "" : " ") + a;
    }
    containers::TopResult r;
    try {
        r = containers::top(t.state.pid, args);
    } catch (const Error& e) {
        throw DaemonError(e.what()); // Docker's daemon runs ps and checks its options
    }
    std::cout << containers::format_top(r);
}

// Docker's CLI prints the daemon's refusals this way and exits 1.
template <typename F> void as_daemon(Context& ctx, F&& f) {
    try {
        f();
    } catch (const DaemonError& e) {
        std::cerr << "Error response from daemon: " << e.what() << "\n";
        ctx.exit_code = 1;
    }
}

} // namespace

void register_exec(CLI::App& app, Context& ctx) {
    auto o = std::make_shared<ExecOptions>();
    auto* cmd = app.add_subcommand("exec", "Execute a command in a running container");
    cmd->add_flag("-d,--detach", o->detach, "Detached mode: run command in the background");
    cmd->add_flag("-i,--interactive", o->interactive, "Keep STDIN open even if not attached");
    cmd->add_flag("-t,--tty", o->tty, "Allocate a pseudo-TTY");
    cmd->add_option("-u,--user", o->user, "Username or UID (format: \"<name|uid>[:<group|gid>]\")");
    cmd->add_option("-w,--workdir", o->workdir, "Working directory inside the container");
    cmd->add_option("-e,--env", o->env, "Set environment variables")->allow_extra_args(false);
    cmd->add_option("--env-file", o->env_files, "Read in a file of environment variables")
        ->allow_extra_args(false);
    cmd->add_flag("--privileged", o->privileged, "Give extended privileges to the command");
    cmd->prefix_command();
    cmd->footer("Usage: strata exec [OPTIONS] CONTAINER COMMAND [ARG...]");
    cmd->callback([&ctx, o, cmd] {
        std::vector<std::string> rest = cmd->remaining();
        if (!rest.empty() && rest.front().size() > 1 && rest.front()[0] == '-') {
            throw UsageError("unknown flag: " + rest.front() + "\nSee 'strata exec --help'.");
        }
        if (rest.size() < 2) {
            throw UsageError(
                "\"strata exec\" requires at least 2 arguments.\nSee 'strata exec --help'.");
        }
        std::vector<std::string> command(rest.begin() + 1, rest.end());
        as_daemon(ctx, [&] { exec(ctx, *o, rest.front(), command); });
    });
}

void register_top(CLI::App& app, Context& ctx) {
    auto* cmd = app.add_subcommand("top", "Display the running processes of a container");
    cmd->prefix_command();
    cmd->footer("Usage: strata top CONTAINER [ps OPTIONS]");
    cmd->callback([&ctx, cmd] {
        std::vector<std::string> rest = cmd->remaining();
        if (rest.empty()) {
            throw UsageError(
                "\"strata top\" requires at least 1 argument.\nSee 'strata top --help'.");
        }
        std::vector<std::string> ps_args(rest.begin() + 1, rest.end());
        as_daemon(ctx, [&] { top(ctx, rest.front(), ps_args); });
    });
}

} // namespace strata::cli
