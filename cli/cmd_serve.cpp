// strata serve: the Docker Engine API on unix sockets, TCP with TLS client
// verification or sockets systemd passes (api/ carries the HTTP,
// cli/serve/ the endpoints), in the foreground until SIGTERM or SIGINT.
#include "api/http.hpp"
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/container_cli.hpp"
#include "cli/images.hpp"
#include "cli/serve/routes.hpp"
#include "containers/store.hpp"
#include "snapshot/reference.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/go_time.hpp"

#include <atomic>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <grp.h>
#include <iostream>
#include <mutex>
#include <pthread.h>
#include <thread>
#include <unistd.h>

namespace strata::cli {

namespace serve {

std::string no_such_image_message(const std::string& text) {
    // dockerd parses the name and reports it with its tag; an ID prefix or a
    // digest stays as given.
    bool hex = !text.empty() && text.find_first_not_of("0123456789abcdef") == std::string::npos;
    if (!hex && !text.starts_with("sha256:") && text.find('@') == std::string::npos) {
        if (auto ref = snapshot::Reference::try_parse(text)) {
            return "No such image: " + ref->familiar();
        }
    }
    return "No such image: " + text;
}

std::pair<int, std::string> classify_error(const std::exception& e) {
    if (const auto* x = dynamic_cast<const snapshot::NoSuchImage*>(&e)) {
        return {404, no_such_image_message(x->text())};
    }
    if (dynamic_cast<const containers::NoSuchContainer*>(&e) != nullptr) {
        return {404, e.what()}; // "No such container: X", dockerd's words
    }
    if (dynamic_cast<const ImageConflict*>(&e) != nullptr ||
        dynamic_cast<const ContainerConflict*>(&e) != nullptr ||
        dynamic_cast<const containers::NameConflict*>(&e) != nullptr) {
        return {409, e.what()};
    }
    if (dynamic_cast<const UsageError*>(&e) != nullptr) {
        return {400, e.what()};
    }
    return {500, e.what()};
}

} // namespace serve

namespace {

struct ServeOpts {
    std::vector<std::string> hosts;
    std::string group;
    bool tlsverify = false;
    std::string tlscacert;
    std::string tlscert;
    std::string tlskey;
};

std::string utc_now() {
    return format_go_time(unix_nanos_now(), TimeZoneStyle::utc, TimeFraction::none);
}

void run_serve(Context& ctx, const ServeOpts& o) {
    api::ServerOptions options;
    for (const auto& h :
         o.hosts.empty() ? std::vector<std::string>{"unix:///run/strata/strata.sock"} : o.hosts) {
        options.listen.push_back(api::ListenAddress::parse(h));
    }
    if (!o.group.empty()) {
        bool numeric = o.group.find_first_not_of("0123456789") == std::string::npos;
        if (numeric) {
            options.socket_gid = static_cast<unsigned>(std::stoul(o.group));
        } else {
            struct group* g = ::getgrnam(o.group.c_str());
            if (g == nullptr) {
                throw UsageError("--group " + o.group + ": no such group");
            }
            options.socket_gid = g->gr_gid;
        }
    }
    if (o.tlsverify) {
        options.tls = api::TlsOptions{o.tlscacert, o.tlscert, o.tlskey};
    } else if (!o.tlscacert.empty() || !o.tlscert.empty() || !o.tlskey.empty()) {
        // dockerd's --tls without --tlsverify serves TLS to any client; strata
        // serves TCP only to clients with a certificate its CA signed.
        throw UsageError("--tlscacert, --tlscert and --tlskey are used with --tlsverify");
    }
    options.server_header = std::string("strata/") + STRATA_VERSION + " (linux)";
    options.classify = serve::classify_error;
    auto log_mutex = std::make_shared<std::mutex>();
    options.log = [log_mutex](const std::string& line) {
        std::lock_guard lock(*log_mutex);
        std::cerr << utc_now() << " strata serve: " << line << "\n";
    };
    ctx.store_root(); // a store directory that cannot be found fails now, not per request

    api::Router router;
    serve::add_system_routes(router, ctx);
    serve::add_image_routes(router, ctx);
    serve::add_container_routes(router, ctx);

    for (const auto& a : options.listen) {
        if (a.kind == api::ListenAddress::Kind::unix_socket) {
            fs::mkdirs(fs::dirname(a.unix_path), 0755);
        }
    }
    // SIGTERM and SIGINT are taken by one thread (every thread made after
    // this inherits the mask); a client gone mid-response is an error from
    // write, not a SIGPIPE.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    auto log = options.log;
    api::Server server(std::move(options), std::move(router));
    for (const auto& where : server.bind()) {
        log("API listen on " + where);
    }
    std::atomic<bool> done{false};
    std::thread waiter([&] {
        timespec tick{0, 200 * 1000 * 1000};
        while (!done) {
            int sig = ::sigtimedwait(&stop_signals, nullptr, &tick);
            if (sig > 0) {
                log(std::string("stopping on ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT"));
                server.stop();
                return;
            }
        }
    });
    try {
        server.run(); // removes the socket files when it returns
    } catch (...) {
        done = true;
        waiter.join();
        throw;
    }
    done = true;
    waiter.join();
    // Connections still open (a `docker logs -f`, a `docker wait`) have
    // threads of their own: the process ends under them rather than
    // destroying what they use. Containers keep running: their monitors own
    // them.
    std::fflush(stdout);
    std::fflush(stderr);
    ::_exit(0);
}

} // namespace

void register_serve(CLI::App& app, Context& ctx) {
    auto o = std::make_shared<ServeOpts>();
    auto* cmd = app.add_subcommand(
        "serve", "Serve the Docker Engine API (docker CLI, docker-py, Compose) on a unix socket");
    cmd->add_option("-H,--host", o->hosts,
                    "Where to listen: unix:///PATH, tcp://HOST:PORT (with --tlsverify) or fd:// "
                    "(systemd socket activation); repeatable; default "
                    "unix:///run/strata/strata.sock")
        ->type_name("ADDR");
    cmd->add_flag(
        "--tlsverify", o->tlsverify,
        "Serve TCP with TLS and accept only clients whose certificate --tlscacert signed");
    cmd->add_option("--tlscacert", o->tlscacert, "CA certificate (PEM) that signs the clients'")
        ->type_name("FILE");
    cmd->add_option("--tlscert", o->tlscert, "The server's TLS certificate (PEM)")
        ->type_name("FILE");
    cmd->add_option("--tlskey", o->tlskey, "The server's TLS key (PEM)")->type_name("FILE");
    cmd->add_option("-G,--group", o->group,
                    "Group owning the sockets (name or GID; mode 0660), root otherwise");
    cmd->callback([&ctx, o] { run_serve(ctx, *o); });
}

} // namespace strata::cli
