// The RUN step: its cache key and inputs, the mounts it asks for
// (RUN --mount: cache, tmpfs, bind, secret, ssh; a heredoc script), and the
// command run by the runner over the step's workspace.
#include "builder/executor.hpp"

#include "builder/dockerfile/text.hpp"
#include "builder/image_config.hpp"
#include "builder/mount_stubs.hpp"
#include "builder/ssh_agent.hpp"
#include "runner/runner.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/root.hpp"
#include "util/scope.hpp"
#include "util/sha256.hpp"
#include "util/tempdir.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <fcntl.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace strata::builder {

using namespace detail;

namespace {

// Output kept for a failing RUN's report (the whole of it, up to this much).
constexpr std::size_t k_max_kept_output = 64u << 20;

// The canonical host path of a path inside root (symlinks resolved inside it).
std::string host_path_in_root(int rootfd, const std::string& path) {
    UniqueFd fd = open_in_root(rootfd, path, O_PATH);
    char buf[PATH_MAX];
    std::string link = "/proc/self/fd/" + std::to_string(fd.get());
    ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
    if (n < 0) {
        throw_errno("readlink", link);
    }
    return std::string(buf, static_cast<std::size_t>(n));
}

// What a RUN step's mounts hold while its command runs: a scratch directory
// (the heredoc script, rw bind copies, secret copies, ssh agent sockets),
// the read-only views of other stages (bind from=), the locks of
// sharing=locked cache mounts and the ssh agent proxies. All of it goes
// with the object, the agents first (their sockets are in the scratch
// directory), the scratch directory last.
class RunResources {
public:
    explicit RunResources(const std::string& tmp_dir) : m_scratch(tmp_dir, "run-") {}
    RunResources(const RunResources&) = delete;
    RunResources& operator=(const RunResources&) = delete;

    const std::string& scratch() const noexcept { return m_scratch.path(); }

    // A read-only view of the snapshots (bottom first); its path.
    const std::string& view(const std::string& tmp_dir, const std::vector<std::string>& lowers) {
        m_views.push_back(std::make_unique<RootView>(tmp_dir, lowers));
        return m_views.back()->path();
    }

    // Holds an exclusive flock on path (created) until the step ends.
    void lock(const std::string& path) {
        UniqueFd fd = fs::open(path, O_RDWR | O_CREAT, 0600);
        while (::flock(fd.get(), LOCK_EX) != 0) {
            if (errno != EINTR) {
                throw_errno("flock", path);
            }
        }
        m_locks.push_back(std::move(fd));
    }

    // Relays a socket at listen_path to the host agent (AgentProxy).
    void add_agent(const std::string& listen_path, const std::string& agent_path, mode_t mode,
                   uid_t uid, gid_t gid) {
        m_agents.push_back(std::make_unique<AgentProxy>(listen_path, agent_path, mode, uid, gid));
    }

private:
    TempDir m_scratch;
    std::vector<std::unique_ptr<RootView>> m_views;
    std::vector<UniqueFd> m_locks;
    std::vector<std::unique_ptr<AgentProxy>> m_agents; // after m_scratch: destroyed before it
};

// How the command ended: its status, or why it could not start.
struct RunOutcome {
    std::optional<ExitStatus> status;
    std::string start_error;
    int start_code = -1;
    std::string output; // stdout and stderr, up to k_max_kept_output
    runner::CreatedMountPoints created;
};

// Runs spec, passing its output (stdout and stderr through one pipe) to
// on_output as it comes; cancellable through cancellation.
RunOutcome run_command(runner::RunSpec spec, Cancellation* cancellation,
                       const std::function<void(std::string_view)>& on_output) {
    RunOutcome r;
    Pipe out = Pipe::create();
    spec.stdout_fd = out.write.get();
    spec.stderr_fd = out.write.get();
    std::thread reader([&] {
        char buf[16384];
        while (true) {
            ssize_t n = ::read(out.read.get(), buf, sizeof buf);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                break;
            }
            std::string_view chunk(buf, static_cast<std::size_t>(n));
            if (r.output.size() < k_max_kept_output) {
                r.output.append(chunk.substr(0, k_max_kept_output - r.output.size()));
            }
            on_output(chunk);
        }
    });
    auto join_reader = ScopeExit([&] {
        out.write.reset();
        if (reader.joinable()) {
            reader.join();
        }
    });
    runner::Control control;
    if (cancellation) {
        cancellation->add(&control);
    }
    auto unregister = ScopeExit([&] {
        if (cancellation) {
            cancellation->remove(&control);
        }
    });
    try {
        r.status = runner::run(spec, &control, &r.created);
    } catch (const runner::Cancelled&) {
        throw Cancelled("build cancelled");
    } catch (const runner::StartError& e) {
        r.start_error = e.what();
        r.start_code = e.exit_code();
    }
    out.write.reset();
    reader.join();
    return r;
}

} // namespace

