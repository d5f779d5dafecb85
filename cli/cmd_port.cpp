// port: a container's published ports, as `docker port` prints them
// ("80/tcp -> 0.0.0.0:8080", or with PRIVATE_PORT[/PROTO] the host
// addresses alone), from the NetworkSettings.Ports of the running
// container's sandbox (<store>/containers/<id>/network.json, written while
// it runs). A container that does not run publishes nothing.
#include "cli/commands.hpp"
#include "containers/store.hpp"
#include "network/ports.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

namespace strata::cli {

namespace {

nlohmann::json published_ports(const containers::Store& cs, const std::string& id) {
    const std::string path = cs.path(id) + "/network.json";
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        return nlohmann::json::object(); // not running, or no network of its own
    }
    nlohmann::json settings = nlohmann::json::parse(fs::read_file(path, 1u << 20), nullptr, false);
    if (settings.is_discarded() || !settings.is_object()) {
        throw Error(path + ": not a JSON object");
    }
    return settings.value("Ports", nlohmann::json::object());
}

void add_port(CLI::App* cmd, Context& ctx) {
    auto container = std::make_shared<std::string>();
    auto filter = std::make_shared<std::string>();
    cmd->add_option("CONTAINER", *container, "Container name or id")->required();
    cmd->add_option("PRIVATE_PORT", *filter, "A port of the container: PORT[/PROTO]");
    cmd->callback([&ctx, container, filter] {
        containers::Store cs(ctx.store_root());
        std::string id = cs.resolve(*container);
        std::vector<std::string> lines;
        try {
            lines = network::ports::port_lines(published_ports(cs, id), *filter, *container);
        } catch (const UsageError&) {
            throw;
        } catch (const Error& e) {
            // Docker's own text, which starts with "Error: ".
            std::cerr << e.what() << "\n";
            ctx.exit_code = 1;
            return;
        }
        for (const auto& l : lines) {
            std::cout << l << "\n";
        }
    });
}

} // namespace

// `port` and `container port` (registered after the `container` group).
void register_port(CLI::App& app, Context& ctx) {
    CLI::App* container = nullptr;
    for (CLI::App* sub :
         app.get_subcommands([](CLI::App* a) { return a->get_name() == "container"; })) {
        container = sub;
    }
    for (CLI::App* parent : {&app, container}) {
        if (parent != nullptr) {
            add_port(parent->add_subcommand(
                         "port", "List port mappings or a specific mapping for the container"),
                     ctx);
        }
    }
}

} // namespace strata::cli
