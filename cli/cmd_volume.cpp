// volume create|ls|inspect|rm|prune: named volumes in the store
// (containers/volumes.hpp), with Docker's flags and output.
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/template.hpp"
#include "cli/volumes.hpp"
#include "containers/names.hpp"
#include "containers/volumes.hpp"
#include "util/error.hpp"

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <string>
#include <vector>

namespace strata::cli {

namespace {

using containers::StringMap;
using containers::Volume;
using containers::VolumeStore;

// K=V items of --label / --opt into a map (a bare K maps to "").
StringMap key_values(const std::vector<std::string>& items) {
    StringMap m;
    for (const auto& item : items) {
        auto eq = item.find('=');
        m[item.substr(0, eq)] = eq == std::string::npos ? "" : item.substr(eq + 1);
    }
    return m;
}

// Docker's sortorder.NaturalLess: digit runs compare as numbers.
bool natural_less(const std::string& a, const std::string& b) {
    std::size_t i = 0, j = 0;
    auto digit = [](char c) { return c >= '0' && c <= '9'; };
    while (i < a.size() && j < b.size()) {
        if (digit(a[i]) && digit(b[j])) {
            std::size_t i0 = i, j0 = j;
            while (i < a.size() && a[i] == '0')
                ++i;
            while (j < b.size() && b[j] == '0')
                ++j;
            std::size_t is = i, js = j;
            while (i < a.size() && digit(a[i]))
                ++i;
            while (j < b.size() && digit(b[j]))
                ++j;
            std::string na = a.substr(is, i - is), nb = b.substr(js, j - js);
            if (na.size() != nb.size()) {
                return na.size() < nb.size();
            }
            if (na != nb) {
                return na < nb;
            }
            if (i - i0 != j - j0) {
                return i - i0 < j - j0;
            }
            continue;
        }
        if (a[i] != b[j]) {
            return a[i] < b[j];
        }
        ++i;
        ++j;
    }
    return a.size() - i < b.size() - j;
}

// Docker's filters: key=value pairs; values of one key are alternatives,
// different keys must all match (labels: every label filter must match).
struct Filters {
    std::map<std::string, std::vector<std::string>> by_key;

    static Filters parse(const std::vector<std::string>& items, const std::set<std::string>& keys) {
        Filters f;
        for (const auto& item : items) {
            auto eq = item.find('=');
            if (eq == std::string::npos) {
                throw UsageError("bad format of filter (expected name=value)");
            }
            std::string key = item.substr(0, eq);
            std::string value = item.substr(eq + 1);
            if (key.size() > 1 && key.back() == '!') {
                key = key.substr(0, key.size() - 1) + "!";
            }
            if (keys.count(key) == 0) {
                throw UsageError("invalid filter '" + key + "'");
            }
            f.by_key[key].push_back(value);
        }
        return f;
    }

    static bool label_matches(const Volume& v, const std::string& filter) {
        auto eq = filter.find('=');
        std::string k = filter.substr(0, eq);
        if (!v.labels || v.labels->count(k) == 0) {
            return false;
        }
        return eq == std::string::npos || v.labels->at(k) == filter.substr(eq + 1);
    }

