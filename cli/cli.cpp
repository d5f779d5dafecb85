#include "cli/cli.hpp"

#include "cli/commands.hpp"
#include "cli/common.hpp"
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

// The first word of argv that is not a global option or its value: the
// command strata is asked to run ("" when there is none).
std::string first_command_word(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--") {
            return i + 1 < argc ? argv[i + 1] : "";
        }
        if (a == "--root" || a == "--log-level") {
            ++i; // its value
            continue;
        }
        if (!a.empty() && a[0] == '-') {
            continue;
        }
        return a;
    }
    return "";
}

// The subcommand CLI11 parsed last (the one an unknown flag was given to).
const CLI::App* deepest_parsed(const CLI::App& app) {
    for (const CLI::App* sub : app.get_subcommands()) {
        return deepest_parsed(*sub);
    }
    return &app;
}

std::string command_path(const CLI::App* app) {
    std::string path;
    for (const CLI::App* a = app; a != nullptr; a = a->get_parent()) {
        path = a->get_name() + (path.empty() ? "" : " " + path);
    }
    return path;
}

int usage_error(const std::string& message, const std::vector<std::string>& suggestions,
                const std::string& help_command) {
    std::fflush(stdout);
    std::cerr << "strata: error: " << message << "\n";
    if (!suggestions.empty()) {
        std::cerr << "\nDid you mean " << (suggestions.size() == 1 ? "this" : "one of these") << "?\n";
        for (const auto& s : suggestions) {
            std::cerr << "\t" << s << "\n";
        }
        std::cerr << "\n";
    }
    std::cerr << "Run '" << help_command << " --help' for usage.\n";
    return 2;
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
    std::uint64_t max_file_size = formats::k_default_max_file_size;
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
    register_create(app, ctx);
    register_containers(app, ctx);
    register_resources(app, ctx); // after: adds to `container` too
    register_exec(app, ctx);
    register_top(app, ctx);
    register_mount(app, ctx);
    register_layer(app, ctx);
    register_parse(app, ctx);
    register_history(app, ctx);
    register_layers(app, ctx);
    register_ls(app, ctx);
    register_cat(app, ctx);
    register_cp(app, ctx);
    register_diff(app, ctx);
    register_analyze(app, ctx);
    register_build(app, ctx);
    register_container_fs(app, ctx);
    register_volume(app, ctx);
    register_network(app, ctx);
    register_port(app, ctx);
    register_prune(app, ctx); // after register_images: adds to `system`
    register_events(app, ctx);
    register_serve(app, ctx);
    register_completion(app, ctx); // last: it walks the commands above
    app.set_version_flag("-v,--version", std::string("strata version ") + STRATA_VERSION,
                         "Print the version and exit");

    // An unknown command: say so, with the commands it may be a typo of.
    if (std::string word = first_command_word(argc, argv); !word.empty()) {
        std::vector<std::string> names;
        bool known = false;
        for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
            names.push_back(sub->get_name());
            known = known || sub->check_name(word);
        }
        if (!known) {
            return usage_error("'" + word + "' is not a strata command", did_you_mean(word, names),
                               "strata");
        }
    }

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
        std::cout << app.help();
        return 0;
    } catch (const CLI::CallForAllHelp&) {
        std::cout << app.help("", CLI::AppFormatMode::All);
        return 0;
    } catch (const CLI::ExtrasError& e) {
        // "The following argument(s) was/were not expected: A B" (CLI11
        // lists them last first): an unknown flag says so, with the flags
        // of its command it may be a typo of.
        std::string msg = e.what();
        std::vector<std::string> extras;
        if (auto colon = msg.find(": "); colon != std::string::npos) {
            std::string rest = msg.substr(colon + 2);
            std::size_t pos = 0;
            while (pos < rest.size()) {
                std::size_t sp = rest.find(' ', pos);
                extras.insert(extras.begin(), rest.substr(pos, sp == std::string::npos ? std::string::npos : sp - pos));
                pos = sp == std::string::npos ? rest.size() : sp + 1;
            }
        }
        const CLI::App* cmd = deepest_parsed(app);
        for (const auto& x : extras) {
            if (x.size() > 1 && x[0] == '-') {
                std::string flag = x.substr(0, x.find('='));
                std::vector<std::string> flags;
                for (const CLI::Option* opt : cmd->get_options()) {
                    for (const auto& l : opt->get_lnames()) {
                        flags.push_back("--" + l);
                    }
                }
                std::vector<std::string> hints = flag.rfind("--", 0) == 0 ? did_you_mean(flag, flags)
                                                                         : std::vector<std::string>{};
                return usage_error("unknown flag: " + flag, hints, command_path(cmd));
            }
        }
        return usage_error(msg, {}, command_path(cmd));
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
