// strata builder prune and strata system prune: docker's commands of the
// same names on the store (the build cache, and everything prune can take).

#include "cli/build_cache.hpp"
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/container_cli.hpp"
#include "cli/images.hpp"
#include "cli/networks.hpp"
#include "cli/run_flags.hpp"
#include "cli/volumes.hpp"
#include "containers/store.hpp"
#include "containers/volumes.hpp"
#include "util/error.hpp"

#include <iostream>
#include <memory>

namespace strata::cli {

builder::CachePruneOptions build_cache_prune_options(const std::vector<std::string>& filters,
                                                     bool all) {
    builder::CachePruneOptions o;
    o.all = all;
    for (const auto& f : filters) {
        auto eq = f.find('=');
        if (eq == std::string::npos) {
            throw UsageError("bad format of filter (expected name=value)");
        }
        std::string key = f.substr(0, eq);
        if (key != "until") {
            throw UsageError("Invalid filter '" + key + "'");
        }
        o.until = until_seconds(f.substr(eq + 1));
    }
    return o;
}

namespace {

void register_builder_prune(CLI::App& app, Context& ctx) {
    struct Options {
        bool all = false;
        bool force = false;
        std::vector<std::string> filters;
        std::string keep_storage;
    };
    auto o = std::make_shared<Options>();
    auto* builder = app.add_subcommand("builder", "Manage the build cache (docker builder)");
    builder->require_subcommand(1);
    auto* cmd = builder->add_subcommand("prune", "Remove build cache");
    cmd->add_flag("-a,--all", o->all, "Remove all unused build cache, not just dangling ones");
    cmd->add_flag("-f,--force", o->force, "Do not prompt for confirmation");
    cmd->add_option("--filter", o->filters, "Provide filter values (until=TIME)")
        ->allow_extra_args(false);
    cmd->add_option("--keep-storage", o->keep_storage,
                    "Amount of disk space to keep for cache (e.g. 512m, 2g)");
    cmd->callback([&ctx, o] {
        builder::CachePruneOptions opts = build_cache_prune_options(o->filters, o->all);
        if (!o->keep_storage.empty()) {
            opts.keep_storage =
                static_cast<std::uint64_t>(parse_memory_bytes("--keep-storage", o->keep_storage));
        }
        if (!o->force && !confirmed(o->all ? "This will remove all build cache."
                                           : "This will remove all dangling build cache.",
                                    " ")) {
            return;
        }
        enter_store_user_namespace(ctx); // gc removes snapshots
        snapshot::Store store = open_store(ctx);
        builder::CachePruneResult r = builder::prune_build_cache(store, opts);
        print_pruned("Deleted build cache objects", r.removed);
        std::cout << "Total reclaimed space: " << human_size(r.reclaimed, 4) << "\n";
    });
}

void register_system_prune(CLI::App& app, Context& ctx) {
    struct Options {
        bool all = false;
        bool force = false;
        bool volumes = false;
        std::vector<std::string> filters;
    };
    auto o = std::make_shared<Options>();
    CLI::App* system = app.get_subcommand("system");
    auto* cmd = system->add_subcommand("prune", "Remove unused data");
    cmd->add_flag("-a,--all", o->all, "Remove all unused images not just dangling ones");
    cmd->add_flag("-f,--force", o->force, "Do not prompt for confirmation");
    cmd->add_flag("--volumes", o->volumes, "Prune anonymous volumes");
    cmd->add_option("--filter", o->filters, "Provide filter values (until=TIME, label=K[=V])")
        ->allow_extra_args(false);
    cmd->callback([&ctx, o] {
        // The build cache takes until= only: label filters are for the others.
        std::vector<std::string> cache_filters;
        for (const auto& f : o->filters) {
            if (f.starts_with("until=")) {
                cache_filters.push_back(f);
            }
        }
        builder::CachePruneOptions cache_opts = build_cache_prune_options(cache_filters, o->all);
        if (o->volumes && !cache_filters.empty()) {
            throw UsageError("ERROR: The \"until\" filter is not supported with \"--volumes\"");
        }
        if (!o->force) {
            std::string what = "This will remove:\n  - all stopped containers\n"
                               "  - all networks not used by at least one container\n";
            if (o->volumes) {
                what += "  - all anonymous volumes not used by at least one container\n";
            }
            what += o->all ? "  - all images without at least one container associated to them\n"
                             "  - all build cache\n"
                           : "  - all dangling images\n  - all dangling build cache\n";
            if (!confirmed(what)) {
                return;
            }
        }
        enter_store_user_namespace(ctx);
        std::uint64_t reclaimed = 0;
        {
            containers::Store cs(ctx.store_root());
            ContainerPrune r = prune_containers(cs, o->filters);
            print_pruned("Deleted Containers", r.removed);
            reclaimed += r.bytes;
        }
        print_pruned("Deleted Networks", prune_networks(ctx.store_root(), o->filters));
        snapshot::Store store = open_store(ctx);
        if (o->volumes) {
            containers::VolumeStore volumes(store);
            auto r = prune_volumes(volumes, o->filters, prune_all_filter(o->filters));
            print_pruned("Deleted Volumes", r.removed);
            reclaimed += r.bytes;
        }
        {
            std::vector<std::string> filters = o->filters;
            filters.push_back(o->all ? "dangling=false" : "dangling=true");
            ImagePrune r = prune_images(ctx, store, filters);
            print_pruned("Deleted Images", pruned_image_lines(r));
            reclaimed += r.reclaimed;
        }
        builder::CachePruneResult r = builder::prune_build_cache(store, cache_opts);
        print_pruned("Deleted build cache objects", r.removed);
        reclaimed += r.reclaimed;
        std::cout << "Total reclaimed space: " << human_size(reclaimed, 4) << "\n";
    });
}

} // namespace

void register_prune(CLI::App& app, Context& ctx) {
    register_builder_prune(app, ctx);
    register_system_prune(app, ctx);
}

} // namespace strata::cli