    // The label, label! (Docker's label!=) and all filters prune and ls share.
    bool labels_match(const Volume& v) const {
        if (auto it = by_key.find("label"); it != by_key.end()) {
            for (const auto& l : it->second) {
                if (!label_matches(v, l)) {
                    return false;
                }
            }
        }
        if (auto it = by_key.find("label!"); it != by_key.end()) {
            for (const auto& l : it->second) {
                if (label_matches(v, l)) {
                    return false;
                }
            }
        }
        return true;
    }
};

bool parse_filter_bool(const std::string& key, const std::string& v) {
    if (v == "true" || v == "1") {
        return true;
    }
    if (v == "false" || v == "0") {
        return false;
    }
    throw UsageError("invalid filter '" + key + "=" + v + "'");
}

std::string labels_text(const Volume& v) {
    std::string out;
    if (v.labels) {
        for (const auto& [k, val] : *v.labels) {
            out += (out.empty() ? "" : ",") + k + "=" + val;
        }
    }
    return out;
}

// A row of `volume ls` as Docker's volume formatter context offers it.
TemplateValue ls_row(const Volume& v) {
    TemplateValue r;
    r["Availability"] = "N/A";
    r["Driver"] = v.driver;
    r["Group"] = "N/A";
    r["Labels"] = labels_text(v);
    r["Links"] = "N/A";
    r["Mountpoint"] = v.mountpoint;
    r["Name"] = v.name;
    r["Scope"] = v.scope;
    r["Size"] = "N/A";
    r["Status"] = "N/A";
    return r;
}

void register_create(CLI::App* volume, Context& ctx) {
    struct Options {
        std::string name_flag;
        std::string driver = "local";
        std::vector<std::string> labels;
        std::vector<std::string> opts;
        std::string name;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = volume->add_subcommand("create", "Create a volume");
    cmd->add_option("--name", o->name_flag, "Specify volume name");
    cmd->add_option("-d,--driver", o->driver, "Specify volume driver name (local)")
        ->capture_default_str();
    cmd->add_option("--label", o->labels, "Set metadata for a volume (K=V)")
        ->allow_extra_args(false);
    cmd->add_option("-o,--opt", o->opts,
                    "Set driver specific options: type=tmpfs|none|..., device=..., o=...")
        ->allow_extra_args(false);
    cmd->add_option("NAME", o->name, "Volume name (a random one when omitted)");
    cmd->footer("Usage: strata volume create [OPTIONS] [VOLUME]");
    cmd->callback([&ctx, o] {
        if (!o->name.empty() && !o->name_flag.empty() && o->name != o->name_flag) {
            throw UsageError(
                "conflicting options: either specify --name or provide positional arg, not both");
        }
        snapshot::Store store = open_store(ctx);
        VolumeStore volumes(store);
        containers::VolumeCreate req;
        req.name = !o->name.empty() ? o->name : o->name_flag;
        req.driver = o->driver;
        req.labels = key_values(o->labels);
        req.options = key_values(o->opts);
        if (req.name.empty()) {
            // Docker: a random 64-hex name, but not an anonymous volume (no
            // label): `volume prune` without -a keeps it.
            req.name = containers::new_id();
        }
        auto [v, created] = volumes.create(req);
        (void)created;
        std::cout << v.name << "\n";
    });
}

void register_ls(CLI::App* volume, Context& ctx) {
    struct Options {
        bool quiet = false;
        std::vector<std::string> filters;
        std::string format;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = volume->add_subcommand("ls", "List volumes");
    cmd->alias("list");
    cmd->add_flag("-q,--quiet", o->quiet, "Only display volume names");
    cmd->add_option("-f,--filter", o->filters,
                    "Filter output (dangling=true|false, name=REGEX, label=K[=V], label!=K[=V], "
                    "driver=local)")
        ->allow_extra_args(false);
    cmd->add_option("--format", o->format,
                    "Format output: table, table TEMPLATE, json or a Go template");
    cmd->callback([&ctx, o] {
        snapshot::Store store = open_store(ctx);
        VolumeStore volumes(store);
        std::vector<TemplateValue> rows;
        for (const auto& v : list_volumes(volumes, o->filters)) {
            rows.push_back(ls_row(v));
        }
        if (o->quiet && o->format.empty()) {
            for (const auto& r : rows) {
                std::cout << r["Name"].get<std::string>() << "\n";
            }
            return;
        }
        TableFormat table;
        table.default_table = "table {{.Driver}}\t{{.Name}}";
        table.headers = {{"Name", "VOLUME NAME"}, {"Driver", "DRIVER"},
                         {"Scope", "SCOPE"},      {"Mountpoint", "MOUNTPOINT"},
                         {"Labels", "LABELS"},    {"Links", "LINKS"},
                         {"Size", "SIZE"},        {"Group", "GROUP"},
                         {"Status", "STATUS"},    {"Availability", "AVAILABILITY"}};
        std::cout << format_rows(o->format, table, rows);
    });
}

void register_inspect(CLI::App* volume, Context& ctx) {
    struct Options {
        std::string format;
        std::vector<std::string> names;
    };
    auto o = std::make_shared<Options>();
    auto* cmd =
        volume->add_subcommand("inspect", "Display detailed information on one or more volumes");
    cmd->add_option("-f,--format", o->format, "Format output using a Go template, or json");
    cmd->add_option("VOLUME", o->names, "Volume names")->required();
    cmd->callback([&ctx, o] {
        snapshot::Store store = open_store(ctx);
        VolumeStore volumes(store);
        bool found =
            print_inspected(o->format, o->names, "volume",
                            [&](const std::string& name) -> std::optional<nlohmann::ordered_json> {
                                auto v = volumes.maybe_get(name);
                                if (!v) {
                                    return std::nullopt;
                                }
                                return v->to_json();
                            });
        if (!found) {
            ctx.exit_code = 1;
        }
    });
}

void register_rm(CLI::App* volume, Context& ctx) {
    struct Options {
        bool force = false;
        std::vector<std::string> names;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = volume->add_subcommand("rm", "Remove one or more volumes");
    cmd->alias("remove");
    cmd->add_flag("-f,--force", o->force, "Do not fail on volumes that do not exist");
    cmd->add_option("VOLUME", o->names, "Volume names")->required();
    cmd->callback([&ctx, o] {
        enter_store_user_namespace(ctx); // the container's files may be subordinate ids'
        snapshot::Store store = open_store(ctx);
        VolumeStore volumes(store);
        int failures = each_reporting_errors(o->names, [&](const std::string& name) {
            if (volumes.remove(name, o->force) || o->force) {
                std::cout << name << "\n";
            }
        });
        if (failures > 0) {
            ctx.exit_code = 1;
        }
    });
}

void register_prune(CLI::App* volume, Context& ctx) {
    struct Options {
        bool all = false;
        bool force = false;
        std::vector<std::string> filters;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = volume->add_subcommand("prune", "Remove unused local volumes");
    cmd->add_flag("-a,--all", o->all, "Remove all unused volumes, not just anonymous ones");
    cmd->add_flag("-f,--force", o->force, "Do not prompt for confirmation");
    cmd->add_option("--filter", o->filters, "Provide filter values (label=K[=V], label!=K[=V])")
        ->allow_extra_args(false);
    cmd->callback([&ctx, o] {
        bool all = o->all || prune_all_filter(o->filters);
        if (!o->force &&
            !confirmed(all ? "This will remove all local volumes not used by at least one "
                             "container."
                           : "This will remove anonymous local volumes not used by at least one "
                             "container.")) {
            return;
        }
        enter_store_user_namespace(ctx);
        snapshot::Store store = open_store(ctx);
        VolumeStore volumes(store);
        auto r = prune_volumes(volumes, o->filters, all);
        if (!r.removed.empty()) {
            std::cout << "Deleted Volumes:\n";
            for (const auto& name : r.removed) {
                std::cout << name << "\n";
            }
            std::cout << "\n";
        }
        std::cout << "Total reclaimed space: " << human_size(r.bytes, 4) << "\n";
    });
}

} // namespace

std::vector<Volume> list_volumes(const VolumeStore& volumes,
                                 const std::vector<std::string>& filters) {
    Filters f = Filters::parse(filters, {"dangling", "name", "label", "label!", "driver"});
    std::vector<Volume> list = volumes.list();
    std::sort(list.begin(), list.end(),
              [](const Volume& a, const Volume& b) { return natural_less(a.name, b.name); });
    std::vector<Volume> out;
    for (const auto& v : list) {
        if (!f.labels_match(v)) {
            continue;
        }
        if (auto it = f.by_key.find("dangling"); it != f.by_key.end()) {
            bool want = parse_filter_bool("dangling", it->second.back());
            if (volumes.users(v.name).empty() != want) {
                continue;
            }
        }
        if (auto it = f.by_key.find("name"); it != f.by_key.end()) {
            bool any = false;
            for (const auto& re : it->second) {
                try {
                    any = any || std::regex_search(v.name, std::regex(re));
                } catch (const std::regex_error&) {
                    throw UsageError("invalid filter 'name=" + re + "': not a regular expression");
                }
            }
            if (!any) {
                continue;
            }
        }
        if (auto it = f.by_key.find("driver"); it != f.by_key.end()) {
            if (std::find(it->second.begin(), it->second.end(), v.driver) == it->second.end()) {
                continue;
            }
        }
        out.push_back(v);
    }
    return out;
}

bool prune_all_filter(const std::vector<std::string>& filters) {
    Filters f = Filters::parse(filters, {"label", "label!", "all"});
    auto it = f.by_key.find("all");
    return it != f.by_key.end() && parse_filter_bool("all", it->second.back());
}

VolumeStore::PruneResult prune_volumes(VolumeStore& volumes,
                                       const std::vector<std::string>& filters, bool all) {
    Filters f = Filters::parse(filters, {"label", "label!", "all"});
    return volumes.prune(
        [&](const Volume& v) { return (all || v.anonymous()) && f.labels_match(v); });
}

void register_volume(CLI::App& app, Context& ctx) {
    auto* volume = app.add_subcommand("volume", "Manage volumes");
    volume->require_subcommand(1);
    register_create(volume, ctx);
    register_ls(volume, ctx);
    register_inspect(volume, ctx);
    register_rm(volume, ctx);
    register_prune(volume, ctx);
}

} // namespace strata::cli
