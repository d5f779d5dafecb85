// run: a command in a container made from an image. The image's snapshots
// are stacked with kernel overlayfs under a throwaway upper directory, in a
// mount namespace of strata's own, so that nothing stays mounted on the host
// whatever happens to strata; the runner then starts the command there with
// the image's config (Entrypoint, Cmd, Env, WorkingDir, User).
//
// Without root, as podman does: strata first makes itself root of a user
// namespace (runner::enter_user_namespace: the user's /etc/subuid and
// /etc/subgid ranges through newuidmap/newgidmap, else the user alone as
// container root) and of a mount namespace. Missing snapshots are unpacked
// there, so the image's owners land on the mapped ids. The layers are
// stacked with kernel overlayfs (-o userxattr, Linux 5.11) or, where the
// kernel refuses (older kernels, an upper on a filesystem overlayfs cannot
// use), with strata-overlay, strata's FUSE union, run in the foreground as
// strata's child (it dies with strata). The runner then works as it does
// for root, without a user namespace of its own (UserNamespace::joined).
// STRATA_ROOTLESS_DRIVER=overlay|fuse forces one of the two.
#include "builder/image_config.hpp"
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/container_cli.hpp"
#include "cli/registry.hpp"
#include "cli/run_flags.hpp"
#include "cli/run_options.hpp"
#include "containers/health.hpp"
#include "containers/names.hpp"
#include "containers/network.hpp"
#include "containers/signal.hpp"
#include "containers/spec.hpp"
#include "containers/store.hpp"
#include "formats/oci.hpp"
#include "layerfs/mount.hpp"
#include "layerfs/overlay.hpp"
#include "network/netns.hpp"
#include "network/rootless.hpp"
#include "runner/idmap.hpp"
#include "runner/options.hpp"
#include "runner/runner.hpp"
#include "runner/terminal.hpp"
#include "snapshot/lazy_index.hpp"
#include "snapshot/stack_order.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/tempdir.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <sched.h>
#include <sys/mount.h>
#include <sys/xattr.h>
#include <unistd.h>

