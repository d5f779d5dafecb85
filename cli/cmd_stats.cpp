// strata stats / pause / unpause: a container's cgroup read or frozen from
// this process, found from the container's id alone (its cgroup is
// strata/<id>, runner::cgroup_paths), the state recorded through the
// container store under the container's lock.
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/container_cli.hpp"
#include "cli/stats.hpp"
#include "containers/names.hpp"
#include "containers/store.hpp"
#include "runner/cgroup.hpp"
#include "util/error.hpp"

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <thread>
#include <unistd.h>

namespace strata::cli {

std::string bytes_size(std::uint64_t bytes) {
    static const char* const units[] = {"B",   "KiB", "MiB", "GiB", "TiB",
                                        "PiB", "EiB", "ZiB", "YiB"};
    double size = static_cast<double>(bytes);
    std::size_t i = 0;
    while (size >= 1024.0 && i + 1 < std::size(units)) {
        size /= 1024.0;
        ++i;
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.4g%s", size, units[i]);
    return buf;
}

double cpu_percent(const StatsSample& before, const StatsSample& now) {
    double cpu_delta = static_cast<double>(now.cgroup.cpu_usage_ns) -
                       static_cast<double>(before.cgroup.cpu_usage_ns);
    double system_delta =
        static_cast<double>(now.system_ns) - static_cast<double>(before.system_ns);
    if (system_delta > 0.0 && cpu_delta > 0.0) {
        return cpu_delta / system_delta * static_cast<double>(now.online_cpus) * 100.0;
    }
    return 0.0;
}

TemplateValue stats_row(const std::string& container, const std::string& id,
                        const std::string& name, bool no_trunc, const StatsSample& before,
                        const StatsSample& now) {
    auto percent = [](double v) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.2f%%", v);
        return std::string(buf);
    };
    const auto& c = now.cgroup;
    std::uint64_t used = c.memory_shown();
    double mem_percent = c.memory_limit != 0 ? static_cast<double>(used) /
                                                   static_cast<double>(c.memory_limit) * 100.0
                                             : 0.0;
    TemplateValue v = TemplateValue::object();
    v["Container"] = container;
    v["ID"] = no_trunc ? id : id.substr(0, 12);
    v["Name"] = name.empty() ? "--" : name;
    v["CPUPerc"] = percent(cpu_percent(before, now));
    v["MemUsage"] = bytes_size(used) + " / " + bytes_size(c.memory_limit);
    v["MemPerc"] = percent(mem_percent);
    v["NetIO"] = human_size(now.net.rx) + " / " + human_size(now.net.tx);
    v["BlockIO"] = human_size(c.blkio_read) + " / " + human_size(c.blkio_write);
    v["PIDs"] = std::to_string(c.pids_current);
    return v;
}

TableFormat stats_format() {
    TableFormat t;
    t.default_table = "table {{.ID}}\\t{{.Name}}\\t{{.CPUPerc}}\\t{{.MemUsage}}\\t{{.MemPerc}}"
                      "\\t{{.NetIO}}\\t{{.BlockIO}}\\t{{.PIDs}}";
    t.headers = {{"Container", "CONTAINER"},
                 {"ID", "CONTAINER ID"},
                 {"Name", "NAME"},
                 {"CPUPerc", "CPU %"},
                 {"MemUsage", "MEM USAGE / LIMIT"},
                 {"MemPerc", "MEM %"},
                 {"NetIO", "NET I/O"},
                 {"BlockIO", "BLOCK I/O"},
                 {"PIDs", "PIDS"}};
    return t;
}

StatsSample sample_container(const containers::State& st, const std::string& id) {
    StatsSample s;
    if (!st.running() || st.pid <= 0) {
        return s;
    }
    runner::CgroupPaths cg = runner::cgroup_paths(id);
    if (cg.empty()) {
        return s;
    }
    try {
        s.cgroup = runner::read_cgroup_stats(cg);
        s.net = runner::read_net_io(st.pid);
    } catch (const std::exception&) {
        return StatsSample{}; // ended while being read
    }
    s.system_ns = runner::system_cpu_usage_ns();
    long n = ::sysconf(_SC_NPROCESSORS_ONLN);
    s.online_cpus = n > 0 ? static_cast<int>(n) : 1;
    return s;
}

void pause_container(containers::Store& cs, const std::string& id, bool pause) {
    containers::Lock lock = cs.lock(id);
    containers::State st = cs.load_state(id);
    if (pause) {
        if (!st.running()) {
            throw ContainerConflict("Container " + id + " is not running");
        }
        if (st.status == "paused") {
            throw ContainerConflict("Container " + id + " is already paused");
        }
        if (st.status == "restarting") {
            throw ContainerConflict("Container " + id +
                                    " is restarting, wait until the container is running");
        }
    } else if (st.status != "paused") {
        throw ContainerConflict("Container " + id + " is not paused");
    }
    runner::CgroupPaths cg = runner::cgroup_paths(id);
    if (cg.empty()) {
        throw ContainerConflict("Container " + id + " is not running");
    }
    try {
        pause ? runner::freeze(cg) : runner::thaw(cg);
    } catch (const std::exception& e) {
        throw Error(std::string(pause ? "Cannot pause" : "Cannot unpause") + " container " + id +
                    ": " + e.what());
    }
    st.status = pause ? "paused" : "running";
    cs.save_state(id, st);
}

namespace {

struct StatsOptions {
    bool all = false;
    bool no_stream = false;
    bool no_trunc = false;
    std::string format;
    std::vector<std::string> containers;
};

struct Watched {
    std::string typed; // as the user named it (docker's .Container)
    std::string id;
    StatsSample before;
    bool have_before = false;
};

void stats(Context& ctx, const StatsOptions& o) {
    containers::Store cs(ctx.store_root());
    std::vector<Watched> watched;
    for (const auto& c : o.containers) {
        watched.push_back({c, cs.resolve(c), {}, false}); // NoSuchContainer: docker's message
    }
    bool listed = o.containers.empty();
    auto refresh_list = [&] {
        if (!listed) {
            return;
        }
        std::map<std::string, Watched> old;
        for (auto& w : watched) {
            old.emplace(w.id, std::move(w));
        }
        watched.clear();
        for (const auto& id : cs.list()) {
            try {
                if (!o.all && !cs.load_state(id).running()) {
                    continue;
                }
            } catch (const containers::NoSuchContainer&) {
                continue;
            }
            auto it = old.find(id);
            watched.push_back(it != old.end() ? std::move(it->second)
                                              : Watched{containers::short_id(id), id, {}, false});
        }
    };
    auto take = [&] {
        std::vector<TemplateValue> rows;
        for (auto& w : watched) {
            containers::State st;
            std::string name;
            try {
                st = cs.load_state(w.id);
                name = cs.name(w.id);
            } catch (const containers::NoSuchContainer&) {
                continue; // removed meanwhile
            }
            StatsSample now = sample_container(st, w.id);
            StatsSample before = w.have_before ? w.before : now;
            rows.push_back(stats_row(w.typed, w.id, name, o.no_trunc, before, now));
            w.before = now;
            w.have_before = true;
        }
        return rows;
    };
    refresh_list();
    // The first reading has no earlier one for the CPU %: docker's first
    // frame comes after the daemon's second sample, about a second later.
    take();
    for (;;) {
        std::this_thread::sleep_for(std::chrono::seconds(1));
        refresh_list();
        std::vector<TemplateValue> rows = take();
        std::string text = format_rows(o.format, stats_format(), rows);
        if (o.no_stream) {
            std::cout << text << std::flush;
            return;
        }
        std::cout << "\033[2J\033[H" << text << std::flush;
    }
}

// docker pause / unpause: each container in turn; failures are reported
// and the others still done, as docker's CLI does.
void pause_or_unpause(Context& ctx, const std::vector<std::string>& names, bool pause) {
    containers::Store cs(ctx.store_root());
    std::vector<std::string> errors;
    for (const auto& typed : names) {
        try {
            pause_container(cs, cs.resolve(typed), pause);
            std::cout << typed << "\n";
        } catch (const std::exception& e) {
            errors.push_back(std::string("Error response from daemon: ") + e.what());
        }
    }
    if (!errors.empty()) {
        std::cout << std::flush;
        for (const auto& e : errors) {
            std::cerr << e << "\n";
        }
        ctx.exit_code = 1;
    }
}

void add_stats(CLI::App* cmd, Context& ctx) {
    auto o = std::make_shared<StatsOptions>();
    cmd->add_flag("-a,--all", o->all, "Show all containers (default shows just running)");
    cmd->add_flag("--no-stream", o->no_stream,
                  "Disable streaming stats and only pull the first result");
    cmd->add_flag("--no-trunc", o->no_trunc, "Do not truncate output");
    cmd->add_option("--format", o->format,
                    "Format output using a custom template ('table', 'table TEMPLATE', 'json', "
                    "or a Go template)");
    cmd->add_option("CONTAINER", o->containers, "Containers (default: all running)");
    cmd->callback([&ctx, o] { stats(ctx, *o); });
}

void add_pause(CLI::App* cmd, Context& ctx, bool pause) {
    auto names = std::make_shared<std::vector<std::string>>();
    cmd->add_option("CONTAINER", *names, "Containers")->required();
    cmd->callback([&ctx, names, pause] { pause_or_unpause(ctx, *names, pause); });
}

} // namespace

void register_resources(CLI::App& app, Context& ctx) {
    CLI::App* container = nullptr;
    for (CLI::App* sub :
         app.get_subcommands([](CLI::App* a) { return a->get_name() == "container"; })) {
        container = sub;
    }
    for (CLI::App* parent : {&app, container}) {
        if (parent == nullptr) {
            continue;
        }
        add_stats(parent->add_subcommand("stats",
                                         "Display a live stream of container(s) resource usage "
                                         "statistics"),
                  ctx);
        add_pause(parent->add_subcommand("pause", "Pause all processes within one or more "
                                                  "containers"),
                  ctx, true);
        add_pause(parent->add_subcommand("unpause", "Unpause all processes within one or more "
                                                    "containers"),
                  ctx, false);
    }
}

} // namespace strata::cli