void Executor::do_run(StageResult& st, const df::Instruction& ins, const df::RunInstr& run,
                      const df::StageScope& scope, const Step& step, std::size_t stage) {
    // BuildKit's entitlements: a Dockerfile may not give itself the host's
    // network or a privileged step; the one who runs the build grants them.
    bool insecure = run.security == "insecure";
    if (insecure && !m_opts.allow_security_insecure) {
        fail(ins, "security.insecure is not allowed (grant it with strata build --allow "
                  "security.insecure)");
    }
    if (run.network == "host" && !m_opts.allow_network_host && m_opts.network != Network::host) {
        fail(ins, "network.host is not allowed (grant it with strata build --allow network.host)");
    }
    std::vector<std::string> argv = run_argv(st.config, run);
    // A RUN that is a single heredoc runs it as a script file (BuildKit mounts
    // it at /dev/pipes/<name> and hands the path to the shell).
    std::optional<df::Heredoc> script;
    if (run.heredocs.size() == 1 && run.cmd.shell_form && !run.cmd.args.empty()) {
        std::string a = std::string(df::text::trim_space(run.cmd.args[0]));
        const auto& h = run.heredocs[0];
        for (const std::string& form :
             {"<<" + h.name, "<<-" + h.name, "<<'" + h.name + "'", "<<-'" + h.name + "'",
              "<<\"" + h.name + "\"", "<<-\"" + h.name + "\""}) {
            if (a == form) {
                script = h;
            }
        }
        if (script) {
            argv = effective_shell(st.config);
            argv.push_back("/dev/pipes/" + h.name);
        }
    }
    std::vector<std::string> env = run_env(st, scope);
    std::string created_by = run_history(argv, args_in_scope(st, scope)) + " # buildkit";
    std::string workdir = st.config.config.working_dir.empty() ? "/" : st.config.config.working_dir;
    std::string network = run.network == "default"
                              ? (m_opts.network == Network::host ? "host" : "none")
                              : run.network;

    // Key: the argv, the environment, user, workdir, the mounts and what the
    // bind mounts read.
    std::vector<std::string> parts = {st.key,
                                      "RUN",
                                      join(argv, "\x1f"),
                                      join(env, "\x1f"),
                                      "user=" + st.config.config.user,
                                      "cwd=" + workdir,
                                      "network=" + network};
    if (script) {
        parts.push_back("script=" +
                        (script->chomp ? chomp_tabs(script->content) : script->content));
    }
    if (insecure) {
        parts.push_back("security=insecure");
    }
    for (const auto& m : run.mounts) {
        parts.push_back("mount=" + m.raw);
        if (m.type == df::Mount::Type::Bind) {
            if (m.from.empty()) {
                std::string src = m.source.empty() ? "." : m.source;
                parts.push_back(context_hash({src}, context_copy_options(), "bind"));
            } else {
                std::string k;
                lowers_for_ref(m.from, stage, &k);
                parts.push_back("from=" + k);
            }
        } else if (m.type == df::Mount::Type::Ssh) {
            bool given = std::any_of(m_opts.ssh_agents.begin(), m_opts.ssh_agents.end(),
                                     [&](const SshAgent& a) { return a.id == m.id; });
            if (!given && m.required) {
                fail(ins, "ssh agent \"" + m.id +
                              "\" is required but was not given (strata build --ssh " + m.id +
                              "[=SOCKET], or SSH_AUTH_SOCK)");
            }
        }
    }
    std::string key = cache_key(parts);

    LayerStep ls;
    ls.key = key;
    ls.created_by = created_by;
    StepInputs& inputs = ls.inputs;
    inputs = step_inputs(st, key, join(argv, " "));
    for (const auto& e : st.config.config.env) {
        auto eq = e.find('=');
        std::string k = e.substr(0, eq);
        inputs.items.emplace_back("env " + k,
                                  maybe_redact(k, eq == std::string::npos ? "" : e.substr(eq + 1)));
    }
    inputs.items.emplace_back("user", st.config.config.user);
    inputs.items.emplace_back("cwd", workdir);
    inputs.items.emplace_back("network", network);
    if (script) {
        inputs.items.emplace_back("script",
                                  script->chomp ? chomp_tabs(script->content) : script->content);
    }
    {
        // parts after argv, env, user, cwd, network (and the script): the
        // mounts and what their sources hold.
        std::string mounts;
        std::string mounted_content;
        for (std::size_t i = 7 + (script ? 1 : 0); i < parts.size(); ++i) {
            (parts[i].rfind("mount=", 0) == 0 ? mounts : mounted_content) += parts[i] + "\n";
        }
        if (!mounts.empty()) {
            inputs.items.emplace_back("mounts", mounts);
        }
        if (!mounted_content.empty()) {
            inputs.items.emplace_back("content", mounted_content);
        }
    }

    layer_step(st, step, std::move(ls), [&](Workspace& ws) {
        runner::RunSpec spec;
        spec.rootfs = ws.merged();
        spec.argv = argv;
        spec.env = env;
        spec.cwd = workdir;
        spec.user = st.config.config.user;
        spec.hostname = "buildkitsandbox";
        spec.network = network == "host" ? runner::Network::host : runner::Network::none;
        spec.security.privileged = insecure;

        RunResources res(m_store.tmp_dir());
        int ssh_count = 0;
        if (script) {
            std::string dir = res.scratch() + "/pipes";
            fs::mkdirs(dir, 0755);
            std::string data = script->chomp ? chomp_tabs(script->content) : script->content;
            UniqueFd f = fs::open(dir + "/" + script->name, O_WRONLY | O_CREAT | O_TRUNC, 0755);
            fs::write_all(f.get(), data);
            f.close();
            spec.mounts.push_back({runner::Mount::Type::bind, dir + "/" + script->name,
                                   "/dev/pipes/" + script->name, true, ""});
        }
        for (const auto& m : run.mounts) {
            std::string target = m.target;
            if (!target.empty() && target[0] != '/') {
                target = clean_path(workdir + "/" + target);
            }
            switch (m.type) {
            case df::Mount::Type::Cache: {
                std::string id = m.id.empty() ? target : m.id;
                std::string dir = m_store.root() + "/cache-mounts/" + Sha256::hex_of(id);
                if (!fs::is_dir(dir)) {
                    fs::mkdirs(dir, 0755);
                    if (::chmod(dir.c_str(), m.mode.value_or(0755)) != 0) {
                        throw_errno("chmod", dir);
                    }
                    if (::chown(dir.c_str(), m.uid.value_or(0), m.gid.value_or(0)) != 0) {
                        throw_errno("chown", dir);
                    }
                }
                if (m.sharing == df::Mount::Sharing::Locked) {
                    res.lock(dir + ".lock");
                }
                spec.mounts.push_back({runner::Mount::Type::cache, dir, target, false, ""});
                break;
            }
            case df::Mount::Type::Tmpfs: {
                std::string o = "mode=1777";
                if (m.size) {
                    o += ",size=" + std::to_string(*m.size);
                }
                spec.mounts.push_back({runner::Mount::Type::tmpfs, "", target, false, o});
                break;
            }
            case df::Mount::Type::Bind: {
                std::string src_host;
                std::string src = m.source.empty() ? "/" : m.source;
                if (m.from.empty()) {
                    src_host = host_path_in_root(m_context_fd.get(), src);
                } else {
                    auto lowers = lowers_for_ref(m.from, stage, nullptr);
                    UniqueFd vfd = fs::open_dir(res.view(m_store.tmp_dir(), lowers));
                    src_host = host_path_in_root(vfd.get(), src);
                }
                if (!m.read_only) {
                    // rw: writes are discarded after the step, never reach the source.
                    std::string copy =
                        res.scratch() + "/bind-" + std::to_string(spec.mounts.size());
                    struct stat sst = fs::lstat(src_host);
                    UniqueFd sfd = fs::open_dir(fs::dirname(src_host));
                    if (S_ISDIR(sst.st_mode)) {
                        fs::mkdirs(copy, 0755);
                        UniqueFd dfd = fs::open_dir(copy);
                        UniqueFd srcfd = fs::open_dir(src_host);
                        CopyOptions co;
                        co.preserve_owner = true;
                        copy_into(srcfd.get(), {"."}, dfd.get(), "/", co);
                    } else {
                        fs::mkdirs(copy, 0755);
                        UniqueFd dfd = fs::open_dir(copy);
                        CopyOptions co;
                        co.preserve_owner = true;
                        copy_into(sfd.get(), {fs::basename(src_host)}, dfd.get(), "/f", co);
                        copy += "/f";
                    }
                    src_host = copy;
                }
                spec.mounts.push_back(
                    {runner::Mount::Type::bind, src_host, target, m.read_only, ""});
                break;
            }
            case df::Mount::Type::Secret: {
                std::string id = m.id.empty() ? fs::basename(target) : m.id;
                const Secret* found = nullptr;
                for (const auto& s : m_opts.secrets) {
                    if (s.id == id) {
                        found = &s;
                    }
                }
                if (!found) {
                    if (m.required) {
                        fail(ins, "secret " + id + " is required but was not given (--secret id=" +
                                      id + ",src=PATH)");
                    }
                    break;
                }
                if (!m.env.empty()) {
                    spec.env.push_back(m.env + "=" + fs::read_file(found->path, 1 << 20));
                }
                if (m.env.empty() || !m.target.empty()) {
                    std::string t = target.empty() ? "/run/secrets/" + id : target;
                    // A private copy with the mode asked for (default 0400).
                    std::string copy =
                        res.scratch() + "/secret-" + std::to_string(spec.mounts.size());
                    UniqueFd f = fs::open(copy, O_WRONLY | O_CREAT | O_TRUNC, 0400);
                    fs::write_all(f.get(), fs::read_file(found->path, 64 << 20));
                    if (::fchmod(f.get(), m.mode.value_or(0400)) != 0 ||
                        ::fchown(f.get(), m.uid.value_or(0), m.gid.value_or(0)) != 0) {
                        throw_errno("fchmod/fchown", copy);
                    }
                    f.close();
                    spec.mounts.push_back({runner::Mount::Type::bind, copy, t, true, ""});
                }
                break;
            }
            case df::Mount::Type::Ssh: {
                const SshAgent* agent = nullptr;
                for (const auto& a : m_opts.ssh_agents) {
                    if (a.id == m.id) {
                        agent = &a;
                    }
                }
                if (agent == nullptr) {
                    break; // not required (checked above): BuildKit skips the mount
                }
                if (target.empty()) {
                    target = fmt::format("/run/buildkit/ssh_agent.{}", ssh_count);
                }
                ++ssh_count;
                std::string sock = res.scratch() + "/ssh-" + std::to_string(spec.mounts.size());
                try {
                    res.add_agent(sock, agent->socket, m.mode.value_or(0600), m.uid.value_or(0),
                                  m.gid.value_or(0));
                } catch (const Error& e) {
                    fail(ins, "--mount=type=ssh,id=" + m.id + ": " + e.what());
                }
                spec.mounts.push_back({runner::Mount::Type::bind, sock, target, false, ""});
                if (!get_env(spec.env, "SSH_AUTH_SOCK")) {
                    spec.env.push_back("SSH_AUTH_SOCK=" + target);
                }
                break;
            }
            }
        }

        // What the runner refuses before the command starts (a USER the
        // image does not know, a mount it cannot make) names the step too.
        RunOutcome outcome;
        try {
            outcome =
                run_command(std::move(spec), m_opts.cancellation,
                            [&](std::string_view chunk) { m_events->step_output(step.id, chunk); });
        } catch (const Cancelled&) {
            throw;
        } catch (const StepError&) {
            throw;
        } catch (const Error& e) {
            fail(ins, e.what());
        }
        std::string cmdline = join(argv, " ");
        if (!outcome.start_error.empty()) {
            fail(ins,
                 fmt::format("process {} could not start: {}", df::text::go_quote(cmdline),
                             outcome.start_error),
                 outcome.output, outcome.start_code);
        }
        const ExitStatus& status = *outcome.status;
        if (!status.success()) {
            int code = status.exited() ? status.code() : status.shell_code();
            fail(ins,
                 fmt::format(
                     "process {} did not complete successfully: {}", df::text::go_quote(cmdline),
                     status.exited() ? fmt::format("exit code: {}", code) : status.describe()),
                 outcome.output, code);
        }
        UniqueFd rootfd = fs::open_dir(ws.merged());
        auto stubs = std::make_shared<MountStubs>(rootfd.get(), outcome.created);
        stubs->restore_times();
        ws.after_unmount.push_back(
            [stubs](const std::string& upper) { stubs->prune_upper(upper); });
    });
}

} // namespace strata::builder
