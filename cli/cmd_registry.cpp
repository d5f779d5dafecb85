// push, pull, login, logout, catalog, tags: sharing images through a registry.
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/registry.hpp"
#include "registry/auth.hpp"
#include "registry/client.hpp"
#include "registry/transfer.hpp"
#include "util/error.hpp"
#include "util/event_log.hpp"
#include "util/fs.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <termios.h>
#include <unistd.h>

namespace strata::cli {

using snapshot::Reference;

namespace {

struct RemoteOpts {
    bool tls_verify = true;
    int jobs = 4;
    bool quiet = false;
    std::string platform;
    std::uint64_t chunk_size = 0;
    std::string creds;
    std::string compression = "gzip"; // push: zstd layers become gzip unless "zstd"
    bool lazy = false;                // pull --lazy
};

void add_remote_options(CLI::App* cmd, RemoteOpts& o, bool transfer) {
    cmd->add_option("--tls-verify", o.tls_verify,
                    "Verify TLS certificates; false also allows plain HTTP")
        ->default_str("true");
    cmd->add_option("--creds", o.creds, "USER[:PASSWORD] instead of the stored login");
    if (transfer) {
        cmd->add_option("-j,--jobs", o.jobs, "Blobs transferred at once")
            ->capture_default_str()
            ->check(CLI::Range(1, 64));
        cmd->add_flag("-q,--quiet", o.quiet, "Print only the result");
    }
}

registry::ClientOptions client_options(const std::string& registry, const RemoteOpts& o) {
    registry::ClientOptions c = registry::client_options_for(registry, o.tls_verify);
    if (!o.creds.empty()) {
        auto colon = o.creds.find(':');
        c.credentials = registry::Credentials{
            o.creds.substr(0, colon),
            colon == std::string::npos ? std::string() : o.creds.substr(colon + 1), ""};
    }
    c.chunk_size = o.chunk_size;
    return c;
}

// "https://index.docker.io/v1/" -> "docker.io", "http://localhost:5000/" -> "localhost:5000".
std::string normalise_registry(std::string s) {
    if (auto p = s.find("://"); p != std::string::npos) {
        s = s.substr(p + 3);
    }
    if (auto p = s.find('/'); p != std::string::npos) {
        s.resize(p);
    }
    if (s == "index.docker.io" || s == "registry-1.docker.io" || s.empty()) {
        return "docker.io";
    }
    return s;
}

// Thread-safe progress lines in docker's wording.
registry::TransferProgress printer(bool quiet, bool pushing) {
    if (quiet) {
        return {};
    }
    auto mu = std::make_shared<std::mutex>();
    return [mu, pushing](const registry::TransferEvent& e) {
        std::lock_guard lock(*mu);
        std::string id = e.digest.short_id();
        switch (e.kind) {
        case registry::TransferEvent::Kind::resolved:
        case registry::TransferEvent::Kind::fetching:
            return;
        case registry::TransferEvent::Kind::skipped:
            std::cout << id << ": Already exists\n";
            break;
        case registry::TransferEvent::Kind::exists:
            std::cout << id << ": Layer already exists\n";
            break;
        case registry::TransferEvent::Kind::mounted:
            std::cout << id << ": Mounted from " << e.from << "\n";
            break;
        case registry::TransferEvent::Kind::done:
            std::cout << id << (pushing ? ": Pushed " : ": Pull complete ") << human_size(e.size)
                      << "\n";
            break;
        case registry::TransferEvent::Kind::lazy:
            std::cout << id << ": Pulled lazily (table of contents: " << human_size(e.size)
                      << " of " << human_size(std::stoull(e.from))
                      << "; files are fetched when read)\n";
            break;
        case registry::TransferEvent::Kind::completed:
            std::cout << id << ": Pull complete " << human_size(e.size)
                      << " (the rest of a lazy pull)\n";
            break;
        }
        std::cout.flush();
    };
}

std::string read_password_stdin() {
    std::string pw;
    std::getline(std::cin, pw);
    if (!pw.empty() && pw.back() == '\r') {
        pw.pop_back();
    }
    return pw;
}

// Prompts on the terminal with echo off.
std::string prompt(const std::string& label, bool secret) {
    if (::isatty(STDIN_FILENO) == 0) {
        throw UsageError("cannot prompt for " + label +
                         ": stdin is not a terminal (use -u, -p or "
                         "--password-stdin)");
    }
    std::cerr << label << ": " << std::flush;
    termios old{};
    bool restore = false;
    if (secret && ::tcgetattr(STDIN_FILENO, &old) == 0) {
        termios quiet = old;
        quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
        restore = ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet) == 0;
    }
    std::string line;
    std::getline(std::cin, line);
    if (restore) {
        ::tcsetattr(STDIN_FILENO, TCSANOW, &old);
        std::cerr << "\n";
    }
    return line;
}

RemoteSettings settings_of(const RemoteOpts& o) {
    RemoteSettings s;
    s.tls_verify = o.tls_verify;
    s.jobs = o.jobs;
    s.platform = o.platform;
    s.chunk_size = o.chunk_size;
    s.compression = o.compression;
    s.lazy = o.lazy;
    if (!o.creds.empty()) {
        auto colon = o.creds.find(':');
        s.credentials = registry::Credentials{
            o.creds.substr(0, colon),
            colon == std::string::npos ? std::string() : o.creds.substr(colon + 1), ""};
    }
    return s;
}

void do_pull(Context& ctx, const std::string& text, const RemoteOpts& o) {
    Reference ref = Reference::parse(text);
    snapshot::Store store = open_store(ctx);
    if (!o.quiet) {
        std::cout << (ref.digest() ? ref.digest()->str().substr(7, 12) : ref.tag())
                  << ": Pulling from " << ref.familiar_repository() << "\n";
    }
    auto start = std::chrono::steady_clock::now();
    registry::PullResult r = pull_image(store, ref, settings_of(o), printer(o.quiet, false));
    if (o.quiet) {
        std::cout << ref.full() << "\n";
        return;
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << "Digest: " << r.manifest.digest.str() << "\n";
    if (r.blobs_fetched == 0) {
        std::cout << "Status: Image is up to date for " << ref.familiar() << "\n";
    } else {
        std::cout << "Status: Downloaded newer image for " << ref.familiar() << " ("
                  << human_size(r.bytes_fetched) << " in " << fmt::format("{:.1f}", secs) << "s"
                  << (r.layers_lazy > 0
                          ? fmt::format("; {} layer{} pulled lazily: `strata pull` without "
                                        "--lazy fetches the rest",
                                        r.layers_lazy, r.layers_lazy == 1 ? "" : "s")
                          : std::string())
                  << ")\n";
    }
}

void do_push(Context& ctx, const std::string& image, const std::string& dest_text,
             const RemoteOpts& o) {
    snapshot::Store store = open_store(ctx);
    PushTarget target = push_target(store, image, dest_text);
    if (!o.quiet) {
        std::cout << "The push refers to repository [" << target.dest.repository() << "]\n";
    }
    registry::PushResult r =
        push_image(store, target, settings_of(o), printer(o.quiet, true),
                   [&o](const formats::Digest& from, const formats::Digest& to) {
                       if (!o.quiet) {
                           std::cout << from.short_id() << ": converted from zstd to gzip as "
                                     << to.str() << " (--compression zstd pushes zstd)\n";
                       }
                   });
    if (o.quiet) {
        std::cout << r.manifest.digest.str() << "\n";
        return;
    }
    const Reference& dest = target.dest;
    std::cout << (dest.digest() ? dest.digest()->str() : dest.tag())
              << ": digest: " << r.manifest.digest.str() << " size: " << r.manifest.size << "\n";
}

} // namespace

registry::PullResult pull_image(snapshot::Store& store, const Reference& ref,
                                const RemoteSettings& s, registry::TransferProgress progress) {
    registry::TransferOptions t;
    t.client = registry::client_options_for(ref.domain(), s.tls_verify);
    if (s.credentials) {
        t.client.credentials = s.credentials;
    }
    t.client.chunk_size = s.chunk_size;
    t.jobs = s.jobs;
    if (!s.platform.empty()) {
        t.platform = formats::parse_platform(s.platform);
    }
    t.progress = std::move(progress);
    t.lazy = s.lazy;
    registry::PullResult r = registry::pull(store, ref, t);
    // dockerd's: the reference as pulled, its name without the tag.
    events::record_event(store.root(), "image", "pull", ref.familiar(),
                         {{"name", ref.familiar_repository()}});
    return r;
}

void lazy_pull_missing(snapshot::Store& store, const std::string& image, std::ostream& log) {
    try {
        store.resolve(image);
        return;
    } catch (const snapshot::NoSuchImage&) {
        // pulled below, when it names one
    }
    std::optional<Reference> ref;
    try {
        ref = Reference::parse(image);
    } catch (const Error&) {
        throw snapshot::NoSuchImage(image);
    }
    log << "Unable to find image '" << ref->familiar() << "' locally\n"
        << "Pulling " << ref->familiar() << " lazily\n";
    RemoteSettings s;
    s.lazy = true;
    auto mu = std::make_shared<std::mutex>();
    registry::PullResult r =
        pull_image(store, *ref, s, [&log, mu](const registry::TransferEvent& e) {
            if (e.kind != registry::TransferEvent::Kind::lazy &&
                e.kind != registry::TransferEvent::Kind::done) {
                return;
            }
            std::lock_guard lock(*mu);
            log << e.digest.short_id()
                << (e.kind == registry::TransferEvent::Kind::lazy
                        ? ": table of contents " + human_size(e.size) + " of " +
                              human_size(std::stoull(e.from))
                        : std::string(e.config ? ": config " : ": pulled whole ") +
                              human_size(e.size))
                << "\n";
        });
    log << "Digest: " << r.manifest.digest.str() << "\n" << std::flush;
}

PushTarget push_target(snapshot::Store& store, const std::string& image,
                       const std::string& dest_text) {
    snapshot::ImageRecord rec = store.resolve(image);
    if (!dest_text.empty()) {
        return PushTarget{rec, Reference::parse(dest_text)};
    }
    if (rec.name) {
        return PushTarget{rec, *rec.name};
    }
    throw UsageError("image " + image + " has no name: say where to push it (strata push " + image +
                     " REGISTRY/REPOSITORY[:TAG])");
}

registry::PushResult push_image(
    snapshot::Store& store, const PushTarget& target, const RemoteSettings& s,
    registry::TransferProgress progress,
    const std::function<void(const formats::Digest& from, const formats::Digest& to)>& converted) {
    registry::TransferOptions t;
    t.client = registry::client_options_for(target.dest.domain(), s.tls_verify);
    if (s.credentials) {
        t.client.credentials = s.credentials;
    }
    t.client.chunk_size = s.chunk_size;
    t.jobs = s.jobs;
    t.progress = std::move(progress);
    // zstd layers go out as gzip unless --compression zstd: Docker 20.10 and
    // other older clients cannot pull zstd (BuildKit's force-compression).
    formats::Descriptor to_push = target.record.manifest;
    if (s.compression == "gzip") {
        registry::LayerConversion c = registry::convert_layers(
            store, target.record.manifest, formats::Compression::zstd, formats::Compression::gzip);
        for (const auto& [from, to] : c.converted) {
            converted(from, to);
        }
        to_push = c.manifest;
    } else if (s.compression != "zstd") {
        throw UsageError("--compression must be gzip or zstd, not \"" + s.compression + "\"");
    }
    registry::PushResult r = registry::push(store, to_push, target.dest, t);
    events::record_event(store.root(), "image", "push", target.dest.familiar(),
                         {{"name", target.dest.familiar_repository()}});
    return r;
}

void register_registry(CLI::App& app, Context& ctx) {
    {
        auto o = std::make_shared<RemoteOpts>();
        auto ref = std::make_shared<std::string>();
        auto* cmd = app.add_subcommand("pull", "Download an image from a registry");
        cmd->add_option("REF", *ref,
                        "Image reference (busybox, localhost:5000/app:v1, ...@sha256:...)")
            ->required();
        add_remote_options(cmd, *o, true);
        cmd->add_option("--platform", o->platform, "os/arch[/variant] to pick from an index");
        cmd->add_flag("--lazy", o->lazy,
                      "Of zstd:chunked layers, fetch only the tables of contents: files are "
                      "fetched when read (strata run, mount); a pull without --lazy completes "
                      "them");
        cmd->callback([&ctx, o, ref] { do_pull(ctx, *ref, *o); });
    }
    {
        auto o = std::make_shared<RemoteOpts>();
        auto image = std::make_shared<std::string>();
        auto dest = std::make_shared<std::string>();
        auto* cmd = app.add_subcommand("push", "Upload an image to a registry");
        cmd->add_option("IMAGE", *image, "Image in the store (name, ID or digest)")->required();
        cmd->add_option("REF", *dest, "Destination (default: the image's name)");
        add_remote_options(cmd, *o, true);
        cmd->add_option("--compression", o->compression,
                        "Layer compression on the registry: gzip (default: zstd layers are "
                        "converted) or zstd (layers pushed as they are)");
        cmd->add_option("--chunk-size", o->chunk_size,
                        "Upload blobs in PATCH chunks of this many bytes (default: one request)");
        cmd->callback([&ctx, o, image, dest] { do_push(ctx, *image, *dest, *o); });
    }
    {
        struct LoginOpts {
            std::string registry;
            std::string username;
            std::string password;
            bool password_stdin = false;
            RemoteOpts remote;
        };
        auto o = std::make_shared<LoginOpts>();
        auto* cmd =
            app.add_subcommand("login", "Log in to a registry (stored in the Docker config)");
        cmd->add_option("REGISTRY", o->registry, "Registry host[:port] (default: docker.io)");
        cmd->add_option("-u,--username", o->username, "User name");
        cmd->add_option("-p,--password", o->password, "Password (prefer --password-stdin)");
        cmd->add_flag("--password-stdin", o->password_stdin, "Read the password from stdin");
        cmd->add_option("--tls-verify", o->remote.tls_verify, "Verify TLS certificates")
            ->default_str("true");
        cmd->callback([o] {
            std::string reg = normalise_registry(o->registry);
            if (o->password_stdin && !o->password.empty()) {
                throw UsageError("--password and --password-stdin are mutually exclusive");
            }
            std::string user = o->username;
            if (user.empty()) {
                if (o->password_stdin) {
                    throw UsageError("--password-stdin needs --username");
                }
                user = prompt("Username", false);
            }
            std::string pw = o->password;
            if (o->password_stdin) {
                pw = read_password_stdin();
            } else if (pw.empty()) {
                pw = prompt("Password", true);
            } else {
                std::cerr << "WARNING! Using --password via the CLI is insecure. Use "
                             "--password-stdin.\n";
            }
            if (user.empty() || pw.empty()) {
                throw UsageError("login needs a user name and a password");
            }
            registry::ClientOptions c;
            c.tls_verify = o->remote.tls_verify;
            c.credentials = registry::Credentials{user, pw, ""};
            registry::Client client(reg, c);
            try {
                client.ping();
            } catch (const registry::UnauthorizedError& e) {
                throw Error("login to " + reg + " as " + user + " failed: " + e.what());
            }
            std::string path = registry::docker_config_path();
            registry::store_credentials(reg, *c.credentials, path);
            std::cout << "Login Succeeded (credentials saved in " << path << ")\n";
        });
    }
    {
        auto reg = std::make_shared<std::string>();
        auto* cmd = app.add_subcommand("logout", "Remove the stored login for a registry");
        cmd->add_option("REGISTRY", *reg, "Registry host[:port] (default: docker.io)");
        cmd->callback([reg] {
            std::string r = normalise_registry(*reg);
            if (!registry::erase_credentials(r, registry::docker_config_path())) {
                throw Error("not logged in to " + r);
            }
            std::cout << "Removed login credentials for " << r << "\n";
        });
    }
    {
        auto o = std::make_shared<RemoteOpts>();
        auto reg = std::make_shared<std::string>();
        auto* cmd = app.add_subcommand("catalog", "List the repositories of a registry");
        cmd->add_option("REGISTRY", *reg, "Registry host[:port]")->required();
        add_remote_options(cmd, *o, false);
        cmd->callback([o, reg] {
            std::string r = normalise_registry(*reg);
            registry::Client client(r, client_options(r, *o));
            for (const auto& repo : client.catalog()) {
                std::cout << repo << "\n";
            }
        });
    }
    {
        auto o = std::make_shared<RemoteOpts>();
        auto repo = std::make_shared<std::string>();
        auto* cmd = app.add_subcommand("tags", "List the tags of a repository in a registry");
        cmd->add_option("REPO", *repo, "Repository (localhost:5000/app, busybox, ...)")->required();
        add_remote_options(cmd, *o, false);
        cmd->callback([o, repo] {
            Reference ref = Reference::parse(*repo, false);
            if (!ref.tag().empty() || ref.digest()) {
                throw UsageError("tags takes a repository without tag or digest: " + *repo);
            }
            registry::Client client(ref.domain(), client_options(ref.domain(), *o));
            for (const auto& t : client.tags(ref.path())) {
                std::cout << t << "\n";
            }
        });
    }
}

} // namespace strata::cli