namespace strata::cli {

namespace {

// "-e K=V" sets K; "-e K" takes K from strata's environment (dropped when unset).
std::optional<std::string> env_flag(const std::string& item) {
    std::string key = item.substr(0, item.find('='));
    std::string value;
    if (item.find('=') == std::string::npos) {
        const char* v = std::getenv(key.c_str());
        if (v == nullptr) {
            return std::nullopt;
        }
        value = key + "=" + v;
    } else {
        value = item;
    }
    if (key.empty()) {
        throw UsageError("invalid environment variable: " + item);
    }
    return value;
}

// --security-opt, --cap-add, --cap-drop and --privileged into spec, as
// Docker's CLI and daemon read them (docker/cli parseSecurityOpts, moby
// daemon parseSecurityOpt): "seccomp=unconfined|builtin|FILE" (the CLI reads
// FILE), "no-new-privileges[=BOOL]"; the old ':' separator too. strata has
// no SELinux or AppArmor: asking for less of them is accepted, anything
// else refused. Throws UsageError with Docker's message for an unknown
// option, runner::StartError (125) for a profile file that cannot be read.
void apply_security(runner::Security& sec, const RunOptions& o) {
    sec.privileged = o.privileged;
    sec.cap_add = o.cap_add;
    sec.cap_drop = o.cap_drop;
    for (const auto& opt : o.security_opts) {
        if (opt == "no-new-privileges" || opt == "disable") {
            continue; // strata always sets no_new_privs; no labels to disable
        }
        std::size_t sep = opt.find('=');
        if (sep == std::string::npos) {
            sep = opt.find(':');
        }
        if (sep == std::string::npos) {
            throw UsageError("invalid --security-opt 1: \"" + opt + "\"");
        }
        std::string key = opt.substr(0, sep);
        std::string value = opt.substr(sep + 1);
        if (key == "seccomp") {
            if (value == "unconfined") {
                sec.seccomp_profile = "unconfined";
                sec.seccomp_profile_source.clear();
            } else if (value == "builtin") {
                sec.seccomp_profile.clear();
                sec.seccomp_profile_source.clear();
            } else {
                try {
                    sec.seccomp_profile = fs::read_file(value, 16u << 20);
                } catch (const std::exception& e) {
                    throw runner::StartError(
                        "opening seccomp profile (" + value + ") failed: " + e.what(), 125);
                }
                sec.seccomp_profile_source = value;
            }
        } else if (key == "no-new-privileges") {
            if (value == "1" || value == "t" || value == "T" || value == "true" ||
                value == "TRUE" || value == "True") {
                continue;
            }
            if (value == "0" || value == "f" || value == "F" || value == "false" ||
                value == "FALSE" || value == "False") {
                throw UsageError("--security-opt " + opt +
                                 ": strata always sets no_new_privs and cannot run without it");
            }
            throw UsageError("invalid --security-opt 2: \"" + opt + "\"");
        } else if ((key == "apparmor" && value == "unconfined") ||
                   (key == "label" && value == "disable")) {
            continue; // strata applies neither AppArmor nor SELinux
        } else if (key == "apparmor" || key == "label") {
            throw UsageError("--security-opt " + opt + ": strata does not support " +
                             (key == "apparmor" ? "AppArmor profiles" : "SELinux labels"));
        } else {
            throw UsageError("invalid --security-opt 2: \"" + opt + "\"");
        }
    }
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

void run_container(Context& ctx, const RunOptions& o, const runner::RunSpec& spec);

snapshot::LazyMode lazy_mode(const RunOptions& o) {
    return o.lazy ? snapshot::LazyMode::on
                  : o.no_lazy ? snapshot::LazyMode::off : snapshot::LazyMode::automatic;
}

// The image served read-only by strata-lazy on dir, in the foreground (a
// child that dies with this process), with setuid binaries and devices
// working as on the unpacked image: the lower directory of the
// container's overlay.
layerfs::MountHandle mount_lazy_lower(const snapshot::Store& store, const snapshot::Image& img,
                                      const std::string& dir) {
    fs::mkdirs(dir, 0755);
    layerfs::MountSpec ls;
    ls.lazy = layerfs::LazyImage{store.root(), img.descriptor.digest.str(), true};
    ls.driver = layerfs::Driver::fuse;
    ls.foreground = true;
    ls.fsname = "strata-lazy";
    return layerfs::mount(ls, dir);
}

// The directory that holds the container's writable layer (overlay upper
// and work directories), inside strata's own mount namespace. In memory by
// default: a tmpfs over the store's tmp directory, so that only this process
// sees it and it vanishes with it, even on SIGKILL. strata keeps no stopped
// containers, so nothing of the upper is ever kept, and making and removing
// its directories on disk was most of what a short container cost beyond
// the namespaces themselves: ext4 metadata operations wait for the journal,
// several milliseconds when the disk is busy. --scratch disk puts it in a
// temporary directory of the store instead (so does a rootless run when the
// tmpfs cannot hold the user.* xattrs overlayfs then needs: before Linux 6.6).
std::string scratch_dir(const RunOptions& o, const snapshot::Store& store, bool rootless,
                        std::optional<TempDir>& disk) {
    if (o.scratch == "memory") {
        std::string dir = store.tmp_dir();
        if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, "mode=0700") != 0) {
            throw_errno("mount tmpfs (the container's writable layer)", dir);
        }
        if (!rootless || ::setxattr(dir.c_str(), "user.strata.probe", "1", 1, 0) == 0) {
            return dir;
        }
        STRATA_LOG_DEBUG("run: no user xattrs on tmpfs ({}); the upper goes to disk",
                         std::strerror(errno));
        ::umount2(dir.c_str(), MNT_DETACH);
    }
    disk.emplace(store.tmp_dir(), "run-");
    return disk->path();
}

// The layers under a throwaway upper at SCRATCH/merged, inside the user and
// mount namespaces entered by run(): kernel overlayfs when it works here,
// else strata-overlay in the foreground, as strata's child (it dies with
// strata). The handle's target is the merged directory; it detaches the
// mount (and reaps strata-overlay) when destroyed.
layerfs::MountHandle mount_rootless(std::vector<std::string> lowers, const std::string& scratch) {
    const char* forced = std::getenv("STRATA_ROOTLESS_DRIVER");
    std::string driver = forced != nullptr ? forced : "";
    if (!driver.empty() && driver != "overlay" && driver != "fuse") {
        throw UsageError("STRATA_ROOTLESS_DRIVER=" + driver + ": expected overlay or fuse");
    }
    std::string merged = scratch + "/merged";
    fs::mkdirs(merged, 0755);
    if (lowers.empty()) {
        fs::mkdirs(scratch + "/empty", 0755);
        lowers.push_back(scratch + "/empty");
    }
    std::string overlay_error;
    if (driver != "fuse") {
        std::string upper = scratch + "/upper";
        std::string ovl_work = scratch + "/work";
        fs::mkdirs(upper, 0755);
        fs::mkdirs(ovl_work, 0755);
        try {
            layerfs::OverlaySpec ospec{lowers, upper, ovl_work, true};
            ospec.userxattr = true;
            layerfs::mount_overlay(ospec, merged);
            STRATA_LOG_DEBUG("run: kernel overlayfs in the user namespace ({})",
                             layerfs::last_overlay_method());
            return layerfs::MountHandle(merged, layerfs::Driver::overlay, {},
                                        layerfs::Teardown::detach);
        } catch (const Error& e) {
            if (driver == "overlay") {
                throw Error(std::string(e.what()) +
                            " (kernel overlayfs inside a user namespace needs Linux 5.11)");
            }
            overlay_error = e.what();
            STRATA_LOG_DEBUG("run: kernel overlayfs in the user namespace failed ({}); using "
                             "strata-overlay (FUSE)",
                             overlay_error);
        }
    }
    std::string upper = scratch + "/fuse-upper";
    std::string fuse_work = scratch + "/fuse-work";
    fs::mkdirs(upper, 0755);
    fs::mkdirs(fuse_work, 0755);
    try {
        layerfs::MountSpec fuse;
        fuse.lowers = lowers;
        fuse.upper = upper;
        fuse.work = fuse_work;
        fuse.driver = layerfs::Driver::fuse;
        fuse.foreground = true;
        fuse.fsname = "strata-run";
        return layerfs::mount(fuse, merged);
    } catch (const Error& e) {
        std::string why = std::string(e.what());
        if (why.find("\"/dev/fuse\"") != std::string::npos) {
            why += " (strata-overlay needs read and write access to /dev/fuse: load the fuse "
                   "module and make the device 0666, as Debian's udev rule does)";
        }
        throw Error("cannot stack the image's layers without root: " +
                    (overlay_error.empty()
                         ? std::string()
                         : "kernel overlayfs in a user namespace: " + overlay_error + "; ") +
                    "strata-overlay (FUSE): " + why);
    }
}

// The image's config and the flags as the runner's spec (rootfs left unset).
runner::RunSpec make_spec(const snapshot::Image& img, const RunOptions& o, std::ostream& warn) {
    // Entrypoint, Cmd, Env, WorkingDir and User: the image's under the
    // flags (builder/image_config.hpp).
    runner::RunSpec spec = builder::image_run_spec(
        img.config, builder::RunOverrides{o.entrypoint, o.command, o.workdir, o.user});
    // Docker: the env files first, in order, then -e.
    std::vector<std::string> env;
    for (const auto& file : o.env_files) {
        auto lookup = [](const std::string& k) -> std::optional<std::string> {
            const char* v = std::getenv(k.c_str());
            return v == nullptr ? std::nullopt : std::optional<std::string>(v);
        };
        for (const auto& e : parse_env_file(file, lookup)) {
            if (auto v = env_flag(e)) {
                env.push_back(*v);
            }
        }
    }
    for (const auto& e : o.env) {
        if (auto v = env_flag(e)) {
            env.push_back(*v);
        }
    }
    builder::override_env(spec.env, env);
    spec.hostname = o.hostname;
    // none or host here; a bridge network or container:NAME is joined at
    // start (containers/network.hpp).
    spec.network = o.network == "host" ? runner::Network::host : runner::Network::none;
    for (const auto& t : o.tmpfs) {
        spec.mounts.push_back(runner::parse_tmpfs(t));
    }
    for (const auto& d : o.devices) {
        spec.security.devices.push_back(runner::parse_device(d));
    }
    for (const auto& h : o.add_hosts) {
        spec.extra_hosts.push_back(parse_add_host(h));
    }
    for (const auto& u : o.ulimits) {
        spec.rlimits.push_back(runner::parse_ulimit(u));
    }
    spec.init = o.init;
    spec.read_only = o.read_only;
    spec.resources = checked_resources(o.resources, warn);
    spec.tty = o.tty;
    apply_security(spec.security, o);
    if (o.interactive || o.tty) {
        spec.stdin_fd = 0;
    }
    if (o.tty) {
        spec.stdout_fd = 1;
    }

    return spec;
}

// The flags' network, Docker's warning when packets will not be forwarded.
containers::NetworkConfig network_config(const std::string& store_root, const RunOptions& o,
                                         bool rootless, std::ostream& warn) {
    std::string mode = o.network.empty() ? (rootless ? "none" : "bridge") : o.network;
    if (rootless && (mode == "pasta" || mode == "slirp4netns")) {
        mode = "none"; // the helper's namespace replaces it (rootless_network)
    }
    if (rootless && mode != "none" && mode != "host") {
        throw UsageError("--network " + mode +
                         ": strata run without root takes --network none, host, pasta or "
                         "slirp4netns (bridge networks need root)");
    }
    auto cfg = containers::NetworkConfig::from_flags(store_root, mode, o.ip, o.network_aliases,
                                                     o.dns, o.dns_search, o.dns_options);
    // Docker's: -p has no meaning in the host's namespace (a warning, as its
    // daemon's; -P and --network none pass silently), none in another container's.
    if (cfg.mode.rfind("container:", 0) == 0 &&
        (!o.publish.publish.empty() || o.publish.publish_all)) {
        throw UsageError(
            "conflicting options: port publishing and the container type network mode");
    }
    if (cfg.mode == "host" && !o.publish.publish.empty()) {
        std::cerr << "WARNING: Published ports are discarded when using host network mode\n";
    }
    if (cfg.bridged() && !network::ipv4_forwarding_enabled()) {
        static bool warned = false;
        if (!warned) {
            warn << "WARNING: IPv4 forwarding is disabled. Networking will not work.\n";
            warned = true;
        }
    }
    return cfg;
}

// Without root, as rootless podman: published ports (-p, -P) or --network
// pasta|slirp4netns give the container a network namespace of its own, made
// in strata's user namespace and connected to the host's network by pasta or
// slirp4netns (network/rootless.hpp), which stops with the returned object.
std::optional<network::rootless::Network>
rootless_network(const RunOptions& o, const snapshot::Image& img, runner::RunSpec& spec) {
    bool named = o.network == "pasta" || o.network == "slirp4netns";
    auto ports = o.publish.for_start(img.config.config.exposed_ports);
    if (!named && (!o.network.empty() || ports.empty())) {
        return std::nullopt; // none (the default without ports) or host
    }
    network::rootless::Options ro;
    for (const auto& p : ports) {
        ro.ports.push_back({p.proto, p.container_port, p.host_ip, p.host_port, p.host_port_end});
    }
    if (named) {
        ro.backend = o.network == "pasta" ? network::rootless::Backend::pasta
                                          : network::rootless::Backend::slirp4netns;
    }
    auto net = network::rootless::Network::create(ro);
    spec.network = runner::Network::join;
    spec.netns_fd = net.netns_fd();
    spec.resolv_conf = net.resolv_conf(o.dns, o.dns_search, o.dns_options);
    return net;
}

void run(Context& ctx, const RunOptions& o) {
    // Without root: into a user and a mount namespace of strata's own first,
    // while strata is single-threaded (setns needs it), and before any
    // snapshot is unpacked (its owners must be the image's, as mapped).
    const bool rootless = ::geteuid() != 0;
    std::string store_root = ctx.store_root(); // the user's store, not root's
    if (rootless) {
        runner::enter_user_namespace(runner::rootless_id_map());
        private_mount_namespace();
    }
    snapshot::Store store(store_root);
    if (o.lazy) {
        lazy_pull_missing(store, o.image, std::cerr); // Docker's run pulls a missing image
    }
    snapshot::Image img = store.load(o.image);

    runner::RunSpec spec = make_spec(img, o, std::cerr);
    containers::NetworkConfig netcfg = network_config(store_root, o, rootless, std::cerr);
    if (netcfg.bridged()) {
        // -p/-P (cli/run_flags.hpp): published while the container runs.
        netcfg.ports = o.publish.for_start(img.config.config.exposed_ports);
        netcfg.exposed = network::ports::exposed_with(
            {img.config.config.exposed_ports.begin(), img.config.config.exposed_ports.end()},
            o.publish.bindings());
    }
    RunVolumes volumes(store, img.config, o.volumes, o.mount_flags, o.rm, spec); // -v, --mount
    volumes.add_volumes_from(o.volumes_from, spec);
    // Root: an image that is not unpacked is served from its compressed
    // layers (strata-lazy, as the overlay's lower) instead of unpacked first.
    // Rootless runs unpack (their snapshots' owners are the mapped ids).
    const bool lazy = !rootless && snapshot::choose_lazy(store, img, lazy_mode(o));
    std::vector<std::string> lowers =
        lazy ? std::vector<std::string>{} : snapshot::top_first(store.ensure_snapshots(img));
    if (rootless) {
        spec.user_namespace = runner::UserNamespace::joined;
        std::optional<TempDir> disk;
        std::string scratch = scratch_dir(o, store, true, disk);
        layerfs::MountHandle root = mount_rootless(lowers, scratch);
        spec.rootfs = root.target();
        volumes.prepare(spec);
        auto net =
            containers::ContainerNetwork::attach(store_root, std::string(), o.name, netcfg, spec);
        auto rootless_net = rootless_network(o, img, spec);
        run_container(ctx, o, spec);
        return;
    }
    private_mount_namespace();
    std::optional<TempDir> disk;
    std::string scratch = scratch_dir(o, store, false, disk);
    std::string upper = scratch + "/upper";
    std::string ovl_work = scratch + "/work";
    // The overlay is mounted over the scratch directory itself (it hides
    // upper and work, which overlayfs has already looked up).
    std::string merged = scratch;
    for (const auto& d : {upper, ovl_work}) {
        fs::mkdirs(d, 0755);
    }
    // The lazy image's server is strata's child and dies with it; its mount
    // is in strata's mount namespace.
    std::optional<layerfs::MountHandle> lazy_lower;
    if (lazy) {
        lazy_lower = mount_lazy_lower(store, img, scratch + "/lazy");
        lowers.push_back(lazy_lower->target());
    }
    if (lowers.empty()) {
        // FROM scratch-like image without layers: an empty lower.
        fs::mkdirs(scratch + "/empty", 0755);
        lowers.push_back(scratch + "/empty");
    }
    // The upper is thrown away: no sync of the disk at unmount ("volatile").
    layerfs::mount_overlay(layerfs::OverlaySpec{lowers, upper, ovl_work, true}, merged);
    layerfs::MountHandle root(merged, layerfs::Driver::overlay, {}, layerfs::Teardown::detach);
    spec.rootfs = merged;
    volumes.prepare(spec);
    // The container's network (a bridge sandbox), torn down after it exits.
    std::string id = containers::new_id();
    if (spec.hostname.empty() && netcfg.bridged()) {
        spec.hostname = containers::short_id(id);
    }
    auto net = containers::ContainerNetwork::attach(store_root, id, o.name, netcfg, spec);
    run_container(ctx, o, spec);
}

void run_container(Context& ctx, const RunOptions& o, const runner::RunSpec& spec) {
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

// Docker's inspect shape of a new container (config.json, containers/store.hpp).
nlohmann::ordered_json container_config(const std::string& id, const snapshot::Image& img,
                                        const RunOptions& o, const runner::RunSpec& spec) {
    const auto& cc = img.config.config;
    nlohmann::ordered_json c;
    c["Id"] = id;
    c["Created"] = containers::now_rfc3339nano();
    c["Path"] = spec.argv.front();
    c["Args"] = std::vector<std::string>(spec.argv.begin() + 1, spec.argv.end());
    c["Image"] = img.id().str();
    c["ResolvConfPath"] = "";
    c["HostnamePath"] = "";
    c["HostsPath"] = "";
    c["Driver"] = "overlay";
    c["Platform"] = "linux";
    nlohmann::ordered_json labels = nlohmann::ordered_json::object();
    for (const auto& [k, v] : cc.labels) {
        labels[k] = v;
    }
    for (const auto& l : o.labels) {
        std::size_t eq = l.find('=');
        labels[l.substr(0, eq)] = eq == std::string::npos ? "" : l.substr(eq + 1);
    }
    std::string stop_signal = !o.stop_signal.empty() ? o.stop_signal : cc.stop_signal;
    if (!stop_signal.empty()) {
        containers::parse_signal(stop_signal); // Docker refuses a bad one at create
    }
    nlohmann::ordered_json config;
    config["Hostname"] = spec.hostname;
    config["Domainname"] = "";
    config["User"] = spec.user;
    config["AttachStdin"] = o.interactive && !o.detach;
    config["AttachStdout"] = !o.detach;
    config["AttachStderr"] = !o.detach;
    config["Tty"] = o.tty;
    config["OpenStdin"] = o.interactive;
    config["StdinOnce"] = o.interactive && !o.detach;
    config["Env"] = spec.env;
    nlohmann::ordered_json cmd = nullptr;
    if (!o.command.empty()) {
        cmd = o.command;
    } else if (!o.entrypoint && cc.cmd) {
        cmd = *cc.cmd;
    }
    config["Cmd"] = cmd;
    config["Image"] = o.image;
    nlohmann::ordered_json volumes = nullptr;
    for (const auto& v : cc.volumes) {
        volumes[v] = nlohmann::ordered_json::object();
    }
    config["Volumes"] = volumes;
    config["WorkingDir"] = !o.workdir.empty() ? o.workdir : cc.working_dir;
    nlohmann::ordered_json entrypoint = nullptr;
    if (o.entrypoint) {
        entrypoint = o.entrypoint->empty() ? nlohmann::ordered_json(nullptr)
                                           : nlohmann::ordered_json::array({*o.entrypoint});
    } else if (cc.entrypoint) {
        entrypoint = *cc.entrypoint;
    }
    config["Entrypoint"] = entrypoint;
    config["OnBuild"] = nullptr;
    config["Labels"] = labels;
    if (!stop_signal.empty()) {
        config["StopSignal"] = stop_signal;
    }
    if (o.stop_timeout) {
        config["StopTimeout"] = *o.stop_timeout;
    }
    nlohmann::ordered_json ports = nlohmann::ordered_json::object();
    for (const auto& p : cc.exposed_ports) {
        ports[p] = nlohmann::ordered_json::object();
    }
    if (!ports.empty()) {
        config["ExposedPorts"] = ports;
    }
    // The check merged over the image's, as Docker keeps it; refused at create.
    auto health = containers::merge_healthcheck(cc.healthcheck, o.health.healthcheck());
    if (!health.test.empty()) {
        containers::effective_healthcheck(health);
        config["Healthcheck"] = containers::healthcheck_to_json(health);
    }
    c["Config"] = config;
    containers::RestartPolicy policy = containers::parse_restart_policy(o.restart);
    if (o.rm && policy.name != "no") {
        throw UsageError("Conflicting options: --restart and --rm");
    }
    nlohmann::ordered_json host;
    host["Binds"] =
        o.volumes.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(o.volumes);
    host["ContainerIDFile"] = "";
    host["LogConfig"] = {{"Type", "json-file"}, {"Config", containers::parse_log_opts(o.log_opts)}};
    host["NetworkMode"] = o.network;
    host["PortBindings"] = nlohmann::ordered_json::object();
    host["RestartPolicy"] = {{"Name", policy.name}, {"MaximumRetryCount", policy.max_retries}};
    host["AutoRemove"] = o.rm;
    host["VolumeDriver"] = "";
    host["VolumesFrom"] = nullptr;
    host["CapAdd"] =
        o.cap_add.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(o.cap_add);
    host["CapDrop"] =
        o.cap_drop.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(o.cap_drop);
    host["ExtraHosts"] =
        o.add_hosts.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(o.add_hosts);
    host["Privileged"] = o.privileged;
    host["PublishAllPorts"] = o.publish.publish_all;
    host["ReadonlyRootfs"] = o.read_only;
    host["SecurityOpt"] = o.security_opts.empty() ? nlohmann::ordered_json(nullptr)
                                                  : nlohmann::ordered_json(o.security_opts);
    nlohmann::ordered_json tmpfs = nullptr;
    for (const auto& t : o.tmpfs) {
        std::size_t colon = t.find(':');
        tmpfs[t.substr(0, colon)] = colon == std::string::npos ? "" : t.substr(colon + 1);
    }
    host["Tmpfs"] = tmpfs;
    host["Init"] = o.init;
    host["Devices"] =
        o.devices.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(o.devices);
    host["Ulimits"] =
        o.ulimits.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(o.ulimits);
    // --mount as Docker's mount.Mount objects (what docker inspect decodes).
    nlohmann::ordered_json host_mounts = nullptr;
    for (const auto& flag : o.mount_flags) {
        MountFlag m = parse_mount(flag);
        nlohmann::ordered_json j;
        if (const auto* v = std::get_if<containers::VolumeRequest>(&m)) {
            j = {{"Type", "volume"}, {"Source", v->name}, {"Target", v->target}};
            if (v->read_only) {
                j["ReadOnly"] = true;
            }
            if (v->nocopy) {
                j["VolumeOptions"] = {{"NoCopy", true}};
            }
        } else {
            const auto& b = std::get<runner::Mount>(m);
            bool tmpfs = b.type == runner::Mount::Type::tmpfs;
            j = {{"Type", tmpfs ? "tmpfs" : "bind"}};
            if (!tmpfs) {
                j["Source"] = b.source;
            }
            j["Target"] = b.target;
            if (b.read_only) {
                j["ReadOnly"] = true;
            }
        }
        host_mounts.push_back(j);
    }
    host["Mounts"] = host_mounts;
    resources_host_config(spec.resources, host); // Memory, NanoCpus... (cli/run_flags.hpp)
    c["HostConfig"] = host;
    o.publish.record(c); // PortBindings, PublishAllPorts, ExposedPorts += -p's
    nlohmann::ordered_json mounts = nlohmann::ordered_json::array();
    for (const auto& m : spec.mounts) {
        if (m.type == runner::Mount::Type::bind) {
            mounts.push_back({{"Type", "bind"},
                              {"Source", m.source},
                              {"Destination", m.target},
                              {"Mode", m.read_only ? "ro" : ""},
                              {"RW", !m.read_only},
                              {"Propagation", "rprivate"}});
        }
    }
    c["Mounts"] = mounts;
    c["StrataSpec"] = containers::spec_to_json(spec);
    return c;
}

} // namespace

std::string create_container(const std::string& store_root, const RunOptions& o,
                             std::ostream& warn) {
    if (::geteuid() != 0) {
        throw UsageError("containers that last (create, run without --rm) need root: strata does "
                         "not keep rootless containers yet (strata run --rm works without root)");
    }
    snapshot::Store store(store_root);
    if (o.lazy) {
        lazy_pull_missing(store, o.image, warn);
    }
    snapshot::ImageRecord rec = store.resolve(o.image);
    snapshot::Image img = store.load(rec.manifest);
    runner::RunSpec spec = make_spec(img, o, warn);
    std::string id = containers::new_id();
    spec.cgroup_name = id; // strata/<id>: stats, pause, exec find it from the id
    if (spec.hostname.empty()) {
        spec.hostname = containers::short_id(id);
    }
    // Volumes are resolved here (named and anonymous ones: containers/volumes.*).
    RunVolumes volumes(store, img.config, o.volumes, o.mount_flags, false, spec, id);
    volumes.add_volumes_from(o.volumes_from, spec);
    volumes.prepare_record(spec, store, img, lazy_mode(o));
    nlohmann::ordered_json config = container_config(id, img, o, spec);
    network_config(store_root, o, false, warn).to_container(config);
    volumes.record(config);
    config["StrataManifest"] = nlohmann::ordered_json::parse(formats::to_json(rec.manifest));
    if (o.lazy || o.no_lazy) {
        // The monitor serves the image lazily or unpacks it at each start;
        // --lazy fails here already when the image cannot be read lazily.
        config["StrataLazy"] = o.lazy ? "on" : "off";
        if (o.lazy) {
            snapshot::choose_lazy(store, img, snapshot::LazyMode::on);
        }
    }
    // Pinned before the record exists: gc never sees a container without its image.
    store.pin("container-" + id, rec.manifest);
    try {
        containers::Store cs(store_root);
        cs.create(std::move(config), o.name);
    } catch (...) {
        store.unpin("container-" + id);
        throw;
    }
    return id;
}

// One option set for run and create (Docker's: the same flags).
void add_run_flags(CLI::App* cmd, const std::shared_ptr<RunOptions>& o) {
    cmd->add_flag("--rm", o->rm,
                  "Automatically remove the container and its anonymous volumes when it exits (the "
                  "fast in-memory path)");
    cmd->add_flag("--init", o->init,
                  "Run strata's init as PID 1 (reaps zombies, forwards signals)");
    cmd->add_flag("-i,--interactive", o->interactive, "Keep stdin open");
    cmd->add_flag("-t,--tty", o->tty, "Allocate a pseudo-terminal");
    cmd->add_option("-e,--env", o->env,
                    "Set an environment variable (K=V, or K to pass it through)")
        ->allow_extra_args(false);
    cmd->add_option("-w,--workdir", o->workdir, "Working directory inside the container");
    cmd->add_option("-u,--user", o->user, "User (name|uid[:group|gid])");
    cmd->add_option("--network", o->network,
                    "Connect a container to a network: bridge (the default as root), none, host, "
                    "a network's name, container:NAME; without root: none (with -p/-P: pasta or "
                    "slirp4netns), host, pasta, slirp4netns");
    cmd->add_option("--ip", o->ip, "IPv4 address (e.g. 172.30.100.104) on a user-defined network");
    cmd->add_option("--network-alias", o->network_aliases,
                    "Add network-scoped alias for the container")
        ->allow_extra_args(false);
    cmd->add_option("--dns", o->dns, "Set custom DNS servers")->allow_extra_args(false);
    cmd->add_option("--dns-search", o->dns_search, "Set custom DNS search domains")
        ->allow_extra_args(false);
    cmd->add_option("--dns-option", o->dns_options, "Set DNS options")->allow_extra_args(false);
    cmd->add_option("--hostname", o->hostname, "Container host name");
    cmd->add_option("-v,--volume", o->volumes,
                    "Bind mount a host path or a volume [SRC:]DST[:OPTS] (SRC without '/' names "
                    "a volume, made when missing; DST alone is an anonymous volume)")
        ->allow_extra_args(false);
    cmd->add_option("--tmpfs", o->tmpfs, "Mount a tmpfs DST[:OPTS]")->allow_extra_args(false);
    cmd->add_option("--ulimit", o->ulimits, "Lower a resource limit NAME=SOFT[:HARD]")
        ->allow_extra_args(false);
    cmd->add_option("--device", o->devices,
                    "Add a host device HOST[:CONTAINER[:PERMS]] (PERMS: r, w, m; default rwm)")
        ->allow_extra_args(false);
    cmd->add_flag("--read-only", o->read_only, "Mount the container's root filesystem read-only");
    auto* lazy = cmd->add_flag("--lazy", o->lazy,
                               "Serve the image from its compressed layers without unpacking it "
                               "(the default when it is not unpacked yet); an image not in the "
                               "store is pulled lazily (strata pull --lazy)");
    cmd->add_flag("--no-lazy", o->no_lazy, "Unpack the image's missing layers first")
        ->excludes(lazy);
    cmd->add_option("--scratch", o->scratch,
                    "Where the container's writes go: memory (tmpfs, the default) or disk")
        ->check(CLI::IsMember({"memory", "disk"}))
        ->capture_default_str();
    cmd->add_option("--entrypoint", o->entrypoint, "Override the image's entrypoint");
    cmd->add_option("--security-opt", o->security_opts,
                    "Security options: seccomp=unconfined|builtin|PROFILE.json (Docker's "
                    "format), no-new-privileges")
        ->allow_extra_args(false);
    cmd->add_option("--cap-add", o->cap_add, "Add a Linux capability (NAME, CAP_NAME or ALL)")
        ->allow_extra_args(false);
    cmd->add_option("--cap-drop", o->cap_drop, "Drop a Linux capability (NAME, CAP_NAME or ALL)")
        ->allow_extra_args(false);
    cmd->add_flag("--privileged", o->privileged,
                  "Give extended privileges: every capability, no seccomp filter, host devices, "
                  "no masked paths");
    // Docker's --env-file, --mount and --add-host (parsed in cli/run_flags.cpp).
    cmd->add_option("--env-file", o->env_files,
                    "Read environment variables from a file (K=V lines)")
        ->allow_extra_args(false);
    cmd->add_option("--volumes-from", o->volumes_from,
                    "Mount the volumes and binds of a container CONTAINER[:ro|:rw]")
        ->allow_extra_args(false);
    cmd->add_option("--mount", o->mount_flags,
                    "Mount type=bind,source=SRC,target=DST[,readonly], type=volume[,source=NAME],"
                    "target=DST[,readonly][,volume-nocopy][,volume-opt=K=V] or type=tmpfs,"
                    "target=DST[,tmpfs-size=N][,tmpfs-mode=OCT]")
        ->allow_extra_args(false);
    add_resource_flags(cmd, o->resources);
    cmd->add_option("--add-host", o->add_hosts, "Add NAME:IP to the container's /etc/hosts")
        ->allow_extra_args(false);
    cmd->add_option("--name", o->name, "Assign a name to the container");
    cmd->add_option("--restart", o->restart,
                    "Restart policy: no, on-failure[:max-retries], always, unless-stopped")
        ->capture_default_str();
    cmd->add_option("-l,--label", o->labels, "Set meta data on a container (K=V)")
        ->allow_extra_args(false);
    cmd->add_option("--log-opt", o->log_opts, "Log driver options: max-size=N, max-file=N")
        ->allow_extra_args(false);
    cmd->add_option("--stop-signal", o->stop_signal, "Signal to stop the container");
    cmd->add_option("--stop-timeout", o->stop_timeout, "Timeout (in seconds) to stop a container");
    add_health_flags(cmd, o->health);
    add_publish_flags(cmd, o->publish);
}

void register_run(CLI::App& app, Context& ctx) {
    auto o = std::make_shared<RunOptions>();
    auto* cmd = app.add_subcommand("run", "Run a command in a new container from an image");
    add_run_flags(cmd, o);
    cmd->add_flag("-d,--detach", o->detach, "Run container in background and print container ID");
    // IMAGE [COMMAND [ARG...]]: everything from the image name on belongs to
    // the container, as with docker run ("strata run busybox ls -l").
    cmd->prefix_command();
    cmd->footer("Usage: strata run [OPTIONS] IMAGE [COMMAND [ARG...]]");
    cmd->callback([&ctx, o, cmd] {
        std::vector<std::string> rest = cmd->remaining();
        if (rest.empty()) {
            throw UsageError("strata run requires an IMAGE");
        }
        // prefix_command() hands an unknown flag over as the image name.
        if (rest.front().size() > 1 && rest.front()[0] == '-') {
            throw UsageError("unknown flag: " + rest.front() + "\nSee 'strata run --help'.");
        }
        o->image = rest.front();
        o->command.assign(rest.begin() + 1, rest.end());
        try {
            if (o->rm && !o->detach) {
                run(ctx, *o); // the fast path: nothing kept
                return;
            }
            // Docker: the container is kept (until rm); -d prints its id.
            std::string id = create_container(ctx.store_root(), *o, std::cerr);
            if (o->detach) {
                start_container(ctx, id, false, false);
                std::cout << id << "\n";
            } else {
                ctx.exit_code = start_container(ctx, id, true, o->interactive);
            }
        } catch (const runner::StartError& e) {
            // Before the container: e.g. a --security-opt profile that cannot be read.
            std::cerr << "strata: error: " << e.what() << "\n";
            ctx.exit_code = e.exit_code();
        }
    });
}

void register_create(CLI::App& app, Context& ctx) {
    auto o = std::make_shared<RunOptions>();
    auto* cmd = app.add_subcommand("create", "Create a new container");
    add_run_flags(cmd, o);
    cmd->prefix_command();
    cmd->footer("Usage: strata create [OPTIONS] IMAGE [COMMAND [ARG...]]");
    cmd->callback([&ctx, o, cmd] {
        std::vector<std::string> rest = cmd->remaining();
        if (rest.empty()) {
            throw UsageError(
                "\"strata create\" requires at least 1 argument.\nSee 'strata create --help'.");
        }
        if (rest.front().size() > 1 && rest.front()[0] == '-') {
            throw UsageError("unknown flag: " + rest.front() + "\nSee 'strata create --help'.");
        }
        o->image = rest.front();
        o->command.assign(rest.begin() + 1, rest.end());
        std::cout << create_container(ctx.store_root(), *o, std::cerr) << "\n";
    });
}

} // namespace strata::cli
