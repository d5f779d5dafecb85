// run: a command in a container made from an image. The image's snapshots
// are stacked with kernel overlayfs under a throwaway upper directory, in a
// mount namespace of strata's own, so that nothing stays mounted on the host
// whatever happens to strata; the runner then starts the command there with
// the image's config (Entrypoint, Cmd, Env, WorkingDir, User).
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "layerfs/overlay.hpp"
#include "runner/options.hpp"
#include "runner/runner.hpp"
#include "runner/terminal.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/tempdir.hpp"

#include <cstdlib>
#include <iostream>
#include <memory>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

namespace strata::cli {

namespace {

struct RunOptions {
    bool rm = false;
    bool init = false;
    bool interactive = false;
    bool tty = false;
    std::vector<std::string> env;
    std::string workdir;
    std::string user;
    std::string network = "none";
    std::string hostname;
    std::vector<std::string> volumes;
    std::vector<std::string> tmpfs;
    std::vector<std::string> ulimits;
    bool read_only = false;
    std::string scratch = "memory";
    std::optional<std::string> entrypoint;
    std::string image;
    std::vector<std::string> command;
};

// "-e K=V" sets K; "-e K" takes K from strata's environment (dropped when unset).
void apply_env(std::vector<std::string>& env, const std::string& item) {
    std::string key = item.substr(0, item.find('='));
    std::string value;
    if (item.find('=') == std::string::npos) {
        const char* v = std::getenv(key.c_str());
        if (v == nullptr) {
            return;
        }
        value = key + "=" + v;
    } else {
        value = item;
    }
    if (key.empty()) {
        throw UsageError("invalid environment variable: " + item);
    }
    for (auto& e : env) {
        if (e.substr(0, e.find('=')) == key) {
            e = value;
            return;
        }
    }
    env.push_back(value);
}

// A mount namespace of strata's own: mounts made from here on vanish with the
// process, even when it is killed.
void private_mount_namespace() {
    if (::unshare(CLONE_NEWNS) != 0) {
        throw_errno("unshare(CLONE_NEWNS)", "(strata run needs root)");
    }
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
        throw_errno("mount", "/ (make private)");
    }
}

void run(Context& ctx, const RunOptions& o) {
    snapshot::Store store = open_store(ctx);
    snapshot::Image img = store.load(o.image);
    const auto& cc = img.config.config;

    runner::RunSpec spec;
    // Docker: --entrypoint replaces the image's Entrypoint and drops its Cmd.
    std::vector<std::string> argv;
    if (o.entrypoint) {
        if (!o.entrypoint->empty()) {
            argv.push_back(*o.entrypoint);
        }
    } else if (cc.entrypoint) {
        argv = *cc.entrypoint;
    }
    if (!o.command.empty()) {
        argv.insert(argv.end(), o.command.begin(), o.command.end());
    } else if (!o.entrypoint && cc.cmd) {
        argv.insert(argv.end(), cc.cmd->begin(), cc.cmd->end());
    }
    if (argv.empty()) {
        throw UsageError("no command specified: the image has no Entrypoint or Cmd");
    }
    spec.argv = argv;
    spec.env = cc.env;
    for (const auto& e : o.env) {
        apply_env(spec.env, e);
    }
    spec.cwd = !o.workdir.empty() ? o.workdir : cc.working_dir.empty() ? "/" : cc.working_dir;
    spec.user = !o.user.empty() ? o.user : cc.user;
    spec.hostname = o.hostname;
    spec.network = runner::parse_network(o.network);
    for (const auto& v : o.volumes) {
        spec.mounts.push_back(runner::parse_volume(v));
    }
    for (const auto& t : o.tmpfs) {
        spec.mounts.push_back(runner::parse_tmpfs(t));
    }
    for (const auto& u : o.ulimits) {
        spec.rlimits.push_back(runner::parse_ulimit(u));
    }
    spec.init = o.init;
    spec.read_only = o.read_only;
    spec.tty = o.tty;
    if (o.interactive || o.tty) {
        spec.stdin_fd = 0;
    }
    if (o.tty) {
        spec.stdout_fd = 1;
    }

    std::vector<std::string> lowers = store.ensure_snapshots(img);
    std::reverse(lowers.begin(), lowers.end());
    private_mount_namespace();
    // The container's writable layer (overlay upper and work directories).
    // In memory by default: a tmpfs over the store's tmp directory, in
    // strata's own mount namespace, so that only this process sees it and
    // it vanishes with it, even on SIGKILL. strata keeps no stopped
    // containers, so nothing of the upper is ever kept, and making and
    // removing its directories on disk was most of what a short container
    // cost beyond the namespaces themselves: ext4 metadata operations wait
    // for the journal, several milliseconds when the disk is busy.
    // --scratch disk puts it in a temporary directory of the store instead.
    std::optional<TempDir> disk;
    std::string scratch;
    if (o.scratch == "memory") {
        scratch = store.tmp_dir();
        if (::mount("tmpfs", scratch.c_str(), "tmpfs", 0, "mode=0700") != 0) {
            throw_errno("mount tmpfs (the container's writable layer)", scratch);
        }
    } else {
        disk.emplace(store.tmp_dir(), "run-");
        scratch = disk->path();
    }
    std::string upper = scratch + "/upper";
    std::string ovl_work = scratch + "/work";
    // The overlay is mounted over the scratch directory itself (it hides
    // upper and work, which overlayfs has already looked up).
    std::string merged = scratch;
    for (const auto& d : {upper, ovl_work}) {
        fs::mkdirs(d, 0755);
    }
    if (lowers.empty()) {
        // FROM scratch-like image without layers: an empty lower.
        fs::mkdirs(scratch + "/empty", 0755);
        lowers.push_back(scratch + "/empty");
    }
    // The upper is thrown away: no sync of the disk at unmount ("volatile").
    layerfs::mount_overlay(layerfs::OverlaySpec{lowers, upper, ovl_work, true}, merged);
    struct Unmount {
        std::string path;
        ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
    } unmount{merged};
    spec.rootfs = merged;

    runner::Control control;
    runner::SignalRouting signals(control);
    std::optional<runner::RawTerminal> raw;
    if (o.tty) {
        raw.emplace(0);
    }
    try {
        ExitStatus st = runner::run(spec, &control);
        ctx.exit_code = st.shell_code();
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

} // namespace

void register_run(CLI::App& app, Context& ctx) {
    auto o = std::make_shared<RunOptions>();
    auto* cmd = app.add_subcommand("run", "Run a command in a new container from an image");
    cmd->add_flag("--rm", o->rm, "Remove the container when it exits (strata always does)");
    cmd->add_flag("--init", o->init, "Run strata's init as PID 1 (reaps zombies, forwards signals)");
    cmd->add_flag("-i,--interactive", o->interactive, "Keep stdin open");
    cmd->add_flag("-t,--tty", o->tty, "Allocate a pseudo-terminal");
    cmd->add_option("-e,--env", o->env, "Set an environment variable (K=V, or K to pass it through)")
        ->allow_extra_args(false);
    cmd->add_option("-w,--workdir", o->workdir, "Working directory inside the container");
    cmd->add_option("-u,--user", o->user, "User (name|uid[:group|gid])");
    cmd->add_option("--network", o->network, "none (loopback only) or host")->capture_default_str();
    cmd->add_option("--hostname", o->hostname, "Container host name");
    cmd->add_option("-v,--volume", o->volumes, "Bind mount SRC:DST[:ro]")->allow_extra_args(false);
    cmd->add_option("--tmpfs", o->tmpfs, "Mount a tmpfs DST[:OPTS]")->allow_extra_args(false);
    cmd->add_option("--ulimit", o->ulimits, "Lower a resource limit NAME=SOFT[:HARD]")->allow_extra_args(false);
    cmd->add_flag("--read-only", o->read_only, "Mount the container's root filesystem read-only");
    cmd->add_option("--scratch", o->scratch,
                    "Where the container's writes go: memory (tmpfs, the default) or disk")
        ->check(CLI::IsMember({"memory", "disk"}))
        ->capture_default_str();
    cmd->add_option("--entrypoint", o->entrypoint, "Override the image's entrypoint");
    // IMAGE [COMMAND [ARG...]]: everything from the image name on belongs to
    // the container, as with docker run ("strata run busybox ls -l").
    cmd->prefix_command();
    cmd->footer("Usage: strata run [OPTIONS] IMAGE [COMMAND [ARG...]]");
    cmd->callback([&ctx, o, cmd] {
        std::vector<std::string> rest = cmd->remaining();
        if (rest.empty()) {
            throw UsageError("strata run requires an IMAGE");
        }
        o->image = rest.front();
        o->command.assign(rest.begin() + 1, rest.end());
        run(ctx, *o);
    });
}

} // namespace strata::cli
