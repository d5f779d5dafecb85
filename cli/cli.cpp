#include "cli/cli.hpp"

#include "cli/commands.hpp"
#include "formats/limits.hpp"
#include "util/error.hpp"
#include "util/log.hpp"

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <unistd.h>

namespace strata::cli {

std::string Context::store_root() const {
    if (!root.empty()) {
        return root;
    }
    if (const char* env = std::getenv("STRATA_ROOT"); env != nullptr && *env != '\0') {
        return env;
    }
    if (::geteuid() == 0) {
        return "/var/lib/strata";
    }
    if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg != nullptr && *xdg != '\0') {
        return std::string(xdg) + "/strata";
    }
    if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
        return std::string(home) + "/.local/share/strata";
    }
    throw Error("cannot find a store directory: set --root, STRATA_ROOT or HOME");
}

namespace {

log::Level parse_level(const std::string& s) {
    if (s == "error") return log::Level::error;
    if (s == "warn" || s == "warning") return log::Level::warn;
    if (s == "info") return log::Level::info;
    if (s == "debug") return log::Level::debug;
    if (s == "trace") return log::Level::trace;
    throw UsageError("unknown log level \"" + s + "\" (error, warn, info, debug, trace)");
}

} // namespace

int run_cli(int argc, char** argv) {
    CLI::App app{"strata: a daemonless container image builder and filesystem toolkit", "strata"};
    app.require_subcommand(1);
    Context ctx;
    app.add_option("--root", ctx.root, "Store directory (default: STRATA_ROOT, /var/lib/strata)")
        ->type_name("DIR");
    app.add_flag("-D,--debug", ctx.debug, "Debug logging");
    app.add_option("--log-level", ctx.log_level, "error, warn, info, debug or trace");
    std::uint64_t max_file_size = formats::kDefaultMaxFileSize;
    app.add_option("--max-file-size", max_file_size,
                   "Largest file a layer may create, sparse files included (bytes; default 64 GiB)")
        ->envname("STRATA_MAX_FILE_SIZE")
        ->type_name("BYTES");
    app.parse_complete_callback([&] {
        if (ctx.debug) {
            log::set_level(log::Level::debug);
        }
        if (!ctx.log_level.empty()) {
            log::set_level(parse_level(ctx.log_level));
        }
        formats::set_max_file_size(max_file_size);
    });

    register_version(app, ctx);
    register_registry(app, ctx);
    register_bootstrap(app, ctx);
    register_images(app, ctx);
    register_inspect(app, ctx);
    register_maintenance(app, ctx);
    register_import(app, ctx);
    register_archive(app, ctx);
    register_run(app, ctx);
    register_mount(app, ctx);
    register_layer(app, ctx);
    register_parse(app, ctx);
    register_inspect_layers(app, ctx);
    register_build(app, ctx);

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
        std::cout << app.help();
        return 0;
    } catch (const CLI::CallForAllHelp&) {
        std::cout << app.help("", CLI::AppFormatMode::All);
        return 0;
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) {
            return app.exit(e);
        }
        std::fflush(stdout);
        std::cerr << "strata: error: " << e.what() << "\n";
        std::cerr << "Run 'strata --help' for usage.\n";
        return 2;
    } catch (const UsageError& e) {
        std::fflush(stdout);
        std::cerr << "strata: error: " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::fflush(stdout);
        std::cerr << "strata: error: " << e.what() << "\n";
        return 1;
    }
    std::fflush(stdout);
    return ctx.exit_code;
}

} // namespace strata::cli
